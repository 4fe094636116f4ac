//! The JSON session record: a stable contract (see README "Session record").
//! Fields are added, never renamed. `null` means "could not be measured".

use super::community_id::community_id;
use crate::analysis::Quantiles;
use crate::analysis::relay::{Relay, ttl_hops};
use crate::analysis::tunnel::SizeClasses;
use crate::analysis::turns::AppRtt;
use crate::flow::mptcp::{Role, Subflow};
use crate::flow::{EndReason, Session};
use crate::ip_proto::IpProto;
use crate::proto::linked::{LinkedFlow, LinkedFlows, Tuple};
use crate::proto::rdp::{RdpRecord, RdpStream};
use crate::proto::ssh::SshInfo;
use crate::proto::tunnel::Tunnel;
use crate::side::Side;
use crate::time::{Ts, rfc3339};
use crate::verdict::Verdict;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PerSide<T> {
    pub client: T,
    pub server: T,
}

/// Round-trip figures of one leg, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LegRtt {
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub max: f64,
    pub samples: u64,
    /// From the TCP handshake; null when the handshake was not seen.
    pub handshake: Option<f64>,
    /// Robust floor: median of the lowest cluster of samples (within 1.5 × min),
    /// free of delayed-ACK tails; the reference for hidden latency.
    pub floor: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionRecord {
    pub uid: String,
    pub proto: &'static str,
    pub transport: &'static str,
    pub client: String,
    pub server: String,
    pub start: String,
    pub end: String,
    pub duration_s: f64,
    pub end_reason: &'static str,
    pub packets: PerSide<u64>,
    pub bytes: PerSide<u64>,
    pub client_rtt_ms: Option<LegRtt>,
    pub server_rtt_ms: Option<LegRtt>,
    pub retransmissions: Option<PerSide<u64>>,
    /// Lowest IP TTL (hop limit) seen from each side.
    pub ttl: PerSide<Option<u8>>,
    /// Router hops between each side and the sensor, from TTL (initial 32/64/128/255 inferred).
    pub client_ttl_hops: Option<u8>,
    pub server_ttl_hops: Option<u8>,
    /// Keystrokes seen (interactive protocols; null for others).
    pub keystrokes: Option<u64>,
    /// Keys typed on the server's side and echoed by the client (a reverse tunnel).
    pub server_keystrokes: Option<u64>,
    /// Keystrokes including those hidden in chaff trains, estimated (see README); equals
    /// `keystrokes` without obfuscation, null where the path blurs the estimate.
    pub keystrokes_estimate: Option<u64>,
    /// Keystroke-timing obfuscation chaff (OpenSSH ≥ 9.5), counted apart from keystrokes.
    pub chaff: Option<u64>,
    /// Keystroke → echo delay at the sensor, ms.
    pub echo_ms: Option<EchoMs>,
    /// OpenSSH keystroke-timing obfuscation seen (chaff): `keystrokes` is then a lower bound.
    pub keystroke_obfuscation: Option<bool>,
    /// Chaff PING → PONG at the sensor, ms: a clean round trip to the server's SSH process.
    pub ping_rtt_ms: Option<EchoMs>,
    /// Application turnaround of each side (request → the peer's answering data), ms.
    pub client_app_rtt_ms: Option<AppRtt>,
    pub server_app_rtt_ms: Option<AppRtt>,
    /// Latency hidden behind the nearest TCP endpoint of each side: deepest responder − transport floor, ms.
    pub client_hidden_ms: Option<f64>,
    pub server_hidden_ms: Option<f64>,
    pub client_relay: Option<Relay>,
    pub server_relay: Option<Relay>,
    /// Round trip to the typist's terminal (terminal query → its automatic reply), ms.
    pub terminal_rtt_ms: Option<f64>,
    /// Best estimate of the round trip from the sensor to the person typing, ms.
    pub typist_rtt_ms: Option<f64>,
    /// Round trips or answers that `typist_rtt_ms` stands on (null with it).
    pub typist_rtt_samples: Option<u64>,
    /// Upper bound on the typist's distance from the sensor: typist_rtt_ms / 2 × 200 km (light in fibre).
    pub max_distance_km: Option<f64>,
    /// Policy limit that applied to the client, if any: {"subnet", "max_rtt_ms"}.
    pub policy: Option<PolicyHit>,
    /// "relay_suspected", "rtt_over_policy".
    pub alerts: Vec<String>,
    /// What the clear-text start of an SSH session told (null for other protocols).
    pub ssh: Option<SshInfo>,
    /// What RDP sends in clear (null for other protocols, and for RDP
    /// sessions that carried no payload).
    pub rdp: Option<RdpOut>,
    /// Multipath TCP: the connection's subflows (null for a TCP connection without it).
    pub mptcp: Option<MptcpRecord>,
    /// A tunnel's own control plane (WireGuard, OpenVPN, IPsec; null for other sessions).
    pub tunnel: Option<TunnelRecord>,
    /// The record's schema: [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The sensor's name (`--sensor`, `output.sensor`, else the host name);
    /// set by the runtime, null when none could be had.
    pub sensor: Option<String>,
    /// Where the session was seen: the capture file (as given) that held its
    /// first packet, or `interface:NAME`; set by the runtime.
    pub source: Option<String>,
    /// Community ID v1 (seed 0) of the session's first tuple.
    pub community_id: String,
    /// The client's and server's address and port apart (ports null without
    /// them: ESP).
    pub client_ip: String,
    pub client_port: Option<u16>,
    pub server_ip: String,
    pub server_port: Option<u16>,
    #[serde(skip)]
    pub start_ts: Ts,
    /// Which input of the run opened the session ([`Session::input`]): the
    /// runtime names it in `source`.
    #[serde(skip)]
    pub input: u32,
}

/// The record's schema version, raised by one whenever fields are added.
/// 1: the records before `schema_version` existed (no such field); 2: adds
/// `schema_version`, `sensor`, `source`, `community_id`, `client_ip`,
/// `client_port`, `server_ip`, `server_port`, `ssh.hassh`, `ssh.hassh_server`;
/// 3: adds `rdp`; 4: adds `tunnel`.
pub const SCHEMA_VERSION: u32 = 4;

/// A Multipath TCP connection, or a join subflow recorded alone.
#[derive(Debug, Clone, Serialize)]
pub struct MptcpRecord {
    /// "connection": the record is the connection, under its first subflow's
    /// tuple; totals (packets, bytes, end) cover every subflow, round trips
    /// and TTLs are the first subflow's, and `subflows` lists each one.
    /// "join": a join subflow recorded alone, because its connection's record
    /// was written before it ended (`parent_uid`) or its connection was never
    /// seen (`parent_uid` null); it gives no relay or typist verdict.
    pub role: &'static str,
    pub parent_uid: Option<String>,
    /// The first subflow, then the join subflows in the order they ended.
    pub subflows: Vec<SubflowRecord>,
    /// Join subflows beyond the 16 listed.
    pub subflows_dropped: u32,
}

/// A further tuple of a session (a Multipath TCP subflow, a linked flow),
/// as the session's record lists it: the fields they share, first.
#[derive(Debug, Clone, Serialize)]
pub struct TupleRecord {
    pub client: String,
    pub server: String,
    pub start: String,
    pub end: String,
    pub end_reason: &'static str,
    pub packets: PerSide<u64>,
    pub bytes: PerSide<u64>,
    pub client_rtt_ms: Option<LegRtt>,
    pub server_rtt_ms: Option<LegRtt>,
}

impl TupleRecord {
    fn of(t: &Tuple) -> TupleRecord {
        let leg = |i: usize| t.legs[i].map(|q| leg_rtt(q, t.handshake[i]));
        TupleRecord {
            client: addr(t.client, t.transport),
            server: addr(t.server, t.transport),
            start: rfc3339(t.start),
            end: rfc3339(t.last),
            end_reason: t.end_reason,
            packets: PerSide { client: t.packets[0], server: t.packets[1] },
            bytes: PerSide { client: t.bytes[0], server: t.bytes[1] },
            client_rtt_ms: leg(0),
            server_rtt_ms: leg(1),
        }
    }
}

/// One subflow of a Multipath TCP connection; client is its SYN sender.
#[derive(Debug, Clone, Serialize)]
pub struct SubflowRecord {
    #[serde(flatten)]
    pub tuple: TupleRecord,
    pub retransmissions: PerSide<u64>,
    pub ttl: PerSide<Option<u8>>,
}

impl SubflowRecord {
    fn of(s: &Subflow) -> SubflowRecord {
        let t = &s.tuple;
        SubflowRecord {
            tuple: TupleRecord::of(t),
            retransmissions: PerSide { client: s.retransmissions[0], server: s.retransmissions[1] },
            ttl: PerSide { client: t.ttl[0], server: t.ttl[1] },
        }
    }
}

fn mptcp_record(s: &Session, reason: EndReason) -> Option<MptcpRecord> {
    let m = s.multipath()?;
    Some(match &m.role {
        Role::First => {
            // The first subflow's own figures: the totals less the joins'.
            let mut first = Subflow::of(s, reason, true);
            for sub in &m.subflows {
                for i in 0..2 {
                    let f = &mut first.tuple;
                    f.packets[i] -= sub.tuple.packets[sub.side(i)].min(f.packets[i]);
                    f.bytes[i] -= sub.tuple.bytes[sub.side(i)].min(f.bytes[i]);
                }
            }
            first.tuple.last = if m.own_last == Ts::MIN { s.last } else { m.own_last };
            let subflows = std::iter::once(&first).chain(&m.subflows).map(SubflowRecord::of).collect();
            MptcpRecord { role: "connection", parent_uid: None, subflows, subflows_dropped: m.subflows_dropped }
        }
        Role::Join(p) => MptcpRecord {
            role: "join",
            parent_uid: p.map(|p| uid(IpProto::TCP, p.client, p.server, p.start)),
            subflows: Vec::new(),
            subflows_dropped: 0,
        },
    })
}

/// The record's `rdp` object: what RDP sent in clear, and how the
/// session's flows over TCP and UDP were linked.
#[derive(Debug, Clone, Serialize)]
pub struct RdpOut {
    #[serde(flatten)]
    pub clear: RdpRecord,
    /// A UDP flow linked to its TCP connection and recorded alone (the
    /// connection's record was written first): "addresses", what the link
    /// stands on; else null.
    pub link: Option<&'static str>,
    /// That connection's uid (null with `link`).
    pub parent_uid: Option<String>,
    /// A TCP connection: its UDP flows that ended while it was open, in the
    /// order they ended (at most 16), and those beyond.
    pub linked_flows: Vec<LinkedFlowRecord>,
    pub linked_flows_dropped: u32,
}

/// One UDP flow of an RDP session, as its TCP connection's record lists it.
#[derive(Debug, Clone, Serialize)]
pub struct LinkedFlowRecord {
    #[serde(flatten)]
    pub tuple: TupleRecord,
    pub ttl: PerSide<Option<u8>>,
    /// What the link stands on: "addresses", "index", "spi".
    pub link: &'static str,
}

impl LinkedFlowRecord {
    fn of(f: &LinkedFlow) -> LinkedFlowRecord {
        let t = &f.tuple;
        LinkedFlowRecord {
            tuple: TupleRecord::of(t),
            ttl: PerSide { client: t.ttl[0], server: t.ttl[1] },
            link: f.link,
        }
    }
}

fn rdp_record(r: &RdpStream, s: &Session) -> RdpOut {
    RdpOut {
        clear: r.record(s.transport),
        link: r.link.map(|l| l.how),
        parent_uid: r.link.map(|l| uid(l.transport, l.client, l.server, l.start)),
        linked_flows: linked_flows(&r.linked),
        linked_flows_dropped: r.linked.dropped,
    }
}

fn linked_flows(l: &LinkedFlows) -> Vec<LinkedFlowRecord> {
    l.list.iter().map(LinkedFlowRecord::of).collect()
}

/// The record's `tunnel` object: the tunnel's own control plane.
#[derive(Debug, Clone, Serialize)]
pub struct TunnelRecord {
    /// "wireguard", "openvpn", "ipsec".
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// OpenVPN's control channel: "plain", "tls-auth", "tls-crypt" (null
    /// for other tunnels, or before a control packet told).
    pub mode: Option<&'static str>,
    /// The tunnel's control round trips, by the side that answered (a
    /// handshake or IKE request → its response, an OpenVPN control packet →
    /// its acknowledgement), ms; null when none was paired.
    pub client_rtt_ms: Option<ControlRtt>,
    pub server_rtt_ms: Option<ControlRtt>,
    pub control_messages: PerSide<u64>,
    pub data_packets: PerSide<u64>,
    /// Keepalives (WireGuard's empty data, NAT-T's); null for OpenVPN,
    /// whose ping travels encrypted as data.
    pub keepalives: Option<PerSide<u64>>,
    pub handshakes: u64,
    pub rekeys: u64,
    /// A flow linked to its session and recorded alone (the session's
    /// record was written first): what the link stands on ("index", "spi",
    /// "addresses"), and the session's uid; else null.
    pub link: Option<&'static str>,
    pub parent_uid: Option<String>,
    /// The session's linked flows that ended while it was open, in the
    /// order they ended (at most 16), and those beyond.
    pub linked_flows: Vec<LinkedFlowRecord>,
    pub linked_flows_dropped: u32,
    /// What the tunnel carried, as its data packets' sizes and times tell:
    /// "interactive" (someone typed through it: `keystrokes`), "data"
    /// (traffic, nobody typing), "none" (keepalives and control only).
    pub inner_traffic: &'static str,
    /// The outer sizes (payload bytes) of an inner keystroke, its echo and
    /// the inner ACK, learnt from the tunnel; null until typing showed them.
    pub inner_sizes: Option<SizeClasses>,
}

/// A tunnel's control round trips of one leg, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ControlRtt {
    pub min: f64,
    pub p50: f64,
    pub samples: u64,
}

fn tunnel_record(t: &Tunnel, s: &Session) -> TunnelRecord {
    let rtt = |side| {
        s.turns.as_deref().and_then(|x| x.app_rtt(side)).map(|a| ControlRtt {
            min: round(a.min, 4),
            p50: round(a.p50, 4),
            samples: a.samples,
        })
    };
    let per = |v: [u64; 2]| PerSide { client: v[0], server: v[1] };
    TunnelRecord {
        kind: t.kind.as_str(),
        mode: t.mode.map(|m| m.as_str()),
        client_rtt_ms: rtt(Side::Client),
        server_rtt_ms: rtt(Side::Server),
        control_messages: per(t.control),
        data_packets: per(t.data),
        keepalives: t.keepalives_seen().then(|| per(t.keepalives)),
        handshakes: t.handshakes,
        rekeys: t.rekeys,
        link: t.link.map(|l| l.how),
        parent_uid: t.link.map(|l| uid(l.transport, l.client, l.server, l.start)),
        linked_flows: linked_flows(&t.linked),
        linked_flows_dropped: t.linked.dropped,
        inner_traffic: match t.typing.classes() {
            Some(_) if t.typing.keystrokes() > 0 => "interactive",
            _ if t.data.iter().any(|&n| n > 0) => "data",
            _ => "none",
        },
        inner_sizes: t.typing.classes(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EchoMs {
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub samples: u64,
}

impl From<Quantiles> for EchoMs {
    fn from(q: Quantiles) -> EchoMs {
        EchoMs { min: round(q.min, 4), p50: round(q.p50, 4), p90: round(q.p90, 4), samples: q.samples }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyHit {
    pub subnet: String,
    pub max_rtt_ms: f64,
}

impl SessionRecord {
    /// The record of session `s`, rendering its verdict `v` (see [`crate::verdict`]).
    pub fn new(s: &Session, reason: EndReason, v: &Verdict) -> SessionRecord {
        let rtt = s.rtt();
        let leg = |i: usize| rtt.and_then(|r| v.legs[i].map(|q| leg_rtt(q, r.handshake[i])));
        let a = &v.assessment;
        let inter = s.interactive();
        SessionRecord {
            uid: uid(s.transport, s.client, s.server, s.start),
            proto: s.proto().as_str(),
            transport: match s.transport {
                IpProto::TCP => "tcp",
                IpProto::UDP => "udp",
                IpProto::ESP => "esp",
                _ => "ip",
            },
            client: addr(s.client, s.transport),
            server: addr(s.server, s.transport),
            start: rfc3339(s.start),
            end: rfc3339(s.last),
            duration_s: round((s.last - s.start) as f64 / 1e9, 9),
            end_reason: reason.as_str(),
            packets: PerSide { client: s.packets[0], server: s.packets[1] },
            bytes: PerSide { client: s.bytes[0], server: s.bytes[1] },
            client_rtt_ms: leg(0),
            server_rtt_ms: leg(1),
            retransmissions: rtt.filter(|_| s.transport == IpProto::TCP).map(|r| {
                let [c, sv] = r.retransmissions();
                PerSide { client: c, server: sv }
            }),
            ttl: PerSide { client: s.ttl[0], server: s.ttl[1] },
            client_ttl_hops: s.ttl[0].map(ttl_hops),
            server_ttl_hops: s.ttl[1].map(ttl_hops),
            keystrokes: inter.map(|i| i.keystroke_count()),
            keystrokes_estimate: inter.and_then(|i| i.keystroke_estimate()),
            server_keystrokes: inter.map(|i| i.server_keystroke_count()),
            chaff: inter.map(|i| i.chaff_count()),
            echo_ms: inter.and_then(|i| i.echo.quantiles()).map(EchoMs::from),
            keystroke_obfuscation: inter.map(|i| i.obfuscated()),
            ping_rtt_ms: a.ping_rtt.map(EchoMs::from),
            client_app_rtt_ms: a.app_rtt[0].map(round_app),
            server_app_rtt_ms: a.app_rtt[1].map(round_app),
            client_hidden_ms: a.hidden_ms[0].map(|v| round(v, 4)),
            server_hidden_ms: a.hidden_ms[1].map(|v| round(v, 4)),
            client_relay: a.relay[0].clone(),
            server_relay: a.relay[1].clone(),
            terminal_rtt_ms: a.terminal_rtt_ms.map(|v| round(v, 4)),
            typist_rtt_ms: a.typist_rtt_ms.map(|v| round(v, 4)),
            typist_rtt_samples: a.typist_rtt_samples,
            max_distance_km: a.max_distance_km.map(|v| round(v, 1)),
            policy: v.limit.map(|l| PolicyHit { subnet: l.subnet.to_string(), max_rtt_ms: l.max_rtt_ms }),
            alerts: v.alerts.iter().map(|a| a.to_string()).collect(),
            ssh: s.app.as_deref().and_then(|a| a.ssh_stream()).map(|x| x.info.clone()),
            rdp: s.app.as_deref().and_then(|a| a.rdp_stream()).map(|x| rdp_record(x, s)),
            mptcp: mptcp_record(s, reason),
            tunnel: s.tunnel.as_deref().map(|t| tunnel_record(t, s)),
            schema_version: SCHEMA_VERSION,
            sensor: None,
            source: None,
            community_id: community_id(s.transport, s.client, s.server),
            client_ip: ip(s.client.ip()),
            client_port: s.transport.has_ports().then_some(s.client.port()),
            server_ip: ip(s.server.ip()),
            server_port: s.transport.has_ports().then_some(s.server.port()),
            start_ts: s.start,
            input: s.input,
        }
    }

    /// Application turnaround of leg i (0 client, 1 server).
    pub fn app_rtt(&self, i: usize) -> Option<&AppRtt> {
        if i == 0 { self.client_app_rtt_ms.as_ref() } else { self.server_app_rtt_ms.as_ref() }
    }
}

fn round_app(a: AppRtt) -> AppRtt {
    AppRtt { min: round(a.min, 4), p50: round(a.p50, 4), samples: a.samples, floor: round(a.floor, 4) }
}

fn leg_rtt(q: Quantiles, handshake: Option<f64>) -> LegRtt {
    LegRtt {
        min: round(q.min, 4),
        p50: round(q.p50, 4),
        p90: round(q.p90, 4),
        max: round(q.max, 4),
        samples: q.samples,
        handshake: handshake.map(|h| round(h, 4)),
        floor: round(q.floor, 4),
    }
}

/// Round to `digits` decimals (keeps records free of float noise).
pub fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// "ip:port", "[ipv6]:port"; protocols without ports show the address alone.
/// IPv4 numbers are written with `itoa`: through `fmt` an address cost about
/// 1,400 instructions, twice per session record.
fn addr(a: SocketAddr, transport: IpProto) -> String {
    // Sized for the longest IPv6 form: one allocation, no regrowth.
    let mut out = String::with_capacity(48);
    let with_port = transport.has_ports();
    let bracket = with_port && a.is_ipv6();
    if bracket {
        out.push('[');
    }
    push_ip(&mut out, a.ip());
    if bracket {
        out.push(']');
    }
    if with_port {
        out.push(':');
        out.push_str(itoa::Buffer::new().format(a.port()));
    }
    out
}

/// An address as std writes it (IPv6 as RFC 5952: compressed, lower case).
fn ip(a: IpAddr) -> String {
    let mut out = String::with_capacity(if a.is_ipv4() { 15 } else { 39 });
    push_ip(&mut out, a);
    out
}

fn push_ip(out: &mut String, a: IpAddr) {
    use std::fmt::Write;
    match a {
        IpAddr::V4(v4) => {
            let mut num = itoa::Buffer::new();
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(num.format(o));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// A session id anyone can recompute: `C` and 11 base62 digits (least
/// significant first, digits `0-9A-Za-z`) of the 64-bit FNV-1a hash of the
/// session's canonical form, the ASCII text
/// `"<ip proto> <client ip> <client port> <server ip> <server port> <start ns>"`:
/// the IP protocol number (6, 17, 50), addresses as Rust and RFC 5952 write
/// them (IPv6 compressed, lower case, no brackets), ports 0 for ESP, and the
/// first packet's time in nanoseconds since the Unix epoch. A session over
/// several tuples (Multipath TCP) takes its first tuple's.
pub fn uid(transport: IpProto, client: SocketAddr, server: SocketAddr, start: Ts) -> String {
    let canonical = format!("{transport} {} {} {} {} {start}", client.ip(), client.port(), server.ip(), server.port());
    let mut n = fnv1a64(canonical.as_bytes());
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(12);
    out.push('C');
    for _ in 0..11 {
        out.push(DIGITS[(n % 62) as usize] as char);
        n /= 62;
    }
    out
}

/// FNV-1a, 64 bits (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_follow_their_documented_form() {
        // FNV-1a test vectors (the reference implementation's).
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        // Pinned: the same session has this uid on every machine and version.
        assert_eq!(
            uid(IpProto::TCP, a("192.0.2.1:40000"), a("192.0.2.2:22"), 1_767_225_600_000_000_000),
            "CaieoBTTkw45"
        );
        assert_eq!(uid(IpProto::TCP, a("[2001:db8::1]:50022"), a("[2001:db8::2]:22"), 1), "Cw8HSSFr8fZ2");
    }

    #[test]
    fn addresses_are_written_as_std_writes_them() {
        let addrs = [
            "192.0.2.1:22",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.0.10.100:3389",
            "[2001:db8::1]:443",
            "[::ffff:192.0.2.9]:22",
            "[::]:0",
        ];
        for a in addrs {
            let a: SocketAddr = a.parse().unwrap();
            for transport in [IpProto::TCP, IpProto::UDP] {
                assert_eq!(addr(a, transport), a.to_string());
            }
            for transport in [IpProto::ESP, IpProto(47)] {
                assert_eq!(addr(a, transport), a.ip().to_string());
            }
            assert_eq!(ip(a.ip()), a.ip().to_string());
        }
    }
}
