//! Live capture on a real interface: a veth pair in a network namespace,
//! real traffic put on it with tcpreplay (original timing), echoloc capturing
//! on the other end. The records must match a replay of the same capture;
//! SIGINT flushes open sessions and exits 0; an interface that goes down is
//! logged and reopened.

mod common;

use common::netns::{Netns, require_root, signal, wait_for};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn capture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Start `echoloc live` in the namespace on cap0; waits until it captures.
fn start_live(ns: &Netns, out: &Path, extra: &[&str]) -> Child {
    let mut args = vec![env!("CARGO_BIN_EXE_echoloc"), "live", "-i", "cap0", "--format", "json", "--output"];
    let out_s = out.to_str().unwrap();
    args.push(out_s);
    args.extend_from_slice(extra);
    let child = ns.command(&args).stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("spawn echoloc live");
    std::thread::sleep(Duration::from_millis(1500));
    child
}

/// Put a capture on `inj0` with its original timing.
fn tcpreplay(ns: &Netns, file: &Path) {
    tcpreplay_on(ns, "inj0", file, &[]);
}

/// Put a capture on `iface` as fast as it goes.
fn tcpreplay_fast(ns: &Netns, iface: &str, file: &Path) {
    tcpreplay_on(ns, iface, file, &["-t"]);
}

fn tcpreplay_on(ns: &Netns, iface: &str, file: &Path, opts: &[&str]) {
    // At the capture's own pace, tcpreplay runs at a real-time priority: the
    // gaps it reproduces (which the round trips are compared on) would
    // otherwise stretch when the machine is busy (a flood of scrapes, a build).
    let mut args = if opts.contains(&"-t") { vec![] } else { vec!["chrt", "-f", "20"] };
    args.extend(["tcpreplay", "-q", "-i", iface]);
    args.extend_from_slice(opts);
    args.push(file.to_str().unwrap());
    let st = ns
        .command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("tcpreplay (Debian package tcpreplay)");
    assert!(st.success(), "tcpreplay on {iface} failed");
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// Stop `echoloc live` with `sig`: it must exit 0 within `secs` seconds.
/// Returns what it logged.
fn stop(child: &mut Child, sig: i32, secs: u64) -> String {
    signal(child, sig);
    let st = wait_for(child, Duration::from_secs(secs))
        .unwrap_or_else(|| panic!("echoloc live did not stop within {secs} s of signal {sig}"));
    let err = stderr_of(child);
    assert!(st.success(), "exit {st:?}: {err}");
    err
}

fn scrape(ns: &Netns, port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let code = format!("import urllib.request;print(urllib.request.urlopen('{url}',timeout=5).read().decode())");
    let out = ns.command(&["python3", "-c", &code]).output().expect("python3");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn live_capture_matches_replay_and_flushes_on_sigint() {
    if require_root("live_capture_matches_replay_and_flushes_on_sigint") {
        live_vs_replay("live", false);
    }
}

#[test]
fn a_flood_of_scrapes_does_not_disturb_capture() {
    if require_root("a_flood_of_scrapes_does_not_disturb_capture") {
        live_vs_replay("flood", true);
    }
}

/// Replay a lab capture onto the wire while echoloc captures live (and,
/// with `flood`, while 8 clients request /metrics as fast as they can):
/// the records must be those of a plain replay of the file.
fn live_vs_replay(tag: &str, flood: bool) {
    let _serial = common::netns::realtime_lock();
    let file = capture("pcaps/lab/direct-tr5-rs15/server-edge.pcap");
    let expected = common::replay_ok(&[&file]);
    let ns = Netns::new(tag);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live.jsonl");
    // No --listen: the endpoint must be on loopback only, port 9617.
    let mut child = start_live(&ns, &out, &[]);
    let listening = ns.command(&["ss", "-ltnH"]).output().unwrap();
    let listening = String::from_utf8_lossy(&listening.stdout);
    assert!(listening.contains("127.0.0.1:9617"), "{listening}");
    assert!(!listening.contains("0.0.0.0:9617") && !listening.contains("*:9617"), "{listening}");
    let flooder = flood.then(|| {
        let code = "import threading,time,urllib.request\n\
                    end=time.time()+12\n\
                    n=[0]\n\
                    def go():\n\
                    \x20 while time.time()<end:\n\
                    \x20\x20 urllib.request.urlopen('http://127.0.0.1:9617/metrics',timeout=5).read(); n[0]+=1\n\
                    ts=[threading.Thread(target=go) for _ in range(8)]\n\
                    [t.start() for t in ts]; [t.join() for t in ts]\n\
                    print(n[0])\n";
        ns.command(&["python3", "-c", code]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap()
    });
    tcpreplay(&ns, &file);
    std::thread::sleep(Duration::from_millis(1500));
    if let Some(f) = flooder {
        let out = f.wait_with_output().unwrap();
        let n: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
        assert!(n > 100, "the flood made only {n} requests");
        eprintln!("{n} scrapes during capture");
    }
    let metrics = scrape(&ns, 9617);
    let err = stop(&mut child, libc::SIGINT, 20);
    let got = common::parse_jsonl(&std::fs::read_to_string(&out).unwrap());
    // Same sessions, same protocols.
    let key = |r: &Value| (r["client"].to_string(), r["server"].to_string(), r["proto"].to_string());
    let mut a: Vec<_> = expected.iter().map(key).collect();
    let mut b: Vec<_> = got.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "live sessions differ from replay\n{err}");
    // Round trips agree within the replay's own timing noise.
    for e in &expected {
        let g = got.iter().find(|g| key(g) == key(e)).unwrap();
        for leg in ["client_rtt_ms", "server_rtt_ms"] {
            let (x, y) = (e[leg]["p50"].as_f64(), g[leg]["p50"].as_f64());
            if let (Some(x), Some(y)) = (x, y) {
                // tcpreplay reproduces gaps to about a millisecond.
                assert!((x - y).abs() <= 1.5_f64.max(0.1 * x), "{leg} p50: replay {x}, live {y}");
            } else {
                assert_eq!(x.is_some(), y.is_some(), "{leg}: replay {x:?}, live {y:?}");
            }
        }
        assert_eq!(e["packets"], g["packets"], "packet counts");
    }
    // Open sessions written at shutdown.
    assert!(got.iter().any(|r| r["end_reason"] == "shutdown" || r["end_reason"] == "fin"), "{got:?}");
    // libpcap counters exported.
    assert!(metrics.contains("echoloc_capture_received_packets_total{interface=\"cap0\"}"), "{metrics}");
    assert!(
        metrics.contains("echoloc_capture_dropped_packets_total{interface=\"cap0\",where=\"kernel\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("echoloc_sessions_opened_total{proto=\"ssh\"} 1"), "{metrics}");
    assert!(
        metrics.contains("echoloc_capture_dropped_packets_total{interface=\"cap0\",where=\"kernel\"} 0"),
        "{metrics}"
    );
}

#[test]
fn interface_down_is_logged_and_reopened() {
    if !require_root("interface_down_is_logged_and_reopened") {
        return;
    }
    let _serial = common::netns::realtime_lock();
    let file = capture("pcaps/lab/direct-tr5-rs15/server-edge.pcap");
    let ns = Netns::new("down");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live.jsonl");
    let mut child = start_live(&ns, &out, &["--listen", "127.0.0.1:9618"]);
    // Down and up again: capture goes on.
    ns.exec(&["ip", "link", "set", "cap0", "down"]);
    std::thread::sleep(Duration::from_millis(1500));
    ns.exec(&["ip", "link", "set", "cap0", "up"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "echoloc exited when the interface went down");
    // Away (deleted), then back: a log line, retries, and capture resumes.
    ns.exec(&["ip", "link", "del", "inj0"]);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(child.try_wait().unwrap().is_none(), "echoloc exited when the interface went away");
    ns.exec(&["ip", "link", "add", "inj0", "type", "veth", "peer", "name", "cap0"]);
    ns.exec(&["ip", "link", "set", "inj0", "up"]);
    ns.exec(&["ip", "link", "set", "cap0", "up"]);
    std::thread::sleep(Duration::from_millis(3000));
    tcpreplay(&ns, &file);
    std::thread::sleep(Duration::from_millis(1000));
    let err = stop(&mut child, libc::SIGTERM, 20);
    assert!(err.contains("reopening"), "no log line about the capture failing: {err}");
    assert!(err.contains("capture reopened"), "capture was not reopened: {err}");
    let got = common::parse_jsonl(&std::fs::read_to_string(&out).unwrap());
    assert!(got.iter().any(|r| r["proto"] == "ssh"), "no session after the interface came back: {got:?}");
}

#[test]
fn bad_interface_says_what_to_do() {
    let out = Command::new(env!("CARGO_BIN_EXE_echoloc"))
        .args(["live", "-i", "no-such-if0", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("no-such-if0"), "{err}");
    if common::netns::is_root() {
        assert!(err.contains("ip link") || err.contains("No such device"), "{err}");
    } else {
        assert!(err.contains("CAP_NET_RAW") || err.contains("cap_net_raw"), "{err}");
    }
}

/// Capture options reach libpcap: promiscuous mode by default and not with
/// `--no-promiscuous` (the interface's promiscuity count while capturing),
/// and `--bpf` decides what is captured (here with immediate mode off and
/// another kernel buffer size). The last packets of a burst are read with
/// no more traffic behind them, and SIGTERM stops a capture that nothing
/// passes the filter of (a blocking read of the packet ring waited for a
/// packet forever).
#[test]
fn capture_options_reach_the_interface() {
    if !require_root("capture_options_reach_the_interface") {
        return;
    }
    let _serial = common::netns::realtime_lock();
    let file = capture("pcaps/lab/direct-tr5-rs15/server-edge.pcap");
    let ns = Netns::new("opts");
    let dir = tempfile::tempdir().unwrap();
    let promiscuity = || {
        let o = ns.command(&["ip", "-d", "link", "show", "cap0"]).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let n = text.split_whitespace().skip_while(|w| *w != "promiscuity").nth(1).map(str::to_string);
        n.unwrap_or_else(|| panic!("no promiscuity in {text}"))
    };
    // (options, promiscuity while capturing, packets that pass, SSH sessions)
    let runs: [(&[&str], &str, u64, usize); 2] = [
        (&["--bpf", "tcp port 22", "--no-immediate", "--buffer-mib", "8"], "1", 129, 1),
        (&["--no-promiscuous", "--bpf", "udp"], "0", 0, 0),
    ];
    for (i, (opts, promisc, passed, ssh)) in runs.into_iter().enumerate() {
        let out = dir.path().join(format!("run{i}.jsonl"));
        let mut args = opts.to_vec();
        args.extend(["--listen", "127.0.0.1:9619"]);
        let mut child = start_live(&ns, &out, &args);
        assert_eq!(promiscuity(), promisc, "{opts:?}");
        tcpreplay_fast(&ns, "inj0", &file);
        std::thread::sleep(Duration::from_millis(1000));
        let metrics = scrape(&ns, 9619);
        assert!(metrics.contains(&format!("\necholoc_packets_total {passed}\n")), "{opts:?}: {metrics}");
        stop(&mut child, libc::SIGTERM, 5);
        let got = common::parse_jsonl(&std::fs::read_to_string(&out).unwrap());
        assert_eq!(got.iter().filter(|r| r["proto"] == "ssh").count(), ssh, "{opts:?}: {got:?}");
        if ssh == 0 {
            assert!(got.is_empty(), "{opts:?}: the filter let through {got:?}");
        }
    }
}

/// Several `--interface`s at once: each is captured (its own libpcap
/// counters), and the records hold the sessions of the traffic on each.
/// `--max-sessions` bounds each interface's table, and
/// `echoloc_sessions_active` is the sum of the tables: with a bound of 20,
/// the 25 sessions of Zeek's ssh.pcap leave 20 on one interface, the lab
/// capture's one session is on the other, and the gauge says 21. Each
/// record's `source` names the interface it was captured on.
#[test]
fn two_interfaces_at_once() {
    if !require_root("two_interfaces_at_once") {
        return;
    }
    let _serial = common::netns::realtime_lock();
    let files = [capture("pcaps/lab/direct-tr5-rs15/server-edge.pcap"), capture("pcaps/public/zeek/ssh.pcap")];
    let ns = Netns::new("two");
    common::netns::veth(&ns, "inj1", &ns, "cap1");
    for i in ["inj1", "cap1"] {
        ns.exec(&["ip", "link", "set", i, "up"]);
        ns.no_offload(i);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live.jsonl");
    let mut child = start_live(&ns, &out, &["-i", "cap1", "--listen", "127.0.0.1:9620", "--max-sessions", "20"]);
    for (inj, file) in ["inj0", "inj1"].into_iter().zip(&files) {
        tcpreplay_fast(&ns, inj, file);
    }
    std::thread::sleep(Duration::from_millis(1000));
    let metrics = scrape(&ns, 9620);
    let err = stop(&mut child, libc::SIGTERM, 20);
    for iface in ["cap0", "cap1"] {
        assert!(
            metrics.contains(&format!("echoloc_capture_received_packets_total{{interface=\"{iface}\"}}")),
            "{metrics}"
        );
    }
    let per_file: Vec<usize> = files.iter().map(|f| common::replay_ok(&[f]).len()).collect();
    assert_eq!(per_file, [1, 25]);
    let active = metrics.lines().find_map(|l| l.strip_prefix("echoloc_sessions_active ")).map(str::trim);
    assert_eq!(active, Some("21"), "{metrics}");
    let key = |r: &Value| (r["client"].to_string(), r["server"].to_string(), r["proto"].to_string());
    let mut want: Vec<_> = files.iter().flat_map(|f| common::replay_ok(&[f])).map(|r| key(&r)).collect();
    let live = common::parse_jsonl(&std::fs::read_to_string(&out).unwrap());
    let mut got: Vec<_> = live.iter().map(key).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{err}");
    // Each record names the interface it was captured on.
    let on = |i: &str| live.iter().filter(|r| r["source"] == format!("interface:{i}").as_str()).count();
    assert_eq!((on("cap0"), on("cap1")), (1, 25), "{}", common::pretty(&live));
}

/// Records are never lost to a restart or a rotation: `live --output FILE`
/// appends (what a previous run wrote stays), and SIGHUP reopens FILE by
/// name, as logrotate expects. Here the file is moved away and SIGHUP sent
/// every 250 ms while Zeek's ssh.pcap (25 sessions) goes by at 400 packets
/// a second and its closed sessions' records are written: over all the files, every session's record is there exactly
/// once, and echoloc still stops cleanly (exit 0) at the end.
#[test]
fn rotation_under_traffic_keeps_every_record_once() {
    if !require_root("rotation_under_traffic_keeps_every_record_once") {
        return;
    }
    let _serial = common::netns::realtime_lock();
    let file = capture("pcaps/public/zeek/ssh.pcap");
    let ns = Netns::new("rotate");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live.jsonl");
    let previous = "{\"uid\":\"Cprevious000\",\"from\":\"an earlier run\"}\n";
    std::fs::write(&out, previous).unwrap();
    let mut child = start_live(&ns, &out, &[]);
    let rotations = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let rotator = {
        let (out, run, pid) = (out.clone(), rotations.clone(), child.id() as i32);
        std::thread::spawn(move || {
            let mut n = 0;
            while run.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(250));
                n += 1;
                let _ = std::fs::rename(&out, out.with_extension(format!("jsonl.{n}")));
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(pid, libc::SIGHUP) };
            }
            n
        })
    };
    tcpreplay_on(&ns, "inj0", &file, &["--pps", "400"]);
    // Closed sessions are written 5 s after their FIN (the linger): rotate on.
    std::thread::sleep(Duration::from_millis(6000));
    rotations.store(false, std::sync::atomic::Ordering::SeqCst);
    let n = rotator.join().unwrap();
    let err = stop(&mut child, libc::SIGTERM, 20);
    assert!(n >= 15, "only {n} rotations");
    let mut text = String::new();
    let mut files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort_by_key(|p| {
        p.extension().and_then(|x| x.to_str()).and_then(|x| x.parse::<u32>().ok()).unwrap_or(u32::MAX)
    });
    for f in &files {
        text.push_str(&std::fs::read_to_string(f).unwrap());
    }
    assert!(text.starts_with(previous), "the earlier run's record was lost");
    let got = common::parse_jsonl(&text[previous.len()..]);
    let key = |r: &Value| (r["client"].to_string(), r["server"].to_string(), r["proto"].to_string());
    let mut want: Vec<_> = common::replay_ok(&[&file]).iter().map(key).collect();
    let mut keys: Vec<_> = got.iter().map(key).collect();
    want.sort();
    keys.sort();
    assert_eq!(keys.len(), 25, "{err}");
    assert_eq!(keys, want, "each session's record exactly once over {} files\n{err}", files.len());
    let with_records = files.iter().filter(|f| std::fs::read_to_string(f).unwrap().contains("\"proto\"")).count();
    assert!(with_records >= 3, "records went to only {with_records} files: no rotation under traffic");
}
