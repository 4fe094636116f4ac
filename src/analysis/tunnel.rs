//! What a VPN tunnel carries, from the sizes and times of its encrypted
//! data packets alone (WireGuard, OpenVPN, ESP): an interactive session's
//! keystrokes, their echoes, and the round trip through the tunnel to the
//! machine whose TCP acknowledges what the server sent.
//!
//! A tunnel adds a fixed overhead to each inner packet (WireGuard also pads
//! it to 16 bytes), so one inner size leaves at one outer size:
//!
//! - a keystroke of an inner SSH session is a client packet of the session's
//!   key size class, and its one-character echo a server packet of the very
//!   same size (the same inner TCP header and SSH packet length); the inner
//!   pure ACK that the tunnel's client then returns is smaller;
//! - the key size class is learnt from the tunnel: the client size whose
//!   packets, sent at a person's pace, are answered by a server packet of
//!   their own size and then by a smaller client packet (key → echo → ACK).
//!   Keys count once [`MIN_ECHOED`] such cycles were seen, so a bulk
//!   transfer, background chatter and an idle tunnel give none;
//! - the echo is the first server packet after the key, of the key's size,
//!   within [`ECHO_BOUND`], followed by the inner ACK (a ping's reply is
//!   the same size but draws none);
//! - the round trip through the tunnel: an inner ACK answers the newest
//!   server packet that reached the client before it left, which is not
//!   always the echo just before it (keys faster than the round trip: the
//!   ACK of an earlier echo arrives after a later one). Every lag from a
//!   recent key-cycle server packet to an ACK-sized client packet is a
//!   candidate; the true lag is the one they all share, the densest
//!   window of lags ([`densest`]), and each ACK's lag in that window is a sample.
//!
//! Keys are never read (they cannot be), only counted and timed.

use super::deque::InlineDeque;
use super::interactive::{BULK_WINDOW, ECHO_BOUND, MIN_ECHOED};
use super::stats::{Quantiles, Summary, densest};
use crate::side::Side;
use crate::time::{Ts, ms};
use answers::Answers;

/// Outer packets up to this size can carry a keystroke, its echo or an ACK.
const SMALL: u32 = 320;
/// An outer packet this large means bulk data is flowing (a transfer, a
/// screen): keys sent within [`BULK_WINDOW`] of one are not counted.
const BULK: u32 = 1000;
/// Key-sized packets this close together come from a program, not a person.
const MACHINE_GAP: Ts = 15_000_000;
/// Size classes tracked.
const MAX_CLASSES: usize = 16;
/// Key-size candidates of a class before it may be taken for keys.
const MIN_KEYS: u32 = 6;
/// At least one candidate in this many closes a cycle: chatter of random
/// sizes closes one now and then (one in twenty), typing nearly always.
const CYCLE_SHARE: u32 = 4;
/// Recent server packets of key cycles an ACK may answer.
const RECENT: usize = 8;
/// Candidate lags kept, and lags before the first estimate.
const MAX_LAGS: usize = 4096;
const MIN_LAGS: usize = 6;
/// Lags the window must stand on before its ACKs are round-trip samples.
const MIN_WINDOW_LAGS: usize = 16;
/// Width of the lag window: its share of the lag, and its least width (ms:
/// a path's jitter widens it, 3 ms each way spread lags over 12).
const WINDOW_SHARE: f64 = 0.04;
const WINDOW_MIN_MS: f64 = 3.0;
/// A delayed ACK's timer (ms): Linux waits 40 ms at least, in interactive
/// mode, for data to carry the ACK.
const ACK_TIMER_MS: f64 = 40.0;
/// Echoes that reach the client this close together may draw one ACK (a delayed ACK).
const DELAYED_ACK: Ts = 200_000_000;

/// One client packet size and what its packets drew.
#[derive(Debug, Clone, Default)]
struct Class {
    size: u32,
    /// Packets of this size sent at a person's pace, with no bulk around.
    candidates: u32,
    /// Of those, answered by a larger server packet (see [`TunnelTyping::settle`]).
    others: u32,
    /// Of those, answered by a server packet of their own size, then by a
    /// smaller client packet: that packet's lag after the answer (ms).
    closures: Vec<f32>,
    /// Closures whose lag is the inner ACK's (in the lag window, once known).
    cycles: u32,
    /// The smallest client packet that closed a cycle (the inner ACK's size).
    ack: u32,
}

/// The lags at which a client packet acknowledges an echo, given the lag
/// window: a window's width early on a jittery path, up to a delayed ACK's
/// timer late.
fn acked((lo, hi): (f64, f64)) -> std::ops::RangeInclusive<f64> {
    (lo - (hi - lo))..=(hi + ACK_TIMER_MS)
}

/// A client packet that may be a key, until the client's next packet.
#[derive(Debug, Clone, Copy)]
struct Pending {
    ts: Ts,
    len: u32,
    /// The first server packet after it, within [`ECHO_BOUND`]: (time, size).
    answer: Option<(Ts, u32)>,
}

/// Sizes of a tunnel's interactive traffic, once learnt (outer bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SizeClasses {
    pub key: u32,
    pub echo: u32,
    pub ack: u32,
}

/// What one data packet was.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Step {
    /// A keystroke's echo, with its delay (ms).
    pub echo: Option<f64>,
    /// An inner ACK's round trip through the tunnel (ms), from the client side.
    pub rtt: Option<f64>,
}

#[derive(Debug, Default)]
pub struct TunnelTyping {
    classes: Vec<Class>,
    /// The last client packet, if it may be a key.
    key: Option<Pending>,
    /// Keys answered by their own size, awaiting the smaller client packet: (key time, answer time, size).
    open: InlineDeque<(Ts, Ts, u32), RECENT>,
    last_small: Option<(Ts, u32)>,
    last_bulk: Option<Ts>,
    /// Server packets of recent key cycles (times).
    recent: InlineDeque<Ts, RECENT>,
    lags: Vec<f32>,
    /// The lag window in force (ms), worked out again as lags come.
    window: Option<(f64, f64)>,
    lags_at_window: usize,
    /// The classes learnt and the keystrokes counted (see [`TunnelTyping::relearn`]).
    learnt: Option<(SizeClasses, u64)>,
    /// Echoes paired (keys of the final class), and their delays when the class was not known yet.
    pub echoed: u64,
    early_echoes: Vec<(u32, f32)>,
    /// The client's answers to server messages (the far end of the inner protocol).
    answers: Answers,
}

impl TunnelTyping {
    /// Feed one data packet of the tunnel (outer payload bytes); keepalives
    /// and control messages are not data.
    pub fn on_packet(&mut self, ts: Ts, from: Side, len: u32) -> Step {
        self.answers.on_packet(ts, from, len, self.classes());
        if len >= BULK {
            self.last_bulk = Some(ts);
        }
        match from {
            Side::Client => self.on_client(ts, len),
            Side::Server => {
                self.on_server(ts, len);
                Step::default()
            }
        }
    }

    fn bulk(&self, ts: Ts) -> bool {
        self.last_bulk.is_some_and(|b| ts - b < BULK_WINDOW)
    }

    fn on_client(&mut self, ts: Ts, len: u32) -> Step {
        let mut step = Step::default();
        if self.ack_size() == Some(len) || (self.ack_size().is_none() && self.open.iter().any(|&(_, _, k)| len < k)) {
            step.rtt = self.on_ack(ts);
        }
        if let Some(k) = self.key.take() {
            self.settle(k);
        }
        step.echo = self.close(ts, len);
        let small = len <= SMALL;
        let machine = self.last_small.is_some_and(|(t, l)| l == len && ts - t < MACHINE_GAP);
        if small {
            self.last_small = Some((ts, len));
        }
        if small && !machine && !self.bulk(ts) {
            self.key = Some(Pending { ts, len, answer: None });
            if let Some(c) = self.class_entry(len) {
                c.candidates += 1;
            }
        }
        step
    }

    /// What a candidate key was, now that the client sent its next packet:
    /// answered by a server packet of its own size, it waits for a smaller
    /// client packet ([`TunnelTyping::close`]); answered by a larger one
    /// (Enter and the output), a key; answered by a smaller one or not at all, not a key.
    fn settle(&mut self, k: Pending) {
        match k.answer {
            Some((t, a)) if a == k.len => {
                if self.open.len() == RECENT {
                    self.open.pop_front();
                }
                self.open.push_back((k.ts, t, k.len));
            }
            // Enter and the output or a new prompt, a key that redraws a line.
            Some((_, a)) if a > k.len => {
                if let Some(c) = self.class_mut(k.len) {
                    c.others += 1;
                }
                self.relearn();
            }
            // Answered by something smaller (the server's TCP acknowledging
            // data it does not echo: a protocol's own message, a banner) or
            // by nothing (a reply to the inside's ping): not counted. Keys
            // that draw no echo (an editor's commands) are missed so.
            _ => {}
        }
    }

    /// A client packet smaller than the oldest key answered by its own size
    /// that awaits it (keys typed faster than the round trip wait in
    /// order): a keystroke with its one-character echo and the inner ACK.
    /// A key-sized request answered by its size and by nothing smaller
    /// within [`ECHO_BOUND`] was a request and its reply (a ping).
    fn close(&mut self, ts: Ts, len: u32) -> Option<f64> {
        while self.open.front().is_some_and(|&(_, t, _)| ts - t > ECHO_BOUND) {
            self.open.pop_front();
        }
        // ACKs come in the order of what they acknowledge: the oldest key
        // whose lag is the inner ACK's (an older one left open was a ping,
        // its reply never acknowledged); before that lag is known, the
        // newest, by a smaller packet. Once it is known, any client packet
        // up to a delayed ACK's timer later acknowledges it too (the ACK
        // delayed, or riding on the next key).
        let lag = |t: Ts| ms(ts - t);
        let at = match self.settled_window() {
            Some(w) => self.open.iter().position(|&(_, t, _)| acked(w).contains(&lag(t))),
            None => self.open.iter().enumerate().filter(|&(_, &(_, _, k))| len < k).map(|(i, _)| i).last(),
        };
        let at = at?;
        let mut skipped = [(0 as Ts, 0u32); RECENT];
        for s in skipped.iter_mut().take(at) {
            if let Some((_, t, k)) = self.open.pop_front() {
                *s = (t, k);
            }
        }
        let (key, t, k) = self.open.pop_front()?;
        // One ACK for several echoes that reached the client together: the
        // keys before are keys too. An older request left unanswered (a ping) is not.
        for &(st, sk) in &skipped[..at] {
            if sk == k
                && t - st <= DELAYED_ACK
                && let Some(c) = self.class_mut(sk)
            {
                c.others += 1;
            }
        }
        let in_window = len < k && self.settled_window().is_none_or(|w| acked(w).contains(&lag(t)));
        if let Some(c) = self.class_mut(k) {
            if !in_window {
                c.others += 1;
            } else if c.closures.len() < MAX_LAGS {
                c.closures.push(lag(t) as f32);
                if c.ack == 0 || len < c.ack {
                    c.ack = len;
                }
            }
        }
        self.relearn();
        // The echo, confirmed by the ACK that followed it.
        let d = ms(t - key);
        match self.classes() {
            Some(c) if c.key == k => {
                self.echoed += 1;
                Some(d)
            }
            Some(_) => None,
            None => {
                if self.early_echoes.len() < MAX_LAGS {
                    self.early_echoes.push((k, d as f32));
                }
                None
            }
        }
    }

    fn on_server(&mut self, ts: Ts, len: u32) {
        let Some(k) = self.key.as_mut().filter(|k| k.answer.is_none() && ts - k.ts <= ECHO_BOUND) else {
            return;
        };
        k.answer = Some((ts, len));
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(ts);
    }

    /// An ACK-sized client packet: its lags to the recent key-cycle server
    /// packets; the one in the window, if any, is a round trip.
    fn on_ack(&mut self, ts: Ts) -> Option<f64> {
        let (mut lags, mut n) = ([0.0; RECENT], 0);
        for &s in self.recent.iter() {
            if ts > s && ts - s <= ECHO_BOUND && n < RECENT {
                lags[n] = ms(ts - s);
                n += 1;
            }
        }
        let lags = &lags[..n];
        for &l in lags {
            if self.lags.len() < MAX_LAGS {
                self.lags.push(l as f32);
            }
        }
        if self.lags.len() >= MIN_LAGS && self.lags.len() > self.lags_at_window + self.lags_at_window / 4 {
            self.lags_at_window = self.lags.len();
            self.window = self.lag_estimate().map(|q| {
                let w = (q.p50 * WINDOW_SHARE).max(WINDOW_MIN_MS);
                (q.p50 - w, q.p50 + w)
            });
            self.relearn();
        }
        // Only once typing is known and the window stands on enough lags.
        self.classes()?;
        let (lo, hi) = self.settled_window()?;
        // The newest server packet whose lag falls in the window.
        lags.iter().rev().copied().find(|&l| (lo..=hi).contains(&l))
    }

    /// The lag window, once it stands on enough lags to pair by.
    fn settled_window(&self) -> Option<(f64, f64)> {
        self.window.filter(|_| self.lags_at_window >= MIN_WINDOW_LAGS)
    }

    /// The lag every ACK shares: the densest window of candidate lags.
    /// On a jittery path the lags of the true pairs spread wider than the
    /// window: its centre is then the median of the lags around the densest
    /// window, twice its width either side.
    pub fn lag_estimate(&self) -> Option<Quantiles> {
        let width = |v: f32| (v as f64 * WINDOW_SHARE).max(WINDOW_MIN_MS) as f32;
        let q = densest(&self.lags, width, MIN_LAGS)?;
        let reach = 2.0 * width(q.p50 as f32) as f64;
        let mut around = Summary::default();
        for &l in &self.lags {
            if (l as f64 - q.p50).abs() <= reach {
                around.add(l as f64);
            }
        }
        around.quantiles()
    }

    fn class_mut(&mut self, size: u32) -> Option<&mut Class> {
        self.classes.iter_mut().find(|c| c.size == size)
    }

    fn class_entry(&mut self, size: u32) -> Option<&mut Class> {
        if let Some(i) = self.classes.iter().position(|c| c.size == size) {
            return self.classes.get_mut(i);
        }
        if self.classes.len() < MAX_CLASSES {
            self.classes.push(Class { size, ..Default::default() });
            return self.classes.last_mut();
        }
        // Full: the class with the fewest candidates gives way, unless it shows cycles.
        let i = (0..self.classes.len())
            .filter(|&i| self.classes[i].cycles == 0)
            .min_by_key(|&i| self.classes[i].candidates)?;
        self.classes[i] = Class { size, ..Default::default() };
        self.classes.get_mut(i)
    }

    /// Work out the classes again: a closure is a cycle when its lag is the
    /// inner ACK's (in the lag window, once that is known; a ping's reply
    /// closed by unrelated traffic a second later is not). The key class is
    /// the one with the most cycles, once [`MIN_ECHOED`] cycles and
    /// [`MIN_KEYS`] candidates show it is typed in and at least one
    /// candidate in [`CYCLE_SHARE`] closed a cycle.
    fn relearn(&mut self) {
        let window = self.window;
        for c in &mut self.classes {
            c.cycles = match window {
                Some(w) => c.closures.iter().filter(|&&l| acked(w).contains(&(l as f64))).count() as u32,
                None => c.closures.len() as u32,
            };
        }
        let best = self
            .classes
            .iter()
            .filter(|c| {
                u64::from(c.cycles) >= MIN_ECHOED && c.candidates >= MIN_KEYS && c.cycles * CYCLE_SHARE >= c.candidates
            })
            .max_by_key(|c| (c.cycles, c.size));
        // Keys: every cycle closed near the lag (an ACK a little early on a
        // jittery path, or delayed), and the keys answered by more than an echo.
        self.learnt = best.map(|c| {
            let keys = match window {
                Some(w) => c.closures.iter().filter(|&&l| acked(w).contains(&(l as f64))).count() as u32,
                None => c.closures.len() as u32,
            };
            (SizeClasses { key: c.size, echo: c.size, ack: c.ack }, u64::from(keys + c.others))
        });
    }

    /// The key, echo and ACK sizes, once learnt.
    pub fn classes(&self) -> Option<SizeClasses> {
        self.learnt.map(|(c, _)| c)
    }

    fn ack_size(&self) -> Option<u32> {
        self.classes().map(|c| c.ack)
    }

    /// Keystrokes: the key class's packets answered by their echo and the
    /// inner ACK, or by anything else (none until the class is learnt).
    pub fn keystrokes(&self) -> u64 {
        self.learnt.map_or(0, |(_, n)| n)
    }

    /// The client's answers to server messages found since the last call
    /// (ms; see [`Answers`]): round trips to the far end of the inner protocol.
    pub fn take_answers(&mut self) -> Vec<f64> {
        self.answers.take()
    }

    /// Echo delays paired before the key class was known, of the class now learnt.
    pub fn take_early_echoes(&mut self) -> Vec<f64> {
        let Some(k) = self.classes() else { return Vec::new() };
        let early = std::mem::take(&mut self.early_echoes);
        let v: Vec<f64> = early.into_iter().filter(|&(l, _)| l == k.key).map(|(_, d)| d as f64).collect();
        self.echoed += v.len() as u64;
        v
    }
}

mod answers;
#[cfg(test)]
mod tests;
