//! Shared helpers for the integration tests: capture writer and packet
//! builder ([`pcap`]), simulated TCP conversations ([`conv`]), crafted
//! scenarios with their truth ([`scenarios`]), floods merged into real
//! captures ([`flood`]), and running the binary.
//! Network plumbing for live tests (namespaces, veth pairs, free ports,
//! reading /metrics) is in [`netns`].
#![allow(dead_code)]

pub mod conv;
pub mod flood;
pub mod netns;
pub mod pcap;
pub mod rng;
pub mod scenarios;
pub mod typing;

use pcap::{Capture, Packet, rfc3339_ns};
use scenarios::{Leg, Truth};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Tolerance for RTT figures, ms.
pub const RTT_TOL_MS: f64 = 0.1;

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_echoloc")
}

/// Outcome of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// stdout parsed as JSON Lines (empty lines skipped).
    pub records: Vec<Value>,
}

/// Parse JSON Lines; panics on a line that is not a JSON object.
pub fn parse_jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("output line is not JSON ({e}): {l}"));
            assert!(v.is_object(), "output line is not a JSON object: {l}");
            v
        })
        .collect()
}

/// Run the binary with `args`, killing it after `timeout`.
pub fn run_with_timeout(args: &[String], timeout: Duration) -> Run {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning echoloc");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        out.read_to_end(&mut s).ok();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        err.read_to_end(&mut s).ok();
        s
    });
    let status = netns::wait_for(&mut child, timeout)
        .unwrap_or_else(|| panic!("echoloc {args:?} did not finish within {timeout:?}"));
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    assert!(!stderr.contains("panicked"), "echoloc panicked: {stderr}");
    let records = parse_jsonl(&stdout);
    Run { code: status.code(), stdout, stderr, records }
}

/// `echoloc replay --format json <extra...> <files...>`.
pub fn replay_with(extra: &[&str], files: &[&Path]) -> Run {
    let mut args: Vec<String> = vec!["replay".into(), "--format".into(), "json".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(files.iter().map(|p| p.display().to_string()));
    run_with_timeout(&args, Duration::from_secs(300))
}

/// The capture sets under `pcaps/<under>` that have a `truth.json`, in name order.
pub fn truth_sets(under: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps").join(under);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("truth.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// `got` within `abs` ms or `rel` of `want`, whichever is wider.
pub fn close(got: f64, want: f64, abs: f64, rel: f64) -> bool {
    (got - want).abs() <= abs.max(rel * want.abs())
}

/// `echoloc replay --format json <files...>`, expecting exit 0.
pub fn replay_ok(files: &[&Path]) -> Vec<Value> {
    replay_with_ok(&[], files)
}

/// `echoloc replay --format json <extra...> <files...>`, expecting exit 0.
pub fn replay_with_ok(extra: &[&str], files: &[&Path]) -> Vec<Value> {
    let r = replay_with(extra, files);
    assert_eq!(r.code, Some(0), "echoloc exited {:?}\nstderr: {}\nstdout: {}", r.code, r.stderr, r.stdout);
    r.records
}

/// Write `packets` with `capture` to `dir/name`. When the environment
/// variable `ECHOLOC_KEEP_PCAPS` names a directory, a copy is kept there (for
/// looking at crafted captures with tshark).
pub fn write_capture(dir: &Path, name: &str, capture: &Capture, packets: &[Packet]) -> PathBuf {
    let path = dir.join(name);
    capture.write(&path, packets);
    keep_copy(&path);
    path
}

/// Copy `path` into `$ECHOLOC_KEEP_PCAPS` if that is set.
pub fn keep_copy(path: &Path) {
    if let Some(keep) = std::env::var_os("ECHOLOC_KEEP_PCAPS") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).ok();
        std::fs::copy(path, keep.join(path.file_name().unwrap())).ok();
    }
}

/// Records whose client and server are the given strings.
pub fn sessions<'a>(records: &'a [Value], client: &str, server: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["client"] == client && r["server"] == server).collect()
}

/// The one record with this client and server (panics if not exactly one).
pub fn session<'a>(records: &'a [Value], client: &str, server: &str) -> &'a Value {
    let found = sessions(records, client, server);
    assert_eq!(found.len(), 1, "expected one record {client} -> {server}, got {}: {}", found.len(), pretty(records));
    found[0]
}

pub fn pretty(records: &[Value]) -> String {
    records.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("\n")
}

/// A copy of the record without its uid and source (for comparing records
/// of the same session read from different files).
pub fn without_uid(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("uid");
        o.remove("source");
    }
    v
}

fn check_num(errs: &mut Vec<String>, what: &str, v: &Value, want: f64, tol: f64) {
    match v.as_f64() {
        Some(x) if (x - want).abs() <= tol => {}
        _ => errs.push(format!("{what}: got {v}, want {want} ±{tol}")),
    }
}

fn check_u64(errs: &mut Vec<String>, what: &str, v: &Value, want: u64) {
    if v.as_u64() != Some(want) {
        errs.push(format!("{what}: got {v}, want {want}"));
    }
}

/// Check one leg's RTT object against the truth.
pub fn check_leg(errs: &mut Vec<String>, name: &str, v: &Value, want: &Option<Leg>) {
    match want {
        None => {
            if !v.is_null() {
                errs.push(format!("{name}: got {v}, want null"));
            }
        }
        Some(leg) => {
            if !v.is_object() {
                errs.push(format!("{name}: got {v}, want an object"));
                return;
            }
            for f in ["min", "p50", "p90", "max"] {
                check_num(errs, &format!("{name}.{f}"), &v[f], leg.rtt_ms, RTT_TOL_MS);
            }
            check_u64(errs, &format!("{name}.samples"), &v["samples"], leg.samples);
            match leg.handshake_ms {
                None => {
                    if !v["handshake"].is_null() {
                        errs.push(format!("{name}.handshake: got {}, want null", v["handshake"]));
                    }
                }
                Some(h) => check_num(errs, &format!("{name}.handshake"), &v["handshake"], h, RTT_TOL_MS),
            }
        }
    }
}

/// All differences between a record and the truth.
pub fn check(rec: &Value, t: &Truth) -> Vec<String> {
    let mut errs = Vec::new();
    let mut eq = |what: &str, got: &Value, want: Value| {
        if *got != want {
            errs.push(format!("{what}: got {got}, want {want}"));
        }
    };
    eq("client", &rec["client"], t.client.clone().into());
    eq("server", &rec["server"], t.server.clone().into());
    eq("proto", &rec["proto"], t.proto.into());
    eq("transport", &rec["transport"], t.transport.into());
    eq("start", &rec["start"], rfc3339_ns(t.start).into());
    eq("end", &rec["end"], rfc3339_ns(t.end).into());
    eq("end_reason", &rec["end_reason"], t.end_reason.into());
    match rec["uid"].as_str() {
        Some(u) if u.starts_with('C') && u.len() > 1 => {}
        _ => errs.push(format!("uid: got {}, want \"C...\"", rec["uid"])),
    }
    check_num(&mut errs, "duration_s", &rec["duration_s"], (t.end - t.start) as f64 / 1e9, 1e-6);
    check_u64(&mut errs, "packets.client", &rec["packets"]["client"], t.packets.0);
    check_u64(&mut errs, "packets.server", &rec["packets"]["server"], t.packets.1);
    check_u64(&mut errs, "bytes.client", &rec["bytes"]["client"], t.bytes.0);
    check_u64(&mut errs, "bytes.server", &rec["bytes"]["server"], t.bytes.1);
    check_leg(&mut errs, "client_rtt_ms", &rec["client_rtt_ms"], &t.client_leg);
    check_leg(&mut errs, "server_rtt_ms", &rec["server_rtt_ms"], &t.server_leg);
    if let Some((c, s)) = t.retrans {
        check_u64(&mut errs, "retransmissions.client", &rec["retransmissions"]["client"], c);
        check_u64(&mut errs, "retransmissions.server", &rec["retransmissions"]["server"], s);
    }
    errs
}

/// Panic listing every difference between the record and the truth.
pub fn assert_record(what: &str, rec: &Value, t: &Truth) {
    let errs = check(rec, t);
    assert!(errs.is_empty(), "{what}: record differs from the truth:\n  {}\nrecord: {rec}", errs.join("\n  "));
}

/// Find the record of `t`'s session in `records` and check it.
pub fn assert_session(what: &str, records: &[Value], t: &Truth) {
    let rec = session(records, &t.client, &t.server);
    assert_record(what, rec, t);
}

/// Is `prog` on PATH?
pub fn have(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(prog).is_file()))
}

/// Wait until `f` holds; panics after `secs` seconds naming `what`.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// The Prometheus server binary (Debian package `prometheus`): None, said,
/// when it is not installed, which CI must not allow.
pub fn prometheus_bin() -> Option<&'static str> {
    let p = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].into_iter().find(|p| Path::new(p).exists());
    if p.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must install the Debian package prometheus");
        eprintln!("SKIP: prometheus not installed");
    }
    p
}
