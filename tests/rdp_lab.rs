//! Ground truth from the RDP lab (lab/rdp-lab.py): xrdp + xorgxrdp (TLS)
//! or FreeRDP's shadow server (CredSSP/NLA), and xfreerdp (RemoteFX)
//! through delaying bridges, a typist injecting keys
//! and pointer moves with XTEST, captured at the server's edge, the
//! relay's outer side and the typist's edge. Every committed set is
//! replayed and checked against its truth.json: keystrokes within 10 % of
//! typed, echo floor within max(2 ms, 5 %), each side's application round
//! trip (the client's frame acknowledgements, the server's answers in the
//! connection sequence) and hidden latency within max(4 ms, 10 %), relay
//! verdicts of both sides, and no keystroke where nobody typed.

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
            // The security protocol the server selected (xrdp: TLS; FreeRDP's shadow server: CredSSP).
            if r["rdp"]["security"] != truth["security"] {
                fail(format!("security {} vs truth {}", r["rdp"]["security"], truth["security"]));
            }
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
            // Each side's application round trip from here, past a port forwarder, and what
            // hides behind it. Server: its answers to the connection sequence's small requests
            // (Attach User, Channel Joins). Client: its frame acknowledgements, told apart from
            // keys, or (a session driven by the mouse alone) from pointer events, by size.
            let sides = [
                ("server", e["application_rtt_ms"]["server_side"].as_f64()),
                ("client", e["frame_ack_rtt_floor_ms"].as_f64()),
            ];
            for (side, want) in sides {
                let Some(want) = want else { continue };
                let figures = [
                    ("app rtt", r[format!("{side}_app_rtt_ms")]["floor"].as_f64(), want),
                    (
                        "hidden",
                        r[format!("{side}_hidden_ms")].as_f64(),
                        e["hidden_latency_ms"][format!("{side}_side")].as_f64().unwrap(),
                    ),
                ];
                for (what, got, want) in figures {
                    match got {
                        Some(got) if close(got, want, 4.0 + 2.0 * jitter, 0.1) => {}
                        got => fail(format!("{side} {what} {got:?} vs truth {want}")),
                    }
                }
                let relay = e["relay_suspected"][format!("{side}_side")].as_bool().unwrap();
                if r[format!("{side}_relay")]["suspected"].as_bool() != Some(relay) {
                    fail(format!("{side} relay {} vs truth {relay}", r[format!("{side}_relay")]));
                }
                // The typist is the client side's deepest responder.
                if side == "client" {
                    match r["typist_rtt_ms"].as_f64() {
                        Some(got) if close(got, want, 4.0 + 2.0 * jitter, 0.1) => {}
                        got => fail(format!("typist rtt {got:?} vs truth {want}")),
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of the RDP lab checks failed:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 12, "only {checked} vantages checked");
}
