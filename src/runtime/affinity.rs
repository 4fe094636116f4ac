//! Sessions whose flows span host pairs, kept in one worker: a Multipath
//! TCP subflow joining from another address (its MP_JOIN names a token of
//! the connection's keys), a WireGuard peer that roamed (its data name a
//! receiver index of the handshake). The reader learns those identifiers as
//! the engine does, and sends a flow that names one, and the rest of that
//! flow, to the worker of the session it joins. Every other flow goes where
//! its host pair hashes.

use crate::decode::{L4, Mptcp, Packet};
use crate::flow::{FlowKey, mptcp};
use crate::proto::wireguard;
use crate::time::Ts;
use std::collections::HashMap;

/// Most entries in each map: beyond it, entries idle for longer than the
/// longest idle limit go, and if none did, all of them.
const MAX: usize = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Id {
    /// A Multipath TCP token (of a key in an MP_CAPABLE SYN).
    Token(u32),
    /// A WireGuard index (of a handshake response).
    Index(u32),
}

/// A worker, and when it was last named.
type Entry = (usize, Ts);

pub struct Affinity {
    ids: HashMap<Id, Entry>,
    /// Flows sent to another worker than their host pair's.
    flows: HashMap<FlowKey, Entry>,
    longest_idle: Ts,
}

impl Affinity {
    pub fn new(longest_idle: Ts) -> Affinity {
        Affinity { ids: HashMap::new(), flows: HashMap::new(), longest_idle }
    }

    /// The worker of packet `p`, whose host pair hashes to worker `w`.
    #[inline]
    pub fn route(&mut self, p: &Packet<'_>, w: usize) -> usize {
        let key = || {
            let (sport, dport) = p.ports();
            FlowKey::new(p.src, sport, p.dst, dport, p.ip_proto()).0
        };
        let mut w = w;
        if !self.flows.is_empty()
            && let Some(e) = self.flows.get_mut(&key())
        {
            e.1 = p.ts;
            w = e.0;
        }
        let joins = match &p.l4 {
            L4::Tcp(t) if t.flags.syn() => match t.mptcp() {
                Some(Mptcp::Capable { sender_key: Some(k), .. }) => {
                    self.learn(Id::Token(mptcp::token(k)), w, p.ts);
                    None
                }
                Some(Mptcp::Join { token }) => Some(Id::Token(token)),
                _ => None,
            },
            L4::Udp(u) if wireguard::is_wireguard(u.payload, u.payload_len as usize) => match u.payload[0] {
                2 => {
                    for at in [4, 8] {
                        self.learn(Id::Index(wireguard::le32(&u.payload[at..]) as u32), w, p.ts);
                    }
                    None
                }
                4 => Some(Id::Index(wireguard::le32(&u.payload[4..]) as u32)),
                _ => None,
            },
            _ => None,
        };
        let Some(id) = joins else { return w };
        match self.ids.get_mut(&id) {
            Some(e) if e.0 != w => {
                e.1 = p.ts;
                let to = e.0;
                let ts = p.ts;
                make_room(&mut self.flows, ts, self.longest_idle);
                self.flows.insert(key(), (to, ts));
                to
            }
            _ => w,
        }
    }

    fn learn(&mut self, id: Id, w: usize, ts: Ts) {
        make_room(&mut self.ids, ts, self.longest_idle);
        self.ids.insert(id, (w, ts));
    }
}

/// Room for one more entry in `m`: at [`MAX`], entries not named for longer
/// than `idle` go (their sessions have ended), and if none had, all.
fn make_room<K>(m: &mut HashMap<K, Entry>, now: Ts, idle: Ts) {
    if m.len() < MAX {
        return;
    }
    m.retain(|_, e| now.saturating_sub(e.1) <= idle);
    if m.len() >= MAX {
        tracing::debug!(entries = m.len(), "worker affinity map full: cleared");
        m.clear();
    }
}
