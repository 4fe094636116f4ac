//! Multipath TCP: several subflows (TCP connections, each with its own
//! 4-tuple) carry one connection. The first subflow (MP_CAPABLE) is the
//! session; a join subflow (MP_JOIN naming the token of one of its keys)
//! lives in the table beside it, with its own round trips, and when it ends
//! it is folded into the session's list of subflows. The connection's bytes
//! are followed in its data sequence (DSS mappings), whichever subflow
//! carries them, so the SSH dissector and keystroke analysis see one stream.

use super::{EndReason, FlowKey, Session};
use crate::decode::{DssMap, Mptcp as Opt, Tcp};
use crate::proto::linked::Tuple;
use crate::side::Side;
use crate::time::Ts;
use std::net::SocketAddr;

/// Join subflows listed per connection; more are counted, not listed.
pub const MAX_SUBFLOWS: usize = crate::proto::linked::MAX_LINKED;

/// Multipath TCP state of one subflow.
#[derive(Debug)]
pub struct Mptcp {
    pub role: Role,
    /// Initial sequence number of each side (SYN, SYN/ACK): DSS numbers
    /// subflow bytes relative to it.
    isn: [Option<u32>; 2],
    /// The latest mapping of each side's bytes on this subflow.
    map: [Option<DssMap>; 2],
    /// Whether this subflow carried a data-sequence mapping yet.
    pub mapped: bool,
    /// The keys of client and server (first subflow).
    pub keys: [Option<u64>; 2],
    /// Join subflows that ended, in order of their end (first subflow).
    pub subflows: Vec<Subflow>,
    /// Join subflows beyond [`MAX_SUBFLOWS`].
    pub subflows_dropped: u32,
    /// Join subflows still in the table.
    pub live_joins: u32,
    /// This subflow's last packet (the session's `last` follows its joins too).
    pub own_last: Ts,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Role {
    /// The first subflow: the connection's session.
    First,
    /// A join subflow; `parent` is its connection's first subflow when that
    /// was seen (its token known).
    Join(Option<Parent>),
}

/// The first subflow a join subflow belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parent {
    pub key: FlowKey,
    pub start: Ts,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// The join's client (its SYN sender) is the connection's client.
    pub same_sides: bool,
}

/// What a join subflow leaves in its connection's record.
#[derive(Debug, Clone)]
pub struct Subflow {
    /// Its figures, sides as its own (client: its SYN sender).
    pub tuple: Tuple,
    pub clean: [u32; 2],
    pub retransmissions: [u64; 2],
    pub same_sides: bool,
}

impl Subflow {
    pub fn of(s: &Session, end: EndReason, same_sides: bool) -> Subflow {
        let rtt = s.rtt();
        Subflow {
            tuple: s.tuple(end),
            clean: rtt.map_or([0, 0], |r| [r.legs[0].clean, r.legs[1].clean]),
            retransmissions: rtt.map_or([0, 0], |r| r.retransmissions()),
            same_sides,
        }
    }

    /// Index of the connection's side `i` (0 client, 1 server) in this subflow's arrays.
    pub fn side(&self, i: usize) -> usize {
        if self.same_sides { i } else { 1 - i }
    }
}

impl Mptcp {
    pub fn new(role: Role) -> Mptcp {
        Mptcp {
            role,
            isn: [None; 2],
            map: [None; 2],
            mapped: false,
            keys: [None; 2],
            subflows: Vec::new(),
            subflows_dropped: 0,
            live_joins: 0,
            own_last: Ts::MIN,
        }
    }

    /// The parent of a join subflow.
    pub fn parent(&self) -> Option<&Parent> {
        match &self.role {
            Role::Join(p) => p.as_ref(),
            Role::First => None,
        }
    }

    /// Read a segment's sequence numbers and option. Returns whether a key
    /// (hence a token joins may name) became known.
    pub fn on_segment(&mut self, ts: Ts, from: Side, t: &Tcp<'_>, opt: Option<Opt>) -> bool {
        let i = from as usize;
        self.own_last = self.own_last.max(ts);
        if t.flags.syn() {
            self.isn[i] = Some(t.seq);
        }
        let mut learned = false;
        match opt {
            Some(Opt::Capable { sender_key, receiver_key, data_len, .. }) if self.role == Role::First => {
                for (side, key) in [(from, sender_key), (from.other(), receiver_key)] {
                    if let Some(k) = key
                        && self.keys[side as usize].is_none()
                    {
                        self.keys[side as usize] = Some(k);
                        learned = true;
                    }
                }
                // Version 1: the client's first data rides on the third ACK's option.
                if let (Some(len), Some(key)) = (data_len, sender_key) {
                    self.map[i] = Some(DssMap { dsn: idsn(key).wrapping_add(1), ssn: 1, len });
                    self.mapped = true;
                }
            }
            Some(Opt::Dss(d)) => {
                if let Some(m) = d.map {
                    self.map[i] = Some(m);
                    self.mapped = true;
                }
            }
            _ => {}
        }
        learned
    }

    /// Where segment `t` from `from` (its Multipath TCP option `opt`) lies
    /// in the connection's data sequence (low 32 bits), and the data ACK it
    /// carries; None when no mapping covers it.
    pub fn data_position(&self, from: Side, t: &Tcp<'_>, opt: Option<Opt>) -> Option<(u32, Option<u32>)> {
        let i = from as usize;
        let (m, isn) = (self.map[i]?, self.isn[i]?);
        let offset = t.seq.wrapping_sub(isn).wrapping_sub(m.ssn);
        // A mapping of length 0 is the infinite mapping of a fallback.
        if m.len != 0 && offset >= u32::from(m.len) {
            return None;
        }
        let ack = match opt {
            Some(Opt::Dss(d)) => d.data_ack.map(|a| a as u32),
            _ => None,
        };
        Some((m.dsn.wrapping_add(u64::from(offset)) as u32, ack))
    }

    /// Tokens of the known keys, with the side that owns each.
    pub fn tokens(&self) -> impl Iterator<Item = (u32, Side)> + '_ {
        [Side::Client, Side::Server].into_iter().filter_map(|side| self.keys[side as usize].map(|k| (token(k), side)))
    }

    /// Fold an ended join subflow into this (first) subflow's list.
    pub fn add_subflow(&mut self, sub: Subflow) {
        self.live_joins = self.live_joins.saturating_sub(1);
        crate::proto::linked::push_listed(&mut self.subflows, &mut self.subflows_dropped, sub);
    }
}

/// A key's token: the most significant 32 bits of its SHA-256 (RFC 8684 §3.2).
pub fn token(key: u64) -> u32 {
    let d = sha256(key);
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A key's initial data sequence number: the least significant 64 bits of its SHA-256.
pub fn idsn(key: u64) -> u64 {
    let d = sha256(key);
    u64::from_be_bytes(d[24..32].try_into().expect("32-byte digest"))
}

fn sha256(key: u64) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, &key.to_be_bytes());
    d.as_ref().try_into().expect("32-byte digest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_initial_sequence_numbers_follow_rfc_8684() {
        // A server key and its token as Linux sent them in the lab capture
        // (pcaps/mptcp): the MP_JOIN SYN names 0x4185b5d1.
        assert_eq!(token(0xf2e51856bb89b88f), 0x4185b5d1);
        // SHA-256 of the eight bytes 00..07, first 4 and last 8 bytes
        // (computed with Python's hashlib).
        assert_eq!(token(0x0001020304050607), 0x8a851ff8);
        assert_eq!(idsn(0x0001020304050607), 0xe3db22c6785a0d45);
    }
}
