//! Worker engines (`--workers N`) give the records and the metrics of one
//! engine: every committed capture, every capture directory (timelines over
//! several files), and a generated capture of 700 sessions between 200 hosts
//! that end every way a session ends (FIN, RST, idle, a new timeline).

mod common;

use common::bin;
use common::conv::{Conversation, Dir};
use common::netns::{Kill, free_port, metric_sum, scrape_until};
use common::pcap::{Capture, Format, Link, Packet, T0, Udp, ms};
use common::rng::Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The records of `echoloc replay --workers N EXTRA... INPUTS...` as written.
fn records(workers: usize, extra: &[&str], inputs: &[&Path]) -> String {
    let out = Command::new(bin())
        .args(["replay", "--format", "json", "--no-progress", "--workers", &workers.to_string()])
        .args(extra)
        .args(inputs)
        .stderr(Stdio::piped())
        .output()
        .expect("run echoloc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{inputs:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn sorted(text: &str) -> Vec<&str> {
    let mut v: Vec<&str> = text.lines().collect();
    v.sort_unstable();
    v
}

/// Every capture file under `dir`, and every directory holding some.
fn inputs(dir: &Path, files: &mut Vec<PathBuf>, dirs: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut here = false;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            inputs(&p, files, dirs);
        } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            files.push(p);
            here = true;
        }
    }
    if here {
        dirs.push(dir.to_path_buf());
    }
}

#[test]
fn every_capture_and_directory_gives_the_same_records_with_one_two_and_five_workers() {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    inputs(&root().join("pcaps"), &mut files, &mut dirs);
    inputs(&root().join("../shared/pcaps"), &mut files, &mut dirs);
    assert!(files.len() > 250, "{} captures found", files.len());
    let mut differ = Vec::new();
    let mut lines = 0;
    for input in files.iter().chain(&dirs) {
        let one = records(1, &[], &[input]);
        lines += one.lines().count();
        // Two and five: a roamed WireGuard peer and Multipath TCP joins
        // from other addresses hash to another worker than their session
        // with one or the other.
        for n in [2, 5] {
            if sorted(&one) != sorted(&records(n, &[], &[input])) {
                differ.push(format!("{} ({n} workers)", input.display()));
            }
        }
    }
    assert!(lines > 400, "{lines} records in all");
    assert!(differ.is_empty(), "records differ from one worker's for {} inputs: {differ:#?}", differ.len());
}

/// 700 SSH-looking sessions between 200 clients and 10 servers over two
/// minutes (cut at 150 s), ending by FIN, RST, going idle or left open (idle limits of 2 s, 30 s once
/// established), with
/// one-packet UDP flows between them; a second file a day later (a new
/// timeline) holds 50 more. Returns the two files.
fn generated(dir: &Path) -> [PathBuf; 2] {
    let mut rng = Rng(0x0E0C_0C40_0001);
    let mut write = |name: &str, start: u64, sessions: u64| {
        let mut packets: Vec<Packet> = Vec::new();
        for i in 0..sessions {
            let client: SocketAddr = format!("198.51.100.{}:{}", 1 + rng.below(200), 40_000 + i).parse().unwrap();
            let server: SocketAddr = format!("203.0.113.{}:22", 1 + rng.below(10)).parse().unwrap();
            let (c, s) = (ms(1.0 + rng.below(40) as f64), ms(0.5 + rng.below(10) as f64));
            let mut cv = Conversation::new(client, server, c, s).with_timestamps();
            // How it ends: FIN, RST, or left open (those begin late, so
            // many are open when the file ends).
            let end = rng.below(3);
            let begin = if end == 2 { 90_000 + rng.below(50_000) } else { rng.below(120_000) };
            let mut t = cv.handshake(start + begin * ms(1.0));
            let banner = cv.data_bytes(Dir::S2C, t + ms(1.0), b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
            t = cv.answer_time(Dir::S2C, banner.t);
            let hello = cv.data_bytes(Dir::C2S, t, b"SSH-2.0-OpenSSH_9.6\r\n");
            t = cv.answer_time(Dir::C2S, hello.t);
            for _ in 0..rng.below(30) {
                // A key, its echo, the ACK; now and then a pause past the idle limit.
                t += ms(50.0 + rng.below(400) as f64) + if rng.chance(20) { ms(35_000.0) } else { 0 };
                let k = cv.data(Dir::C2S, t, 36);
                let e = cv.data(Dir::S2C, cv.answer_time(Dir::C2S, k.t) + ms(0.2), 36);
                t = cv.answer_time(Dir::S2C, e.t);
                cv.ack(Dir::C2S, t);
            }
            match end {
                0 => {
                    cv.close(t + ms(100.0));
                }
                1 => {
                    cv.rst(Dir::S2C, t + ms(100.0));
                }
                _ => {}
            }
            packets.extend(cv.packets());
            let dns: SocketAddr = format!("203.0.113.{}:53", 100 + rng.below(5)).parse().unwrap();
            let udp = Udp::new(SocketAddr::new(client.ip(), 5353), dns, vec![0x12; 40]);
            packets.push(Packet::ip(start + rng.below(120_000) * ms(1.0), udp.ip()));
        }
        // The capture ends at 150 s.
        packets.retain(|p| p.ts < start + 150_000 * ms(1.0));
        packets.sort_by_key(|p| p.ts);
        let path = dir.join(name);
        Capture::new(Link::Ethernet { vlans: vec![] }, Format::PcapNano).write(&path, &packets);
        path
    };
    let a = write("a.pcap", T0, 700);
    let b = write("b.pcap", T0 + 86_400 * 1_000_000_000, 50);
    [a, b]
}

const IDLE: [&str; 6] = ["--tcp-idle", "2", "--udp-idle", "2", "--interactive-idle", "30"];

#[test]
fn many_sessions_ending_every_way_give_the_same_records_in_the_same_order_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b] = generated(dir.path());
    let one = records(1, &IDLE, &[&a, &b]);
    let recs = common::parse_jsonl(&one);
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    for r in &recs {
        *ends.entry(r["end_reason"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    // What the capture is for: every way a session ends, and many of them.
    assert!(recs.len() > 1400, "{} records", recs.len());
    for reason in ["fin", "rst", "idle", "end_of_input"] {
        assert!(ends.get(reason).copied().unwrap_or(0) >= 20, "too few {reason} ends: {ends:?}");
    }
    assert!(recs.iter().filter(|r| r["proto"] == "ssh").count() > 700, "{ends:?}");
    for n in [2, 3, 5] {
        let many = records(n, &IDLE, &[&a, &b]);
        assert!(sorted(&one) == sorted(&many), "{n} workers: records differ");
        // The same order on every run with the same workers.
        assert_eq!(many, records(n, &IDLE, &[&a, &b]), "{n} workers: order differs between runs");
    }
}

/// The exposition's echoloc series (per-session ones too) as name{labels} → value.
fn series(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with("echoloc_"))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn many_sessions_give_the_same_metrics_with_one_and_three_workers() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b] = generated(dir.path());
    let expected = records(1, &IDLE, &[&a, &b]).lines().count();
    let mut got = Vec::new();
    for n in ["1", "3"] {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let out = dir.path().join(format!("records-{n}.jsonl"));
        let flags = ["--workers", n, "--listen", &listen, "--max-exported-sessions", "5000"];
        let mut args: Vec<&std::ffi::OsStr> = flags.iter().map(|s| s.as_ref()).collect();
        args.extend(IDLE.iter().map(|s| std::ffi::OsStr::new(*s)));
        args.extend(["--max-sessions".as_ref(), "600000".as_ref(), "--output".as_ref(), out.as_os_str()]);
        args.extend([a.as_os_str(), b.as_os_str()]);
        let _server: Kill = common::netns::serve_replay(&args);
        // Done when every record is written (the file is flushed at the
        // end, after the engines' last metrics).
        common::wait_until("every record written", 60, || {
            std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() == expected)
        });
        let text = scrape_until(port, 60, |t| metric_sum(t, "echoloc_packets_total") > 0);
        got.push(series(&text));
    }
    let (one, three) = (&got[0], &got[1]);
    assert!(one.len() > 100, "{} series", one.len());
    assert!(one.keys().any(|k| k.starts_with("echoloc_session_")), "no per-session series");
    let keys = |m: &BTreeMap<String, f64>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(one), keys(three), "different series");
    for (k, v) in one {
        let w = three[k];
        // Sums of samples are added in another order: equal to 1e-9.
        assert!((v - w).abs() <= 1e-9 * v.abs().max(1.0), "{k}: {v} with one worker, {w} with three");
    }
}
