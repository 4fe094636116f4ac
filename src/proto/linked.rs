//! Linked flows (docs/sessions.md, section 5): a further tuple of a session
//! found by a join identifier (RDP's UDP flows by addresses, WireGuard's
//! roamed endpoints by receiver index, IKE on 4500 by SPIs, ESP by
//! addresses). What a linked flow keeps of its session, and what it leaves
//! in the session's record when it ends.

use crate::analysis::Quantiles;
use crate::ip_proto::IpProto;
use crate::time::Ts;
use std::net::SocketAddr;

/// The session a flow was linked to: its first tuple and start (which name
/// it in the table and in its uid), what the link stands on, and whether
/// the flow's client is the session's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    pub transport: IpProto,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub start: Ts,
    /// "addresses", "index", "spi": the record's `link`.
    pub how: &'static str,
    pub same_sides: bool,
}

/// A further tuple's own figures, as its session's record lists it (a
/// linked flow, a Multipath TCP subflow): its addresses, lifetime, counts,
/// TTLs and round trips per leg.
#[derive(Debug, Clone)]
pub struct Tuple {
    pub transport: IpProto,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub start: Ts,
    pub last: Ts,
    pub end_reason: &'static str,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub ttl: [Option<u8>; 2],
    pub legs: [Option<Quantiles>; 2],
    pub handshake: [Option<f64>; 2],
}

impl Tuple {
    /// The same figures with client and server swapped.
    pub fn swapped(self) -> Tuple {
        let swap = |[a, b]: [u64; 2]| [b, a];
        Tuple {
            client: self.server,
            server: self.client,
            packets: swap(self.packets),
            bytes: swap(self.bytes),
            ttl: [self.ttl[1], self.ttl[0]],
            legs: [self.legs[1], self.legs[0]],
            handshake: [self.handshake[1], self.handshake[0]],
            ..self
        }
    }
}

/// What a linked flow leaves in its session's record when it ends (sides
/// as the session's; its legs are its transport's round trips, RDP over
/// UDP's numbering, or a tunnel's control round trips on that path).
#[derive(Debug, Clone)]
pub struct LinkedFlow {
    pub tuple: Tuple,
    pub link: &'static str,
}

/// Linked flows listed per session; more are counted, not listed.
pub const MAX_LINKED: usize = 16;

/// A session's linked flows: those still open (it does not end before
/// them), and those that ended, listed up to [`MAX_LINKED`].
#[derive(Debug, Default)]
pub struct LinkedFlows {
    pub live: u32,
    pub list: Vec<LinkedFlow>,
    pub dropped: u32,
}

impl LinkedFlows {
    /// A linked flow of this session ended: its figures join the list.
    pub fn add(&mut self, f: LinkedFlow) {
        self.live = self.live.saturating_sub(1);
        push_listed(&mut self.list, &mut self.dropped, f);
    }
}

/// List `item` if fewer than [`MAX_LINKED`] are, else count it in `dropped`
/// (a record lists at most 16 further tuples: linked flows, Multipath TCP
/// subflows).
pub fn push_listed<T>(list: &mut Vec<T>, dropped: &mut u32, item: T) {
    if list.len() < MAX_LINKED {
        list.push(item);
    } else {
        *dropped += 1;
    }
}
