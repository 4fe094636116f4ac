//! The record's identity and provenance fields (schema version 2):
//! `community_id` against the reference implementation (PyPI `communityid`,
//! installed by scripts/setup.sh), `ssh.hassh` / `ssh.hassh_server` against
//! tshark, `client_ip`/`client_port`/`server_ip`/`server_port` against the
//! `client`/`server` strings, `sensor` (flag, config, host name) and
//! `source` (the file of a session's first packet). Live capture's
//! `interface:NAME` is checked in tests/live_capture.rs.

mod common;

use common::pcap::Capture;
use common::{have, replay_with, replay_with_ok, sessions, write_capture};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn skip(test: &str, reason: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {reason}, and CI is set: this test must run in CI (scripts/setup.sh installs it)");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
    true
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Capture files under `pcaps/<dir>`, recursively, in name order.
fn captures(dir: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().and_then(|x| x.to_str()).is_some_and(|x| x.starts_with("pcap")) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("pcaps").join(dir), &mut out);
    out.sort();
    out
}

/// Every record of every capture under `pcaps/`, each file replayed alone.
fn every_record() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for f in captures("") {
        let r = replay_with(&[], &[&f]);
        out.extend(r.records.into_iter().map(|r| (f.clone(), r)));
    }
    out
}

/// The Python with the `communityid` package: $ECHOLOC_TEST_VENV, else
/// scripts/setup.sh's venv, else python3 on PATH.
fn communityid_python() -> Option<PathBuf> {
    let venv = std::env::var_os("ECHOLOC_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        cache.join("echoloc-ci/test-venv")
    });
    [venv.join("bin/python"), PathBuf::from("python3")].into_iter().find(|py| {
        Command::new(py).args(["-c", "import communityid"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    })
}

/// `community_id` of every record of every bundled capture (TCP, UDP, ESP;
/// IPv4 and IPv6) equals what the reference implementation computes from
/// the record's own tuple; the split endpoint fields agree with `client` and
/// `server`, and every record says schema 2, its sensor and its source.
#[test]
fn community_id_matches_the_reference_implementation() {
    const TEST: &str = "community_id_matches_the_reference_implementation";
    let Some(py) = communityid_python() else {
        skip(TEST, "the Python package communityid is not installed (scripts/setup.sh)");
        return;
    };
    let recs = every_record();
    assert!(recs.len() >= 200, "{} records", recs.len());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let mut input = String::new();
    let mut transports: HashMap<String, usize> = HashMap::new();
    for (file, r) in &recs {
        let transport = r["transport"].as_str().unwrap();
        *transports.entry(transport.to_string()).or_default() += 1;
        let proto = match transport {
            "tcp" => 6,
            "udp" => 17,
            "esp" => 50,
            t => panic!("transport {t}"),
        };
        for side in ["client", "server"] {
            let (ip, port) = (r[format!("{side}_ip")].as_str().unwrap(), &r[format!("{side}_port")]);
            let joined = match port.as_u64() {
                Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
                Some(p) => format!("{ip}:{p}"),
                None => ip.to_string(),
            };
            assert_eq!(r[side].as_str(), Some(joined.as_str()), "{side} of {r}");
            assert_eq!(port.is_null(), transport == "esp", "{side}_port of {r}");
        }
        assert_eq!(r["schema_version"], 4, "{r}");
        assert_eq!(r["sensor"].as_str(), Some(host.as_str()), "{r}");
        assert_eq!(r["source"].as_str(), Some(file.display().to_string().as_str()), "{r}");
        let tuple = serde_json::json!([proto, r["client_ip"], r["server_ip"], r["client_port"], r["server_port"]]);
        input.push_str(&tuple.to_string());
        input.push('\n');
    }
    assert!(transports.len() == 3, "want TCP, UDP and ESP sessions: {transports:?}");
    // One line of JSON per record in, its Community ID out.
    let script = "import sys, json, communityid\n\
                  c = communityid.CommunityID()\n\
                  for line in sys.stdin:\n\
                  \x20   p, a, b, pa, pb = json.loads(line)\n\
                  \x20   t = communityid.FlowTuple(p, a, b) if pa is None else communityid.FlowTuple(p, a, b, pa, pb)\n\
                  \x20   print(c.calc(t))\n";
    let mut child =
        Command::new(&py).args(["-c", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", py.display());
    let want: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
    assert_eq!(want.len(), recs.len());
    let mut errs = Vec::new();
    for ((file, r), want) in recs.iter().zip(&want) {
        if r["community_id"].as_str() != Some(want) {
            errs.push(format!(
                "{}: {} {} → {}: got {}, want {want}",
                file.display(),
                r["transport"],
                r["client"],
                r["server"],
                r["community_id"]
            ));
        }
    }
    assert!(errs.is_empty(), "{} of {} differ from the reference:\n{}", errs.len(), recs.len(), errs.join("\n"));
    eprintln!("{TEST}: {} records agree ({transports:?})", recs.len());
}

/// tshark's HASSH and HASSH-server (`ssh.kex.hassh`, `ssh.kex.hasshserver`)
/// of each connection's first KEXINIT from each side, by sender and receiver.
fn tshark_hassh(file: &Path, ports: &[u64]) -> HashMap<(String, u64, String, u64, bool), String> {
    let mut args: Vec<String> =
        ["-r", &file.display().to_string(), "-T", "fields"].iter().map(|s| s.to_string()).collect();
    for f in [
        "ip.src",
        "ipv6.src",
        "tcp.srcport",
        "ip.dst",
        "ipv6.dst",
        "tcp.dstport",
        "ssh.kex.hassh",
        "ssh.kex.hasshserver",
    ] {
        args.extend(["-e".to_string(), f.to_string()]);
    }
    args.extend(["-Y".into(), "ssh.kex.hassh or ssh.kex.hasshserver".into()]);
    for p in ports.iter().filter(|&&p| p != 22) {
        args.extend(["-d".into(), format!("tcp.port=={p},ssh")]);
    }
    let out = Command::new("tshark").args(&args).stderr(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "tshark {args:?}");
    let mut got = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let first = |s: &str| s.split(',').next().unwrap_or("").to_string();
        let (src, dst) = (first(&(f[0].to_string() + f[1])), first(&(f[3].to_string() + f[4])));
        let (sp, dp) = (first(f[2]).parse().unwrap(), first(f[5]).parse().unwrap());
        for (value, server) in [(f[6], false), (f[7], true)] {
            if let Some(v) = value.split(',').find(|v| !v.is_empty()) {
                got.entry((src.clone(), sp, dst.clone(), dp, server)).or_insert_with(|| v.to_string());
            }
        }
    }
    got
}

/// `ssh.hassh` and `ssh.hassh_server` equal tshark's over the bundled SSH
/// captures (OpenSSH 5–10, dropbear, PuTTY's plink, Cisco, SSH through sslh
/// on 443, Multipath TCP; sessions joined mid-stream and header-only give
/// null on both sides).
#[test]
fn hassh_matches_tshark() {
    const TEST: &str = "hassh_matches_tshark";
    if !have("tshark") && skip(TEST, "tshark not found") {
        return;
    }
    let mut files = captures("public");
    files.extend(captures("messy"));
    files.extend(captures("mptcp"));
    files.extend(captures("exec"));
    files.extend(captures("lab/direct-tr5-rs15"));
    files.extend(captures("lab/obfuscated-jump-tr20-rs10"));
    let (mut n, mut seen, mut errs) = (0, 0, Vec::new());
    for f in &files {
        let recs: Vec<Value> = replay_with_ok(&[], &[f]).into_iter().filter(|r| r["ssh"].is_object()).collect();
        if recs.is_empty() {
            continue;
        }
        let mut ports: Vec<u64> = recs.iter().filter_map(|r| r["server_port"].as_u64()).collect();
        ports.dedup();
        let want = tshark_hassh(f, &ports);
        for r in &recs {
            let (c, s) = (r["client_ip"].as_str().unwrap(), r["server_ip"].as_str().unwrap());
            let (cp, sp) = (r["client_port"].as_u64().unwrap(), r["server_port"].as_u64().unwrap());
            let w_client = want.get(&(c.to_string(), cp, s.to_string(), sp, false));
            let w_server = want.get(&(s.to_string(), sp, c.to_string(), cp, true));
            let got = (r["ssh"]["hassh"].as_str(), r["ssh"]["hassh_server"].as_str());
            n += 1;
            seen += usize::from(got.0.is_some()) + usize::from(got.1.is_some());
            if got != (w_client.map(String::as_str), w_server.map(String::as_str)) {
                errs.push(format!(
                    "{}: {} → {}: got {got:?}, tshark {w_client:?} {w_server:?}",
                    f.display(),
                    r["client"],
                    r["server"]
                ));
            }
        }
    }
    assert!(errs.is_empty(), "{} of {n} SSH records differ from tshark:\n{}", errs.len(), errs.join("\n"));
    assert!(n >= 60 && seen >= 100, "{n} SSH records, {seen} fingerprints: too few to tell");
    eprintln!("{TEST}: {n} SSH records over {} captures, {seen} fingerprints, all equal to tshark's", files.len());
}

/// Pinned: the public Suricata capture's OpenSSH 8.2 client and 7.9 server
/// (tshark gives the same; both are listed as such in public HASSH lists).
#[test]
fn hassh_pinned() {
    let f = root().join("pcaps/public/suricata-verify/bug-4663-03_icmp_and_ssh.pcap");
    let recs = replay_with_ok(&[], &[&f]);
    let r = common::session(&recs, "192.168.0.30:42116", "192.168.0.123:22");
    assert_eq!(r["ssh"]["hassh"], "ae8bd7dd09970555aa4c6ed22adbbf56");
    assert_eq!(r["ssh"]["hassh_server"], "b12d2871a1189eff20364cf5333619ee");
    assert_eq!(r["community_id"], "1:TMX8Gzo9gxnrlhvb1cywzENDXxM=");
}

/// `sensor`: `--sensor` over `output.sensor` over the host name; an empty
/// name is refused.
#[test]
fn sensor_from_flag_config_or_host_name() {
    let f = root().join("pcaps/public/suricata-verify/bug-4663-03_icmp_and_ssh.pcap");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("echoloc.toml");
    std::fs::write(&cfg, "[output]\nsensor = \"tap-dc1-03\"\n").unwrap();
    let cfg_s = cfg.display().to_string();
    let sensors =
        |extra: &[&str]| -> Vec<Value> { replay_with_ok(extra, &[&f]).iter().map(|r| r["sensor"].clone()).collect() };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    assert!(sensors(&[]).iter().all(|s| *s == *host), "{:?}", sensors(&[]));
    assert!(sensors(&["--config", &cfg_s]).iter().all(|s| s == "tap-dc1-03"));
    assert!(sensors(&["--config", &cfg_s, "--sensor", "span-7"]).iter().all(|s| s == "span-7"));
    let r = replay_with(&["--sensor", ""], &[&f]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("output.sensor must not be empty"), "{}", r.stderr);
    std::fs::write(&cfg, "[output]\nsensor = \" \"\n").unwrap();
    let check = Command::new(common::bin()).args(["check-config", &cfg_s]).output().unwrap();
    assert!(!check.status.success());
}

/// `source` is the file (as given) that held a session's first packet: a
/// session spanning two files of one timeline names the first; one that
/// opens in the second file names the second; standard input is `-`.
#[test]
fn source_is_the_file_of_the_first_packet() {
    use common::conv::{Conversation, Dir};
    let mut a =
        Conversation::new("192.0.2.1:40000".parse().unwrap(), "192.0.2.2:22".parse().unwrap(), 1_000_000, 1_000_000);
    let t = a.handshake(1_000_000_000);
    for i in 0..10 {
        a.data(Dir::C2S, t + i * 100_000_000, 36);
        a.ack(Dir::S2C, t + i * 100_000_000 + 1_000_000);
    }
    let mut b =
        Conversation::new("192.0.2.3:40001".parse().unwrap(), "192.0.2.2:22".parse().unwrap(), 1_000_000, 1_000_000);
    b.handshake(t + 700_000_000);
    let mut packets = a.packets();
    packets.extend(b.packets());
    packets.sort_by_key(|p| p.ts);
    // The first file ends before b's first packet.
    let cut = packets.iter().position(|p| p.ts >= t + 650_000_000).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let one = write_capture(dir.path(), "one.pcap", &Capture::default(), &packets[..cut]);
    let two = write_capture(dir.path(), "two.pcap", &Capture::default(), &packets[cut..]);
    let recs = replay_with_ok(&[], &[&one, &two]);
    assert_eq!(recs.len(), 2, "{}", common::pretty(&recs));
    let spanning = common::session(&recs, "192.0.2.1:40000", "192.0.2.2:22");
    assert_eq!(spanning["source"].as_str(), Some(one.display().to_string().as_str()));
    assert_eq!(spanning["packets"]["client"].as_u64(), Some(12), "one session over both files: {spanning}");
    let second = common::session(&recs, "192.0.2.3:40001", "192.0.2.2:22");
    assert_eq!(second["source"].as_str(), Some(two.display().to_string().as_str()));
    // The directory: its path as given, joined with each file's name.
    let given = format!("{}/", dir.path().display());
    let recs = replay_with_ok(&[], &[Path::new(&given)]);
    let mut srcs: Vec<&str> = recs.iter().map(|r| r["source"].as_str().unwrap()).collect();
    srcs.sort();
    assert_eq!(srcs, [format!("{given}one.pcap"), format!("{given}two.pcap")]);
    // Standard input.
    let mut child = Command::new(common::bin())
        .args(["replay", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&std::fs::read(&one).unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    let recs = common::parse_jsonl(&String::from_utf8(out.stdout).unwrap());
    assert!(!recs.is_empty() && recs.iter().all(|r| r["source"] == "-"), "{}", common::pretty(&recs));
    assert_eq!(sessions(&recs, "192.0.2.1:40000", "192.0.2.2:22").len(), 1);
}
