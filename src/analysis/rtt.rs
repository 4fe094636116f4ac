//! Transport round trips of a TCP connection, split at the sensor into the
//! client leg (sensor ↔ client) and the server leg (sensor ↔ server).
//!
//! Sources of samples:
//! - the handshake: SYN → SYN/ACK is the server leg, SYN/ACK → ACK the client
//!   leg (the most recent SYN and SYN/ACK are used after retransmissions);
//! - data/ACK pairs: a segment seen going one way, and the first ACK (or SACK
//!   right edge) from the other side that covers it exactly. Karn's rule: no
//!   sample when the segment, or anything in the range the ACK covers, was
//!   retransmitted;
//! - TCP timestamps, when the ACK does not match a segment end: a pure ACK
//!   whose TSecr echoes the TSval of an unretransmitted data segment.
//!
//! Only pure ACKs give network samples. An ACK riding on the peer's own data
//! includes the peer's think time; it is kept apart as a turnaround.

use super::deque::InlineDeque;
use super::seq;
use super::stats::Summary;
use crate::side::Side;
use crate::time::{Ts, ms};

/// Segments remembered per direction while awaiting their ACK.
const MAX_OUTSTANDING: usize = 128;
/// Segments held in the session itself; more in flight at once go to the heap.
const INLINE_OUTSTANDING: usize = 2;

/// One TCP segment as the estimator needs it.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub ts: Ts,
    pub from: Side,
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    pub ack_flag: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload_len: u32,
    /// (TSval, TSecr)
    pub timestamps: Option<(u32, u32)>,
    pub sack: &'a [(u32, u32)],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// From the three-way handshake.
    Handshake,
    /// A pure ACK (or SACK, or timestamp echo) of a data segment.
    Ack,
    /// An ACK carried by the peer's data: network round trip plus think time.
    Piggyback,
}

/// A round-trip sample on one leg.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttSample {
    pub leg: Side,
    pub kind: SampleKind,
    pub ns: i64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    start: u32,
    end: u32,
    ts: Ts,
    /// TSval carried, valid when `has_tsval` (kept flat: 24 bytes an entry).
    tsval: u32,
    has_tsval: bool,
    retransmitted: bool,
    sampled: bool,
}

/// One direction's sender state, with the first segments in flight in place:
/// every packet touches it.
#[derive(Debug, Default)]
#[repr(C)]
struct Sender {
    /// Next sequence number after the highest byte sent.
    snd_max: u32,
    /// Highest cumulative ACK received for this sender's data (valid when `has_acked`).
    acked: u32,
    /// Newest TSval of a data segment (valid when `has_tsval`).
    last_tsval: u32,
    retransmissions: u32,
    has_acked: bool,
    has_tsval: bool,
    started: bool,
    /// Segments were dropped from `outstanding` to bound memory.
    evicted: bool,
    outstanding: InlineDeque<Sent, INLINE_OUTSTANDING>,
}

/// The three-way handshake as seen so far. Times are valid once their flag
/// is set (flat, not `Option`: 32 bytes, so the round-trip state with both
/// legs takes six cache lines).
#[derive(Debug, Default)]
struct Handshake {
    syn_ts: Ts,
    synack_ts: Ts,
    client_isn: u32,
    server_isn: u32,
    syn_seen: bool,
    synack_seen: bool,
    server_done: bool,
    client_done: bool,
}

/// A leg's samples alone on a cache line: a sample writes one line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Leg {
    samples: Summary,
    /// Samples from ACKs that no delayed-ACK timer held: the handshake, an
    /// ACK of two full-sized segments at once (RFC 1122 acknowledges every
    /// second one at once), a SACK of newly received data (sent at once).
    pub clean: u32,
}

impl std::ops::Deref for Leg {
    type Target = Summary;
    fn deref(&self) -> &Summary {
        &self.samples
    }
}

impl std::ops::DerefMut for Leg {
    fn deref_mut(&mut self) -> &mut Summary {
        &mut self.samples
    }
}

/// Two segments of at least this many bytes acknowledged at once: an ACK no timer held.
const FULL_SEGMENT: u32 = 536;

/// Round-trip state of one connection. Summaries are in milliseconds.
/// In declaration order: the per-packet state first, samples after.
#[derive(Debug, Default)]
#[repr(C)]
pub struct RttTracker {
    /// Both handshake legs measured: the handshake is no longer looked at.
    hs_done: bool,
    senders: [Sender; 2],
    hs: Handshake,
    /// Handshake RTT per leg, ms.
    pub handshake: [Option<f64>; 2],
    /// Network RTT per leg, indexed by [`Side`].
    pub legs: [Leg; 2],
}

impl RttTracker {
    /// Feed one segment; returns the samples it produced (at most two).
    pub fn on_segment(&mut self, s: &Segment<'_>) -> [Option<RttSample>; 2] {
        let mut out = [None, None];
        if s.rst {
            return out;
        }
        if !self.hs_done {
            out[0] = self.handshake(s);
            self.hs_done = self.hs.server_done && self.hs.client_done;
        }
        let mut immediate = false;
        if out[0].is_none() && s.ack_flag && !s.syn {
            (out[0], immediate) = self.on_ack(s);
        }
        self.on_send(s);
        // Captures merged from several sources can be slightly out of order:
        // an answer stamped before its question is no sample.
        for o in out.iter_mut() {
            if o.is_some_and(|smp| smp.ns < 0) {
                *o = None;
            }
        }
        for smp in out.iter().flatten() {
            self.take(smp, immediate);
        }
        out
    }

    /// Add a sample another transport's numbering gave (RDP over UDP):
    /// acknowledgements it times are sent at once (a delayed one is flagged
    /// and not timed).
    pub fn add(&mut self, smp: &RttSample) {
        if smp.ns >= 0 {
            self.take(smp, true);
        }
    }

    fn take(&mut self, smp: &RttSample, immediate: bool) {
        let v = ms(smp.ns);
        match smp.kind {
            SampleKind::Handshake => {
                self.handshake[smp.leg as usize] = Some(v);
                self.legs[smp.leg as usize].add(v);
                self.legs[smp.leg as usize].clean += 1;
            }
            SampleKind::Ack => {
                let leg = &mut self.legs[smp.leg as usize];
                leg.add(v);
                leg.clean += u32::from(immediate);
            }
            // Returned to the caller, never mixed into the network figures.
            SampleKind::Piggyback => {}
        }
    }

    /// The connection's SYN or SYN/ACK was seen: it began in the capture.
    pub fn syn_seen(&self) -> bool {
        self.hs.syn_seen || self.hs.synack_seen
    }

    /// Retransmitted segments seen from each side.
    pub fn retransmissions(&self) -> [u64; 2] {
        [self.senders[0].retransmissions as u64, self.senders[1].retransmissions as u64]
    }

    fn handshake(&mut self, s: &Segment<'_>) -> Option<RttSample> {
        let hs = &mut self.hs;
        match (s.from, s.syn, s.ack_flag) {
            (Side::Client, true, false) => {
                hs.syn_ts = s.ts;
                hs.syn_seen = true;
                hs.client_isn = s.seq;
                None
            }
            (Side::Server, true, true) => {
                let first = !hs.synack_seen;
                hs.synack_ts = s.ts;
                hs.synack_seen = true;
                hs.server_isn = s.seq;
                if hs.syn_seen && first && !hs.server_done && s.ack == hs.client_isn.wrapping_add(1) {
                    hs.server_done = true;
                    return Some(RttSample { leg: Side::Server, kind: SampleKind::Handshake, ns: s.ts - hs.syn_ts });
                }
                None
            }
            (Side::Client, false, true) if !hs.client_done => {
                if !hs.synack_seen || s.ack != hs.server_isn.wrapping_add(1) {
                    return None;
                }
                hs.client_done = true;
                Some(RttSample { leg: Side::Client, kind: SampleKind::Handshake, ns: s.ts - hs.synack_ts })
            }
            _ => None,
        }
    }

    /// Record what a segment sends: new data, or a retransmission.
    fn on_send(&mut self, s: &Segment<'_>) {
        let snd = &mut self.senders[s.from as usize];
        let len = s.payload_len + u32::from(s.syn) + u32::from(s.fin);
        let start = s.seq;
        let end = s.seq.wrapping_add(len);
        if !snd.started {
            snd.started = true;
            snd.snd_max = end;
            if len > 0 && !s.syn {
                push(snd, Sent::new(start, end, s, false));
            }
            return;
        }
        if len == 0 {
            return;
        }
        if seq::lt(snd.snd_max, end) {
            // New data; a start below snd_max means part of it was sent before.
            let overlap = seq::lt(start, snd.snd_max);
            if overlap {
                snd.retransmissions = snd.retransmissions.saturating_add(1);
                mark_retransmitted(snd, start, snd.snd_max);
            }
            snd.snd_max = end;
            if !s.syn {
                push(snd, Sent::new(start, end, s, overlap));
            }
        } else if !s.syn {
            snd.retransmissions = snd.retransmissions.saturating_add(1);
            mark_retransmitted(snd, start, end);
        }
    }

    /// An ACK from `s.from` for the other side's data; also whether the ACK
    /// was sent at once (no delayed-ACK timer held it).
    fn on_ack(&mut self, s: &Segment<'_>) -> (Option<RttSample>, bool) {
        let leg = s.from;
        let pure = s.payload_len == 0 && !s.fin;
        let snd = &mut self.senders[s.from.other() as usize];
        let mut found: Option<Sent> = None;
        let mut tainted = false;
        let mut full = 0u32;
        let advanced = !snd.has_acked || seq::lt(snd.acked, s.ack);
        if advanced {
            snd.acked = s.ack;
            snd.has_acked = true;
            while let Some(front) = snd.outstanding.front() {
                if !seq::le(front.end, s.ack) {
                    break;
                }
                let f = snd.outstanding.pop_front().expect("front exists");
                tainted |= f.retransmitted;
                full += u32::from(f.end.wrapping_sub(f.start) >= FULL_SEGMENT);
                found = Some(f);
            }
            // Ending exactly at the ACK is required: a partial ACK is ambiguous.
            if found.is_some_and(|f| f.end != s.ack || f.sampled) {
                found = None;
            }
        }
        let kind = if pure { SampleKind::Ack } else { SampleKind::Piggyback };
        if let Some(f) = found.filter(|_| !tainted) {
            return (Some(RttSample { leg, kind, ns: s.ts - f.ts }), full >= 2);
        }
        if !pure || tainted {
            return (None, false);
        }
        // SACK right edges: a pure dup-ACK that reports newly received data.
        for &(_, right) in s.sack {
            if let Some(f) = snd.outstanding.iter_mut().find(|f| f.end == right && !f.sampled) {
                f.sampled = true;
                if !f.retransmitted {
                    return (Some(RttSample { leg, kind, ns: s.ts - f.ts }), true);
                }
            }
        }
        // Timestamp echo: only data segments with a new TSval started a sample.
        let Some((_, ecr)) = s.timestamps else { return (None, false) };
        let Some(f) = snd.outstanding.iter_mut().find(|f| f.has_tsval && f.tsval == ecr && !f.sampled) else {
            return (None, false);
        };
        f.sampled = true;
        ((!f.retransmitted).then_some(RttSample { leg, kind, ns: s.ts - f.ts }), false)
    }
}

impl Sent {
    fn new(start: u32, end: u32, s: &Segment<'_>, retransmitted: bool) -> Sent {
        let (tsval, has_tsval) = s.timestamps.map_or((0, false), |t| (t.0, true));
        Sent { start, end, ts: s.ts, tsval, has_tsval, retransmitted, sampled: false }
    }
}

#[inline(always)]
fn push(snd: &mut Sender, mut sent: Sent) {
    // Only a data segment with a TSval newer than any before starts a timestamp sample.
    if sent.has_tsval {
        let v = sent.tsval;
        if snd.has_tsval && !seq::lt(snd.last_tsval, v) {
            sent.has_tsval = false;
        } else {
            snd.last_tsval = v;
            snd.has_tsval = true;
        }
    }
    if snd.outstanding.len() == MAX_OUTSTANDING {
        snd.outstanding.pop_front();
        snd.evicted = true;
    }
    snd.outstanding.push_back(sent);
}

fn mark_retransmitted(snd: &mut Sender, start: u32, end: u32) {
    // Data older than anything still tracked was sent again: the ACK that
    // covers it may cover any tracked segment too, so none of them is timed.
    let below_tracked = snd.outstanding.front().is_some_and(|f| seq::lt(start, f.start)) && snd.evicted;
    for f in snd.outstanding.iter_mut() {
        if below_tracked {
            f.retransmitted = true;
            continue;
        }
        if seq::lt(f.start, end) && seq::lt(start, f.end) {
            f.retransmitted = true;
        }
    }
}

#[cfg(test)]
mod tests;
