//! Per-session state: counters, protocol detection and timing analysis.

use crate::labels::label_enum;

use super::mptcp::Mptcp;
use super::{FlowKey, Tier};
use crate::analysis::interactive::Interactive;
use crate::analysis::turns::Turns;
use crate::analysis::{Quantiles, RttSample, RttTracker};
use crate::decode::Packet;
use crate::ip_proto::IpProto;
use crate::proto::App;
use crate::proto::linked::Tuple;
use crate::proto::tunnel::{Kind, Tunnel};
use crate::proto::{Classifier, Proto};
use crate::side::Side;
use crate::time::Ts;
use std::net::SocketAddr;

label_enum! {
    /// Why a session record was written.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum EndReason {
        Fin = "fin",
        Rst = "rst",
        Idle = "idle",
        Evicted = "evicted",
        EndOfInput = "end_of_input",
        Shutdown = "shutdown",
    }
}

/// [`Session::stage`]: payload seen from the client, from the server.
pub const DATA_FROM: [u8; 2] = [1, 2];
/// [`Session::stage`]: on the long-idle lane.
pub const LONG_IDLE: u8 = 4;
/// [`Session::stage`]: FIN seen from the client, from the server.
pub const FIN_FROM: [u8; 2] = [8, 16];
/// [`Session::stage`]: a Multipath TCP subflow (its state is in `mptcp`).
const MULTIPATH: u8 = 32;
/// [`Session::stage`]: a UDP session whose protocol's own numbering gave
/// round trips (RDP over UDP): its `rtt` legs hold them.
const TIMED: u8 = 64;

/// One session. Laid out in declaration order (`repr(C)`): what every
/// packet reads or writes comes first, so it shares the cache lines right
/// after the table slot's key; what only records and metrics read follows.
#[derive(Debug)]
#[repr(C)]
pub struct Session {
    /// Whether the client is the key's lower endpoint.
    pub client_is_lo: bool,
    /// IP protocol number (6 TCP, 17 UDP, 50 ESP…).
    pub transport: IpProto,
    /// Bits: [`DATA_FROM`] each side (TCP payload seen; both once the
    /// session is established beyond its handshake), [`FIN_FROM`] each side,
    /// and [`LONG_IDLE`]. One byte: the per-packet header fills its line.
    pub stage: u8,
    /// Set once the connection closed (FIN both ways, or RST): the record is
    /// written after a short linger that absorbs the last ACKs.
    pub closed: Option<EndReason>,
    /// Counted in `opened` (done once the protocol is settled, or at the end).
    pub counted: bool,
    /// Lowest TTL / hop limit seen from each side.
    pub ttl: [Option<u8>; 2],
    pub classifier: Classifier,
    /// The protocol if content proves none (server port, else transport):
    /// fixed when the session opens, looked up once.
    by_port: Proto,
    /// The server's port (also in `server`; kept here for the per-packet path).
    pub server_port: u16,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub last: Ts,
    /// Dissection and interactive analysis, for SSH and VNC sessions.
    pub app: Option<Box<App>>,
    /// TCP round trips (see [`Session::rtt`]). Held in the slot, not boxed:
    /// every TCP packet reads it, and a pointer to follow would be one more
    /// cache miss in a row. It starts on the line after the fields above (it
    /// is aligned to a line). Not an `Option`: the compiler would keep the
    /// option's tag in a spare byte of its choosing, which was on a line no
    /// packet otherwise reads; `transport` says whether it is in use.
    rtt: RttTracker,
    /// Handshake request → answer turnarounds (TLS, RDP, WireGuard, IKE, OpenVPN):
    /// read only when a handshake message goes by.
    pub turns: Option<Box<Turns>>,
    pub start: Ts,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Packet time of the last verdict worked out while the session ran.
    pub judged: Ts,
    /// Alerts raised so far (bits: `verdict::alert_bit`): each is raised
    /// once, when a verdict first reaches it.
    pub raised: u8,
    /// Which input of the run opened the session (the engine's
    /// [`crate::engine::Engine::set_input`]: a replay's file, 0 live): the
    /// runtime names it in the record's `source`.
    pub input: u32,
    /// Round-trip samples taken before the protocol was known (the handshake):
    /// exported once it is, so histograms carry the right `proto` label.
    pub early: [Option<RttSample>; 4],
    /// Multipath TCP subflow state, for subflows that negotiated it: read
    /// through [`Session::multipath`], which looks at `stage` first (this
    /// field is on a line other packets never read).
    mptcp: Option<Box<Mptcp>>,
    /// A tunnel's control plane (WireGuard, OpenVPN, IPsec): its counts,
    /// pairs and linked flows.
    pub tunnel: Option<Box<Tunnel>>,
}

/// What a free table slot holds: nothing allocated.
impl Default for Session {
    fn default() -> Session {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Session {
            client_is_lo: false,
            transport: IpProto(0),
            stage: 0,
            closed: None,
            counted: false,
            ttl: [None; 2],
            classifier: Classifier::default(),
            by_port: Proto::Ip,
            server_port: 0,
            packets: [0; 2],
            bytes: [0; 2],
            last: 0,
            rtt: RttTracker::default(),
            app: None,
            turns: None,
            start: 0,
            judged: Ts::MIN,
            raised: 0,
            input: 0,
            client: unspecified,
            server: unspecified,
            early: [None; 4],
            mptcp: None,
            tunnel: None,
        }
    }
}

impl Session {
    pub fn new(key: &FlowKey, client_is_lo: bool, start: Ts) -> Session {
        let (client, server) = if client_is_lo { (key.lo(), key.hi()) } else { (key.hi(), key.lo()) };
        Session {
            client,
            server,
            transport: key.proto,
            start,
            last: start,
            by_port: Proto::by_port(key.proto, server.port()),
            server_port: server.port(),
            client_is_lo,
            ..Session::default()
        }
    }

    /// A packet from `from` (its `payload` as captured): counters, clock,
    /// lowest TTL, and the protocol classifier.
    #[inline(always)]
    pub fn count(&mut self, p: &Packet<'_>, from: Side, payload: &[u8]) {
        let i = from as usize;
        self.packets[i] += 1;
        self.bytes[i] += u64::from(p.ip_len);
        self.last = self.last.max(p.ts);
        self.ttl[i] = Some(self.ttl[i].map_or(p.ttl, |t| t.min(p.ttl)));
        self.classifier.feed(self.transport, self.server_port, from, payload, p.payload_len() as usize);
    }

    /// Which side sent a packet from `src`.
    pub fn side_of(&self, src: SocketAddr) -> Side {
        if src == self.client { Side::Client } else { Side::Server }
    }

    /// Transport round trips: TCP's, or those a UDP protocol's numbering
    /// gave (RDP over UDP: legs only, no handshake of TCP's).
    pub fn rtt(&self) -> Option<&RttTracker> {
        (self.transport == IpProto::TCP || self.stage & TIMED != 0).then_some(&self.rtt)
    }

    /// The round-trip legs of a UDP session timed by its protocol, which
    /// has them from now on.
    pub fn timed_rtt_mut(&mut self) -> &mut RttTracker {
        self.stage |= TIMED;
        &mut self.rtt
    }

    /// TCP's, to feed it a segment.
    pub fn rtt_mut(&mut self) -> Option<&mut RttTracker> {
        (self.transport == IpProto::TCP).then_some(&mut self.rtt)
    }

    /// Transport round-trip quantiles of each leg, for TCP sessions and
    /// timed UDP ones (one sort of each reservoir).
    pub fn leg_quantiles(&self) -> [Option<Quantiles>; 2] {
        self.rtt().map_or([None, None], |r| [r.legs[0].quantiles(), r.legs[1].quantiles()])
    }

    /// Its figures as a further tuple of another session (a linked flow, a
    /// Multipath TCP subflow), sides as its own, ended for `end`.
    pub fn tuple(&self, end: EndReason) -> Tuple {
        Tuple {
            transport: self.transport,
            client: self.client,
            server: self.server,
            start: self.start,
            last: self.last,
            end_reason: end.as_str(),
            packets: self.packets,
            bytes: self.bytes,
            ttl: self.ttl,
            legs: self.leg_quantiles(),
            handshake: self.rtt().map_or([None, None], |r| r.handshake),
        }
    }

    /// Keystroke and echo analysis, for interactive protocols.
    pub fn interactive(&self) -> Option<&Interactive> {
        self.app.as_deref().map(|a| &a.inter)
    }

    pub fn proto(&self) -> Proto {
        self.classifier.proto(self.by_port)
    }

    /// Multipath TCP state, for a subflow that negotiated it.
    #[inline]
    pub fn multipath(&self) -> Option<&Mptcp> {
        if self.stage & MULTIPATH == 0 { None } else { self.mptcp.as_deref() }
    }

    #[inline]
    pub fn multipath_mut(&mut self) -> Option<&mut Mptcp> {
        if self.stage & MULTIPATH == 0 { None } else { self.mptcp.as_deref_mut() }
    }

    pub fn set_multipath(&mut self, m: Mptcp) {
        self.stage |= MULTIPATH;
        self.mptcp = Some(Box::new(m));
    }

    /// A TCP session that carried no payload either way: a lone SYN, a
    /// handshake only (a scan, a refused or abandoned connection).
    pub fn handshake_only(&self) -> bool {
        self.transport == IpProto::TCP && self.stage & (DATA_FROM[0] | DATA_FROM[1]) == 0
    }

    /// The [`Tier`] its own packets earned: one side only, answered
    /// (TCP without payload both ways), established, or established and
    /// of a remote-access protocol or a tunnel (by content, else port).
    pub fn earned_tier(&self) -> Tier {
        if self.packets[0] == 0 || self.packets[1] == 0 {
            return Tier::OneWay;
        }
        if self.transport == IpProto::TCP && self.stage & (DATA_FROM[0] | DATA_FROM[1]) != DATA_FROM[0] | DATA_FROM[1] {
            return Tier::Handshake;
        }
        let proto = self.proto();
        if proto.is_remote_access() || Kind::of(proto).is_some() { Tier::Interactive } else { Tier::Established }
    }

    /// Whether the session belongs on the long-idle lane: an open TCP
    /// connection of a remote-access protocol, established (payload both ways).
    pub fn wants_long_idle(&self) -> bool {
        self.stage & (DATA_FROM[0] | DATA_FROM[1] | LONG_IDLE) == DATA_FROM[0] | DATA_FROM[1]
            && self.closed.is_none()
            && self.proto().is_remote_access()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::RttTracker;
    use crate::analysis::rtt::Leg;
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn round_trip_state_starts_a_cache_line_fills_six_and_a_sample_writes_one() {
        // The session starts a line in its table slot; its per-packet header
        // fills that line, and the round-trip state begins on the next.
        assert_eq!(align_of::<Session>(), 64);
        assert_eq!(offset_of!(Session, rtt), 64);
        assert_eq!((size_of::<Leg>(), align_of::<Leg>()), (64, 64));
        // Per-packet state, handshake and both legs: six lines, no more.
        assert_eq!(size_of::<RttTracker>(), 6 * 64);
    }

    #[test]
    fn only_tcp_sessions_have_round_trips() {
        let key =
            |proto| FlowKey::new("192.0.2.1".parse().unwrap(), 40000, "198.51.100.2".parse().unwrap(), 22, proto).0;
        for (proto, tracked) in [(IpProto::TCP, true), (IpProto::UDP, false), (IpProto::ESP, false)] {
            let mut s = Session::new(&key(proto), true, 0);
            assert_eq!(s.rtt().is_some(), tracked, "proto {proto}");
            assert_eq!(s.rtt_mut().is_some(), tracked, "proto {proto}");
        }
        assert!(Session::default().rtt().is_none(), "a free slot");
    }
}
