//! Fuzzing entry points: each takes arbitrary bytes and drives one part of
//! the pipeline (decoder, protocol probes and dissectors, tunnels, the whole
//! engine, the capture-file reader). The cargo-fuzz targets in `fuzz/` call
//! them, and `tests/fuzz_regressions.rs` replays the inputs that once made
//! them fail (`fuzz/regressions/<target>/`), so no cargo-fuzz is needed to
//! keep a fixed bug fixed. Not an API: no promise of stability.
//!
//! Each entry point may panic only on a bug: malformed input must give an
//! error, a count or nothing.

use crate::analysis::turns::Turns;
use crate::capture::{Frame, Receiver, offline};
use crate::decode::{LinkType, decode_wire};
use crate::engine::{Engine, EngineConfig};
use crate::flow::EndReason;
use crate::ip_proto::IpProto;
use crate::output::SessionRecord;
use crate::proto::rdp::{mcs, udp, x224};
use crate::proto::ssh::{KexInit, hassh, openssh_version};
use crate::proto::tunnel::{Kind, Seen, Tunnel, carried};
use crate::proto::{
    self, App, Classifier, Data, PROTOCOLS, Proto, Spec, anyconnect, detect_payload, ike, openvpn, vnc, wireguard,
};
use crate::side::Side;
use crate::time::{NS_PER_SEC, Ts};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name: each one's entry point.
pub const TARGETS: [(&str, Target); 9] = [
    ("decode", decode),
    ("probes", probes),
    ("ssh", ssh),
    ("tls", tls),
    ("rdp", rdp),
    ("tunnel", tunnel),
    ("vnc", vnc),
    ("engine", engine),
    ("pcap_file", pcap_file),
];

/// Every link type the decoder reads, by the index a fuzz input picks.
pub const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
];

/// Reads a fuzz input front to back; past its end every number is zero.
struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Input<'a> {
        Input { rest: data }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// Up to `n` bytes.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = b;
        a
    }

    /// A length-prefixed piece (16-bit length).
    fn piece(&mut self) -> &'a [u8] {
        let n = self.u16() as usize;
        self.take(n)
    }
}

/// A transport by the low bits of `b`.
fn transport(b: u8) -> IpProto {
    match b & 3 {
        0 => IpProto::TCP,
        1 => IpProto::UDP,
        2 => IpProto::ESP,
        _ => IpProto(b),
    }
}

fn side(b: u8) -> Side {
    if b & 1 == 0 { Side::Client } else { Side::Server }
}

/// The decoder: a link type, a length on the wire (none, the captured
/// length, more or less than it), then the frame.
pub fn decode(data: &[u8]) {
    let mut input = Input::new(data);
    let link = LINKS[input.u8() as usize % LINKS.len()];
    let mode = input.u8();
    let delta = u32::from(input.u16());
    let frame = input.rest;
    let cap = frame.len() as u32;
    let wire = match mode & 3 {
        0 => None,
        1 => Some(cap),
        2 => Some(cap.saturating_add(delta)),
        _ => Some(cap.saturating_sub(delta)),
    };
    let Ok(p) = decode_wire(link, 0, frame, wire) else { return };
    // What was captured of the transport payload is never more than its headers declare.
    assert!(p.payload().len() <= p.payload_len() as usize, "captured payload beyond its declared length");
    if let crate::decode::L4::Tcp(t) = &p.l4 {
        let _ = t.mptcp();
    }
    let _ = (p.ports(), p.ip_proto());
}

/// Every protocol's content probe and handshake message reader, the
/// detection over a session's first payloads: a transport, a server port,
/// how much longer each payload was on the wire, then payloads.
pub fn probes(data: &[u8]) {
    let mut input = Input::new(data);
    let t = transport(input.u8());
    let port = input.u16();
    let extra = input.u8() as usize;
    let mut classifier = Classifier::default();
    let mut n = 0u8;
    while !input.is_empty() {
        let from = side(input.u8());
        let p = input.piece();
        // A snap length only ever cuts: the wire length is at least the captured.
        let len = p.len() + extra * (n as usize & 1);
        n = n.wrapping_add(1);
        let _ = detect_payload(t, port, p, len);
        for spec in PROTOCOLS {
            let _ = (spec.probe)(t, port, p, len);
        }
        for proto in Proto::ALL {
            let _ = proto::message(proto, t, p);
        }
        classifier.feed(t, port, from, p, len);
        let _ = (classifier.openvpn_candidate(), classifier.settled());
    }
    let _ = classifier.proto(Proto::by_port(t, port));
}

/// Segments of one interactive session through its protocol's dissector
/// and keystroke analysis ([`App::on_data`]). Each segment: flags (sender;
/// retransmitted, after a gap, cut by the snap length; a UDP datagram
/// instead, for RDP), a time step, then the payload. The first bytes give
/// the initial sequence numbers (near the wrap, or not).
fn session(spec: &Spec, input: &mut Input<'_>) -> App {
    let mut app = (spec.app.expect("an interactive protocol"))();
    app.configure(true);
    let base = if input.u8() & 1 == 0 { 1000 } else { u32::MAX - 3000 };
    let mut next = [base, base.wrapping_add(77_777)];
    let mut ts: Ts = NS_PER_SEC;
    let syn_seen = input.u8() & 1 == 0;
    while !input.is_empty() {
        let flags = input.u8();
        ts += Ts::from(input.u8()) * 1_000_000;
        let payload = input.piece();
        let from = side(flags);
        if flags & 0x40 != 0 {
            if let (_, Some(src)) =
                app.on_datagram(ts, from, payload, payload.len() + usize::from(flags >> 4 & 3) * 100)
            {
                let news = app.rdp_stream_mut().and_then(|r| r.on_source(ts, from, src, 0));
                if let Some(news) = news {
                    let _ = app.take_udp_news(news);
                }
            }
            continue;
        }
        let i = from as usize;
        let len = payload.len() as u32 + if flags & 0x08 != 0 { u32::from(flags >> 4 & 3) * 100 + 1 } else { 0 };
        let captured = if flags & 0x08 != 0 { &payload[..payload.len() / 2] } else { payload };
        let seq = match flags >> 1 & 3 {
            1 => next[i].wrapping_sub(len),  // a retransmission
            2 => next[i].wrapping_add(1000), // after a gap
            _ => next[i],
        };
        next[i] = next[i].max(seq.wrapping_add(len));
        if flags >> 1 & 3 == 2 {
            next[i] = seq.wrapping_add(len);
        }
        let ack = Some(next[1 - i]).filter(|_| flags & 0x80 == 0);
        let d = Data { ts, from, seq, ack, len, payload: captured, syn_seen };
        let _ = app.on_data(&d);
    }
    app
}

/// SSH: the identification line and KEXINIT readers, then a session's
/// segments through its dissector (version lines, packet framing, KEXINIT,
/// NEWKEYS, encrypted sizes).
pub fn ssh(data: &[u8]) {
    let _ = KexInit::parse(data);
    let _ = (hassh(data, Side::Client), hassh(data, Side::Server));
    let _ = openssh_version(&String::from_utf8_lossy(data));
    let app = session(&proto::ssh::SPEC, &mut Input::new(data));
    if let Some(s) = app.ssh_stream() {
        let _ = (s.start_seen(), s.info.chaff_capable(), s.info.key_with_ping());
    }
}

/// TLS: the ClientHello/ServerHello reader, as probe and as handshake
/// messages paired into turnarounds (flags, payload; repeated).
pub fn tls(data: &[u8]) {
    messages(Proto::Tls, IpProto::TCP, data);
}

/// A protocol's handshake messages paired into turnarounds: each message a
/// sender, a time step, a payload.
fn messages(proto: Proto, t: IpProto, data: &[u8]) {
    let mut input = Input::new(data);
    let mut turns = Turns::default();
    let mut ts: Ts = NS_PER_SEC;
    while !input.is_empty() {
        let from = side(input.u8());
        ts += Ts::from(input.u8()) * 1_000_000;
        let p = input.piece();
        let _ = detect_payload(t, 443, p, p.len());
        if let Some(m) = proto::message(proto, t, p) {
            turns.on_message(ts, from, m);
        }
    }
}

/// RDP: the X.224 connection request and confirm, MCS Connect Initial and
/// RDPEUDP readers on the whole input, then a session's segments and
/// datagrams through its dissector.
pub fn rdp(data: &[u8]) {
    let _ = (x224::connection(data), x224::tpkt_len(data), x224::tpdu_code(data));
    let _ = (x224::request(data), x224::confirm(data), mcs::connect_initial(data));
    let _ = (udp::parse(data), udp::is_syn(data));
    messages(Proto::Rdp, IpProto::TCP, data);
    let app = session(&proto::rdp::SPEC, &mut Input::new(data));
    if let Some(s) = app.rdp_stream() {
        let _ = s.record(IpProto::TCP);
        let _ = s.record(IpProto::UDP);
    }
}

/// VNC: the client-message reader, then a session's segments.
pub fn vnc(data: &[u8]) {
    let _ = vnc::key_downs(data);
    session(&vnc::SPEC, &mut Input::new(data));
}

/// Tunnels' control planes: a kind, a transport (UDP, TCP, ESP), whether on
/// NAT-T's port; then payloads, each with flags (sender; over TCP:
/// retransmitted, after a gap, cut short), a time step, how much longer it
/// was on the wire, the payload. Each payload goes to [`Tunnel::on_payload`]
/// and the data packets it holds to the inner traffic's analysis.
pub fn tunnel(data: &[u8]) {
    let mut input = Input::new(data);
    let head = input.u8();
    // AnyConnect when the three high bits are set (inputs from before it keep their kind).
    let kind = match head {
        0xE0.. => Kind::Anyconnect,
        _ => [Kind::Wireguard, Kind::Openvpn, Kind::Ipsec][(head % 3) as usize],
    };
    let t = match head >> 2 & 3 {
        0 | 3 => IpProto::UDP,
        1 => IpProto::TCP,
        _ => IpProto::ESP,
    };
    let ports = if head & 0x10 != 0 { (4500, 4500) } else { (40000, 1194) };
    // The readers alone, on the rest.
    let rest = input.rest;
    let _ = (wireguard::message(rest, rest.len()), wireguard::is_wireguard(rest, rest.len() + 16));
    let _ = (ike::header(rest), ike::payload(true, rest), ike::payload(false, rest));
    let _ =
        (openvpn::detect_mode(rest), openvpn::hard_reset(IpProto::UDP, rest), openvpn::hard_reset(IpProto::TCP, rest));
    for mode in [openvpn::Mode::Plain, openvpn::Mode::TlsAuth { hmac: 20 }, openvpn::Mode::TlsCrypt] {
        let _ = openvpn::control(mode, rest);
    }
    let _ = (anyconnect::message(rest), anyconnect::datagram(rest), anyconnect::server_hello(rest));
    let _ = carried(kind, t, ports.0 == 4500, rest, rest.len());

    let mut tunnel = Tunnel::new(kind, t, ports);
    let mut turns = Turns::default();
    let mut next = [1000u32, 900_000];
    let mut ts: Ts = NS_PER_SEC;
    while !input.is_empty() {
        let flags = input.u8();
        ts += Ts::from(input.u8()) * 1_000_000;
        let extra = usize::from(input.u8());
        let p = input.piece();
        let from = side(flags);
        let i = from as usize;
        let (tcp, captured, len) = if t == IpProto::TCP {
            let len = (p.len() + if flags & 0x08 != 0 { extra } else { 0 }) as u32;
            let seq = match flags >> 1 & 3 {
                1 => next[i].wrapping_sub(len),
                2 => next[i].wrapping_add(500),
                _ => next[i],
            };
            next[i] = seq.wrapping_add(len);
            (Some((seq, len)), p, len as usize)
        } else {
            (None, p, p.len() + extra * usize::from(flags >> 1 & 1))
        };
        let _: Seen = tunnel.on_payload(ts, from, tcp, captured, len, &mut turns);
        for (from, len) in std::mem::take(&mut tunnel.inner) {
            let _ = tunnel.typing.on_packet(ts, from, len);
        }
    }
    let _ = (tunnel.typing.lag_estimate(), tunnel.typing.classes(), tunnel.typing.keystrokes());
    let mut other = Tunnel::new(kind, t, ports);
    other.absorb(&tunnel, head & 0x20 != 0);
}

/// Endpoints of a synthesized packet: the client's and server's addresses
/// (last byte) and ports, and the transport.
#[derive(Clone, Copy)]
struct Flow {
    t: IpProto,
    client: u8,
    server: u8,
    cport: u16,
    sport: u16,
}

/// Flows a synthesized engine input picks from: the well-known ports of
/// every protocol, and RDP's UDP flow and IKE's NAT-T and ESP beside their
/// first flow (same addresses), so flows get linked.
const FLOWS: [Flow; 16] = [
    Flow { t: IpProto::TCP, client: 1, server: 2, cport: 40000, sport: 22 },
    Flow { t: IpProto::TCP, client: 1, server: 3, cport: 40001, sport: 3389 },
    Flow { t: IpProto::UDP, client: 1, server: 3, cport: 40002, sport: 3389 },
    Flow { t: IpProto::TCP, client: 1, server: 4, cport: 40003, sport: 5900 },
    Flow { t: IpProto::TCP, client: 1, server: 5, cport: 40004, sport: 443 },
    Flow { t: IpProto::UDP, client: 1, server: 6, cport: 40005, sport: 51820 },
    Flow { t: IpProto::UDP, client: 7, server: 6, cport: 40006, sport: 51820 },
    Flow { t: IpProto::UDP, client: 1, server: 8, cport: 40007, sport: 1194 },
    Flow { t: IpProto::TCP, client: 1, server: 8, cport: 40008, sport: 1194 },
    Flow { t: IpProto::UDP, client: 1, server: 9, cport: 500, sport: 500 },
    Flow { t: IpProto::UDP, client: 1, server: 9, cport: 4500, sport: 4500 },
    Flow { t: IpProto::ESP, client: 1, server: 9, cport: 0, sport: 0 },
    Flow { t: IpProto::TCP, client: 10, server: 2, cport: 40010, sport: 22 },
    Flow { t: IpProto::TCP, client: 10, server: 11, cport: 40011, sport: 2222 },
    Flow { t: IpProto::UDP, client: 10, server: 12, cport: 40012, sport: 3389 },
    Flow { t: IpProto::TCP, client: 10, server: 3, cport: 40013, sport: 3389 },
];

/// One synthesized IPv4 packet (link type Raw) of `flow` from `from`: TCP
/// with `seq`, `ack` and `flags` (and a Multipath TCP option when `mp` is
/// not empty), UDP, or ESP; `extra` bytes more on the wire than captured.
#[allow(clippy::too_many_arguments)]
fn synth(out: &mut Vec<u8>, flow: Flow, from: Side, seq: u32, ack: u32, flags: u8, mp: &[u8], payload: &[u8]) {
    let (src, dst, sport, dport) = match from {
        Side::Client => (flow.client, flow.server, flow.cport, flow.sport),
        Side::Server => (flow.server, flow.client, flow.sport, flow.cport),
    };
    out.clear();
    out.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, flow.t.0, 0, 0, 10, 0, 0, src, 10, 0, 0, dst]);
    match flow.t {
        IpProto::TCP => {
            let opt_len = (mp.len().min(36) + 2 + 3) & !3;
            let hl = 20 + if mp.is_empty() { 0 } else { opt_len };
            out.extend_from_slice(&sport.to_be_bytes());
            out.extend_from_slice(&dport.to_be_bytes());
            out.extend_from_slice(&seq.to_be_bytes());
            out.extend_from_slice(&ack.to_be_bytes());
            out.extend_from_slice(&[((hl / 4) as u8) << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
            if !mp.is_empty() {
                let body = &mp[..mp.len().min(36)];
                out.extend_from_slice(&[30, (body.len() + 2) as u8]);
                out.extend_from_slice(body);
                out.resize(20 + hl, 1); // NOP padding
            }
        }
        IpProto::UDP => {
            out.extend_from_slice(&sport.to_be_bytes());
            out.extend_from_slice(&dport.to_be_bytes());
            out.extend_from_slice(&((payload.len() + 8).min(0xffff) as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
        _ => {}
    }
    out.extend_from_slice(payload);
    let total = out.len().min(0xffff) as u16;
    out[2..4].copy_from_slice(&total.to_be_bytes());
}

/// A whole sequence of frames through one [`Engine`], so that the state
/// kept across packets (flows, dissectors, linked flows, tunnels, expiry)
/// is exercised; every session's record is made.
///
/// The first byte: the engine's settings (a small session table, verdicts
/// while sessions run) and the kind of frames. Raw frames: a link type,
/// then frames, each a time step (ms; 255: a minute), how much longer it
/// was on the wire, a 16-bit length and the frame. Synthesized: packets of
/// [`FLOWS`], each a flow and flags (sender, retransmission, gap, a
/// Multipath TCP option), TCP flags, a time step and a payload; sequence
/// and acknowledgement numbers follow the flow.
pub fn engine(data: &[u8]) {
    let mut input = Input::new(data);
    let head = input.u8();
    let mut cfg = EngineConfig::default();
    if head & 1 != 0 {
        cfg.max_sessions = 4;
    }
    cfg.live_verdicts = head & 2 != 0;
    cfg.rdp_record_cookie = head & 4 != 0;
    let mut engine = Engine::new(cfg, None);
    let mut records = 0u64;
    let mut out = |r: SessionRecord| {
        records += 1;
        drop(r);
    };
    let mut ts: Ts = 1_700_000_000 * NS_PER_SEC;
    let step = |ts: &mut Ts, b: u8| {
        *ts += if b == 255 {
            60 * NS_PER_SEC
        } else if b == 254 {
            -NS_PER_SEC
        } else {
            Ts::from(b) * 1_000_000
        };
    };
    if head & 0x80 == 0 {
        let link = LINKS[input.u8() as usize % LINKS.len()];
        while !input.is_empty() {
            step(&mut ts, input.u8());
            let extra = input.u8();
            let frame = input.piece();
            let wire = frame.len() as u32 + u32::from(extra);
            if head & 0x40 != 0 && engine.start_file(ts, &mut out) {
                engine.set_input(1);
            }
            engine.frame_wire(link, ts, frame, Some(wire).filter(|_| extra != 0xff), &mut out);
        }
    } else {
        let mut next = [[0u32; 2]; FLOWS.len()];
        for (i, n) in next.iter_mut().enumerate() {
            *n = [1000 * i as u32, u32::MAX - 5000 * i as u32];
        }
        let mut frame = Vec::new();
        while !input.is_empty() {
            let which = input.u8();
            let flags = input.u8();
            step(&mut ts, input.u8());
            let mp = if which & 0x80 != 0 {
                input.take(usize::from(input.rest.first().copied().unwrap_or(0) & 31))
            } else {
                &[]
            };
            let payload = input.piece();
            let f = which as usize % FLOWS.len();
            let from = side(which >> 4);
            let i = from as usize;
            // SYN and FIN take a sequence number each.
            let len = payload.len() as u32 + u32::from(flags & 0x02 != 0) + u32::from(flags & 0x01 != 0);
            let seq = match which >> 5 & 3 {
                1 => next[f][i].wrapping_sub(len),  // a retransmission
                2 => next[f][i].wrapping_add(1460), // after a gap
                _ => next[f][i],
            };
            next[f][i] = seq.wrapping_add(len);
            synth(&mut frame, FLOWS[f], from, seq, next[f][1 - i], flags, mp, payload);
            engine.frame_wire(LinkType::Raw, ts, &frame, Some(frame.len() as u32), &mut out);
        }
    }
    engine.flush_metrics();
    engine.finish_all(EndReason::EndOfInput, &mut out);
    let _ = records;
}

/// Counts what a capture file gives.
struct Count(u64);

impl Receiver for Count {
    fn frame(&mut self, f: &Frame<'_>) {
        self.0 += 1;
        let _ = (f.link, f.ts, f.data.len(), f.wire_len);
    }
}

/// The capture-file reader: the input as a file (pcap, pcapng, maybe
/// gzip-compressed) read to its end, or to an error.
pub fn pcap_file(data: &[u8]) {
    use std::io::Write;
    thread_local! {
        static PATH: std::path::PathBuf =
            std::env::temp_dir().join(format!("echoloc-fuzz-{}-{:?}.pcap", std::process::id(), std::thread::current().id()));
    }
    PATH.with(|path| {
        let mut f = std::fs::File::create(path).expect("a temporary file");
        f.write_all(data).expect("written");
        drop(f);
        let mut count = Count(0);
        let _ = offline::replay_file(path, &mut count, &mut |_| {});
        let _ = std::fs::remove_file(path);
    });
}
