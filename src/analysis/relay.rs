//! Relay verdicts: latency hidden behind the nearest TCP endpoint of a side,
//! and the number of distinct latency levels above it.

use super::stats::Quantiles;
use serde::{Deserialize, Serialize};

/// Thresholds for calling a latency level distinct (and a relay suspected);
/// the `[relay]` table of the config file.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Hidden latency above which a relay is suspected, ms (default 10).
    #[serde(rename = "hidden_floor_ms")]
    pub floor_ms: f64,
    /// ... and the fraction of the lower level it must also exceed (default 0.1).
    #[serde(rename = "relative_margin")]
    pub margin: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { floor_ms: 10.0, margin: 0.1 }
    }
}

impl Thresholds {
    /// Is `upper` a distinct level above `lower`, when jitter alone may
    /// place it `jitter` ms above?
    pub fn above(&self, lower: f64, upper: f64, jitter: f64) -> bool {
        let d = upper - lower;
        d > self.floor_ms + jitter && d > self.margin * lower
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Relay {
    pub suspected: bool,
    pub hops_est: u32,
    /// What the verdict stands on, e.g. "app_rtt 151.2 ms vs transport 30.5 ms".
    pub evidence: Vec<String>,
}

/// The transport round trip of one leg, ms: its floor, and its jitter
/// (median − minimum: how far a single round trip strays from the floor).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transport {
    pub floor: f64,
    pub jitter: f64,
    /// Median − floor: where jitter leaves few samples at the floor, a
    /// typical answer lies this far above it.
    pub skew: f64,
    pub samples: u64,
    /// The figure stands on evidence that is not a delayed ACK: the
    /// handshake, or at least [`MIN_CLEAN`] ACKs sent at once.
    pub clean: bool,
}

/// ACKs sent at once (not held by a delayed-ACK timer) that make a leg
/// measured without its handshake.
pub const MIN_CLEAN: u32 = 3;

impl Transport {
    /// From a leg's quantiles, whether its handshake was seen, and how many
    /// of its samples came from ACKs sent at once.
    pub fn of(q: &Quantiles, handshake: bool, clean_samples: u32) -> Transport {
        Transport {
            floor: q.floor,
            jitter: (q.p50 - q.min).max(0.0),
            skew: (q.p50 - q.floor).max(0.0),
            samples: q.samples,
            clean: handshake || clean_samples >= MIN_CLEAN,
        }
    }

    /// A path without jitter, measured by its handshake.
    #[cfg(test)]
    pub fn steady(floor: f64) -> Transport {
        Transport { floor, jitter: 0.0, skew: 0.0, samples: 1, clean: true }
    }
}

/// A named latency level measured on one side, ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    pub name: &'static str,
    pub ms: f64,
    /// Answers the level stands on: the jitter of one answer shrinks with √n.
    pub samples: u64,
}

impl Level {
    /// How far above the path's floor this level may lie by jitter alone.
    pub fn jitter(&self, path: Transport) -> f64 {
        path.skew + path.jitter / (self.samples.max(1) as f64).sqrt()
    }
}

/// What one side's measurements say.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// Latency hidden behind the nearest TCP endpoint, ms.
    pub hidden: Option<f64>,
    pub relay: Relay,
    /// The level the hidden latency reaches: the deepest distinct level, else
    /// the nearest responder.
    pub reference: Option<Level>,
}

/// Verdict for one side from its transport round trip (`path`) and the
/// deeper levels seen. `shifts` counts step-ups of the echo delay during the session.
pub fn verdict(path: Transport, levels: &[Level], shifts: u32, t: &Thresholds) -> Judged {
    let transport = path.floor;
    let mut sorted: Vec<Level> = levels.to_vec();
    sorted.sort_by(|a, b| a.ms.total_cmp(&b.ms));
    let mut evidence = Vec::new();
    let mut distinct = 0u32;
    let mut deepest = None;
    for l in &sorted {
        let base = deepest.map_or(transport, |d: Level| d.ms);
        if t.above(base, l.ms, l.jitter(path)) {
            distinct += 1;
            evidence.push(format!("{} {:.1} ms vs {:.1} ms", l.name, l.ms, base));
            deepest = Some(*l);
        }
    }
    // Hidden latency: up to the deepest distinct level; without one, up to the
    // nearest responder (levels within the thresholds are one level, and the
    // lowest of them carries the least processing time).
    let reference = deepest.or_else(|| sorted.first().copied());
    let hidden = reference.map(|r| (r.ms - transport).max(0.0));
    let suspected = distinct > 0;
    if shifts > 0 && suspected {
        evidence.push(format!("echo delay stepped up {shifts} time(s) during the session"));
    }
    let hops = if suspected { distinct.max(shifts).max(1) } else { 0 };
    Judged { hidden, relay: Relay { suspected, hops_est: hops, evidence }, reference }
}

/// Echo delays that stay at one level: a run of consecutive windows whose
/// floors agree (no window is a distinct level above another).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoLevel {
    /// Median of the windows' floors, ms.
    pub ms: f64,
    pub windows: usize,
    /// Highest − lowest window floor of the run: the path's own scatter.
    pub scatter: f64,
}

impl EchoLevel {
    /// Held long enough to be more than one redraw or one slow command.
    pub fn persists(&self) -> bool {
        self.windows >= 2
    }
}

/// The echo levels of a session, in time order, from its windows' floors.
pub fn echo_levels(windows: &[f64], t: &Thresholds) -> Vec<EchoLevel> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < windows.len() {
        let (mut lo, mut hi, mut j) = (windows[i], windows[i], i + 1);
        while let Some(&w) = windows.get(j) {
            let (nlo, nhi) = (lo.min(w), hi.max(w));
            if t.above(nlo, nhi, 0.0) {
                break;
            }
            (lo, hi, j) = (nlo, nhi, j + 1);
        }
        let mut run = windows[i..j].to_vec();
        run.sort_by(f64::total_cmp);
        out.push(EchoLevel { ms: run[run.len() / 2], windows: j - i, scatter: hi - lo });
        i = j;
    }
    out
}

/// Step-ups between persistent echo levels: each must clear the thresholds
/// plus twice the lower level's own scatter (a chain extended mid-session
/// by typing `ssh next-host`, not a slow patch of the path).
pub fn level_shifts(levels: &[EchoLevel], t: &Thresholds) -> u32 {
    let mut shifts = 0;
    let mut base: Option<EchoLevel> = None;
    for l in levels.iter().filter(|l| l.persists()) {
        match base {
            Some(b) if t.above(b.ms, l.ms, 2.0 * b.scatter) => {
                shifts += 1;
                base = Some(*l);
            }
            Some(b) if l.ms < b.ms => base = Some(*l),
            Some(_) => {}
            None => base = Some(*l),
        }
    }
    shifts
}

/// Router hops from an observed TTL: the initial TTL is taken as the
/// smallest common default (32, 64, 128, 255) at or above it.
pub fn ttl_hops(ttl: u8) -> u8 {
    let initial: u8 = [32u8, 64, 128, 255].into_iter().find(|&i| i >= ttl).unwrap_or(255);
    initial - ttl
}

/// Farthest the typist can be: half the round trip at the speed of light in fibre (≈ 200 km/ms).
pub fn max_distance_km(rtt_ms: f64) -> f64 {
    rtt_ms / 2.0 * 200.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_of_the_path_is_not_a_relay() {
        // One answer 15.5 ms above a 59.5 ms floor, where single round trips
        // range 20.8 ms above the path's minimum (+-8 ms per frame on two links).
        let lv = [Level { name: "terminal_rtt", ms: 75.0, samples: 1 }];
        assert!(verdict(Transport::steady(59.5), &lv, 0, &Thresholds::default()).relay.suspected);
        let j = verdict(Transport { jitter: 20.8, ..Transport::steady(59.5) }, &lv, 0, &Thresholds::default());
        assert!(!j.relay.suspected, "{j:?}");
        assert_eq!(j.hidden, Some(15.5));
        // Six answers that agree are surer than one: 15.5 ms then stands out.
        let lv6 = [Level { name: "app_rtt", ms: 75.0, samples: 6 }];
        assert!(
            verdict(Transport { jitter: 12.0, ..Transport::steady(59.5) }, &lv6, 0, &Thresholds::default())
                .relay
                .suspected
        );
        // A relay's 45 ms stands out of 13 ms of jitter.
        let lv = [Level { name: "app_rtt", ms: 55.4, samples: 6 }];
        assert!(
            verdict(Transport { jitter: 13.4, skew: 11.5, ..Transport::steady(10.3) }, &lv, 0, &Thresholds::default())
                .relay
                .suspected
        );
    }

    #[test]
    fn direct_session_is_not_a_relay() {
        let Judged { hidden, relay: r, .. } = verdict(
            Transport::steady(30.5),
            &[Level { name: "app_rtt", ms: 31.2, samples: 10 }],
            0,
            &Thresholds::default(),
        );
        assert!(!r.suspected);
        assert_eq!(r.hops_est, 0);
        assert!(hidden.unwrap() < 1.0);
    }

    #[test]
    fn jump_host_hides_latency() {
        let Judged { hidden, relay: r, .. } = verdict(
            Transport::steady(30.5),
            &[Level { name: "app_rtt", ms: 151.0, samples: 10 }],
            0,
            &Thresholds::default(),
        );
        assert!(r.suspected);
        assert_eq!(r.hops_est, 1);
        assert!((hidden.unwrap() - 120.5).abs() < 1e-9);
    }

    #[test]
    fn two_distinct_levels_are_two_hops() {
        let lv =
            [Level { name: "app_rtt", ms: 80.0, samples: 10 }, Level { name: "terminal_rtt", ms: 200.0, samples: 10 }];
        let r = verdict(Transport::steady(30.0), &lv, 0, &Thresholds::default()).relay;
        assert_eq!(r.hops_est, 2);
    }

    #[test]
    fn small_differences_are_not_relays_at_long_distance() {
        // 15 ms extra over a 200 ms path is under the 10 % margin.
        let r = verdict(
            Transport::steady(200.0),
            &[Level { name: "app_rtt", ms: 215.0, samples: 10 }],
            0,
            &Thresholds::default(),
        )
        .relay;
        assert!(!r.suspected);
    }

    #[test]
    fn level_shift_counts_persistent_step_ups() {
        let t = Thresholds::default();
        let shifts = |w: &[f64]| level_shifts(&echo_levels(w, &t), &t);
        assert_eq!(shifts(&[30.0, 31.0, 90.0, 91.0, 89.0]), 1);
        assert_eq!(shifts(&[30.0, 31.0, 30.5]), 0);
        // One slow window (a redraw, a busy moment) is no step.
        assert_eq!(shifts(&[30.0, 31.0, 90.0, 30.5, 31.0]), 0);
        // Nor is a step within the path's own scatter (a jittery link).
        assert_eq!(shifts(&[4.0, 18.0, 4.5, 30.0, 32.0]), 0);
    }

    #[test]
    fn echo_levels_group_agreeing_windows_in_time_order() {
        let t = Thresholds::default();
        let l = echo_levels(&[30.0, 31.0, 30.5, 90.0, 91.0], &t);
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].ms, l[0].windows, l[0].scatter), (30.5, 3, 1.0));
        assert_eq!((l[1].windows, l[1].persists()), (2, true));
    }

    #[test]
    fn ttl_hops_from_common_initials() {
        assert_eq!(ttl_hops(64), 0);
        assert_eq!(ttl_hops(63), 1);
        assert_eq!(ttl_hops(118), 10);
        assert_eq!(ttl_hops(250), 5);
    }
}
