//! RDP: what it sends in clear. Over TCP: TPKT + X.224, whose connection
//! request and confirm are the handshake pair (the server's turnaround,
//! until the connection sequence's small pairs time it: see
//! [`crate::analysis::desktop`]) and carry the security negotiation; under Standard RDP Security the MCS
//! Connect Initial's client core data (version, build). Over UDP
//! (MS-RDPEUDP): the SYN exchange and the data/ACK numbering, which time
//! each leg of the UDP path.

pub(crate) mod mcs;
pub mod udp;
pub(crate) mod x224;

use super::{App, Data, Proto, Spec, Stream};
use crate::analysis::RttSample;
use crate::analysis::desktop::{Desktop, Event};
use crate::analysis::interactive::Interactive;
use crate::analysis::seq::{self, Continuity};
use crate::analysis::turns::Msg;
use crate::ip_proto::IpProto;
use crate::side::Side;
use crate::time::Ts;
use serde::Serialize;
use udp::{Source, UdpTimer};

pub const SPEC: Spec = Spec {
    proto: Proto::Rdp,
    ports: &[(IpProto::TCP, 3389, 3389), (IpProto::UDP, 3389, 3389)],
    probe: |transport, _, p, _| match transport {
        IpProto::TCP => x224::connection(p).is_some(),
        IpProto::UDP => udp::is_syn(p),
        _ => false,
    },
    message: Some(|_, p| match x224::connection(p)? {
        x224::CONNECTION_REQUEST => Some(Msg::Request(0)),
        _ => Some(Msg::Answer(0)),
    }),
    app: Some(app),
    remote_access: true,
};

/// The clear-text dissector and the desktop's timing analysis.
fn app() -> App {
    App { stream: Stream::Rdp(RdpStream::default()), inter: Interactive::desktop() }
}

/// A data segment: its clear messages are read; keystrokes, echoes and
/// frame acknowledgements by size, time and TCP position (see
/// [`crate::analysis::desktop`]).
#[inline(always)]
pub(super) fn on_data(stream: &mut RdpStream, inter: &mut Interactive, d: &Data<'_>) -> Option<f64> {
    if d.len == 0 {
        return None;
    }
    if stream.on_segment(d.from, d.seq, d.len, d.payload) == Continuity::Old {
        if d.from == Side::Client {
            stream.desktop.on_client_repeat();
        }
        return None;
    }
    let event = stream.desktop.on_data(d.ts, d.from, d.len, d.seq.wrapping_add(d.len), d.ack);
    if d.from == Side::Client {
        stream.set_keys(inter);
    }
    match event {
        // Echoes count once the session shows typing (see `Desktop::keystrokes`).
        Event::Echo(ms) if stream.desktop.keystrokes() > 0 => {
            inter.add_echo(ms);
            Some(ms)
        }
        Event::FrameAck(ms) => {
            inter.add_turnaround(Side::Client, ms);
            None
        }
        Event::ConnectAnswer(ms) => {
            inter.add_turnaround(Side::Server, ms);
            None
        }
        Event::Echo(_) | Event::Press | Event::Other => None,
    }
}

/// A UDP datagram of an RDP flow (`wire_len` bytes of payload on the
/// wire, `p` the captured part): the round-trip samples it gives, and its
/// source data for the desktop analysis ([`RdpStream::on_source`]).
pub(super) fn on_datagram(
    stream: &mut RdpStream,
    ts: Ts,
    from: Side,
    p: &[u8],
    wire_len: usize,
) -> ([Option<RttSample>; 2], Option<Source>) {
    stream.info.udp = true;
    let timer = stream.udp.get_or_insert_with(Box::default);
    let Some(d) = udp::parse(p) else { return ([None, None], None) };
    let samples = timer.on_parsed(ts, from, &d);
    (samples, timer.source(&d, wire_len))
}

/// What a UDP flow's desktop analysis found in one source datagram, for the
/// session the flow belongs to (its TCP connection's, when linked).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UdpNews {
    pub event: Event,
    /// The change in the flow's keys typed (presses, and those echoed)
    /// since it last told that session (the analysis may take keys back:
    /// a class it took for keys proved to be answered every time).
    pub keys: [i64; 2],
    /// The flow shows typing: its echoes count.
    pub typing: bool,
}

/// An RDP flow over UDP's desktop analysis (MS-RDPEMT: once the UDP
/// transport is up, input and screen updates move to it): keys, echoes and
/// frame acknowledgements from its source datagrams, as a TCP connection's
/// from its segments, numbered by datagram (each datagram's data is one
/// unit of its sender's stream; snSourceAck + 1 acknowledges up to it).
#[derive(Debug, Default)]
struct Datagrams {
    desktop: Desktop,
    next: [Option<u32>; 2],
    /// What was told, and to which session (a table slot).
    told: [u64; 2],
    told_to: Option<u32>,
}

/// What the clear-text part of an RDP session told.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RdpInfo {
    /// RDP_NEG_REQ's requestedProtocols (None: the request had none, or was not seen).
    pub requested: Option<u32>,
    /// The connection confirm's answer.
    pub confirm: Option<Confirm>,
    /// TS_UD_CS_CORE's version and clientBuild (Standard RDP Security only).
    pub client_version: Option<u32>,
    pub client_build: Option<u32>,
    /// The request's cookie line (`mstshash=NAME`: a user name), kept only
    /// when the sensor is told to record it.
    pub cookie: Option<String>,
    /// The flow carried RDP over UDP (MS-RDPEUDP).
    pub udp: bool,
}

pub use x224::Confirm;

/// The security protocols of MS-RDPBCGR 2.2.1.1.1, as the record names them.
const PROTOCOLS: [(u32, &str); 5] = [(1, "tls"), (2, "credssp"), (4, "rdstls"), (8, "credssp_early"), (16, "aad")];

/// A selected protocol's name ("rdp" for Standard RDP Security).
pub fn security_name(v: u32) -> &'static str {
    if v == 0 {
        return "rdp";
    }
    PROTOCOLS.iter().find(|(bit, _)| *bit == v).map_or("unknown", |(_, n)| n)
}

/// The protocols a request offers: Standard RDP Security always, then
/// each flag set ("unknown" for flags MS-RDPBCGR does not define).
pub fn requested_names(v: u32) -> Vec<&'static str> {
    let mut names = vec!["rdp"];
    names.extend(PROTOCOLS.iter().filter(|(bit, _)| v & bit != 0).map(|(_, n)| *n));
    if v & !0x1F != 0 {
        names.push("unknown");
    }
    names
}

/// The JSON record's `rdp` object.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RdpRecord {
    pub requested_protocols: Option<Vec<&'static str>>,
    pub security: Option<&'static str>,
    pub negotiation_failure: Option<u32>,
    pub client_version: Option<u32>,
    pub client_build: Option<u32>,
    pub cookie: Option<String>,
    pub udp_protocol: Option<&'static str>,
    pub transports: Vec<&'static str>,
}

impl RdpStream {
    /// The record's `rdp` object for a flow over `transport`.
    pub fn record(&self, transport: IpProto) -> RdpRecord {
        let i = &self.info;
        let mut transports = Vec::new();
        if transport == IpProto::TCP {
            transports.push("tcp");
        }
        if i.udp || transport == IpProto::UDP {
            transports.push("udp");
        }
        RdpRecord {
            requested_protocols: i.requested.map(requested_names),
            security: match i.confirm {
                Some(Confirm::Selected(v)) => Some(security_name(v)),
                Some(Confirm::Legacy) => Some("rdp"),
                _ => None,
            },
            negotiation_failure: match i.confirm {
                Some(Confirm::Failure(c)) => Some(c),
                _ => None,
            },
            client_version: i.client_version,
            client_build: i.client_build,
            cookie: i.cookie.clone(),
            udp_protocol: self.udp.as_ref().and_then(|u| u.protocol()),
            transports,
        }
    }
}

pub use super::linked::{Link, LinkedFlow, LinkedFlows};

/// Longest message gathered from several segments (an MCS Connect Initial
/// is under 1 KB).
const MAX_MESSAGE: usize = 8 * 1024;
/// Segments per side looked at before giving up on clear messages.
const MAX_SEGMENTS: u32 = 16;

#[derive(Debug, Default)]
struct Dir {
    segments: u32,
    /// The clear messages of this side are read (or will never be).
    done: bool,
    /// A TPKT packet spread over several segments, and its length.
    buf: Vec<u8>,
    want: usize,
}

/// Follows both byte streams, for the clear messages of their first
/// segments and for the desktop's timing analysis.
#[derive(Debug, Default)]
pub struct RdpStream {
    dirs: [Dir; 2],
    /// Where each side's stream goes on (new data, not retransmissions).
    next: [Option<u32>; 2],
    desktop: Desktop,
    pub info: RdpInfo,
    /// Record the request's cookie (a user name): off unless configured.
    pub keep_cookie: bool,
    /// The UDP transport's round trips, for an RDP flow over UDP.
    udp: Option<Box<UdpTimer>>,
    /// Its desktop analysis, for an RDP flow over UDP.
    datagrams: Option<Box<Datagrams>>,
    /// Keys (presses, and those echoed) typed over this session's UDP flows (its own, or linked to it).
    udp_keys: [u64; 2],
    /// A UDP flow: the TCP connection it was linked to.
    pub link: Option<Link>,
    /// A TCP connection: its linked UDP flows (it does not end before
    /// those still open, docs/sessions.md section 5).
    pub linked: LinkedFlows,
}

impl RdpStream {
    /// The session's keys: its TCP connection's and its UDP flows'.
    fn set_keys(&self, inter: &mut Interactive) {
        let [keys, echoed] = self.udp_keys;
        inter.set_keys(self.desktop.keystrokes() + keys, self.desktop.echoed + echoed);
    }

    /// A source datagram of this UDP flow through its desktop analysis,
    /// for the session in table slot `to` (this flow's, or its
    /// connection's): None for a datagram sent again.
    pub fn on_source(&mut self, ts: Ts, from: Side, src: Source, to: u32) -> Option<UdpNews> {
        let g = self.datagrams.get_or_insert_with(Box::default);
        if seq::follow(&mut g.next[from as usize], src.sn, 1) == Continuity::Old {
            if from == Side::Client {
                g.desktop.on_client_repeat();
            }
            return None;
        }
        let event = g.desktop.on_data(ts, from, src.len, src.sn.wrapping_add(1), Some(src.ack.wrapping_add(1)));
        if g.told_to != Some(to) {
            (g.told, g.told_to) = ([0, 0], Some(to));
        }
        let now = [g.desktop.keystrokes(), g.desktop.echoed];
        let keys = [0, 1].map(|i| now[i] as i64 - g.told[i] as i64);
        g.told = now;
        Some(UdpNews { event, keys, typing: now[0] > 0 })
    }

    /// A UDP flow's news, in the session it belongs to: keys, echoes and
    /// the client's frame acknowledgements (the connection sequence runs on
    /// TCP: a UDP flow's setup gives no server answer). Returns the echo.
    pub fn take_udp_news(&mut self, inter: &mut Interactive, news: UdpNews) -> Option<f64> {
        for (total, more) in self.udp_keys.iter_mut().zip(news.keys) {
            *total = total.saturating_add_signed(more);
        }
        self.set_keys(inter);
        match news.event {
            Event::Echo(ms) if news.typing => {
                inter.add_echo(ms);
                Some(ms)
            }
            Event::FrameAck(ms) => {
                inter.add_turnaround(Side::Client, ms);
                None
            }
            _ => None,
        }
    }

    /// A UDP flow of this (TCP) session ended: its figures join the list.
    pub fn add_linked(&mut self, f: LinkedFlow) {
        self.info.udp = true;
        self.linked.add(f);
    }
}

impl RdpStream {
    /// Feed one TCP segment with data; `payload` is its captured part (may
    /// be shorter than `len`). Returns where it stands in its side's stream
    /// (`Old`: a retransmission), which the clear messages and the desktop
    /// analysis both follow.
    pub fn on_segment(&mut self, from: Side, seq_no: u32, len: u32, payload: &[u8]) -> Continuity {
        let cont = seq::follow(&mut self.next[from as usize], seq_no, len);
        self.read_clear(from, cont, len, payload);
        cont
    }

    /// The clear messages of a side, from its first segments.
    fn read_clear(&mut self, from: Side, cont: Continuity, len: u32, payload: &[u8]) {
        let d = &mut self.dirs[from as usize];
        if d.done {
            return;
        }
        match cont {
            Continuity::Old => return,
            Continuity::Gap => d.buf.clear(),
            Continuity::InOrder => {}
        }
        d.segments += 1;
        if d.segments > MAX_SEGMENTS {
            d.done = true;
            d.buf = Vec::new();
            return;
        }
        let whole = payload.len() == len as usize;
        if !d.buf.is_empty() {
            if !whole || d.buf.len() + payload.len() > MAX_MESSAGE {
                d.buf = Vec::new();
                return;
            }
            d.buf.extend_from_slice(payload);
            if d.buf.len() >= d.want {
                let msg = std::mem::take(&mut d.buf);
                self.message(from, &msg);
            }
            return;
        }
        match x224::tpkt_len(payload) {
            Some(want) if whole && want > payload.len() && want <= MAX_MESSAGE => {
                d.want = want;
                d.buf.extend_from_slice(payload);
            }
            _ => self.message(from, payload),
        }
    }

    /// Read one message (the start of a segment, or a gathered TPKT).
    fn message(&mut self, from: Side, p: &[u8]) {
        let info = &mut self.info;
        let d = &mut self.dirs[from as usize];
        let Some(code) = x224::tpdu_code(p) else {
            // Not TPKT: after the request, the client went on to TLS (or to
            // what this sensor cannot read); before it, a proxy's greeting.
            if from == Side::Client && d.segments > 1 && (info.requested.is_some() || info.confirm.is_some()) {
                d.done = true;
            }
            return;
        };
        match (from, code) {
            (Side::Client, x224::CONNECTION_REQUEST) => {
                if let Some(r) = x224::request(p) {
                    info.requested = r.requested;
                    info.cookie = r.cookie.filter(|_| self.keep_cookie);
                }
            }
            (Side::Client, x224::DATA) => {
                if let Some(core) = mcs::connect_initial(p) {
                    info.client_version = Some(core.version);
                    info.client_build = Some(core.build);
                }
                d.done = true;
            }
            (Side::Server, x224::CONNECTION_CONFIRM) => {
                info.confirm = x224::confirm(p);
                d.done = true;
                // Anything but Standard RDP Security: the client's next
                // messages are encrypted.
                if !matches!(info.confirm, Some(Confirm::Selected(0) | Confirm::Legacy)) {
                    let client = &mut self.dirs[Side::Client as usize];
                    client.done = true;
                    client.buf = Vec::new();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &mut RdpStream, from: Side, seq: &mut [u32; 2], p: &[u8]) {
        s.on_segment(from, seq[from as usize], p.len() as u32, p);
        seq[from as usize] += p.len() as u32;
    }

    #[test]
    fn reads_a_standard_security_session_across_segments() {
        let mut s = RdpStream::default();
        let mut seq = [100, 900];
        let cr = b"\x03\x00\x00\x24\x1f\xe0\x00\x00\x00\x00\x00Cookie: mstshash=A70067\r\n";
        feed(&mut s, Side::Client, &mut seq, cr);
        feed(&mut s, Side::Server, &mut seq, &[3, 0, 0, 11, 6, 0xD0, 0, 0, 0x12, 0x34, 0]);
        let ci = mcs::tests::connect_initial_bytes(0x0008_0004, 2600);
        // The Connect Initial in two segments, with a retransmission of the first.
        feed(&mut s, Side::Client, &mut seq, &ci[..30]);
        s.on_segment(Side::Client, seq[0] - 30, 30, &ci[..30]);
        feed(&mut s, Side::Client, &mut seq, &ci[30..]);
        let r = s.record(IpProto::TCP);
        assert_eq!(r.security, Some("rdp"));
        assert_eq!((r.client_version, r.client_build), (Some(0x0008_0004), Some(2600)));
        assert_eq!(r.requested_protocols, None);
        assert_eq!(r.cookie, None, "the cookie is not kept unless asked");
        assert_eq!(r.transports, ["tcp"]);
    }

    #[test]
    fn keeps_the_cookie_when_asked_and_names_protocols() {
        let mut s = RdpStream { keep_cookie: true, ..Default::default() };
        let mut seq = [0, 0];
        let mut cr = b"\x03\x00\x00\x2f\x2a\xe0\x00\x00\x00\x00\x00Cookie: mstshash=AWAKECODI\r\n".to_vec();
        cr.extend_from_slice(&[1, 0, 8, 0, 3, 0, 0, 0]);
        feed(&mut s, Side::Client, &mut seq, &cr);
        feed(&mut s, Side::Server, &mut seq, &[3, 0, 0, 19, 14, 0xD0, 0, 0, 0x12, 0x34, 0, 2, 0, 8, 0, 2, 0, 0, 0]);
        // The TLS handshake that follows is not read.
        feed(&mut s, Side::Client, &mut seq, &mcs::tests::connect_initial_bytes(1, 1));
        let r = s.record(IpProto::TCP);
        assert_eq!(r.requested_protocols.as_deref(), Some(["rdp", "tls", "credssp"].as_slice()));
        assert_eq!(r.security, Some("credssp"));
        assert_eq!(r.cookie.as_deref(), Some("mstshash=AWAKECODI"));
        assert_eq!(r.client_build, None);
        assert_eq!(requested_names(0x1F), ["rdp", "tls", "credssp", "rdstls", "credssp_early", "aad"]);
        assert_eq!(requested_names(0x40), ["rdp", "unknown"]);
        assert_eq!(security_name(8), "credssp_early");
        assert_eq!(security_name(3), "unknown");
    }

    #[test]
    fn cut_off_payloads_and_garbage_yield_nothing() {
        let mut s = RdpStream::default();
        // Headers only: 20 bytes of a 36-byte request captured.
        let cr = b"\x03\x00\x00\x24\x1f\xe0\x00\x00\x00\x00\x00Cookie: mstshash=A70067\r\n";
        s.on_segment(Side::Client, 1, cr.len() as u32, &cr[..20]);
        s.on_segment(Side::Server, 1, 500, &[0xFF; 40]);
        for i in 0..40u32 {
            s.on_segment(Side::Client, 1 + 36 + i * 10, 10, &[i as u8; 10]);
        }
        assert_eq!(s.info, RdpInfo::default());
        let r = s.record(IpProto::TCP);
        assert_eq!((r.security, r.negotiation_failure, r.requested_protocols), (None, None, None));
    }
}
