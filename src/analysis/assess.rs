//! Putting the measurements of one session together: hidden latency and
//! relay verdict per side, the typist's round trip and distance, alerts.

use super::interactive::Interactive;
use super::relay::{Level, Relay, Thresholds, Transport, echo_levels, level_shifts, max_distance_km, verdict};
use super::stats::Quantiles;
use super::turns::{AppRtt, Turns};
use crate::side::Side;

/// Answers needed before handshake turnarounds alone make a relay verdict.
const MIN_VERDICT_SAMPLES: u64 = 3;

/// Longest hold of a reply waiting for its obfuscation slot, ms (20 ms grid, fuzz included).
const CHAFF_SLOT_MS: f64 = 25.0;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    pub app_rtt: [Option<AppRtt>; 2],
    pub hidden_ms: [Option<f64>; 2],
    pub relay: [Option<Relay>; 2],
    pub terminal_rtt_ms: Option<f64>,
    pub typist_rtt_ms: Option<f64>,
    /// Answers or round trips the typist figure stands on.
    pub typist_rtt_samples: Option<u64>,
    pub max_distance_km: Option<f64>,
    /// Chaff PING → PONG at the sensor, ms (keystroke obfuscation): one sort of the lags, for the verdict and the record.
    pub ping_rtt: Option<Quantiles>,
}

/// A figure for the typist's round trip and what it stands on.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    ms: f64,
    samples: u64,
}

/// `legs[i]`: the transport RTT of leg i; `turns`: handshake
/// turnarounds (request → answer pairs) of the protocol, if it has any.
pub fn assess(
    legs: [Option<Transport>; 2],
    inter: Option<&Interactive>,
    turns: Option<&Turns>,
    t: &Thresholds,
) -> Assessment {
    let mut a = Assessment::default();
    let Some(inter) = inter else {
        handshake_verdicts(&mut a, legs, turns, t);
        // Tunnels and other protocols show no typing of their own: the
        // client-side figure, where it stands on evidence.
        let client_app = a.app_rtt[0].map(|x| Candidate { ms: x.floor, samples: x.samples });
        set_typist(&mut a, [measured(legs[0]), client_app, None]);
        return a;
    };
    // A clear handshake's answers (RDP's X.224) time each side as for any
    // protocol; the interactive analysis takes over a side where it has answers of its own.
    handshake_verdicts(&mut a, legs, turns, t);
    let mut app_level = [false; 2];
    let transport = legs.map(|l| l.map(|l| l.floor));
    for side in [Side::Client, Side::Server] {
        let i = side as usize;
        if let Some((floor, sum)) =
            inter.app_floor(side, transport[i], side == Side::Server && inter.server_answers_nest())
            && let Some(q) = sum.quantiles()
        {
            a.app_rtt[i] = Some(AppRtt { min: q.min, p50: q.p50, samples: q.samples, floor });
            app_level[i] = true;
        } else {
            // The handshake's answers stand for that side when the session shows
            // no other; one or two make a figure, not a verdict (handshake_verdicts).
            app_level[i] = a.app_rtt[i].is_some_and(|x| x.samples >= MIN_VERDICT_SAMPLES);
        }
    }
    a.ping_rtt = inter.ping_rtt();
    let windows = if inter.echoes_time_the_path() { inter.echo_windows() } else { Vec::new() };
    let echo_levels = echo_levels(&windows, t);
    // The deepest echo level that persists; with too few echoes for that, the
    // lowest window (one slow window is a redraw, not a path).
    let persistent = echo_levels
        .iter()
        .filter(|l| l.persists())
        .map(|l| (l.ms, l.windows))
        .reduce(|a, b| if b.0 > a.0 { b } else { a });
    let echo_deepest = persistent
        .or_else(|| echo_levels.iter().map(|l| (l.ms, l.windows)).reduce(|a, b| if b.0 < a.0 { b } else { a }));
    let mut reference = None;
    for side in [Side::Client, Side::Server] {
        let i = side as usize;
        let app =
            a.app_rtt[i].filter(|_| app_level[i]).map(|x| Level { name: "app_rtt", ms: x.floor, samples: x.samples });
        if side == Side::Client {
            // The typist's terminal answering by itself: a level of replies that agree.
            let app_deeper = app.zip(legs[i]).is_some_and(|(l, leg)| t.above(leg.floor, l.ms, l.jitter(leg)));
            if let Some(term) = inter.terminal_level(!app_deeper) {
                a.terminal_rtt_ms = Some(term.min);
            }
        }
        let Some(leg) = legs[i] else { continue };
        let mut levels = Vec::new();
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
                let app_deeper = app.is_some_and(|l| t.above(leg.floor, l.ms, l.jitter(leg)));
                // A query sent right behind other data may have waited for a relay's
                // Nagle timer: such replies count only where nothing else shows the far side.
                if let Some(term) = inter.terminal_level(!app_deeper) {
                    // Under keystroke-timing obfuscation the client holds the reply
                    // for the next chaff slot (up to one grid interval): only what
                    // exceeds that proves distance.
                    let ms = if inter.obfuscated() { (term.min - CHAFF_SLOT_MS).max(0.0) } else { term.min };
                    levels.push(Level { name: "terminal_rtt", ms, samples: term.count as u64 });
                }
            }
            Side::Server => {
                // Echoes come from the far end's pty: the server side's deepest responder.
                if let Some((ms, windows)) = echo_deepest {
                    let samples = (windows * super::interactive::LEVEL_WINDOW) as u64;
                    levels.push(Level { name: "echo", ms, samples });
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
        let judged = verdict(leg, &levels, shifts, t);
        a.hidden_ms[i] = judged.hidden;
        a.relay[i] = Some(judged.relay);
        if side == Side::Client {
            reference = judged.reference;
        }
    }
    // The typist is on the client side: its deepest responder is the person's
    // own machine. Nobody typed (a command, a backup, git over SSH): no typist.
    // A remote desktop is driven by its pointer too: a person is there typed or not.
    if inter.keystroke_count() > 0 || inter.pointer_driven() {
        let client_app = a.app_rtt[0].map(|x| Candidate { ms: x.floor, samples: x.samples });
        let reached = reference.map(|l| Candidate { ms: l.ms, samples: l.samples });
        set_typist(&mut a, [measured(legs[0]), client_app, reached]);
    }
    a
}

/// Relay verdicts from a protocol's handshake answers (TLS, RDP, WireGuard,
/// IKE, OpenVPN): the protocol peer's answers are the deeper responder.
fn handshake_verdicts(a: &mut Assessment, legs: [Option<Transport>; 2], turns: Option<&Turns>, t: &Thresholds) {
    for side in [Side::Client, Side::Server] {
        let i = side as usize;
        a.app_rtt[i] = turns.and_then(|x| x.app_rtt(side));
        if let (Some(tr), Some(app)) = (legs[i], a.app_rtt[i]) {
            let level = Level { name: "handshake_turnaround", ms: app.floor, samples: app.samples };
            let mut judged = verdict(tr, &[level], 0, t);
            // One or two answers cannot tell a relay from a slow peer: a
            // verdict needs a floor over at least 3, as for SSH.
            if judged.relay.suspected && app.samples < MIN_VERDICT_SAMPLES {
                judged.relay.suspected = false;
                judged.relay.hops_est = 0;
                judged.relay.evidence.push(format!(
                    "only {} handshake answer(s): too few to tell a relay from a slow peer",
                    app.samples
                ));
            }
            a.hidden_ms[i] = judged.hidden;
            a.relay[i] = Some(judged.relay);
        }
    }
}

/// The client leg's transport floor, when it stands on evidence (its
/// handshake, or ACKs sent at once): a leg measured only by delayed ACKs
/// (40 ms and more on the capture host itself) says nothing of distance.
fn measured(leg: Option<Transport>) -> Option<Candidate> {
    leg.filter(|l| l.clean).map(|l| Candidate { ms: l.floor, samples: l.samples })
}

/// The typist's round trip: the deepest of what was measured on the client side.
fn set_typist(a: &mut Assessment, candidates: [Option<Candidate>; 3]) {
    let best = candidates.into_iter().flatten().reduce(|x, y| if y.ms > x.ms { y } else { x });
    a.typist_rtt_ms = best.map(|c| c.ms);
    a.typist_rtt_samples = best.map(|c| c.samples);
    a.max_distance_km = a.typist_rtt_ms.map(max_distance_km);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::interactive::sim::Sim;
    const MS: i64 = 1_000_000;

    /// A direct session at the typist's edge: transport 0.1 ms both ways,
    /// three keys, with chaff or not, then two terminal queries answered
    /// `reply_after_ms` later.
    fn session(obfuscated: bool, reply_after_ms: i64) -> Sim {
        let mut s = Sim::new(Some(36));
        s.a.set_chaff_capability(Some(obfuscated), false);
        let mut t = s.authenticate(0, &[0; 8]) + 500 * MS;
        for _ in 0..3 {
            s.key_echo(t, 0);
            t += 300 * MS;
        }
        if obfuscated {
            for i in 1..=40 {
                s.send(t + i * 20 * MS - 300 * MS, Side::Client, 36);
                s.send(t + i * 20 * MS - 300 * MS + MS / 10, Side::Server, 36);
            }
        }
        for _ in 0..2 {
            t += 2000 * MS;
            s.send(t, Side::Server, 44); // terminal query
            s.send(t + reply_after_ms * MS, Side::Client, 44); // the terminal's reply
        }
        s
    }

    fn steady() -> [Option<Transport>; 2] {
        [Some(Transport::steady(0.1)), Some(Transport::steady(0.1))]
    }

    #[test]
    fn handshake_answers_stand_beside_keystrokes() {
        // An interactive protocol with a clear handshake (RDP's X.224): keys
        // and echoes, and three request → answer pairs 20 ms apart, give the
        // server side's turnaround and verdict; one or two answers no verdict.
        let mut s = Sim::new(Some(36));
        for k in 0..5 {
            s.key_echo(1000 * MS + k * 300 * MS, MS / 5);
        }
        let mut turns = Turns::default();
        for k in 0..3 {
            let at = k * 100 * MS;
            turns.on_message(at, Side::Client, crate::analysis::turns::Msg::Request(k as u64));
            turns.on_message(at + 20 * MS, Side::Server, crate::analysis::turns::Msg::Answer(k as u64));
        }
        let t = Thresholds::default();
        let a = assess(steady(), Some(&s.a), Some(&turns), &t);
        assert_eq!(a.app_rtt[1].map(|x| (x.floor, x.samples)), Some((20.0, 3)), "{a:?}");
        assert!(a.relay[1].as_ref().is_some_and(|r| r.suspected), "20 ms behind a 0.1 ms path: {a:?}");
        assert_eq!(assess(steady(), Some(&s.a), None, &t).app_rtt[1], None);
        let mut two = Turns::default();
        for k in 0..2 {
            two.on_message(k * 100 * MS, Side::Client, crate::analysis::turns::Msg::Request(k as u64));
            two.on_message(k * 100 * MS + 20 * MS, Side::Server, crate::analysis::turns::Msg::Answer(k as u64));
        }
        // Two answers: the figure, and no verdict from it.
        let a2 = assess(steady(), Some(&s.a), Some(&two), &t);
        assert_eq!(a2.app_rtt[1].map(|x| (x.floor, x.samples)), Some((20.0, 2)), "{a2:?}");
        assert!(a2.relay[1].as_ref().is_some_and(|r| !r.suspected), "{a2:?}");
    }

    #[test]
    fn handshake_turnarounds_need_three_answers_for_a_verdict() {
        use crate::analysis::turns::Msg;
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
        let s = session(true, 17);
        assert!(s.a.obfuscated());
        let r = assess(steady(), Some(&s.a), None, &t);
        assert!(!r.relay[0].as_ref().unwrap().suspected, "{r:?}");
        // Without obfuscation a 17 ms terminal round trip behind a 0.1 ms transport is hidden latency.
        let r = assess(steady(), Some(&session(false, 17).a), None, &t);
        assert!(r.relay[0].as_ref().unwrap().suspected, "{r:?}");
        assert_eq!(r.terminal_rtt_ms, Some(17.0));
        assert_eq!((r.typist_rtt_ms, r.typist_rtt_samples), (Some(17.0), Some(2)));
    }

    #[test]
    fn nobody_typed_no_typist() {
        // `ssh host cmd`: authentication answers, no keystrokes.
        let t = Thresholds::default();
        let mut s = Sim::new(Some(36));
        s.authenticate(30, &[0; 8]);
        let r = assess([Some(Transport::steady(30.0)), Some(Transport::steady(0.1))], Some(&s.a), None, &t);
        assert!(r.app_rtt[0].is_some());
        assert_eq!((r.typist_rtt_ms, r.max_distance_km, r.typist_rtt_samples), (None, None, None));
    }

    #[test]
    fn a_leg_measured_only_by_delayed_acks_places_nobody() {
        // A flow joined mid-stream whose only samples are the capture host's
        // own 40 ms delayed ACKs.
        let t = Thresholds::default();
        let delayed = Transport { clean: false, samples: 30, ..Transport::steady(42.0) };
        let r = assess([Some(delayed), Some(Transport::steady(10.0))], None, None, &t);
        assert_eq!((r.typist_rtt_ms, r.max_distance_km), (None, None));
        let r = assess([Some(Transport::steady(42.0)), Some(Transport::steady(10.0))], None, None, &t);
        assert_eq!(r.typist_rtt_ms, Some(42.0));
    }

    /// Typing at the typist's edge over a 4 ms path, with `slow` echoes of
    /// 60 ms among them.
    fn typed_with_slow_echoes(slow: &[usize]) -> Sim {
        let mut s = Sim::new(Some(36));
        let mut t = s.authenticate(0, &[0; 8]) + 500 * MS;
        for i in 0..30 {
            s.key_echo(t, if slow.contains(&i) { 60 } else { 4 });
            t += 250 * MS;
        }
        s
    }

    #[test]
    fn one_slow_patch_of_echoes_is_no_relay_but_a_lasting_one_is() {
        let t = Thresholds::default();
        let legs = [Some(Transport::steady(0.1)), Some(Transport::steady(4.0))];
        // A redraw, a busy moment: one window of slow echoes.
        let s = typed_with_slow_echoes(&[10, 11, 12, 13, 14]);
        let r = assess(legs, Some(&s.a), None, &t);
        assert!(!r.relay[1].as_ref().unwrap().suspected, "{r:?}");
        // A chain extended mid-session: every echo from the 10th on is slow.
        let s = typed_with_slow_echoes(&(10..30).collect::<Vec<_>>());
        let r = assess(legs, Some(&s.a), None, &t);
        let relay = r.relay[1].as_ref().unwrap();
        assert!(relay.suspected, "{r:?}");
        assert_eq!(r.hidden_ms[1], Some(56.0));
    }
}
