//! A bounded session table with O(1) lookup, O(1) idle expiry and O(1)
//! least-recently-active eviction.
//!
//! Sessions live in a slab; each is on one intrusive LRU list per idle
//! timeout ([`Lane`]) and worth of keeping ([`Tier`]). The tail of a list is
//! its least recently active session, so expiry and eviction look only at
//! tails: a full table evicts the least recently active session of the
//! lowest tier that has one (as conntrack's early drop spares assured
//! connections), so a flood of one-packet flows only ever evicts its own.

use super::FlowKey;
use crate::time::Ts;
use hashbrown::HashTable;
use std::hash::{BuildHasher, Hasher};

const NIL: u32 = u32::MAX;
/// Least packet time between two moves of a session to the front of its
/// lane. A move writes three other sessions' slots (its neighbours and the
/// old head): with thousands of sessions open, each a cache miss, so busy
/// sessions move once a second. List order, hence idle expiry and eviction
/// within a tier, is exact to within that second; timeouts are seconds to
/// minutes.
const RELINK: Ts = 1_000_000_000;

/// Which idle timeout applies to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Tcp = 0,
    Other = 1,
    /// Closed connections lingering for their last packets.
    Closing = 2,
    /// Established remote-access sessions over TCP: a long idle limit (a
    /// shell left open for hours is one session). They are of the highest
    /// [`Tier`], evicted only when no session of a lower one is left.
    LongIdle = 3,
}

/// How much a session is worth keeping when the table is full: the lowest
/// tier goes first. A session only moves up (the engine's
/// `Engine::promote`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Tier {
    /// Packets from one side only: a SYN, a lone datagram (a scan's or a
    /// spoofed flood's flows).
    #[default]
    OneWay = 0,
    /// Answered, but TCP without payload both ways: a handshake only, a
    /// refused port, a request never answered with data.
    Handshake = 1,
    /// Established: TCP payload both ways, UDP or ESP packets both ways.
    Established = 2,
    /// An established remote-access session (SSH, RDP, VNC) or tunnel
    /// (WireGuard, OpenVPN, IPsec), or a flow linked to one.
    Interactive = 3,
}

const TIERS: usize = 4;
const LANES: usize = 4;

/// A table slot, aligned to a cache line: the key, the times and the
/// lists every packet reads fill the first line, the value starts on the
/// second; the list links, written about once a second, come last.
#[repr(C, align(64))]
struct Slot<S> {
    key: FlowKey,
    last_seen: Ts,
    linked_at: Ts,
    lane: Lane,
    tier: Tier,
    /// The session; a free slot holds `S::default()`.
    value: S,
    prev: u32,
    next: u32,
}

impl<S> Slot<S> {
    /// Its list: one per lane and tier.
    fn list(&self) -> usize {
        self.lane as usize * TIERS + self.tier as usize
    }
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

pub struct FlowTable<S> {
    /// Slot ids, found by the key's hash; the key itself lives in the slot
    /// (read anyway next), so the index stays small and cache-resident.
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    slots: Vec<Slot<S>>,
    free: Vec<u32>,
    /// One list per lane and tier ([`Slot::list`]).
    lists: [List; LANES * TIERS],
    max: usize,
}

impl<S: Default> FlowTable<S> {
    pub fn new(max: usize) -> FlowTable<S> {
        let max = max.clamp(1, NIL as usize - 1);
        FlowTable {
            index: HashTable::with_capacity(max.min(1024)),
            hasher: ahash::RandomState::new(),
            slots: Vec::new(),
            free: Vec::new(),
            lists: [List { head: NIL, tail: NIL }; LANES * TIERS],
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// In line: every packet looks its session up, and a call (the
    /// compiler's choice once there are several callers) costs it.
    #[inline(always)]
    pub fn find(&self, key: &FlowKey) -> Option<u32> {
        let slots = &self.slots;
        self.index.find(hash(&self.hasher, key), |&id| slots[id as usize].key == *key).copied()
    }

    pub fn get_mut(&mut self, id: u32) -> &mut S {
        &mut self.slots[id as usize].value
    }

    /// Move a session to another lane (e.g. when it closes).
    pub fn set_lane(&mut self, id: u32, lane: Lane) {
        if self.slots[id as usize].lane != lane {
            self.move_to(id, |s| s.lane = lane);
        }
    }

    /// Move a session to another tier (it earned a higher one).
    pub fn set_tier(&mut self, id: u32, tier: Tier) {
        if self.slots[id as usize].tier != tier {
            self.move_to(id, |s| s.tier = tier);
        }
    }

    /// Take a session off its list, change which list it belongs on, and
    /// put it at that list's front.
    fn move_to(&mut self, id: u32, set: impl FnOnce(&mut Slot<S>)) {
        self.unlink(id);
        let slot = &mut self.slots[id as usize];
        slot.linked_at = slot.last_seen;
        set(slot);
        self.link_front(id);
    }

    pub fn tier(&self, id: u32) -> Tier {
        self.slots[id as usize].tier
    }

    /// Mark a session active at `now`. The session moves to the front of
    /// its lane at most every [`RELINK`] of packet time: the order is exact
    /// to within that, and a busy session costs no list writes per packet.
    pub fn touch(&mut self, id: u32, now: Ts) {
        let slot = &mut self.slots[id as usize];
        slot.last_seen = now;
        if now - slot.linked_at >= RELINK && self.lists[slot.list()].head != id {
            slot.linked_at = now;
            self.unlink(id);
            self.link_front(id);
        }
    }

    /// Insert a new session, of the lowest tier. The table must have room:
    /// call [`FlowTable::evict_lru`] first when [`FlowTable::is_full`].
    pub fn insert(&mut self, key: FlowKey, value: S, lane: Lane, now: Ts) -> u32 {
        debug_assert!(!self.is_full());
        let slot = Slot { key, value, last_seen: now, linked_at: now, lane, tier: Tier::OneWay, prev: NIL, next: NIL };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash(hasher, &key), id, |&i| hash(hasher, &slots[i as usize].key));
        self.link_front(id);
        id
    }

    pub fn is_full(&self) -> bool {
        self.index.len() >= self.max
    }

    /// Remove a session, returning it.
    pub fn remove(&mut self, id: u32) -> (FlowKey, S) {
        self.unlink(id);
        let slot = &mut self.slots[id as usize];
        let value = std::mem::take(&mut slot.value);
        let key = slot.key;
        if let Ok(entry) = self.index.find_entry(hash(&self.hasher, &key), |&i| i == id) {
            entry.remove();
        }
        self.free.push(id);
        (key, value)
    }

    /// Remove the least recently active session of the lowest [`Tier`]
    /// that has one, whatever its lane: a tier's lists' tails are compared.
    pub fn evict_lru(&mut self) -> Option<(FlowKey, S)> {
        for tier in 0..TIERS {
            let pick = (0..LANES)
                .map(|lane| self.lists[lane * TIERS + tier].tail)
                .filter(|&t| t != NIL)
                .min_by_key(|&t| self.slots[t as usize].last_seen);
            if let Some(id) = pick {
                return Some(self.remove(id));
            }
        }
        None
    }

    /// Remove the least recently active session of `lane` (whatever its
    /// tier) if it was idle since before `cutoff`.
    pub fn pop_idle(&mut self, lane: Lane, cutoff: Ts) -> Option<(FlowKey, S)> {
        let lists = &self.lists[lane as usize * TIERS..][..TIERS];
        let oldest =
            lists.iter().map(|l| l.tail).filter(|&t| t != NIL).min_by_key(|&t| self.slots[t as usize].last_seen)?;
        (self.slots[oldest as usize].last_seen < cutoff).then(|| self.remove(oldest))
    }

    /// The slots of every session, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.index.iter().copied()
    }

    pub fn get(&self, id: u32) -> &S {
        &self.slots[id as usize].value
    }

    fn link_front(&mut self, id: u32) {
        let list = self.slots[id as usize].list();
        let head = self.lists[list].head;
        self.slots[id as usize].prev = NIL;
        self.slots[id as usize].next = head;
        if head != NIL {
            self.slots[head as usize].prev = id;
        } else {
            self.lists[list].tail = id;
        }
        self.lists[list].head = id;
    }

    fn unlink(&mut self, id: u32) {
        let list = self.slots[id as usize].list();
        let (prev, next) = (self.slots[id as usize].prev, self.slots[id as usize].next);
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else {
            self.lists[list].head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else {
            self.lists[list].tail = prev;
        }
        self.slots[id as usize].prev = NIL;
        self.slots[id as usize].next = NIL;
    }
}

/// The key's hash, from its five words (fewer steps than hashing each field).
fn hash(hasher: &ahash::RandomState, key: &FlowKey) -> u64 {
    let mut h = hasher.build_hasher();
    for w in key.words() {
        h.write_u64(w);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey::new(
            "192.0.2.1".parse().unwrap(),
            port,
            "192.0.2.2".parse().unwrap(),
            22,
            crate::ip_proto::IpProto::TCP,
        )
        .0
    }

    const S: Ts = 1_000_000_000;

    #[test]
    fn finds_touches_and_expires_in_lru_order() {
        let mut t: FlowTable<u16> = FlowTable::new(10);
        let a = t.insert(key(1), 1, Lane::Tcp, 100 * S);
        let b = t.insert(key(2), 2, Lane::Tcp, 200 * S);
        t.insert(key(3), 3, Lane::Other, 150 * S);
        assert_eq!(t.find(&key(2)), Some(b));
        t.touch(a, 300 * S);
        // b (200) is now the oldest TCP session; a was touched at 300.
        assert_eq!(t.pop_idle(Lane::Tcp, 250 * S).map(|x| x.1), Some(2));
        assert_eq!(t.pop_idle(Lane::Tcp, 250 * S), None);
        assert_eq!(t.pop_idle(Lane::Other, 151 * S).map(|x| x.1), Some(3));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn touches_within_the_relink_interval_keep_order_cheaply() {
        let mut t: FlowTable<u16> = FlowTable::new(10);
        let a = t.insert(key(1), 1, Lane::Tcp, 0);
        t.insert(key(2), 2, Lane::Tcp, 1);
        t.touch(a, RELINK / 2); // not moved: still the tail
        assert_eq!(t.lists[0].tail, a);
        t.touch(a, RELINK * 2);
        assert_ne!(t.lists[0].tail, a);
    }

    #[test]
    fn bounded_by_evicting_least_recently_active() {
        let mut t: FlowTable<u16> = FlowTable::new(3);
        for p in 0..3u16 {
            t.insert(key(p), p, if p == 1 { Lane::Other } else { Lane::Tcp }, p as Ts * S);
        }
        assert!(t.is_full());
        let id0 = t.find(&key(0)).unwrap();
        t.touch(id0, 10 * S);
        assert_eq!(t.evict_lru().map(|x| x.1), Some(1));
        assert_eq!(t.evict_lru().map(|x| x.1), Some(2));
        assert_eq!(t.evict_lru().map(|x| x.1), Some(0));
        assert_eq!(t.evict_lru().map(|x| x.1), None);
    }

    #[test]
    fn a_full_table_evicts_the_lowest_tier_first_least_recently_active_within_it() {
        let mut t: FlowTable<u16> = FlowTable::new(8);
        // (value, lane, tier, last active): the oldest sessions are the most
        // worth keeping, the newest a flood's SYNs and datagrams.
        let sessions = [
            (0, Lane::LongIdle, Tier::Interactive, 0),
            (1, Lane::Other, Tier::Interactive, 1),
            (2, Lane::Closing, Tier::Interactive, 2),
            (3, Lane::Tcp, Tier::Established, 3),
            (4, Lane::Other, Tier::Established, 4),
            (5, Lane::Closing, Tier::Handshake, 5),
            (6, Lane::Tcp, Tier::OneWay, 7),
            (7, Lane::Other, Tier::OneWay, 6),
        ];
        for (v, lane, tier, at) in sessions {
            let id = t.insert(key(v), v, lane, at * S);
            t.set_tier(id, tier);
        }
        assert!(t.is_full());
        let order: Vec<u16> = std::iter::from_fn(|| t.evict_lru().map(|x| x.1)).collect();
        assert_eq!(order, [7, 6, 5, 3, 4, 0, 1, 2]);
    }

    #[test]
    fn a_promoted_session_is_spared_until_its_tier_is_the_lowest_left() {
        let mut t: FlowTable<u16> = FlowTable::new(4);
        let ssh = t.insert(key(0), 0, Lane::Tcp, 0);
        for p in 1..4u16 {
            t.insert(key(p), p, Lane::Tcp, p as Ts * S);
        }
        // Answered: the three newer one-way flows go before it.
        t.set_tier(ssh, Tier::Handshake);
        assert_eq!(t.tier(ssh), Tier::Handshake);
        for p in 1..4u16 {
            assert_eq!(t.evict_lru().map(|x| x.1), Some(p));
            t.insert(key(10 + p), 10 + p, Lane::Tcp, (10 + p as Ts) * S);
        }
        assert_eq!(t.find(&key(0)), Some(ssh));
        // Expiry still goes by idle time alone, whatever the tier.
        assert_eq!(t.pop_idle(Lane::Tcp, 5 * S).map(|x| x.1), Some(0));
        assert_eq!(t.pop_idle(Lane::Tcp, 5 * S), None);
        assert_eq!(t.pop_idle(Lane::Tcp, 12 * S).map(|x| x.1), Some(11));
    }

    #[test]
    fn the_tier_a_packet_reads_lies_in_the_slots_first_line() {
        use std::mem::offset_of;
        type Full = Slot<crate::flow::Session>;
        assert!(offset_of!(Full, lane) < 64 && offset_of!(Full, tier) < 64);
        assert_eq!(offset_of!(Full, value), 64);
    }

    #[test]
    fn reuses_slots_after_removal() {
        let mut t: FlowTable<u32> = FlowTable::new(2);
        for round in 0..1000u32 {
            let id = t.insert(key((round % 2) as u16), round, Lane::Tcp, round as Ts);
            if round % 2 == 1 {
                t.remove(id);
                let other = t.find(&key(0)).unwrap();
                t.remove(other);
            }
        }
        assert!(t.slots.len() <= 2);
        assert!(t.is_empty());
    }
}
