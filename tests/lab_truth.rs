//! Ground truth from the lab (lab/run-lab.py): real OpenSSH through delaying
//! bridges, captured at the server's edge, the relay's outer side and the
//! typist's edge. Every committed capture is replayed and checked against its
//! truth.json: transport RTT, hidden latency, relay verdicts, keystroke counts
//! and echo delay.

mod common;

use common::close;
use serde_json::Value;
use std::path::Path;

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Within tolerance of the range [lo, hi].
fn within(got: f64, lo: f64, hi: f64, abs: f64, rel: f64) -> bool {
    close(got, lo.min(hi), abs, rel) || close(got, hi, abs, rel) || (lo..=hi).contains(&got)
}

/// The most a relay held an answer back, as the lab measured it at this
/// vantage (0 where it measured none).
fn relay_hold_ms(truth: &Value, vantage: &str) -> f64 {
    let echo = truth["check"]["echo"].as_array().into_iter().flatten().filter(|e| e["vantage"] == vantage);
    let chaff = &truth["vantages"][vantage]["chaff"]["server_answer_delay_ms"]["socat_hold_towards_server_ms"];
    echo.filter_map(|e| e["relay_hold_ms"]["max"].as_f64()).chain(chaff["max"].as_f64()).fold(0.0, f64::max)
}

#[test]
fn lab_captures_match_their_truth() {
    let dirs = common::truth_sets("lab");
    assert!(dirs.len() >= 10, "expected the committed lab captures, found {}", dirs.len());
    let mut failures = Vec::new();
    let mut checked = 0;
    for dir in &dirs {
        let truth: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        // Configured jitter (uniform ± per frame) widens a round trip's truth by up to twice it.
        let jitter =
            truth["links"].as_object().unwrap().values().filter_map(|l| l["jitter_ms"].as_f64()).fold(0.0, f64::max);
        for (vantage, v) in truth["vantages"].as_object().unwrap() {
            let file = dir.join(v["file"].as_str().unwrap());
            let recs = common::replay_ok(&[&file]);
            // The SSH session this vantage watches: the busiest one.
            let Some(r) = recs
                .iter()
                .filter(|r| r["proto"] == "ssh")
                .max_by_key(|r| r["packets"]["client"].as_u64().unwrap() + r["packets"]["server"].as_u64().unwrap())
            else {
                failures.push(format!("{name}/{vantage}: no ssh session"));
                continue;
            };
            checked += 1;
            let e = &v["expected"];
            // A relay that held answers back (its Nagle timer: a jump host's sshd or
            // socat with a far typist) adds that hold to what hides behind it; the
            // lab measures it per key (`check.echo[].relay_hold_ms`).
            let hold = relay_hold_ms(&truth, vantage);
            let mut fail = |what: String| failures.push(format!("{name}/{vantage}: {what}"));
            for (leg, key) in [("client_leg", "client_rtt_ms"), ("server_leg", "server_rtt_ms")] {
                let want = e["transport_rtt_ms"][leg].as_f64().unwrap();
                match f(&r[key]["floor"]) {
                    Some(got) if close(got, want, 1.5 + 2.0 * jitter, 0.05) => {}
                    got => fail(format!("transport {leg}: got {got:?}, want {want}")),
                }
            }
            for (side, key, relay) in [
                ("client_side", "client_hidden_ms", "client_relay"),
                ("server_side", "server_hidden_ms", "server_relay"),
            ] {
                let want = e["hidden_latency_ms"][side].as_f64().unwrap();
                let held = if want > 0.0 && side == "server_side" { hold } else { 0.0 };
                match f(&r[key]) {
                    Some(got) if within(got, want, want + held, 4.0, 0.10) => {}
                    None if want == 0.0 => {}
                    got => fail(format!("hidden {side}: got {got:?}, want {want}")),
                }
                let want = e["relay_suspected"][side].as_bool().unwrap();
                let got = r[relay]["suspected"].as_bool().unwrap_or(false);
                if got != want {
                    fail(format!("relay {side}: got {got}, want {want} ({})", r[relay]));
                }
            }
            // Keystrokes typed into the hops this vantage sees.
            let hops: Vec<&String> = v["expected_by_hop"]
                .as_object()
                .map(|m| m.iter().filter(|(_, x)| !x.is_null()).map(|(k, _)| k).collect())
                .unwrap_or_default();
            // ... and typed while this capture was running.
            let end = chrono::DateTime::parse_from_rfc3339(r["end"].as_str().unwrap()).unwrap();
            let end_ns = end.timestamp_nanos_opt().unwrap();
            let typed = truth["keystrokes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|k| {
                    hops.iter().any(|h| k["hop"].as_u64().map(|x| x.to_string()).as_deref() == Some(h.as_str()))
                })
                .filter(|k| k["t_ns"].as_i64().unwrap() <= end_ns)
                .count() as u64;
            let got = r["keystrokes"].as_u64().unwrap_or(0);
            let obfuscated = truth["software"]["keystroke_timing_obfuscation"] == true;
            if obfuscated {
                // Keys typed inside a chaff train look exactly like chaff: the count is a
                // lower bound, flagged as such; chaff is never counted as a keystroke.
                if r["keystroke_obfuscation"] != true || got == 0 || got > typed {
                    fail(format!("obfuscated: flag {}, keystrokes {got} of {typed} typed", r["keystroke_obfuscation"]));
                }
                // The estimate of the keys hidden in trains, where the path leaves one.
                if let Some(est) = r["keystrokes_estimate"].as_u64()
                    && (est < got || !close(est as f64, typed as f64, 0.0, 0.5))
                {
                    fail(format!("keystrokes_estimate {est}: lower bound {got}, typed {typed}"));
                }
                if let Some(want) = v["chaff_expected"].as_u64() {
                    let chaff = r["chaff"].as_u64().unwrap_or(0);
                    // Keys we could not tell from chaff are counted as chaff.
                    let hidden_keys = typed - got.min(typed);
                    if chaff < want * 9 / 10 || chaff > want + hidden_keys + want / 10 {
                        fail(format!("chaff: got {chaff}, expected {want} (+ up to {hidden_keys} keys in trains)"));
                    }
                }
                // PING → PONG times the server's SSH process.
                let want = e["application_rtt_ms"]["server_side"].as_f64().unwrap();
                match f(&r["ping_rtt_ms"]["p50"]) {
                    Some(got) if within(got, want, want + hold, 2.0 + 2.0 * jitter, 0.05) => {}
                    got => fail(format!("ping_rtt p50: got {got:?}, want {want}")),
                }
            } else if !close(got as f64, typed as f64, 0.0, 0.10) {
                fail(format!("keystrokes: got {got}, typed {typed}"));
            }
            if r["server_keystrokes"] != 0 {
                fail(format!("server_keystrokes {}: nobody typed on the server's side", r["server_keystrokes"]));
            }
            // Echo delay at the typist's edge, for single-hop sessions: against the
            // lab's own pairing of each logged key with its echo on the wire (with
            // jitter the median strays from the configured delay), else the configuration.
            let echo_truth = truth["expected_echo_delay_typist_edge_ms"].as_object().unwrap();
            if vantage == "typist_edge" && echo_truth.len() == 1 && !obfuscated {
                let measured = truth["check"]["echo"].as_array().and_then(|a| {
                    a.iter().find(|e| e["vantage"] == "typist_edge").and_then(|e| e["measured_median_ms"].as_f64())
                });
                let path = echo_truth.values().next().unwrap().as_f64().unwrap();
                let want = measured.unwrap_or(path);
                // Echoes a relay held are paired only where unambiguous: between the
                // path's round trip and the median with the holds.
                let lo = if hold > 0.0 { path } else { want };
                match f(&r["echo_ms"]["p50"]) {
                    Some(got) if within(got, lo, want, 2.0, 0.05) => {}
                    got => fail(format!("echo p50: got {got:?}, want {want}")),
                }
            }
            // No echo faster than the round trip to the server side's nearest TCP
            // endpoint (its fastest sample, give or take the configured jitter).
            if let (Some(echo), Some(floor)) = (f(&r["echo_ms"]["min"]), f(&r["server_rtt_ms"]["min"]))
                && echo < floor - 0.5 - 4.0 * jitter
            {
                fail(format!("echo min {echo} below the server leg's fastest round trip {floor}"));
            }
            // The typist's round trip: the client side's application round trip.
            let want = e["application_rtt_ms"]["client_side"].as_f64().unwrap();
            match f(&r["typist_rtt_ms"]) {
                Some(got) if close(got, want, 4.0 + 2.0 * jitter, 0.10) => {}
                got => fail(format!("typist_rtt_ms: got {got:?}, want {want}")),
            }
        }
    }
    eprintln!("checked {checked} vantages in {} lab captures", dirs.len());
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// `ssh server 'echo ...' </dev/null`, 20 times over a direct path with
/// ±8 ms jitter per frame (`lab/run-lab.py exec`), captured at the server's edge:
/// nobody typed and there is no relay. The client software's channel EOF and
/// CLOSE come late by the path's jitter; they are not keystrokes, and the
/// jitter is not hidden latency. Headers only (-s 96): the cipher is not seen.
#[test]
fn exec_sessions_over_a_jittery_path_have_no_keystrokes_and_no_relay() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/exec/jitter-server-edge.pcap");
    let recs = common::replay_ok(&[&file]);
    let ssh: Vec<&Value> = recs.iter().filter(|r| r["proto"] == "ssh").collect();
    assert_eq!(ssh.len(), 20, "{recs:?}");
    // Most sessions have enough authentication answers for a verdict.
    let judged = ssh.iter().filter(|r| r["client_relay"].is_object()).count();
    assert!(judged >= 15, "{judged} of 20 sessions judged");
    for r in ssh {
        assert_eq!(r["keystrokes"], 0, "nobody typed: {r}");
        assert_eq!((&r["typist_rtt_ms"], &r["max_distance_km"]), (&Value::Null, &Value::Null), "nobody typed: {r}");
        assert_ne!(r["client_relay"]["suspected"], true, "no relay: {r}");
        assert_eq!(r["alerts"], serde_json::json!([]), "{r}");
        // The client leg is the bridge: 20 ms round trip, ±16 ms.
        let floor = r["client_rtt_ms"]["floor"].as_f64().unwrap();
        assert!((4.0..=36.0).contains(&floor), "{r}");
    }
}
