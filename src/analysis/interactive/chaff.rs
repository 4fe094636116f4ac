//! Keystroke-timing obfuscation (OpenSSH ≥ 9.5, `ObscureKeystrokeTiming`):
//! while a person types in a tty session, the client sends a packet every
//! ~20 ms (±10 %, plus up to +10 % a burst), keys held for their slot and
//! the empty slots filled with chaff (`SSH2_MSG_PING`) of one key's size,
//! from a key until 1–3 s after the last one.
//!
//! A train is a run of one-key-sized client packets (or whole multiples of
//! that size, where a relay joined them) on the grid. It is confirmed after
//! [`CONFIRM`] gaps in a row that carry one unit per 10–30 ms: no person
//! types three keys ≤ 30 ms apart.
//! Until then its packets are held as provisional chaff and become
//! keystrokes if the run ends unconfirmed (fast typing, key repeat). A
//! confirmed train goes on through gaps a relay or a jittery path stretched,
//! up to [`TRAIN_GAP`] or 2.5 × its usual gap, and its first packet is a key
//! (the client starts a train at a key and sends that key at once). Keys
//! typed inside a train leave on the grid like chaff: OpenSSH 9.5–9.9 sends
//! such a key and a PING in one segment (two units), which tells it apart;
//! OpenSSH 10 sends both at one size, so the keystroke count is then a
//! lower bound.

use crate::time::Ts;

/// Gaps between packets of a train that can be the grid (20 ms ± fuzz, path jitter).
const GRID: (Ts, Ts) = (10_000_000, 30_000_000);
/// Gaps in a row, one unit per grid slot on average, that make a run a train.
const CONFIRM: u32 = 3;
/// A confirmed train ends after this much silence (or 2.5 × its usual gap, if longer).
const TRAIN_GAP: Ts = 60_000_000;

/// Is `gap` (between two one-key packets) on the chaff grid?
pub fn on_grid(gap: Ts) -> bool {
    (GRID.0..=GRID.1).contains(&gap)
}

/// What a client packet of whole one-key units is, as far as chaff goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Not part of a train (a key, or the first packet of a train: also a key).
    Plain,
    /// Chaff (or a key that cannot be told from chaff), this many units.
    Chaff(u32),
    /// A key and a PING in one segment (OpenSSH 9.5–9.9).
    KeyWithPing,
}

/// What ending a run released: provisional chaff that turned out to be keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    pub keys: u32,
    /// A confirmed train ended before this packet.
    pub train_ended: bool,
}

#[derive(Debug, Default)]
pub struct Trains {
    /// Whether both ends can send chaff: `Some(true)` when both banners are
    /// OpenSSH ≥ 9.5, `Some(false)` when a banner rules it out, `None` when
    /// no banner was seen (joined mid-stream, headers only).
    capable: Option<bool>,
    /// The client is OpenSSH 9.5–9.9: a key inside a train shares its segment with a PING.
    key_with_ping: bool,
    /// The last packet of whole units.
    last: Option<Ts>,
    /// Packets of the current run after its first (each within [`TRAIN_GAP`] of the one before).
    run: u32,
    /// The run's last gaps and the units that ended them.
    recent: [(Ts, u32); CONFIRM as usize],
    confirmed: bool,
    /// Units of the current run held as provisional chaff.
    provisional: u32,
    /// Smoothed gap inside the confirmed train (ns).
    usual_gap: Ts,
    /// Trains confirmed so far.
    pub trains: u32,
}

impl Trains {
    pub fn set_capability(&mut self, capable: Option<bool>, key_with_ping: bool) {
        self.capable = capable;
        self.key_with_ping = key_with_ping;
    }

    /// Can this session carry chaff at all?
    pub fn possible(&self) -> bool {
        self.capable != Some(false)
    }

    /// Whether both ends are known to send chaff (from their banners).
    pub fn capable(&self) -> Option<bool> {
        self.capable
    }

    /// Classify a client packet of `units` whole one-key units at `ts`.
    /// Provisional chaff released as keys by the end of an unconfirmed run is added to `released`.
    pub fn classify(&mut self, ts: Ts, units: u32, released: &mut Released) -> Class {
        if !self.possible() {
            return Class::Plain;
        }
        let gap = self.last.map(|p| ts - p);
        self.last = Some(ts);
        let Some(gap) = gap else { return Class::Plain };
        if self.confirmed {
            let limit = TRAIN_GAP.max(self.usual_gap * 5 / 2);
            if gap <= limit {
                self.usual_gap = (self.usual_gap * 7 + gap.min(limit)) / 8;
                return self.in_train(units);
            }
            self.end_run(released);
            return Class::Plain;
        }
        if gap <= TRAIN_GAP {
            self.run += 1;
            self.provisional += units;
            self.recent[self.run as usize % CONFIRM as usize] = (gap, units);
            // The last gaps carry one unit per grid slot: a relay's Nagle timer
            // may have joined two units and stretched the gap to match.
            let (gaps, n): (Ts, u32) = self.recent.iter().fold((0, 0), |(g, n), &(x, u)| (g + x, n + u));
            if self.run >= CONFIRM && n > 0 && on_grid(gaps / Ts::from(n)) {
                self.confirmed = true;
                self.trains += 1;
                self.provisional = 0;
                self.usual_gap = 20_000_000;
            }
            return Class::Chaff(units);
        }
        self.end_run(released);
        Class::Plain
    }

    fn in_train(&mut self, units: u32) -> Class {
        if units == 2 && self.key_with_ping { Class::KeyWithPing } else { Class::Chaff(units) }
    }

    fn end_run(&mut self, released: &mut Released) {
        if !self.confirmed {
            released.keys += self.provisional;
        }
        released.train_ended |= self.confirmed;
        self.run = 0;
        self.provisional = 0;
        self.confirmed = false;
        self.recent = Default::default();
    }

    /// Units still held as provisional chaff (the run has not ended).
    pub fn provisional(&self) -> u32 {
        if self.confirmed { 0 } else { self.provisional }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const MS: Ts = 1_000_000;

    fn feed(t: &mut Trains, times: &[Ts], units: u32) -> (Vec<Class>, u32) {
        let mut r = Released::default();
        let c = times.iter().map(|&x| t.classify(x * MS, units, &mut r)).collect();
        (c, r.keys)
    }

    #[test]
    fn a_train_is_confirmed_after_three_grid_gaps_and_survives_stretched_gaps() {
        let mut t = Trains::default();
        t.set_capability(Some(true), false);
        let (c, rel) = feed(&mut t, &[0, 20, 41, 60, 80, 125, 145, 400], 1);
        assert_eq!(c[0], Class::Plain);
        assert!(c[1..7].iter().all(|x| *x == Class::Chaff(1)), "{c:?}");
        assert_eq!((c[7], rel, t.trains), (Class::Plain, 0, 1));
    }

    #[test]
    fn fast_typing_is_released_as_keys() {
        let mut t = Trains::default();
        t.set_capability(None, false);
        // Two keys 25 ms apart (a roll-over), then a normal gap: no train.
        let (c, rel) = feed(&mut t, &[0, 25, 200], 1);
        assert_eq!(c, [Class::Plain, Class::Chaff(1), Class::Plain]);
        assert_eq!((rel, t.trains), (1, 0));
        // A burst of quick keys, 40-55 ms apart: no train either.
        let (_, rel) = feed(&mut t, &[400, 440, 495, 540, 585, 900], 1);
        assert_eq!((rel, t.trains), (4, 0));
    }

    #[test]
    fn units_joined_by_a_relay_still_make_a_train() {
        // A port forwarder's Nagle timer joins two PINGs and sends them 40 ms apart.
        let mut t = Trains::default();
        t.set_capability(None, false);
        let (c, _) = feed(&mut t, &[0, 38, 79, 121, 160], 2);
        assert_eq!(t.trains, 1);
        assert_eq!(c[4], Class::Chaff(2));
    }

    #[test]
    fn no_chaff_where_a_banner_rules_it_out() {
        let mut t = Trains::default();
        t.set_capability(Some(false), false);
        let (c, _) = feed(&mut t, &[0, 20, 40, 60, 80], 1);
        assert!(c.iter().all(|x| *x == Class::Plain));
    }

    #[test]
    fn key_and_ping_in_one_segment_inside_a_train() {
        let mut t = Trains::default();
        t.set_capability(Some(true), true);
        let mut r = Released::default();
        for x in [0, 20, 40, 60] {
            t.classify(x * MS, 1, &mut r);
        }
        assert_eq!(t.classify(80 * MS, 2, &mut r), Class::KeyWithPing);
        assert_eq!(t.classify(100 * MS, 1, &mut r), Class::Chaff(1));
    }
}
