//! Ground truth from the RDP lab (lab/rdp-lab.py): xrdp + xorgxrdp and
//! xfreerdp (RemoteFX) through delaying bridges, a typist injecting keys
//! and pointer moves with XTEST, captured at the server's edge, the
//! relay's outer side and the typist's edge. Every committed set is
//! replayed and checked against its truth.json: keystrokes within 10 % of
//! typed, echo floor within max(2 ms, 5 %), the client's application round
//! trip (frame acknowledgements) and hidden latency within max(4 ms,
//! 10 %), relay verdicts, and no keystroke where nobody typed.

mod common;

use common::close;
use serde_json::Value;

#[test]
fn rdp_lab_captures_match_their_truth() {
    let dirs = common::truth_sets("rdp");
    assert!(dirs.len() >= 6, "expected the committed RDP lab sets, found {}", dirs.len());
    let mut failures = Vec::new();
    let mut checked = 0;
    for dir in &dirs {
        let truth: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let typed = truth["keys_typed"].as_u64().unwrap();
        let jitter = truth["delays_ms"]["jitter"].as_f64().unwrap();
        let direct = matches!(truth["scenario"].as_str(), Some("direct" | "routed" | "mouse" | "pointer"));
        for (vantage, e) in truth["vantages"].as_object().unwrap() {
            let recs = common::replay_ok(&[&dir.join(e["file"].as_str().unwrap())]);
            let mut fail = |what: String| failures.push(format!("{name}/{vantage}: {what}"));
            // No relay verdict anywhere on a direct or routed path, whatever the vantage sees.
            for r in &recs {
                for side in ["client_relay", "server_relay"] {
                    if r[side]["suspected"] == true
                        && (direct || e["relay_suspected"][format!("{}_side", &side[..6])] == false)
                    {
                        fail(format!("{} {side} suspected: {}", r["proto"], r[side]["evidence"]));
                    }
                }
            }
            if e["rdp_in_clear"] == false {
                // The TLS relay's outer side: RDP wrapped in TLS, no keystrokes claimed.
                if recs.iter().any(|r| r["keystrokes"].as_u64().unwrap_or(0) > 0) {
                    fail("keystrokes claimed inside a TLS tunnel".into());
                }
                continue;
            }
            let Some(r) = recs
                .iter()
                .filter(|r| r["proto"] == "rdp")
                .max_by_key(|r| r["packets"]["client"].as_u64().unwrap() + r["packets"]["server"].as_u64().unwrap())
            else {
                fail("no rdp session".into());
                continue;
            };
            checked += 1;
            let keys = r["keystrokes"].as_u64();
            if typed == 0 {
                if keys.unwrap_or(0) != 0 || !r["echo_ms"].is_null() {
                    fail(format!("nobody typed, got {keys:?} keystrokes, echo {}", r["echo_ms"]));
                }
            } else {
                let k = keys.unwrap_or(0) as f64;
                if (k - typed as f64).abs() > 0.1 * typed as f64 {
                    fail(format!("keystrokes {k} vs typed {typed}"));
                }
                let want = e["echo_floor_ms"].as_f64().unwrap();
                match r["echo_ms"]["min"].as_f64() {
                    Some(got) if close(got, want, 2.0 + 2.0 * jitter, 0.05) => {}
                    got => fail(format!("echo floor {got:?} vs truth {want}")),
                }
            }
            // The real client's frame acknowledgements: its round trip from here, and what hides behind a relay.
            // They are told apart from keys, or (a session driven by the mouse alone) from pointer events, by size.
            if let Some(want) = e["frame_ack_rtt_floor_ms"].as_f64() {
                match r["client_app_rtt_ms"]["floor"].as_f64() {
                    Some(got) if close(got, want, 4.0 + 2.0 * jitter, 0.1) => {}
                    got => fail(format!("client app rtt {got:?} vs truth {want}")),
                }
                let hidden = e["hidden_latency_ms"]["client_side"].as_f64().unwrap();
                match r["client_hidden_ms"].as_f64() {
                    Some(got) if close(got, hidden, 4.0 + 2.0 * jitter, 0.1) => {}
                    got => fail(format!("client hidden {got:?} vs truth {hidden}")),
                }
                let relay = e["relay_suspected"]["client_side"].as_bool().unwrap();
                if r["client_relay"]["suspected"].as_bool() != Some(relay) {
                    fail(format!("client relay {} vs truth {relay}", r["client_relay"]));
                }
                match r["typist_rtt_ms"].as_f64() {
                    Some(got) if close(got, want, 4.0 + 2.0 * jitter, 0.1) => {}
                    got => fail(format!("typist rtt {got:?} vs truth {want}")),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of the RDP lab checks failed:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 12, "only {checked} vantages checked");
}
