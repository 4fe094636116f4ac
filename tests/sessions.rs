//! What a session is: one record per real connection, however long it idles
//! (the long idle limit of established interactive sessions), however many
//! files it spans (timelines), however many tuples it uses (Multipath TCP),
//! with a uid anyone can recompute.

mod common;

use common::conv::{Conversation, Dir};
use common::flood::write_merged;
use common::pcap::{Capture, Packet, at};
use common::typing::Plan;
use common::{pretty, replay_with_ok, sessions, write_capture};
use serde_json::Value;

const HOUR_MS: f64 = 3_600_000.0;

/// An SSH session of 4 lines of typing, each after `pause_ms` of silence.
fn idle_ssh(pause_ms: f64) -> common::typing::Session {
    Plan { pause_ms, ..Plan::default() }.build()
}

fn ssh_records(recs: &[Value]) -> Vec<&Value> {
    sessions(recs, "198.51.100.7:50022", "203.0.113.5:22")
}

/// A shell silent for three hours between lines is one record, from its
/// handshake to its FIN, with its SSH metadata and every key; the short TCP
/// idle limit (300 s) does not apply to it, and its own limit is configurable.
#[test]
fn an_ssh_session_idle_for_hours_is_one_record() {
    let s = idle_ssh(3.0 * HOUR_MS);
    let dir = tempfile::tempdir().unwrap();
    let path = write_capture(dir.path(), "idle3h.pcap", &Capture::default(), &s.packets);

    let recs = replay_with_ok(&[], &[&path]);
    let ssh = ssh_records(&recs);
    assert_eq!(ssh.len(), 1, "{}", pretty(&recs));
    let r = ssh[0];
    assert_eq!(r["end_reason"], "fin", "{r}");
    assert_eq!(r["ssh"]["client_version"], s.client_version, "{r}");
    assert!(r["ssh"]["server_version"].as_str().is_some_and(|v| v.contains("OpenSSH")), "{r}");
    assert_eq!(r["keystrokes"], s.typed, "{r}");
    // Even with a TCP idle limit of one second.
    let recs = replay_with_ok(&["--tcp-idle", "1"], &[&path]);
    assert_eq!(ssh_records(&recs).len(), 1, "{}", pretty(&recs));

    // A two-hour limit ends it at each silence: the authentication, then
    // one record per line of typing, the last closed by its FIN.
    let recs = replay_with_ok(&["--interactive-idle", "7200"], &[&path]);
    let ssh = ssh_records(&recs);
    let reasons: Vec<&str> = ssh.iter().map(|r| r["end_reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["idle", "idle", "idle", "idle", "fin"], "{}", pretty(&recs));
    // Two hours after its last packet, not five minutes.
    let end = ssh[0]["end"].as_str().unwrap();
    assert!(ssh[1]["start"].as_str().unwrap() > end, "{}", pretty(&recs));
}

/// Flows that never got past the handshake keep the short idle limit, even
/// on the SSH port: a lone SYN, and a handshake with no data, each silent
/// for half an hour, end after 300 s (two records each), while a shell idle
/// as long stays one.
#[test]
fn half_open_and_handshake_only_flows_keep_the_short_limit() {
    let mut packets: Vec<Packet> = Vec::new();
    let server: std::net::SocketAddr = "203.0.113.5:22".parse().unwrap();
    // A SYN never answered, then another half an hour later.
    let mut syn = Conversation::new("198.51.100.9:40001".parse().unwrap(), server, 1_000_000, 50_000);
    syn.syn(at(10.0));
    syn.resend_syn(at(10.0 + 0.5 * HOUR_MS));
    packets.extend(syn.packets());
    // A handshake, silence, then one keep-alive ACK each way.
    let mut hs = Conversation::new("198.51.100.9:40002".parse().unwrap(), server, 1_000_000, 50_000);
    let t = hs.handshake(at(20.0));
    hs.ack(Dir::C2S, t + (0.5 * HOUR_MS * 1e6) as u64);
    hs.ack(Dir::S2C, t + (0.5 * HOUR_MS * 1e6) as u64 + 1_000_000);
    packets.extend(hs.packets());
    // The shell keeps the capture going for two and a half hours.
    packets.extend(idle_ssh(0.5 * HOUR_MS).packets);
    packets.sort_by_key(|p| p.ts);
    let dir = tempfile::tempdir().unwrap();
    let path = write_capture(dir.path(), "halfopen.pcap", &Capture::default(), &packets);
    let recs = replay_with_ok(&[], &[&path]);
    for client in ["198.51.100.9:40001", "198.51.100.9:40002"] {
        let found = sessions(&recs, client, "203.0.113.5:22");
        let reasons: Vec<&str> = found.iter().map(|r| r["end_reason"].as_str().unwrap()).collect();
        assert_eq!(reasons.len(), 2, "{client}: {}", pretty(&recs));
        assert_eq!(reasons[0], "idle", "{client}: {}", pretty(&recs));
    }
    assert_eq!(ssh_records(&recs).len(), 1, "{}", pretty(&recs));
}

/// When the table is full, established interactive sessions are evicted
/// last: a flood of 50 SYNs through a 3-session table evicts SYNs only,
/// and the idle shell's one record stays whole.
#[test]
fn established_interactive_sessions_are_evicted_last() {
    let mut packets = idle_ssh(60_000.0).packets;
    let first_key = packets.iter().map(|p| p.ts).nth(40).unwrap();
    let server: std::net::SocketAddr = "192.0.2.80:5001".parse().unwrap();
    for i in 0..50u16 {
        let mut c = Conversation::new(format!("192.0.2.9:{}", 30000 + i).parse().unwrap(), server, 1_000_000, 50_000);
        c.syn(first_key + u64::from(i) * 1_000_000);
        packets.extend(c.packets());
    }
    packets.sort_by_key(|p| p.ts);
    let dir = tempfile::tempdir().unwrap();
    let path = write_capture(dir.path(), "flood.pcap", &Capture::default(), &packets);
    let recs = replay_with_ok(&["--max-sessions", "3"], &[&path]);
    let ssh = ssh_records(&recs);
    assert_eq!(ssh.len(), 1, "{}", pretty(&recs));
    assert_eq!(ssh[0]["end_reason"], "fin", "{}", ssh[0]);
    let evicted = recs.iter().filter(|r| r["end_reason"] == "evicted").count();
    assert_eq!(evicted, 48, "{}", pretty(&recs));
}

/// Records without their order: sorted JSON lines.
fn sorted(recs: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = recs.iter().map(|r| r.to_string()).collect();
    v.sort();
    v
}

/// A directory of unrelated captures (the public ones, years apart and
/// overlapping) gives exactly the records of each file replayed alone, uids
/// included: a file that starts before the packet clock starts a new
/// timeline, and one that starts after every idle limit ran out too.
#[test]
fn a_directory_of_unrelated_captures_gives_each_files_records() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/public");
    let dir = tempfile::tempdir().unwrap();
    let mut alone = Vec::new();
    for sub in std::fs::read_dir(&root).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let f = f.unwrap().path();
            let copy = dir.path().join(f.file_name().unwrap());
            std::fs::copy(&f, &copy).unwrap();
            alone.extend(replay_with_ok(&[], &[&copy]));
        }
    }
    assert!(alone.len() >= 50, "{}", alone.len());
    let together = replay_with_ok(&[], &[dir.path()]);
    assert_eq!(sorted(&together), sorted(&alone));
}

/// A rotated series (`tcpdump -C` names: cap.pcap, cap.pcap1 … cap.pcap10,
/// whose name order is not their time order) read as a directory gives each
/// spanning session once, exactly as the unsplit capture does.
#[test]
fn a_rotated_series_joins_sessions_across_files() {
    let mut packets = idle_ssh(2_000.0).packets;
    let mut other =
        Conversation::new("192.0.2.9:41000".parse().unwrap(), "192.0.2.80:5001".parse().unwrap(), 1_000_000, 50_000);
    let t = other.handshake(packets[5].ts);
    for i in 0..40u64 {
        other.data(Dir::C2S, t + i * 300_000_000, 100);
        other.ack(Dir::S2C, t + i * 300_000_000 + 2_000_000);
    }
    other.close(t + 40 * 300_000_000);
    packets.extend(other.packets());
    packets.sort_by_key(|p| p.ts);
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = write_capture(whole_dir.path(), "whole.pcap", &Capture::default(), &packets);
    let want = replay_with_ok(&[], &[&whole]);
    assert_eq!(want.len(), 2, "{}", pretty(&want));

    let dir = tempfile::tempdir().unwrap();
    let chunk = packets.len().div_ceil(11);
    for (i, part) in packets.chunks(chunk).enumerate() {
        let name = if i == 0 { "cap.pcap".to_string() } else { format!("cap.pcap{i}") };
        write_capture(dir.path(), &name, &Capture::default(), part);
    }
    let got = replay_with_ok(&[], &[dir.path()]);
    // The same records but for `source`: the file that held the session's
    // first packet (both start in the first file, cap.pcap).
    let first = dir.path().join("cap.pcap").display().to_string();
    assert!(got.iter().all(|r| r["source"] == first.as_str()), "{}", pretty(&got));
    let without_source = |recs: &[Value]| {
        let recs: Vec<Value> = recs.iter().map(common::without_uid).collect();
        sorted(&recs)
    };
    assert_eq!(without_source(&got), without_source(&want), "{}", pretty(&got));
    assert_eq!(sorted_uids(&got), sorted_uids(&want));
}

fn sorted_uids(recs: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = recs.iter().map(|r| r["uid"].to_string()).collect();
    v.sort();
    v
}

/// The uid is FNV-1a of the documented canonical form (README, "What a
/// session is"): these were computed from the records' own fields by an
/// independent implementation (Python), and stay the same on every machine
/// and version.
#[test]
fn uids_are_pinned() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
    let (zeek, lab) = (root.join("public/zeek/ssh.pcap"), root.join("lab/direct-tr5-rs15/server-edge.pcap"));
    let recs = replay_with_ok(&[], &[&zeek, &lab]);
    let uid = |client: &str, server: &str, start: &str| {
        let r = sessions(&recs, client, server).into_iter().find(|r| r["start"] == start);
        r.map(|r| r["uid"].as_str().unwrap().to_string())
    };
    for (client, server, start, want) in [
        ("192.168.1.79:51880", "131.159.21.1:22", "2011-12-16T21:35:33.493287000Z", "Cn4jRE3L6Cj5"),
        ("10.0.0.18:40184", "128.2.6.88:41644", "2014-08-31T20:16:36.337184000Z", "CgLjoYwPllJL"),
        ("203.0.113.10:56594", "203.0.113.20:22", "2026-11-25T11:51:06.709137761Z", "Cp0RGHhTRT4K"),
    ] {
        assert_eq!(uid(client, server, start).as_deref(), Some(want), "{client} {start}: {}", pretty(&recs));
    }
}

/// The lab's Multipath TCP session (lab/mptcp.py: OpenSSH over two paths
/// between namespaces, MP_PRIO moving the typing to the join subflow and
/// back) and its truth.
fn mptcp_lab() -> (std::path::PathBuf, Value) {
    mptcp_set("ssh-two-subflows")
}

fn mptcp_set(name: &str) -> (std::path::PathBuf, Value) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/mptcp").join(name);
    let truth = serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap();
    (dir.join("ssh-mptcp.pcap"), truth)
}

/// Copy the records of a classic pcap file (Ethernet, IPv4) whose source or
/// destination address starts with `prefix`: one path of the capture.
fn one_path(src: &std::path::Path, dst: &std::path::Path, prefix: [u8; 3]) {
    let file = std::fs::read(src).unwrap();
    let recs = common::pcap::pcap_records(&file).unwrap();
    let mut out = file[..24].to_vec();
    for (at, len) in recs.data {
        let ip = &file[at + 14..at + len];
        if ip[12..15] == prefix || ip[16..19] == prefix {
            out.extend_from_slice(&file[at - 16..at + len]);
        }
    }
    std::fs::write(dst, out).unwrap();
}

/// One record per Multipath TCP connection, under its first subflow's tuple
/// and uid, listing both subflows with their own packets and round trips;
/// every key is counted whichever subflow carried it (the connection's data
/// sequence), the SSH metadata is kept, and the second path is no relay.
#[test]
fn a_multipath_tcp_connection_is_one_record_listing_its_subflows() {
    let (pcap, truth) = mptcp_lab();
    let recs = replay_with_ok(&[], &[&pcap]);
    assert_eq!(recs.len(), 1, "{}", pretty(&recs));
    let r = &recs[0];
    let subs = truth["subflows"].as_array().unwrap();
    assert_eq!((&r["client"], &r["server"]), (&subs[0]["client"], &subs[0]["server"]), "{r}");
    assert_eq!(r["uid"], "Ck9g3h9c7Y5H", "first subflow's canonical form (computed in Python)");
    assert_eq!(r["keystrokes"], truth["typed_keys"], "{r}");
    assert_eq!(r["keystrokes"], 21);
    assert!(r["ssh"]["client_version"].as_str().is_some_and(|v| v.contains("OpenSSH")), "{r}");
    assert_eq!(r["alerts"], serde_json::json!([]), "{r}");
    for leg in ["client_relay", "server_relay"] {
        assert_eq!(r[leg]["suspected"], false, "{r}");
    }
    let m = &r["mptcp"];
    assert_eq!((&m["role"], &m["parent_uid"]), (&Value::from("connection"), &Value::Null), "{m}");
    let got = m["subflows"].as_array().unwrap();
    assert_eq!(got.len(), subs.len(), "{m}");
    let mut total = 0;
    for (g, want) in got.iter().zip(subs) {
        assert_eq!((&g["client"], &g["server"]), (&want["client"], &want["server"]), "{m}");
        let packets = g["packets"]["client"].as_u64().unwrap() + g["packets"]["server"].as_u64().unwrap();
        assert_eq!(packets, want["packets"].as_u64().unwrap(), "{g}");
        assert!(g["client_rtt_ms"]["handshake"].as_f64().is_some(), "each path's own handshake: {g}");
        total += packets;
    }
    assert_eq!(r["packets"]["client"].as_u64().unwrap() + r["packets"]["server"].as_u64().unwrap(), total);
    assert!(r["end"].as_str() >= got[1]["end"].as_str(), "{r}");
}

/// A sensor that sees one path only: the first subflow is the connection
/// with the keys it carried; the join subflow alone is a join of no known
/// connection, with its keys and no relay or typist verdict.
#[test]
fn each_path_alone_tells_what_it_carried() {
    let (pcap, truth) = mptcp_lab();
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (dir.path().join("path1.pcap"), dir.path().join("path2.pcap"));
    one_path(&pcap, &p1, [192, 0, 2]);
    one_path(&pcap, &p2, [198, 51, 100]);
    let keys = &truth["keys_per_subflow"];

    let recs = replay_with_ok(&[], &[&p1]);
    assert_eq!(recs.len(), 1, "{}", pretty(&recs));
    let r = &recs[0];
    assert_eq!(r["keystrokes"], keys["1"], "{r}");
    assert_eq!(r["mptcp"]["role"], "connection");
    assert_eq!(r["mptcp"]["subflows"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["alerts"], serde_json::json!([]), "{r}");

    let recs = replay_with_ok(&[], &[&p2]);
    assert_eq!(recs.len(), 1, "{}", pretty(&recs));
    let r = &recs[0];
    assert_eq!(r["client"], truth["subflows"][1]["client"]);
    assert_eq!(r["keystrokes"], keys["2"], "{r}");
    assert_eq!((&r["mptcp"]["role"], &r["mptcp"]["parent_uid"]), (&Value::from("join"), &Value::Null), "{r}");
    for field in ["client_relay", "server_relay", "typist_rtt_ms", "max_distance_km"] {
        assert_eq!(r[field], Value::Null, "{field}: {r}");
    }
    assert_eq!(r["alerts"], serde_json::json!([]), "{r}");
}

/// An SSH session over Multipath TCP whose join subflow's path is 20 ms
/// longer each way (lab/mptcp.py --path2-delay-ms 20; the second command, 33
/// keys, typed on the join), seen at the server and at the client: one record
/// with every key, each path with its own round trip, the typist as near as
/// the nearest path (not the slow one's 40 ms), and no relay. At the client
/// edge the keys on the slow path echo 40 ms later than the first subflow's
/// round trip: that is the path, not a relay.
#[test]
fn a_slower_second_path_is_no_relay_and_no_distance() {
    let (pcap, truth) = mptcp_set("ssh-slow-join");
    assert_eq!(truth["path2_one_way_delay_ms"], 20);
    assert_eq!(truth["keys_per_subflow"]["2"], 33);
    let client_edge = pcap.with_file_name("client-edge.pcap");
    for (vantage, path, slow_leg) in [("server", &pcap, "client_rtt_ms"), ("client", &client_edge, "server_rtt_ms")] {
        let recs = replay_with_ok(&[], &[path]);
        assert_eq!(recs.len(), 1, "{vantage}: {}", pretty(&recs));
        let r = &recs[0];
        assert_eq!(r["keystrokes"], truth["typed_keys"], "{vantage}: {r}");
        let subs = r["mptcp"]["subflows"].as_array().unwrap();
        let floor = |i: usize| subs[i][slow_leg]["floor"].as_f64().unwrap();
        assert!(floor(0) < 1.0 && (39.0..42.0).contains(&floor(1)), "{vantage}: each path its own round trip: {r}");
        assert_eq!(r["alerts"], serde_json::json!([]), "{vantage}: {r}");
        for leg in ["client_relay", "server_relay"] {
            assert_eq!(r[leg]["suspected"], false, "{vantage}: {r}");
        }
        let typist = r["typist_rtt_ms"].as_f64().unwrap();
        assert!(typist < 1.0, "{vantage}: the typist is as near as the nearest path: {r}");
    }
    // At the client edge the slow path's echoes are a level 40 ms above the
    // first subflow's round trip: judged against the slowest path, no relay.
    let r = &replay_with_ok(&[], &[&client_edge])[0];
    assert!(r["echo_ms"]["p50"].as_f64().unwrap() > 39.0, "{r}");
    let evidence = r["server_relay"]["evidence"].to_string();
    assert!(evidence.contains("a slower subflow"), "{r}");
}

/// A SYN to port 22 is one session, so by default one record, as the
/// record contract says; `--skip-handshake-only` leaves sessions without
/// payload either way (a lone SYN, a handshake only) out of the records,
/// and `echoloc_sessions_handshake_only_total` counts them either way.
#[test]
fn handshake_only_sessions_are_counted_and_can_be_left_out() {
    let mut packets: Vec<Packet> = idle_ssh(60_000.0).packets;
    let server: std::net::SocketAddr = "203.0.113.5:22".parse().unwrap();
    let t0 = packets[0].ts;
    for i in 0..5u16 {
        let mut c =
            Conversation::new(format!("198.51.100.9:{}", 41000 + i).parse().unwrap(), server, 1_000_000, 50_000);
        if i % 2 == 0 {
            c.syn(t0 + u64::from(i) * 1_000_000);
        } else {
            c.handshake(t0 + u64::from(i) * 1_000_000);
        }
        packets.extend(c.packets());
    }
    packets.sort_by_key(|p| p.ts);
    let dir = tempfile::tempdir().unwrap();
    let path = write_capture(dir.path(), "scan.pcap", &Capture::default(), &packets);
    let all = replay_with_ok(&[], &[&path]);
    assert_eq!(all.len(), 6, "{}", pretty(&all));
    let kept = replay_with_ok(&["--skip-handshake-only"], &[&path]);
    assert_eq!(kept.len(), 1, "{}", pretty(&kept));
    assert_eq!(ssh_records(&kept).len(), 1);
    // Counted with metrics on, whether written or not.
    for flag in [None, Some("--skip-handshake-only")] {
        let port = common::netns::free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["--listen", listen.as_str()];
        args.extend(flag);
        let mut child = common::netns::serve_replay(args.iter().map(std::ffi::OsStr::new).chain([path.as_os_str()]));
        let text = common::netns::scrape_until(port, 20, |t| t.contains("echoloc_sessions_handshake_only_total{"));
        let series = common::netns::metric_series(&text, "echoloc_sessions_handshake_only_total");
        assert_eq!(series.values().sum::<u64>(), 5, "{flag:?}: {series:?}");
        let _ = child.0.kill();
    }
}

/// A flood of flows meets the table's bound, not the OOM killer: in a
/// cgroup limited to 128 MiB, 300,000 one-SYN flows (about 300 MB of
/// sessions at 1 KiB each) replay to the end, the bound lowered to fit the
/// limit (and said so), the oldest flows evicted.
#[test]
fn a_flood_in_a_memory_limited_cgroup_is_bounded() {
    if !common::netns::require_root("a_flood_in_a_memory_limited_cgroup_is_bounded") {
        return;
    }
    let mut packets = Vec::new();
    let server: std::net::SocketAddr = "192.0.2.80:22".parse().unwrap();
    for i in 0..300_000u32 {
        let client = std::net::SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 40000));
        let mut c = Conversation::new(client, server, 1_000_000, 50_000);
        c.syn(1_700_000_000_000_000_000 + u64::from(i) * 1000);
        packets.extend(c.packets());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_capture(dir.path(), "flood.pcap", &Capture::default(), &packets);
    drop(packets);
    replay_in_128_mib(&path);
}

/// The same for the costliest flood of all: 300,000 lone datagrams of
/// random bytes, three quarters to IPsec NAT-T's port 4500, where each is
/// taken for ESP in UDP and builds a tunnel's state and its inner-traffic
/// analysis (3.7 KiB a session; the bound is fitted at 4 KiB).
#[test]
fn a_datagram_flood_at_a_tunnel_port_in_a_memory_limited_cgroup_is_bounded() {
    if !common::netns::require_root("a_datagram_flood_at_a_tunnel_port_in_a_memory_limited_cgroup_is_bounded") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udp-flood.pcap");
    let none = common::flood::Pcap { linktype: 1, snaplen: 65_535, records: Vec::new() };
    let flood = common::flood::Flood {
        kind: common::flood::Kind::Udp,
        flows: 300_000,
        from: 1_700_000_000_000_000_000,
        to: 1_700_000_000_300_000_000,
        server: (std::net::Ipv4Addr::new(192, 0, 2, 80), 4500),
        seed: 4500,
    };
    write_merged(&path, &none, &flood);
    replay_in_128_mib(&path);
}

/// Replay `path` in a child cgroup limited to 128 MiB: it must run to the
/// end, its session bound lowered to fit the limit (and said so).
fn replay_in_128_mib(path: &std::path::Path) {
    let Some((cg, limit_file)) = memory_cgroup() else {
        eprintln!("SKIP: no writable memory cgroup");
        return;
    };
    let cg = cg.join(format!("echoloc-test-{}-{}", std::process::id(), path.file_stem().unwrap().to_string_lossy()));
    std::fs::create_dir_all(&cg).unwrap();
    std::fs::write(cg.join(limit_file), (128u64 << 20).to_string()).unwrap();
    let script = format!(
        "echo $$ > {} && exec {} replay --format json --no-progress --output /dev/null {}",
        cg.join("cgroup.procs").display(),
        common::bin(),
        path.display()
    );
    let out = std::process::Command::new("sh").args(["-c", &script]).output().unwrap();
    let _ = std::fs::remove_dir(&cg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?} (killed by the OOM killer?): {err}", out.status);
    assert!(err.contains("max_sessions lowered"), "{err}");
}

/// A memory cgroup this process may make children in, and its limit file:
/// v2 (memory.max) or v1 (memory.limit_in_bytes).
fn memory_cgroup() -> Option<(std::path::PathBuf, &'static str)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
        let path = path.trim_start_matches('/');
        if ctl.split(',').any(|c| c == "memory") {
            let p = std::path::Path::new("/sys/fs/cgroup/memory").join(path);
            if p.join("memory.limit_in_bytes").exists() {
                return Some((p, "memory.limit_in_bytes"));
            }
        } else if ctl.is_empty() {
            let p = std::path::Path::new("/sys/fs/cgroup").join(path);
            let controllers = std::fs::read_to_string(p.join("cgroup.subtree_control")).unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "memory") {
                return Some((p, "memory.max"));
            }
        }
    }
    None
}
