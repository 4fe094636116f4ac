//! The shipped policy example raises "rtt_over_policy" exactly when the
//! typist's round trip exceeds the limit of the client's subnet.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn replay(config: &Path, capture: &str) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    common::replay_with_ok(&["--config", config.to_str().unwrap()], &[&root.join(capture)])
}

#[test]
fn policy_example_alerts_on_far_typists_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("examples/policy.toml");
    // Direct session, typist 203.0.113.10 about 75 ms away: over the 50 ms limit.
    let recs = replay(&example, "pcaps/lab/direct-tr30-rs7.5/server-edge.pcap");
    let r = recs.iter().find(|r| r["proto"] == "ssh").unwrap();
    assert_eq!(r["policy"]["subnet"], "203.0.113.0/24");
    assert_eq!(r["policy"]["max_rtt_ms"], 50.0);
    let t = r["typist_rtt_ms"].as_f64().unwrap();
    assert!((t - 75.0).abs() < 4.0, "typist rtt {t}");
    assert!((r["max_distance_km"].as_f64().unwrap() - t * 100.0).abs() < 1.0);
    assert_eq!(r["alerts"], serde_json::json!(["rtt_over_policy"]), "{r}");
    // The same capture under a 100 ms limit: no alert.
    let dir = tempfile::tempdir().unwrap();
    let loose = dir.path().join("loose.toml");
    std::fs::write(&loose, "[policy]\n\"203.0.113.0/24\" = 100\n").unwrap();
    let recs = replay(&loose, "pcaps/lab/direct-tr30-rs7.5/server-edge.pcap");
    let r = recs.iter().find(|r| r["proto"] == "ssh").unwrap();
    assert_eq!(r["alerts"], serde_json::json!([]), "{r}");
    // No rule for the client: no policy, no alert.
    let recs = replay(&loose, "pcaps/public/suricata-verify/bug-4663-03_icmp_and_ssh.pcap");
    assert!(recs[0]["policy"].is_null());
}

#[test]
fn check_config_accepts_the_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["examples/policy.toml", "deploy/config/echoloc.toml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_echoloc")).arg("check-config").arg(root.join(f)).output().unwrap();
        assert!(out.status.success(), "{f}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[policy]\n\"10.20.0.0\" = 100\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_echoloc")).arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("10.20.0.0"));
}

#[test]
fn each_alert_is_one_json_log_line_at_warn() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_echoloc"))
        .args(["replay", "--format", "json", "--log-format", "json", "--config"])
        .arg(root.join("examples/policy.toml"))
        .arg(root.join("pcaps/lab/jump-tr30-rs7.5/server-edge.pcap"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let recs: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let alerts: usize = recs.iter().map(|r| r["alerts"].as_array().unwrap().len()).sum();
    assert!(alerts >= 1, "the jump host session raises relay_suspected: {recs:?}");
    let logs: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON: {l}: {e}")))
        .filter(|l: &Value| l["fields"]["message"] == "session alert")
        .collect();
    assert_eq!(logs.len(), alerts, "one log line per alert");
    for l in &logs {
        assert_eq!(l["level"], "WARN");
        assert!(l["fields"]["uid"].as_str().unwrap().starts_with('C'));
        assert!(l["fields"]["alert"] == "relay_suspected" || l["fields"]["alert"] == "rtt_over_policy");
    }
}

#[test]
fn flags_override_the_config_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("echoloc.toml");
    let out_file = dir.path().join("from-config.jsonl");
    std::fs::write(
        &cfg,
        format!("[output]\nformat = \"table\"\nfile = \"{}\"\n[relay]\nhidden_floor_ms = 500.0\n", out_file.display()),
    )
    .unwrap();
    let capture = root.join("pcaps/lab/jump-tr30-rs7.5/server-edge.pcap");
    // The file alone: a table, to the configured file, and a 500 ms floor (no relay verdict).
    let st = Command::new(env!("CARGO_BIN_EXE_echoloc")).args(["replay", "--config"]).arg(&cfg).arg(&capture).status();
    assert!(st.unwrap().success());
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(text.starts_with("UID"), "{text}");
    // A suspected relay is marked `*` after the hidden latency.
    assert!(!text.contains('*'), "{text}");
    // Flags win: JSON on stdout.
    let out = Command::new(env!("CARGO_BIN_EXE_echoloc"))
        .args(["replay", "--format", "json", "--output", "/dev/stdout", "--config"])
        .arg(&cfg)
        .arg(&capture)
        .output()
        .unwrap();
    let r: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(r["client_relay"]["suspected"], false, "the file's floor still applies: {r}");
    // check-config prints the effective settings of the file.
    let out = Command::new(env!("CARGO_BIN_EXE_echoloc")).arg("check-config").arg(&cfg).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hidden_floor_ms = 500.0") && text.contains("max_sessions = 1000000"), "{text}");
}
