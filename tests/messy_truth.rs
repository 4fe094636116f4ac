//! The false-positive corpus: real SSH sessions of what users do (vim, less,
//! top, tmux, pastes, command output, file transfers, port forwards, a
//! reverse tunnel, long idle, keep-alives, PuTTY's plink, dropbear, a jittery
//! link), every one direct or routed, made by `lab/messy.py` with the truth
//! beside each set (`pcaps/messy/*/truth.json`). No session may be called
//! relayed; keystrokes, echoes and the typist's round trip must match what
//! was typed and configured, and be null where nobody typed.

mod common;

use common::close;
use serde_json::Value;

/// Largest configured jitter (uniform ± per frame) on the set's links.
fn jitter(truth: &Value) -> f64 {
    truth["links"]
        .as_object()
        .map(|m| m.values().filter_map(|l| l["jitter_ms"].as_f64()).fold(0.0, f64::max))
        .unwrap_or(0.0)
}

#[test]
fn messy_sessions_match_their_truth_and_none_is_called_relayed() {
    let dirs = common::truth_sets("messy");
    assert!(dirs.len() >= 8, "expected the committed messy sets, found {}", dirs.len());
    let mut failures = Vec::new();
    let (mut sessions, mut direct, mut false_relays) = (0, 0, 0);
    for dir in &dirs {
        let truth: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let jit = jitter(&truth);
        for (vantage, v) in truth["vantages"].as_object().unwrap() {
            let recs = common::replay_ok(&[&dir.join(v["file"].as_str().unwrap())]);
            for want in v["sessions"].as_array().unwrap() {
                let what = format!("{name}/{vantage}/{} ({})", want["client"], want["role"]);
                let Some(r) = recs.iter().find(|r| r["client"] == want["client"] && r["server"] == want["server"])
                else {
                    failures.push(format!("{what}: no record"));
                    continue;
                };
                sessions += 1;
                let mut fail = |m: String| failures.push(format!("{what}: {m}"));
                let e = &want["expected"];
                // Direct or routed: never a relay, on either side.
                direct += 1;
                for side in ["client_relay", "server_relay"] {
                    if r[side]["suspected"] == true {
                        false_relays += 1;
                        fail(format!("{side} suspected: {}", r[side]));
                    }
                }
                if !r["alerts"].as_array().unwrap().is_empty() {
                    fail(format!("alerts {}", r["alerts"]));
                }
                let typed = want["keystrokes_typed"].as_u64().unwrap();
                let got = r["keystrokes"].as_u64().unwrap_or(0);
                if !close(got as f64, typed as f64, 0.0, 0.10) {
                    fail(format!("keystrokes {got}, typed {typed}"));
                }
                let server_typed = want["server_keystrokes_typed"].as_u64().unwrap_or(0);
                let server_got = r["server_keystrokes"].as_u64().unwrap_or(0);
                if !close(server_got as f64, server_typed as f64, 0.0, 0.10) {
                    fail(format!("server_keystrokes {server_got}, typed {server_typed}"));
                }
                // The typist's round trip, where somebody typed; null where nobody did.
                match (e["typist_rtt_ms"].as_f64(), r["typist_rtt_ms"].as_f64()) {
                    (None, None) => {}
                    (Some(want), Some(got)) if close(got, want, 4.0 + 2.0 * jit, 0.10) => {}
                    (want, got) => fail(format!("typist_rtt_ms {got:?}, want {want:?}")),
                }
                if r["typist_rtt_ms"].is_null() != r["max_distance_km"].is_null() {
                    fail("max_distance_km without typist_rtt_ms".into());
                }
                // Echo delay, where the truth gives one and the session echoed.
                if let (Some(want), Some(got)) = (e["keystroke_to_echo_ms"].as_f64(), r["echo_ms"]["p50"].as_f64())
                    && !close(got, want, 2.0 + 2.0 * jit, 0.05)
                {
                    fail(format!("echo p50 {got}, want {want}"));
                }
                if let (Some(echo), Some(floor)) = (r["echo_ms"]["min"].as_f64(), r["server_rtt_ms"]["min"].as_f64())
                    && echo < floor - 0.5 - 4.0 * jit
                {
                    fail(format!("echo min {echo} below the server leg's fastest round trip {floor}"));
                }
            }
        }
    }
    eprintln!(
        "{sessions} sessions in {} sets; {false_relays} false relay verdicts in {direct} direct sessions",
        dirs.len()
    );
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(false_relays, 0);
}
