//! Putting the measurements of one session together: hidden latency and
//! relay verdict per side, the typist's round trip and distance, alerts.

use super::interactive::{Interactive, LEVEL_WINDOW};
use super::relay::{Level, Relay, Thresholds, Transport, level_shifts, max_distance_km, verdict};
use super::stats::Quantiles;
use super::turns::Turns;
use crate::flow::Side;

/// Answers needed before handshake turnarounds alone make a relay verdict.
const MIN_VERDICT_SAMPLES: u64 = 3;

/// Longest hold of a reply waiting for its obfuscation slot, ms (20 ms grid, fuzz included).
const CHAFF_SLOT_MS: f64 = 25.0;

/// Robust floor and spread of application turnarounds of one side, ms.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AppRtt {
    pub min: f64,
    pub p50: f64,
    pub samples: u64,
    /// The robust floor used for hidden latency: 20th percentile.
    pub floor: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    pub app_rtt: [Option<AppRtt>; 2],
    pub hidden_ms: [Option<f64>; 2],
    pub relay: [Option<Relay>; 2],
    pub terminal_rtt_ms: Option<f64>,
    pub typist_rtt_ms: Option<f64>,
    pub max_distance_km: Option<f64>,
    /// Chaff PING → PONG at the sensor, ms (keystroke obfuscation): one sort of the lags, for the verdict and the record.
    pub ping_rtt: Option<Quantiles>,
}

/// `legs[i]`: the transport RTT of leg i; `turns`: handshake
/// turnarounds of protocols without keystroke analysis.
pub fn assess(
    legs: [Option<Transport>; 2],
    inter: Option<&Interactive>,
    turns: Option<&Turns>,
    t: &Thresholds,
) -> Assessment {
    let transport = legs.map(|l| l.map(|l| l.floor));
    let mut a = Assessment::default();
    let Some(inter) = inter else {
        // The protocol peer's handshake answers are the deeper responder.
        for side in [Side::Client, Side::Server] {
            let i = side as usize;
            a.app_rtt[i] = turns.and_then(|x| x.app_rtt(side));
            if let (Some(tr), Some(app)) = (legs[i], a.app_rtt[i]) {
                let (hidden, mut relay) =
                    verdict(tr, &[Level { name: "handshake_turnaround", ms: app.floor, samples: app.samples }], 0, t);
                // One or two answers cannot tell a relay from a slow peer: a
                // verdict needs a floor over at least 3, as for SSH.
                if relay.suspected && app.samples < MIN_VERDICT_SAMPLES {
                    relay.suspected = false;
                    relay.hops_est = 0;
                    relay.evidence.push(format!(
                        "only {} handshake answer(s): too few to tell a relay from a slow peer",
                        app.samples
                    ));
                }
                a.hidden_ms[i] = hidden;
                a.relay[i] = Some(relay);
            }
        }
        let candidates = [transport[0], a.app_rtt[0].map(|x| x.floor)];
        a.typist_rtt_ms = candidates.into_iter().flatten().reduce(f64::max);
        a.max_distance_km = a.typist_rtt_ms.map(max_distance_km);
        return a;
    };
    for side in [Side::Client, Side::Server] {
        let i = side as usize;
        if let Some((floor, sum)) = inter.app_floor(side, transport[i], side == Side::Server)
            && let Some(q) = sum.quantiles()
        {
            a.app_rtt[i] = Some(AppRtt { min: q.min, p50: q.p50, samples: q.samples, floor });
        }
    }
    a.terminal_rtt_ms = inter.terminal_clean.min().or(inter.terminal.min());
    a.ping_rtt = inter.ping_rtt();
    let echo_levels = if inter.echo_is_round_trip { inter.echo_levels() } else { Vec::new() };
    for side in [Side::Client, Side::Server] {
        let i = side as usize;
        let Some(leg) = legs[i] else { continue };
        let tr = leg.floor;
        let mut levels = Vec::new();
        let echo_deepest = echo_levels.iter().copied().reduce(f64::max);
        let app = a.app_rtt[i].map(|x| Level { name: "app_rtt", ms: x.floor, samples: x.samples });
        if let Some(app) = app
            && !(side == Side::Server && echo_deepest.is_some())
        {
            // On the server side an echo (the far pty answering) is the cleaner
            // measure of the deepest responder; authentication answers include crypto.
            levels.push(app);
        }
        let mut shifts = 0;
        match side {
            Side::Client => {
                // A terminal reply is the typist's own machine answering. A query sent
                // right behind other data may have waited for a relay's Nagle timer:
                // such a sample counts only where nothing else shows the far side.
                let app_deeper = app.is_some_and(|l| t.above(tr, l.ms, l.jitter(leg)));
                let replies = if inter.terminal_clean.count() > 0 || app_deeper {
                    &inter.terminal_clean
                } else {
                    &inter.terminal
                };
                let term = replies.min();
                // Under keystroke-timing obfuscation the client holds the reply
                // for the next chaff slot (up to one grid interval): only what
                // exceeds that proves distance.
                let term = term.map(|t| if inter.obfuscated() { (t - CHAFF_SLOT_MS).max(0.0) } else { t });
                if let Some(term) = term {
                    levels.push(Level { name: "terminal_rtt", ms: term, samples: replies.count() });
                }
            }
            Side::Server => {
                // Echoes come from the far end's pty: the server side's deepest responder.
                if let Some(deepest) = echo_deepest {
                    // The deepest level is the floor of one window of echoes.
                    levels.push(Level { name: "echo", ms: deepest, samples: LEVEL_WINDOW as u64 });
                    shifts = level_shifts(&echo_levels, t);
                }
                // Chaff PING → PONG: the SSH peer's own answer, with no pty in between.
                if let Some(q) = a.ping_rtt {
                    levels.push(Level { name: "ping_pong", ms: q.p50, samples: q.samples });
                }
            }
        }
        if levels.is_empty() {
            continue;
        }
        let (hidden, relay) = verdict(leg, &levels, shifts, t);
        a.hidden_ms[i] = hidden;
        a.relay[i] = Some(relay);
    }
    // The typist is on the client side: its deepest responder is the person's own machine.
    let levels_seen = a.relay[0].as_ref().map_or(0.0, |_| a.hidden_ms[0].unwrap_or(0.0) + transport[0].unwrap_or(0.0));
    let candidates = [transport[0], a.app_rtt[0].map(|x| x.floor), Some(levels_seen).filter(|&v| v > 0.0)];
    a.typist_rtt_ms = candidates.into_iter().flatten().fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    a.max_distance_km = a.typist_rtt_ms.map(max_distance_km);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    const MS: i64 = 1_000_000;

    /// A direct session at the typist's edge: transport 0.1 ms both ways.
    fn session(obfuscated: bool, reply_after_ms: i64) -> Interactive {
        let mut a = Interactive::new(Some(36));
        let mut t = 0;
        for _ in 0..5 {
            a.on_data(t, Side::Server, 100);
            a.on_data(t + MS / 10, Side::Client, 140);
            t += 20 * MS;
        }
        t += 500 * MS;
        a.on_data(t, Side::Client, 36); // a key
        a.on_data(t + MS / 10, Side::Server, 36); // its echo
        if obfuscated {
            for i in 1..=40 {
                a.on_data(t + i * 20 * MS, Side::Client, 36);
                a.on_data(t + i * 20 * MS + MS / 10, Side::Server, 36);
            }
        }
        t += 2000 * MS;
        a.on_data(t, Side::Server, 44); // terminal query
        a.on_data(t + reply_after_ms * MS, Side::Client, 44); // the terminal's reply
        a
    }

    #[test]
    fn handshake_turnarounds_need_three_answers_for_a_verdict() {
        use crate::proto::handshake::Msg;
        let t = Thresholds::default();
        let mut turns = Turns::default();
        turns.on_message(0, Side::Client, Msg::Request(1));
        turns.on_message(135 * MS, Side::Server, Msg::Answer(1));
        let r = assess([Some(Transport::steady(186.0)), Some(Transport::steady(60.0))], None, Some(&turns), &t);
        assert_eq!(r.hidden_ms[1], Some(75.0));
        let relay = r.relay[1].as_ref().unwrap();
        assert!(!relay.suspected && relay.evidence.len() == 2, "{relay:?}");
        for id in 2..4 {
            turns.on_message(id * 1000 * MS, Side::Client, Msg::Request(id as u64));
            turns.on_message(id * 1000 * MS + 136 * MS, Side::Server, Msg::Answer(id as u64));
        }
        let r = assess([Some(Transport::steady(186.0)), Some(Transport::steady(60.0))], None, Some(&turns), &t);
        assert!(r.relay[1].as_ref().unwrap().suspected);
    }

    #[test]
    fn a_reply_held_for_its_chaff_slot_is_no_relay() {
        let t = Thresholds::default();
        let a = session(true, 17);
        assert!(a.obfuscated());
        let r = assess([Some(Transport::steady(0.1)), Some(Transport::steady(0.1))], Some(&a), None, &t);
        assert!(!r.relay[0].as_ref().unwrap().suspected, "{r:?}");
        // Without obfuscation a 17 ms terminal round trip behind a 0.1 ms transport is hidden latency.
        let r =
            assess([Some(Transport::steady(0.1)), Some(Transport::steady(0.1))], Some(&session(false, 17)), None, &t);
        assert!(r.relay[0].as_ref().unwrap().suspected, "{r:?}");
        assert_eq!(r.terminal_rtt_ms, Some(17.0));
    }
}
