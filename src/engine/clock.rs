//! The packet clock: the latest packet time seen, when idle sessions are
//! next looked for, and whether a capture file continues the timeline.
//! One engine keeps one; a pool of worker engines keeps one more in front
//! of them (`runtime/pool.rs`), which tells each worker when to look.

use crate::time::{NS_PER_SEC, Ts};

/// How often (packet time) idle sessions are looked for.
pub const EXPIRY_TICK: Ts = 10_000_000;

/// How far a capture file may start before the packet clock and still
/// continue its timeline (the out-of-order tolerance between files: a
/// capture merged from several interfaces, a rotation mid-burst).
pub const TIMELINE_SLACK: Ts = 2 * NS_PER_SEC;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    now: Ts,
    next_expiry: Ts,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock { now: Ts::MIN, next_expiry: Ts::MIN }
    }
}

impl Clock {
    /// Move to `ts` (an earlier time leaves the clock where it is: small
    /// reordering is tolerated); true when idle sessions are due to be
    /// looked for (every [`EXPIRY_TICK`]: timeouts are seconds).
    #[inline]
    pub fn advance(&mut self, ts: Ts) -> bool {
        if ts <= self.now {
            return false;
        }
        self.now = ts;
        if ts < self.next_expiry {
            return false;
        }
        self.next_expiry = ts.saturating_add(EXPIRY_TICK);
        true
    }

    /// Whether a capture file beginning with a packet at `ts` continues the
    /// timeline: it starts at or after the clock, within
    /// [`TIMELINE_SLACK`], and before `longest` (the longest idle limit) has
    /// run out. A clock that has seen no packet is continued by any file.
    pub fn continues(&self, ts: Ts, longest: Ts) -> bool {
        self.now == Ts::MIN || (ts >= self.now.saturating_sub(TIMELINE_SLACK) && ts.saturating_sub(self.now) <= longest)
    }

    /// Start again, as before the first packet.
    pub fn reset(&mut self) {
        *self = Clock::default();
    }
}
