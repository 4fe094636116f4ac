//! A bounded session table with O(1) lookup, O(1) idle expiry and O(1)
//! least-recently-active eviction.
//!
//! Sessions live in a slab; each is on one of two intrusive LRU lists
//! ("lanes", one per idle timeout). The tail of a lane is its least recently
//! active session, so expiry looks only at tails.

use super::FlowKey;
use crate::time::Ts;
use hashbrown::HashTable;
use std::hash::{BuildHasher, Hasher};

const NIL: u32 = u32::MAX;
/// Least packet time between two moves of a session to the front of its
/// lane. A move writes three other sessions' slots (its neighbours and the
/// old head): with thousands of sessions open, each a cache miss, so busy
/// sessions move once a second. Lane order, hence idle expiry and eviction,
/// is exact to within that second; timeouts are seconds to minutes.
const RELINK: Ts = 1_000_000_000;

/// Which idle timeout applies to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Tcp = 0,
    Other = 1,
    /// Closed connections lingering for their last packets.
    Closing = 2,
    /// Established remote-access sessions: a long idle limit (a shell left
    /// open for hours is one session), and evicted only when no other lane
    /// has a session left.
    LongIdle = 3,
}

/// A table slot, aligned to a cache line: the key and the times every
/// packet reads fill the first line, the value starts on the second; the
/// list links, written about once a second, come last.
#[repr(C, align(64))]
struct Slot<S> {
    key: FlowKey,
    last_seen: Ts,
    linked_at: Ts,
    /// The session; a free slot holds `S::default()`.
    value: S,
    prev: u32,
    next: u32,
    lane: Lane,
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
    lanes: [List; 4],
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
            lanes: [List { head: NIL, tail: NIL }; 4],
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
            self.unlink(id);
            self.slots[id as usize].linked_at = self.slots[id as usize].last_seen;
            self.slots[id as usize].lane = lane;
            self.link_front(id);
        }
    }

    /// Mark a session active at `now`. The session moves to the front of
    /// its lane at most every [`RELINK`] of packet time: the order is exact
    /// to within that, and a busy session costs no list writes per packet.
    pub fn touch(&mut self, id: u32, now: Ts) {
        let slot = &mut self.slots[id as usize];
        slot.last_seen = now;
        if now - slot.linked_at >= RELINK && self.lanes[slot.lane as usize].head != id {
            slot.linked_at = now;
            self.unlink(id);
            self.link_front(id);
        }
    }

    /// Insert a new session. The table must have room: call
    /// [`FlowTable::evict_lru`] first when [`FlowTable::is_full`].
    pub fn insert(&mut self, key: FlowKey, value: S, lane: Lane, now: Ts) -> u32 {
        debug_assert!(!self.is_full());
        let slot = Slot { key, value, last_seen: now, linked_at: now, lane, prev: NIL, next: NIL };
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

    /// Remove the least recently active session of the short-lived lanes,
    /// or, when they are empty, of [`Lane::LongIdle`].
    pub fn evict_lru(&mut self) -> Option<(FlowKey, S)> {
        let short = self.lanes[..Lane::LongIdle as usize]
            .iter()
            .map(|l| l.tail)
            .filter(|&t| t != NIL)
            .min_by_key(|&t| self.slots[t as usize].last_seen);
        let pick = short.unwrap_or(self.lanes[Lane::LongIdle as usize].tail);
        (pick != NIL).then(|| self.remove(pick))
    }

    /// Remove one session of `lane` idle since before `cutoff`, if any.
    pub fn pop_idle(&mut self, lane: Lane, cutoff: Ts) -> Option<(FlowKey, S)> {
        let tail = self.lanes[lane as usize].tail;
        if tail == NIL || self.slots[tail as usize].last_seen >= cutoff {
            return None;
        }
        Some(self.remove(tail))
    }

    /// The slots of every session, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.index.iter().copied()
    }

    pub fn get(&self, id: u32) -> &S {
        &self.slots[id as usize].value
    }

    fn link_front(&mut self, id: u32) {
        let lane = self.slots[id as usize].lane as usize;
        let head = self.lanes[lane].head;
        self.slots[id as usize].prev = NIL;
        self.slots[id as usize].next = head;
        if head != NIL {
            self.slots[head as usize].prev = id;
        } else {
            self.lanes[lane].tail = id;
        }
        self.lanes[lane].head = id;
    }

    fn unlink(&mut self, id: u32) {
        let lane = self.slots[id as usize].lane as usize;
        let (prev, next) = (self.slots[id as usize].prev, self.slots[id as usize].next);
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else {
            self.lanes[lane].head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else {
            self.lanes[lane].tail = prev;
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
        assert_eq!(t.lanes[0].tail, a);
        t.touch(a, RELINK * 2);
        assert_ne!(t.lanes[0].tail, a);
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
    fn long_idle_sessions_are_evicted_only_when_no_other_is_left() {
        let mut t: FlowTable<u16> = FlowTable::new(4);
        let a = t.insert(key(0), 0, Lane::Tcp, 0);
        t.set_lane(a, Lane::LongIdle);
        t.insert(key(1), 1, Lane::Tcp, 5 * S);
        t.insert(key(2), 2, Lane::Other, 6 * S);
        t.insert(key(3), 3, Lane::Closing, 7 * S);
        // The long-idle session is the least recently active, yet goes last.
        let order: Vec<u16> = std::iter::from_fn(|| t.evict_lru().map(|x| x.1)).collect();
        assert_eq!(order, [1, 2, 3, 0]);
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
