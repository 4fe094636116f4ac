//! Crafted captures with known truth, replayed through `echoloc replay
//! --format json`.
//!
//! Each test writes its capture(s) into a temporary directory (set
//! `ECHOLOC_KEEP_PCAPS=/some/dir` to keep copies for tshark), runs the
//! binary and compares every record with truth written out in numbers (see
//! `common/scenarios.rs` for the timelines). RTT tolerance: 0.1 ms.

mod common;

use common::conv::{Conversation, Dir};
use common::pcap::{
    self, ACK, Capture, Format, Link, Packet, SYN, T0, Tcp, Udp, at, ip_bytes_from, ms, pcap_record_offsets, rfc3339_ns,
};
use common::scenarios::{self, Leg, Scenario, Truth};
use common::{
    assert_record, assert_session, check, close, replay_ok, replay_with, session, sessions, without_uid, write_capture,
};
use serde_json::Value;
use std::path::Path;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Write a scenario as an Ethernet µs pcap, replay it, and check that there
/// is exactly one record, equal to the truth.
fn run_scenario(sc: &Scenario) -> Value {
    let dir = tmp();
    let path = write_capture(dir.path(), &format!("{}.pcap", sc.name), &Capture::default(), &sc.packets);
    let records = replay_ok(&[&path]);
    assert_eq!(records.len(), 1, "{}: expected one record, got:\n{}", sc.name, common::pretty(&records));
    assert_record(sc.name, &records[0], &sc.truth);
    records[0].clone()
}

/// Check ignoring the differences whose description starts with one of
/// `ignore`.
fn assert_record_ignoring(what: &str, rec: &Value, t: &Truth, ignore: &[&str]) {
    let errs: Vec<String> = check(rec, t).into_iter().filter(|e| !ignore.iter().any(|i| e.starts_with(i))).collect();
    assert!(errs.is_empty(), "{what}: record differs from the truth:\n  {}\nrecord: {rec}", errs.join("\n  "));
}

// ---------------------------------------------------------------------------
// The generator itself (no binary needed).

/// The packet and byte counts written by hand in each scenario agree with
/// what the generator produced, and sequence numbers do what the scenarios
/// say.
#[test]
fn generator_self_check() {
    for sc in scenarios::all() {
        let c = sc.truth.client.parse().unwrap();
        let s = sc.truth.server.parse().unwrap();
        let (cb, cp) = ip_bytes_from(&sc.packets, c);
        let (sb, sp) = ip_bytes_from(&sc.packets, s);
        assert_eq!((cp, sp), sc.truth.packets, "{}: packet counts", sc.name);
        assert_eq!((cb, sb), sc.truth.bytes, "{}: byte counts", sc.name);
        assert_eq!(sc.packets.first().unwrap().ts, sc.truth.start, "{}", sc.name);
        assert_eq!(sc.packets.last().unwrap().ts, sc.truth.end, "{}", sc.name);
        assert!(sc.packets.windows(2).all(|w| w[0].ts <= w[1].ts));
    }
    // Sequence wrap: client data starts at 0xFFFFFF81 and is acked with 0x49;
    // the client's handshake ACK acknowledges 0.
    let sc = scenarios::seq_wrap();
    let tcp_fields = |p: &Packet| {
        let ip = p.ip_bytes().unwrap();
        let t = &ip[20..];
        (u32::from_be_bytes(t[4..8].try_into().unwrap()), u32::from_be_bytes(t[8..12].try_into().unwrap()), t[13])
    };
    assert_eq!(tcp_fields(&sc.packets[2]), (0xFFFF_FF81, 0, ACK));
    assert_eq!(tcp_fields(&sc.packets[3]).0, 0xFFFF_FF81);
    assert_eq!(tcp_fields(&sc.packets[4]).1, 0x49);
    // Conversion helpers.
    assert_eq!(rfc3339_ns(T0), "2026-01-01T00:00:00.000000000Z");
    assert_eq!(rfc3339_ns(T0 + 86_400_000_000_000 * 59 + 1), "2026-03-01T00:00:00.000000001Z");
}

// ---------------------------------------------------------------------------
// RTT estimation.

/// (a) Handshake RTTs: client leg 20 ms, server leg 5 ms.
#[test]
fn a_handshake_rtt() {
    run_scenario(&scenarios::handshake());
}

/// (b) A lost segment, later segments SACKed, then retransmitted: three
/// exact samples from SACK right edges, none from the retransmission.
#[test]
fn b_loss_with_sack() {
    run_scenario(&scenarios::sack_loss());
}

/// (b, f) Loss with SACK where segments and SACK blocks cross the 2^32
/// wrap.
#[test]
fn b_loss_with_sack_across_wrap() {
    run_scenario(&scenarios::sack_loss_wrapped());
}

/// (c) Karn's rule: no sample from a retransmitted segment, nor from an ACK
/// of an original segment when a retransmission of the covered range
/// intervened.
#[test]
fn c_retransmission_karn() {
    run_scenario(&scenarios::karn());
}

/// (c) Karn's rule for server data (client leg).
#[test]
fn c_retransmission_karn_server_data() {
    run_scenario(&scenarios::karn_server_data());
}

/// (c) Karn's rule with 70 segments in flight: the retransmitted segment
/// must still taint the cumulative ACK that covers it.
#[test]
fn c_retransmission_karn_large_window() {
    run_scenario(&scenarios::karn_large_window());
}

/// (d) An ACK covering two segments: the sample is taken from the newer one.
#[test]
fn d_delayed_ack_two_segments() {
    run_scenario(&scenarios::delayed_ack());
}

/// (e) Retransmitted SYN: the handshake server leg is from the most recent
/// SYN.
#[test]
fn e_retransmitted_syn() {
    run_scenario(&scenarios::syn_retransmit());
}

/// (e) Retransmitted SYN/ACK: the client-leg handshake is from the most
/// recent SYN/ACK.
#[test]
fn e_retransmitted_synack() {
    run_scenario(&scenarios::synack_retransmit());
}

/// (f) A segment across the 2^32 sequence wrap, and an ACK number of 0.
#[test]
fn f_sequence_wrap() {
    run_scenario(&scenarios::seq_wrap());
}

/// (g) ACK piggy-backed on an echo after 30 ms of think time is not a
/// network RTT sample.
#[test]
fn g_piggybacked_ack_after_think_time() {
    run_scenario(&scenarios::piggyback_echo());
}

/// (h) TCP timestamps: only data-bearing segments with a new TSval start
/// samples.
#[test]
fn h_tcp_timestamps() {
    run_scenario(&scenarios::timestamps());
}

/// (i) IPv6 endpoints are written "[ip]:port".
#[test]
fn i_ipv6_formatting() {
    let rec = run_scenario(&scenarios::ipv6_ssh());
    assert_eq!(rec["client"], "[2001:db8::1]:40000");
    assert_eq!(rec["server"], "[2001:db8::2]:22");
}

// ---------------------------------------------------------------------------
// Capture formats.

/// (j) Header-only capture (snaplen 96): payloads are cut but byte counts
/// come from the IP total length, and RTTs are unaffected. Client bytes 1564,
/// server 2964 (see `scenarios::bulk`).
#[test]
fn j_header_only_snaplen_96() {
    let sc = scenarios::bulk();
    let dir = tmp();
    let full = write_capture(dir.path(), "bulk_full.pcap", &Capture::default(), &sc.packets);
    let cut = write_capture(dir.path(), "bulk_snap96.pcap", &Capture::default().snaplen(96), &sc.packets);
    // The file really is truncated: every record's captured length <= 96.
    let bytes = std::fs::read(&cut).unwrap();
    let recs = pcap::pcap_records(&bytes).expect("a classic pcap").data;
    assert_eq!(recs.len(), sc.packets.len());
    assert!(recs.iter().all(|&(_, captured)| captured <= 96));
    let r_full = replay_ok(&[&full]);
    let r_cut = replay_ok(&[&cut]);
    assert_eq!(r_cut.len(), 1, "{}", common::pretty(&r_cut));
    assert_record("snaplen 96", &r_cut[0], &sc.truth);
    assert_eq!(r_full.len(), 1, "{}", common::pretty(&r_full));
    assert_record("full", &r_full[0], &sc.truth);
    assert_eq!(without_uid(&r_full[0]), without_uid(&r_cut[0]));
}

fn all_links() -> Vec<(&'static str, Link)> {
    vec![
        ("ethernet", Link::ethernet()),
        ("vlan", Link::Ethernet { vlans: vec![100] }),
        ("qinq", Link::Ethernet { vlans: vec![200, 100] }),
        ("sll", Link::Sll),
        ("sll2", Link::Sll2),
        ("raw", Link::RawIp),
        ("null", Link::Null),
    ]
}

/// (k) Every link type decodes to the same single session (IPv4 and IPv6).
#[test]
fn k_link_types() {
    let dir = tmp();
    for sc in [scenarios::handshake(), scenarios::ipv6_ssh()] {
        let mut first: Option<Value> = None;
        for (name, link) in all_links() {
            let path = write_capture(
                dir.path(),
                &format!("{}_{name}.pcap", sc.name),
                &Capture::new(link, Format::PcapMicro),
                &sc.packets,
            );
            let recs = replay_ok(&[&path]);
            assert_eq!(recs.len(), 1, "{} over {name}: expected one record, got\n{}", sc.name, common::pretty(&recs));
            assert_record(&format!("{} over {name}", sc.name), &recs[0], &sc.truth);
            match &first {
                None => first = Some(without_uid(&recs[0])),
                Some(f) => assert_eq!(&without_uid(&recs[0]), f, "{} over {name} differs from ethernet", sc.name),
            }
        }
    }
}

/// (l) pcapng and nanosecond pcap give the same record as microsecond pcap;
/// with sub-microsecond timestamps the ns formats keep all nine digits.
#[test]
fn l_pcapng_and_nanosecond_pcap() {
    let dir = tmp();
    let sc = scenarios::handshake();
    let mut recs = Vec::new();
    for (name, fmt) in [("us.pcap", Format::PcapMicro), ("ns.pcap", Format::PcapNano), ("ng.pcapng", Format::PcapNg)] {
        let path =
            write_capture(dir.path(), &format!("handshake_{name}"), &Capture::new(Link::ethernet(), fmt), &sc.packets);
        let r = replay_ok(&[&path]);
        assert_eq!(r.len(), 1, "{name}: {}", common::pretty(&r));
        assert_record(name, &r[0], &sc.truth);
        recs.push(without_uid(&r[0]));
    }
    assert_eq!(recs[0], recs[1], "pcap ns differs from pcap µs");
    assert_eq!(recs[0], recs[2], "pcapng differs from pcap µs");

    // Shift every packet by 123 ns: start 2026-01-01T00:00:00.000000123Z.
    let shifted: Vec<Packet> = sc
        .packets
        .iter()
        .cloned()
        .map(|mut p| {
            p.ts += 123;
            p
        })
        .collect();
    let mut t = sc.truth.clone();
    t.start += 123;
    t.end += 123;
    for (name, fmt) in [("ns.pcap", Format::PcapNano), ("ng.pcapng", Format::PcapNg)] {
        let path =
            write_capture(dir.path(), &format!("shifted_{name}"), &Capture::new(Link::ethernet(), fmt), &shifted);
        let r = replay_ok(&[&path]);
        assert_eq!(r.len(), 1, "{name}: {}", common::pretty(&r));
        assert_eq!(r[0]["start"], "2026-01-01T00:00:00.000000123Z");
        assert_eq!(r[0]["end"], "2026-01-01T00:00:00.126000123Z");
        assert_record(&format!("shifted {name}"), &r[0], &t);
    }
}

// ---------------------------------------------------------------------------
// Bad input.

/// The handshake scenario from client port `port`, starting at `t0`, with
/// one exchange each way and closed with FINs at 200 ms (FIN, FIN 205, ACK
/// 225): its packets and truth.
fn closed_session(port: u16, t0: u64) -> (Vec<Packet>, Truth) {
    let client = format!("192.0.2.1:{port}");
    let mut cv = Conversation::new(client.parse().unwrap(), scenarios::server_addr(), ms(10.0), ms(2.5));
    cv.handshake(t0);
    cv.data(Dir::C2S, t0 + ms(100.0), 100);
    cv.ack(Dir::S2C, t0 + ms(105.0));
    cv.data(Dir::S2C, t0 + ms(106.0), 1000);
    cv.ack(Dir::C2S, t0 + ms(126.0));
    cv.close(t0 + ms(200.0));
    let mut t = scenarios::handshake().truth;
    t.client = client;
    t.start = t0;
    t.end = t0 + ms(225.0);
    t.end_reason = "fin";
    t.packets = (6, 4);
    t.bytes = (264 + 40 + 40, 1124 + 40);
    (cv.packets(), t)
}

/// Session 1 (client port 40000): [`closed_session`] at 0 ms. Session 2
/// (client port 40001) from 1000 ms; the caller cuts the file inside its
/// server data packet at 1106 ms.
fn two_sessions() -> (Vec<Packet>, Truth, Truth, usize) {
    let (mut packets, t1) = closed_session(40000, at(0.0));

    let mut cv2 = Conversation::new("192.0.2.1:40001".parse().unwrap(), scenarios::server_addr(), ms(10.0), ms(2.5));
    cv2.handshake(at(1000.0));
    cv2.data(Dir::C2S, at(1100.0), 100);
    cv2.ack(Dir::S2C, at(1105.0));
    cv2.data(Dir::S2C, at(1106.0), 1000); // the file is cut in here
    cv2.ack(Dir::C2S, at(1126.0));
    let t2 = Truth {
        client: "192.0.2.1:40001".into(),
        server: "192.0.2.2:5001".into(),
        proto: "tcp",
        transport: "tcp",
        start: at(1000.0),
        end: at(1105.0),
        end_reason: "end_of_input",
        packets: (3, 2),
        bytes: (44 + 40 + 140, 44 + 40),
        client_leg: Some(Leg { rtt_ms: 20.0, samples: 1, handshake_ms: Some(20.0) }),
        server_leg: Some(Leg { rtt_ms: 5.0, samples: 2, handshake_ms: Some(5.0) }),
        retrans: Some((0, 0)),
    };
    let cut_index = packets.len() + 5; // SYN, SYN/ACK, ACK, data, ACK, [data]
    packets.extend(cv2.packets());
    assert_eq!(packets[cut_index].ts, at(1106.0));
    (packets, t1, t2, cut_index)
}

fn assert_one_line_error_naming(stderr: &str, path: &Path) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected a one-line error on stderr, got:\n{stderr}");
    assert!(
        lines[0].contains(&path.display().to_string()),
        "error does not name the file {}: {}",
        path.display(),
        lines[0]
    );
}

/// (m) A file cut mid-record: exit 2, a one-line error naming the file, and
/// the records of sessions read before the fault are still written (session
/// 1 ended by FIN, session 2 with the packets before the cut).
#[test]
fn m_truncated_file() {
    let dir = tmp();
    let (packets, t1, t2, cut_index) = two_sessions();
    let full = Capture::default().bytes(&packets);
    let offs = pcap_record_offsets(&full);
    assert_eq!(offs.len(), packets.len());
    // Cut inside the record's data, and inside its record header.
    for (name, cut_at) in [("cut_in_data.pcap", offs[cut_index] + 16 + 30), ("cut_in_header.pcap", offs[cut_index] + 7)]
    {
        let path = dir.path().join(name);
        std::fs::write(&path, &full[..cut_at]).unwrap();
        common::keep_copy(&path);
        let r = replay_with(&[], &[&path]);
        assert_eq!(r.code, Some(2), "{name}: want exit 2, got {:?}; stderr: {}", r.code, r.stderr);
        assert_one_line_error_naming(&r.stderr, &path);
        assert_eq!(r.records.len(), 2, "{name}: want the two sessions read before the fault:\n{}", r.stdout);
        // Session 1 closed with FINs: its RTT values are exact but whether
        // FIN/ACK pairs give samples is left to the implementation.
        assert_record_ignoring(
            name,
            session(&r.records, &t1.client, &t1.server),
            &t1,
            &["client_rtt_ms.samples", "server_rtt_ms.samples"],
        );
        assert_session(name, &r.records, &t2);
    }
}

/// (m) A file that is not a capture at all, an empty file, and a file cut
/// inside the global header: exit 2 with a one-line error naming the file.
#[test]
fn m_not_a_pcap() {
    let dir = tmp();
    let header_only = &Capture::default().bytes(&scenarios::handshake().packets)[..10];
    for (name, content) in [
        ("notes.txt", &b"this is not a capture file\n"[..]),
        ("empty.pcap", &b""[..]),
        ("cut_global_header.pcap", header_only),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let r = replay_with(&[], &[&path]);
        assert_eq!(r.code, Some(2), "{name}: want exit 2, got {:?}; stderr: {}", r.code, r.stderr);
        assert_one_line_error_naming(&r.stderr, &path);
        assert!(r.records.is_empty(), "{name}: {}", r.stdout);
    }
}

/// "-" reads the capture from standard input (`tcpdump -w - | echoloc
/// replay -`), with the same records as from the file but their `source`
/// (`-`).
#[test]
fn m_standard_input_as_dash() {
    let dir = tmp();
    let (packets, t1, t2, _) = two_sessions();
    let path = dir.path().join("stdin.pcap");
    std::fs::write(&path, Capture::default().bytes(&packets)).unwrap();
    let from_file = replay_ok(&[&path]);
    let out = std::process::Command::new(common::bin())
        .args(["replay", "--format", "json", "-"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .expect("spawning echoloc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let from_stdin = common::parse_jsonl(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(from_stdin.len(), 2, "{stderr}");
    assert!(from_stdin.iter().all(|r| r["source"] == "-"), "{}", common::pretty(&from_stdin));
    let without_source = |recs: &[Value]| {
        let mut recs = recs.to_vec();
        recs.iter_mut().for_each(|r| _ = r.as_object_mut().unwrap().remove("source"));
        recs
    };
    assert_eq!(without_source(&from_stdin), without_source(&from_file));
    // Session 1 as in `m_truncated_file` (its truth holds whole; session 2's
    // is for the packets before that test's cut).
    let rec = session(&from_stdin, &t1.client, &t1.server);
    assert_record_ignoring("stdin", rec, &t1, &["client_rtt_ms.samples", "server_rtt_ms.samples"]);
    session(&from_stdin, &t2.client, &t2.server);
}

/// Frame an IP packet in Ethernet and return the frame.
fn eth(ip: &[u8]) -> Vec<u8> {
    Link::ethernet().encap(ip)
}

/// (n) Malformed packets on the same addresses and ports as two good
/// sessions are skipped without a panic; the good sessions are exactly as
/// without them, and no other record appears.
#[test]
fn n_malformed_packets() {
    let a = scenarios::handshake(); // 192.0.2.1:40000 -> 192.0.2.2:5001
    let b = scenarios::ipv6_ssh(); // [2001:db8::1]:40000 -> [2001:db8::2]:22
    let c = scenarios::client_addr();
    let s = scenarios::server_addr();
    let good = {
        let mut t = Tcp::new(c, s, ACK);
        t.seq = 1101;
        t.ack = 5001;
        t.ip()
    };
    let good6 = {
        let mut t = Tcp::new("[2001:db8::1]:40000".parse().unwrap(), "[2001:db8::2]:22".parse().unwrap(), ACK);
        t.seq = 1001;
        t.ack = 5001;
        t.ip()
    };
    let mut bad: Vec<(&str, Vec<u8>)> = Vec::new();
    let mutate = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut ip = good.clone();
        f(&mut ip);
        ip
    };
    bad.push((
        "IPv4 IHL 15 (60 bytes) > total length",
        mutate(&|ip| {
            ip[0] = 0x4f;
            common::pcap::set_ipv4_checksum(ip)
        }),
    ));
    bad.push((
        "IPv4 IHL 4 (< 5)",
        mutate(&|ip| {
            ip[0] = 0x44;
        }),
    ));
    bad.push((
        "IPv4 total length 1500 > frame",
        mutate(&|ip| {
            ip[2..4].copy_from_slice(&1500u16.to_be_bytes());
            common::pcap::set_ipv4_checksum(ip)
        }),
    ));
    bad.push((
        "IPv4 total length 30: TCP header cut",
        mutate(&|ip| {
            ip[2..4].copy_from_slice(&30u16.to_be_bytes());
            ip.truncate(30);
            common::pcap::set_ipv4_checksum(ip)
        }),
    ));
    bad.push((
        "IPv4 total length 10 < header",
        mutate(&|ip| {
            ip[2..4].copy_from_slice(&10u16.to_be_bytes());
            common::pcap::set_ipv4_checksum(ip)
        }),
    ));
    bad.push((
        "TCP data offset 3 (< 5)",
        mutate(&|ip| {
            ip[20 + 12] = 0x30;
        }),
    ));
    bad.push((
        "TCP data offset 15 > segment",
        mutate(&|ip| {
            ip[20 + 12] = 0xf0;
            ip.truncate(40);
            ip[2..4].copy_from_slice(&40u16.to_be_bytes());
            common::pcap::set_ipv4_checksum(ip)
        }),
    ));
    bad.push((
        "IP version 5",
        mutate(&|ip| {
            ip[0] = 0x55;
        }),
    ));
    bad.push((
        "IPv4 non-first fragment claiming TCP",
        mutate(&|ip| {
            ip[6..8].copy_from_slice(&185u16.to_be_bytes());
            common::pcap::set_ipv4_checksum(ip)
        }),
    ));
    bad.push(("IPv6 payload length 1000 > frame", {
        let mut ip = good6.clone();
        ip[4..6].copy_from_slice(&1000u16.to_be_bytes());
        ip
    }));
    bad.push(("IPv6 TCP header cut at 10 bytes", {
        let mut ip = good6.clone();
        ip.truncate(50);
        ip[4..6].copy_from_slice(&10u16.to_be_bytes());
        ip
    }));
    bad.push(("UDP length 4 (< 8)", {
        let mut ip = Udp::new(c, "192.0.2.2:53".parse().unwrap(), vec![0; 12]).ip();
        ip[24..26].copy_from_slice(&4u16.to_be_bytes());
        ip
    }));

    // Link-layer garbage.
    let mut frames: Vec<(&str, Vec<u8>)> = bad.iter().map(|(n, ip)| (*n, eth(ip))).collect();
    frames.push(("Ethernet frame of 10 bytes", vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0]));
    frames.push(("empty frame", Vec::new()));
    frames.push(("802.1Q tag cut short", {
        let mut f = eth(&good)[..12].to_vec();
        f.extend_from_slice(&[0x81, 0x00, 0x00]);
        f
    }));
    frames.push(("Ethernet header claiming IPv4 and 3 bytes of it", {
        let mut f = eth(&good)[..14].to_vec();
        f.extend_from_slice(&[0x45, 0, 0]);
        f
    }));

    // One capture per malformed frame (so a failure names the frame), then
    // one with all of them.
    let dir = tmp();
    let mut failures = Vec::new();
    let mut cases: Vec<(String, Vec<Packet>)> =
        frames.iter().map(|(name, f)| (name.to_string(), vec![Packet::raw(at(30.0), f.clone())])).collect();
    cases.push((
        "all of them".into(),
        frames.iter().enumerate().map(|(i, (_, f))| Packet::raw(at(30.0) + ms(1.0) * i as u64, f.clone())).collect(),
    ));
    let mut paths = Vec::new();
    for (i, (name, extra)) in cases.into_iter().enumerate() {
        let mut packets: Vec<Packet> = a.packets.clone();
        packets.extend(b.packets.clone());
        packets.extend(extra);
        let packets = pcap::sorted(packets);
        let path = write_capture(dir.path(), &format!("malformed_{i}.pcap"), &Capture::default(), &packets);
        paths.push(path.clone());
        let r = replay_with(&[], &[&path]);
        let mut errs = Vec::new();
        if r.code != Some(0) {
            errs.push(format!("exit {:?}, stderr {}", r.code, r.stderr.trim()));
        }
        if r.records.len() != 2 {
            errs.push(format!("{} records, want 2", r.records.len()));
        }
        for t in [&a.truth, &b.truth] {
            let found = sessions(&r.records, &t.client, &t.server);
            match found.as_slice() {
                [rec] => errs.extend(check(rec, t)),
                _ => errs.push(format!("{} records for {}", found.len(), t.client)),
            }
        }
        if !errs.is_empty() {
            failures.push(format!("{name}:\n    {}\n    output:\n{}", errs.join("\n    "), r.stdout));
        }
    }
    assert!(failures.is_empty(), "malformed frames not skipped cleanly:\n{}", failures.join("\n"));

    // Counted by reason: `echoloc_decode_errors_total` once each capture is
    // read (both sessions ended), for each frame alone and for all of them.
    let reasons = [
        "truncated_ip", // IHL 15 > total length: the header runs past the packet
        "bad_ip_header",
        "bad_ip_length",
        "truncated_tcp",
        "bad_ip_length",
        "bad_tcp_header",
        "truncated_tcp", // data offset 15: options run past the segment
        "bad_ip_header",
        "fragment",
        "bad_ip_length",
        "truncated_tcp",
        "bad_udp_length",
        "truncated_link",
        "truncated_link",
        "truncated_link",
        "truncated_ip",
    ];
    assert_eq!(reasons.len(), frames.len());
    let counted = |want: &[&str]| {
        let mut m = std::collections::BTreeMap::new();
        for r in want {
            *m.entry(format!("reason=\"{r}\"")).or_insert(0) += 1;
        }
        m
    };
    for (i, path) in paths.iter().enumerate() {
        let (what, want) = match frames.get(i) {
            Some((name, _)) => (*name, counted(&reasons[i..=i])),
            None => ("all of them", counted(&reasons)),
        };
        let port = common::netns::free_port();
        let _echoloc = common::netns::serve_replay([
            "--listen".to_string(),
            format!("127.0.0.1:{port}"),
            path.display().to_string(),
        ]);
        let text = common::netns::scrape_until(port, 20, |t| {
            common::netns::metric_sum(t, "echoloc_sessions_ended_total") == 2
        });
        assert_eq!(common::netns::metric_series(&text, "echoloc_decode_errors_total"), want, "{what}");
    }
}

// ---------------------------------------------------------------------------
// Session boundaries.

/// (o) FIN and RST end sessions with end_reason; a second connection on the
/// same 4-tuple after FIN is a second record.
///
/// ```text
/// 40000 #1:  handshake 0, data 100 / ACK 105, FIN 200, FIN 205, ACK 225  -> fin
/// 40000 #2:  handshake 1000, data 1100 / ACK 1105, server RST 1200       -> rst
/// 40002:     handshake 0, client RST 50                                  -> rst
/// ```
#[test]
fn o_fin_rst_and_reused_tuple() {
    let mut s1 = scenarios::conv();
    s1.handshake(at(0.0));
    s1.data(Dir::C2S, at(100.0), 100);
    s1.ack(Dir::S2C, at(105.0));
    s1.close(at(200.0));

    let mut s2 = scenarios::conv().isns(777_000, 888_000);
    s2.handshake(at(1000.0));
    s2.data(Dir::C2S, at(1100.0), 100);
    s2.ack(Dir::S2C, at(1105.0));
    s2.rst(Dir::S2C, at(1200.0));

    let mut s3 = Conversation::new("192.0.2.1:40002".parse().unwrap(), scenarios::server_addr(), ms(10.0), ms(2.5));
    s3.handshake(at(0.0));
    s3.rst(Dir::C2S, at(50.0));

    let mut packets = s1.packets();
    packets.extend(s2.packets());
    packets.extend(s3.packets());
    let packets = pcap::sorted(packets);
    let dir = tmp();
    let path = write_capture(dir.path(), "fin_rst.pcap", &Capture::default(), &packets);
    let recs = replay_ok(&[&path]);
    assert_eq!(recs.len(), 3, "{}", common::pretty(&recs));

    let leg = |rtt_ms, samples| Some(Leg { rtt_ms, samples, handshake_ms: Some(rtt_ms) });
    let t1 = Truth {
        client: "192.0.2.1:40000".into(),
        server: "192.0.2.2:5001".into(),
        proto: "tcp",
        transport: "tcp",
        start: at(0.0),
        end: at(225.0),
        end_reason: "fin",
        packets: (5, 3),
        // SYN 44, ACK 40, data 140, FIN 40, ACK 40 / SYN-ACK 44, ACK 40, FIN 40
        bytes: (304, 124),
        client_leg: leg(20.0, 1),
        server_leg: leg(5.0, 2),
        retrans: Some((0, 0)),
    };
    let t2 = Truth {
        start: at(1000.0),
        end: at(1200.0),
        end_reason: "rst",
        packets: (3, 3),
        bytes: (224, 124),
        ..t1.clone()
    };
    let t3 = Truth {
        client: "192.0.2.1:40002".into(),
        start: at(0.0),
        end: at(50.0),
        end_reason: "rst",
        packets: (3, 1),
        bytes: (124, 44),
        client_leg: leg(20.0, 1),
        server_leg: leg(5.0, 1),
        ..t1.clone()
    };
    let mut same = sessions(&recs, &t1.client, &t1.server);
    assert_eq!(same.len(), 2, "{}", common::pretty(&recs));
    same.sort_by_key(|r| r["start"].as_str().unwrap_or("").to_string());
    // FIN and its ACK may or may not give samples; values are exact anyway.
    let ignore = ["client_rtt_ms.samples", "server_rtt_ms.samples"];
    assert_record_ignoring("first connection (FIN)", same[0], &t1, &ignore);
    assert_record("second connection (RST)", same[1], &t2);
    assert_record("client RST", session(&recs, &t3.client, &t3.server), &t3);
}

/// (o) Packets that straggle after a session ended do not make a second
/// record: the client's last ACK of the FIN exchange is lost after the
/// sensor, so the server sends its FIN again 200 ms later and the client
/// acks it again (a FIN retransmission and a duplicate ACK seen after the
/// close). One record, end_reason fin (packets: client 5 + 1, server 3 + 1
/// when the stragglers are counted, or 5 and 3 when ignored).
#[test]
fn o_fin_retransmission_after_close_is_not_a_new_session() {
    let mut cv = scenarios::conv();
    cv.handshake(at(0.0));
    cv.data(Dir::C2S, at(100.0), 100);
    cv.ack(Dir::S2C, at(105.0));
    let f = cv.fin(Dir::C2S, at(200.0));
    let f2 = cv.fin(Dir::S2C, at(205.0));
    let last = cv.ack(Dir::C2S, at(225.0));
    assert_eq!(f.t + ms(5.0), f2.t);
    let mut packets = cv.packets();
    // The final ACK never reached the server: FIN again at 425, ACK at 445.
    let mut fin_again = packets[packets.len() - 2].clone();
    fin_again.ts = at(425.0);
    let mut ack_again = packets[packets.len() - 1].clone();
    assert_eq!(ack_again.ts, last.t);
    ack_again.ts = at(445.0);
    packets.push(fin_again);
    packets.push(ack_again);
    let dir = tmp();
    let path = write_capture(dir.path(), "fin_again.pcap", &Capture::default(), &packets);
    let recs = replay_ok(&[&path]);
    assert_eq!(recs.len(), 1, "stray FIN/ACK after the close made extra records:\n{}", common::pretty(&recs));
    let rec = &recs[0];
    assert_eq!(rec["client"], "192.0.2.1:40000");
    assert_eq!(rec["end_reason"], "fin");
    let counted = (rec["packets"]["client"].as_u64(), rec["packets"]["server"].as_u64());
    assert!(counted == (Some(5), Some(3)) || counted == (Some(6), Some(4)), "packets {counted:?}: {rec}");
}

/// (p) 200,000 distinct flows (SYN and SYN/ACK each, 10 µs apart) with
/// `--max-sessions 1000` and `--output FILE`: finishes, writes one record per
/// flow, most of them ended by eviction, and never splits a flow.
#[test]
fn p_flood_with_max_sessions() {
    const FLOWS: u32 = 200_000;
    let server: std::net::SocketAddr = "203.0.113.10:5001".parse().unwrap();
    let mut packets = Vec::with_capacity(2 * FLOWS as usize);
    for i in 0..FLOWS {
        let ip = std::net::Ipv4Addr::new(198, 51, 100, 1 + (i / 25_000) as u8);
        let client = std::net::SocketAddr::new(ip.into(), 30_000 + (i % 25_000) as u16);
        let t = T0 + u64::from(i) * 10_000;
        let mut syn = Tcp::new(client, server, SYN);
        syn.seq = i.wrapping_mul(2_654_435_761);
        packets.push(syn.at(t));
        let mut sa = Tcp::new(server, client, SYN | ACK);
        sa.seq = i;
        sa.ack = syn.seq.wrapping_add(1);
        packets.push(sa.at(t + 5_000));
    }
    let dir = tmp();
    let path = dir.path().join("flood.pcap");
    Capture::default().write(&path, &packets);
    drop(packets);
    let out = dir.path().join("flood.jsonl");
    let started = std::time::Instant::now();
    let r = replay_with(&["--max-sessions", "1000", "--output", out.to_str().unwrap()], &[&path]);
    let took = started.elapsed();
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    let text = std::fs::read_to_string(&out).expect("reading --output file");
    let recs = common::parse_jsonl(&text);
    let mut by_reason = std::collections::BTreeMap::<String, u64>::new();
    for rec in &recs {
        *by_reason.entry(rec["end_reason"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    // Peak memory of the children waited for so far (all echoloc runs).
    let maxrss_kib = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru.ru_maxrss
    };
    println!(
        "flood: {} records in {took:?}, end reasons {by_reason:?}, children max RSS {} MiB",
        recs.len(),
        maxrss_kib / 1024
    );
    assert_eq!(recs.len() as u32, FLOWS, "one record per flow");
    let evicted = by_reason.get("evicted").copied().unwrap_or(0);
    let at_end = by_reason.get("end_of_input").copied().unwrap_or(0);
    assert!(evicted >= 190_000, "want most flows evicted, got {by_reason:?}");
    assert!(at_end <= 1000, "at most 1000 sessions left at the end: {by_reason:?}");
    let split = recs.iter().filter(|r| r["packets"]["client"] != 1 || r["packets"]["server"] != 1).count();
    assert_eq!(split, 0, "flows whose SYN and SYN/ACK landed in different records");
    assert!(maxrss_kib < 1024 * 1024, "children peak RSS {maxrss_kib} KiB >= 1 GiB");

    // The counters in /metrics agree with the records.
    let port = common::netns::free_port();
    let listen = format!("127.0.0.1:{port}");
    let _echoloc = common::netns::serve_replay(["--max-sessions", "1000", "--listen", &listen, path.to_str().unwrap()]);
    // Every session ended, and the last flush done: it updates the open
    // sessions' gauge last, so a scrape in the middle of it waits.
    let all_ended = |t: &str| {
        common::netns::metric_sum(t, "echoloc_sessions_ended_total") == u64::from(FLOWS)
            && t.lines().any(|l| l == "echoloc_sessions_active 0")
    };
    let text = common::netns::scrape_until(port, 120, all_ended);
    let sum = |name| common::netns::metric_sum(&text, name);
    assert_eq!(sum("echoloc_sessions_evicted_total"), evicted);
    assert_eq!(sum("echoloc_sessions_opened_total"), u64::from(FLOWS));
    assert_eq!(sum("echoloc_packets_total"), 2 * u64::from(FLOWS));
    assert_eq!(sum("echoloc_sessions_active"), 0);
    let ended = common::netns::metric_series(&text, "echoloc_sessions_ended_total");
    let ended_evicted: u64 = ended.iter().filter(|(l, _)| l.contains("reason=\"evicted\"")).map(|(_, v)| v).sum();
    assert_eq!(ended_evicted, evicted, "{ended:?}");
}

/// (q) Mid-stream TCP (no SYN seen), server port 22, and the server speaks
/// first: the client is still the non-22 side. No handshake figures.
///
/// ```text
///   0   S 52 B     20  C ACK   -> client leg 20 ms
///   100 C 48 B     105 S ACK   -> server leg 5 ms
///   110 S 52 B     130 C ACK   -> client leg 20 ms
/// ```
#[test]
fn q_mid_stream_port_22() {
    let mut cv =
        Conversation::new("192.0.2.1:40000".parse().unwrap(), "192.0.2.2:22".parse().unwrap(), ms(10.0), ms(2.5))
            .established();
    cv.data(Dir::S2C, at(0.0), 52);
    cv.ack(Dir::C2S, at(20.0));
    cv.data(Dir::C2S, at(100.0), 48);
    cv.ack(Dir::S2C, at(105.0));
    cv.data(Dir::S2C, at(110.0), 52);
    cv.ack(Dir::C2S, at(130.0));
    let packets = cv.packets();
    let dir = tmp();
    let path = write_capture(dir.path(), "midstream22.pcap", &Capture::default(), &packets);
    let recs = replay_ok(&[&path]);
    assert_eq!(recs.len(), 1, "{}", common::pretty(&recs));
    let t = Truth {
        client: "192.0.2.1:40000".into(),
        server: "192.0.2.2:22".into(),
        proto: "ssh",
        transport: "tcp",
        start: at(0.0),
        end: at(130.0),
        end_reason: "end_of_input",
        packets: (3, 3),
        bytes: (40 + 88 + 40, 92 + 40 + 92),
        client_leg: Some(Leg { rtt_ms: 20.0, samples: 2, handshake_ms: None }),
        server_leg: Some(Leg { rtt_ms: 5.0, samples: 1, handshake_ms: None }),
        retrans: Some((0, 0)),
    };
    // The protocol of a mid-stream session without banner is not checked.
    assert_record_ignoring("mid-stream", &recs[0], &t, &["proto"]);
}

// ---------------------------------------------------------------------------
// Extras.

/// UDP: the first sender is the client; no RTT and no retransmission
/// figures (null); counts from IP lengths. 3 datagrams of 100 B from
/// 192.0.2.1:51000, 2 of 200 B from 192.0.2.2:6000.
#[test]
fn udp_session() {
    let c = "192.0.2.1:51000".parse().unwrap();
    let s = "192.0.2.2:6000".parse().unwrap();
    let req = |i: u8| {
        let mut p = b"GET /status ".to_vec();
        p.resize(100, b'a' + i);
        p
    };
    let resp = |i: u8| {
        let mut p = b"STATUS ok ".to_vec();
        p.resize(200, b'k' + i);
        p
    };
    let packets = vec![
        Udp::new(c, s, req(0)).at(at(0.0)),
        Udp::new(s, c, resp(0)).at(at(5.0)),
        Udp::new(c, s, req(1)).at(at(100.0)),
        Udp::new(s, c, resp(1)).at(at(105.0)),
        Udp::new(c, s, req(2)).at(at(200.0)),
    ];
    let dir = tmp();
    let path = write_capture(dir.path(), "udp.pcap", &Capture::default(), &packets);
    let recs = replay_ok(&[&path]);
    assert_eq!(recs.len(), 1, "{}", common::pretty(&recs));
    let t = Truth {
        client: "192.0.2.1:51000".into(),
        server: "192.0.2.2:6000".into(),
        proto: "udp",
        transport: "udp",
        start: at(0.0),
        end: at(200.0),
        end_reason: "end_of_input",
        packets: (3, 2),
        bytes: (3 * 128, 2 * 228),
        client_leg: None,
        server_leg: None,
        retrans: None,
    };
    assert_record("udp", &recs[0], &t);
    assert!(recs[0]["retransmissions"].is_null(), "UDP retransmissions: {}", recs[0]["retransmissions"]);
}

/// A DNS query and answer whose transaction id starts with byte 0x08 (as
/// about 1 in 50 random ids do for one of the OpenVPN hard-reset opcodes):
/// plain "udp", not "openvpn".
#[test]
fn udp_dns_is_not_openvpn() {
    let c = "192.0.2.1:53124".parse().unwrap();
    let s = "192.0.2.53:53".parse().unwrap();
    // Query: id 0x0812, RD, one question "www.example.com" A IN.
    let mut q = vec![0x08, 0x12, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["www", "example", "com"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    // Answer: same id, QR RD RA, one answer 192.0.2.80 (TTL 300).
    let mut a = q.clone();
    a[2] = 0x81;
    a[3] = 0x80;
    a[7] = 1;
    a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 192, 0, 2, 80]);
    let packets = vec![Udp::new(c, s, q.clone()).at(at(0.0)), Udp::new(s, c, a.clone()).at(at(12.0))];
    let dir = tmp();
    let path = write_capture(dir.path(), "dns.pcap", &Capture::default(), &packets);
    let recs = replay_ok(&[&path]);
    assert_eq!(recs.len(), 1, "{}", common::pretty(&recs));
    let t = Truth {
        client: "192.0.2.1:53124".into(),
        server: "192.0.2.53:53".into(),
        proto: "udp",
        transport: "udp",
        start: at(0.0),
        end: at(12.0),
        end_reason: "end_of_input",
        packets: (1, 1),
        bytes: (28 + q.len() as u64, 28 + a.len() as u64),
        client_leg: None,
        server_leg: None,
        retrans: None,
    };
    assert_record("dns", &recs[0], &t);
}

/// A capture merged from several (two taps merged unsorted, files joined in
/// the wrong order): session A, and B interleaved with it up to 1 ms out of
/// order; then C, an hour before them (time jumps back); then D, a day
/// later. Every session gets its own exact record, ended by its FINs.
#[test]
fn r_merged_captures_with_time_jumps_and_reordering() {
    let hour = 3_600_000.0;
    let (a, ta) = closed_session(40000, at(0.0));
    let (b, tb) = closed_session(40001, at(0.3));
    let (c, tc) = closed_session(40002, at(0.0) - ms(hour));
    let (d, td) = closed_session(40003, at(24.0 * hour));
    // B's packets each land 1 ms late in the file.
    let mut ab: Vec<(u64, Packet)> = a.into_iter().map(|p| (p.ts, p)).collect();
    ab.extend(b.into_iter().map(|p| (p.ts + ms(1.0), p)));
    ab.sort_by_key(|(k, _)| *k);
    let mut packets: Vec<Packet> = ab.into_iter().map(|(_, p)| p).collect();
    assert!(packets.windows(2).any(|w| w[1].ts < w[0].ts), "some packets go back in time");
    packets.extend(c);
    packets.extend(d);
    let dir = tmp();
    let path = write_capture(dir.path(), "merged.pcap", &Capture::default(), &packets);
    let recs = replay_ok(&[&path]);
    assert_eq!(recs.len(), 4, "{}", common::pretty(&recs));
    // As in `m_truncated_file`, whether FIN/ACK pairs give samples is left
    // to the implementation; all four are the same conversation, so their
    // round-trip figures must be the same, samples included.
    let rtt_of_a = |leg: &str| session(&recs, &ta.client, &ta.server)[leg].clone();
    for (what, t) in [("A", &ta), ("B, out of order", &tb), ("C, an hour back", &tc), ("D, a day on", &td)] {
        let rec = session(&recs, &t.client, &t.server);
        assert_record_ignoring(what, rec, t, &["client_rtt_ms.samples", "server_rtt_ms.samples"]);
        for leg in ["client_rtt_ms", "server_rtt_ms"] {
            assert_eq!(rec[leg], rtt_of_a(leg), "{what}: {leg}");
        }
    }
}

/// Several files are one input: a session whose packets are split over two
/// files (a rotated capture) is one record.
#[test]
fn two_files_one_session() {
    let sc = scenarios::handshake();
    let dir = tmp();
    let (first, second) = sc.packets.split_at(4);
    let p1 = write_capture(dir.path(), "part1.pcap", &Capture::default(), first);
    let p2 = write_capture(dir.path(), "part2.pcap", &Capture::default(), second);
    let recs = replay_ok(&[&p1, &p2]);
    assert_eq!(recs.len(), 1, "{}", common::pretty(&recs));
    assert_record("split over two files", &recs[0], &sc.truth);
}

// ---------------------------------------------------------------------------
// Output formats and options.

/// Run the binary with `args`; (exit code, stdout, stderr) as text.
fn run_text(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(common::bin()).args(args).output().expect("spawning echoloc");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// `--format table`: a header, then a row per session as it ends, with the
/// figures of its record.
#[test]
fn s_table_format() {
    let (mut packets, t1) = closed_session(40000, at(0.0));
    let (p2, t2) = closed_session(40001, at(1000.0));
    packets.extend(p2);
    let dir = tmp();
    let path = write_capture(dir.path(), "two.pcap", &Capture::default(), &packets);
    let (code, out, err) = run_text(&["replay", "--format", "table", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains('{'), "a table, not JSON:\n{out}");
    let records = replay_ok(&[&path]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let head: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(&head[..5], ["UID", "PROTO", "CLIENT", "SERVER", "START"], "{out}");
    for ((line, t), r) in lines[1..].iter().zip([&t1, &t2]).zip(&records) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // uid (8 characters), proto, client, server, start (UTC time of
        // day), duration s, keys, RTT floor c/s ms, …, end reason
        assert_eq!(
            cols[..8],
            [
                &r["uid"].as_str().unwrap()[..8],
                "tcp",
                &t.client,
                &t.server,
                &rfc3339_ns(t.start)[11..19],
                "0.2",
                "-",
                "20.0/5.00"
            ],
            "{out}"
        );
        assert_eq!(cols.last(), Some(&"fin"), "{out}");
    }
}

/// `--tcp-idle` and `--udp-idle`: a TCP and a UDP flow each silent for 10 s
/// are one session each by default (300 s / 60 s), two with a 5 s timeout,
/// and each timeout applies to its own transport only.
#[test]
fn s_idle_timeouts_are_configurable() {
    let mut cv = scenarios::conv();
    cv.handshake(at(0.0));
    cv.data(Dir::C2S, at(100.0), 100);
    cv.ack(Dir::S2C, at(105.0));
    cv.data(Dir::C2S, at(10_100.0), 100);
    cv.ack(Dir::S2C, at(10_105.0));
    let (uc, us) = ("192.0.2.1:51000", "192.0.2.2:6000");
    let udp = |t: f64| Udp::new(uc.parse().unwrap(), us.parse().unwrap(), vec![b'q'; 100]).at(at(t));
    let mut packets = cv.packets();
    packets.extend([udp(50.0), udp(10_050.0)]);
    packets.sort_by_key(|p| p.ts);
    let dir = tmp();
    let path = write_capture(dir.path(), "idle.pcap", &Capture::default(), &packets);
    let tcp = (scenarios::client_addr().to_string(), scenarios::server_addr().to_string());
    // (options, TCP records, UDP records)
    for (opts, n_tcp, n_udp) in [
        (&[][..], 1, 1),
        (&["--tcp-idle", "5", "--udp-idle", "5"][..], 2, 2),
        (&["--tcp-idle", "20", "--udp-idle", "5"][..], 1, 2),
        (&["--tcp-idle", "5", "--udp-idle", "20"][..], 2, 1),
    ] {
        let recs = common::replay_with_ok(opts, &[&path]);
        for (client, server, n, first_end) in [(&tcp.0[..], &tcp.1[..], n_tcp, at(105.0)), (uc, us, n_udp, at(50.0))] {
            let mut found = sessions(&recs, client, server);
            found.sort_by_key(|r| r["start"].as_str().unwrap().to_string());
            assert_eq!(found.len(), n, "{opts:?} {client}: {}", common::pretty(&recs));
            let reasons: Vec<&str> = found.iter().map(|r| r["end_reason"].as_str().unwrap()).collect();
            if n == 2 {
                assert_eq!(reasons, ["idle", "end_of_input"], "{opts:?} {client}");
                assert_eq!(found[0]["end"], rfc3339_ns(first_end), "{opts:?} {client}");
            } else {
                assert_eq!(reasons, ["end_of_input"], "{opts:?} {client}");
            }
        }
    }
}

/// A directory is read as its capture files in name order; other files in
/// it are left alone.
#[test]
fn s_directory_input() {
    let (packets, t) = closed_session(40000, at(0.0));
    let dir = tmp();
    let (first, second) = packets.split_at(4);
    write_capture(dir.path(), "part1.pcap", &Capture::default(), first);
    write_capture(dir.path(), "part2.pcap", &Capture::default(), second);
    std::fs::write(dir.path().join("notes.txt"), "not a capture\n").unwrap();
    let recs = replay_ok(&[dir.path()]);
    assert_eq!(recs.len(), 1, "{}", common::pretty(&recs));
    assert_record_ignoring("directory", &recs[0], &t, &["client_rtt_ms.samples", "server_rtt_ms.samples"]);
}

/// A replay shows a progress bar (bytes read of the total) whenever stderr
/// is a terminal, whatever the records' format: not with `--no-progress`,
/// nor with stderr elsewhere. Log lines (here the one a new timeline logs)
/// take the bar off the screen while they are written, so no line holds a
/// bar and a log. Run under `script`, which gives the binary a
/// pseudo-terminal.
#[test]
fn s_progress_bar_on_a_terminal_only() {
    let (c, s) = ("192.0.2.1:51000".parse().unwrap(), "192.0.2.2:6000".parse().unwrap());
    // About 3.3 MB: the bar advances a MiB at a time.
    let packets: Vec<Packet> = (0..20_000).map(|i| Udp::new(c, s, vec![b'x'; 100]).at(at(i as f64))).collect();
    let dir = tmp();
    let path = write_capture(dir.path(), "long.pcap", &Capture::default(), &packets);
    // A day later: a new timeline, which is logged (INFO) once the bar is up.
    let (later, _) = closed_session(40000, at(86_400_000.0));
    let later = write_capture(dir.path(), "later.pcap", &Capture::default(), &later);
    let on_tty = |opts: &str| {
        let cmd = format!("{} replay {opts} {} {}", common::bin(), path.display(), later.display());
        let out = std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().expect("script");
        assert!(out.status.success(), "{cmd}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for opts in ["", "--format json", "--format table -o /dev/null"] {
        let shown = on_tty(opts);
        assert!(shown.contains("MiB/3."), "{opts}: no progress bar:\n{shown}");
        assert!(opts.contains("-o") || shown.contains("192.0.2.1:51000"), "{opts}: no record:\n{shown}");
        // The log line: what precedes it on its line on screen (after the
        // last carriage return or line erase) is no bar.
        let at_log = shown.find("new timeline").unwrap_or_else(|| panic!("{opts}: no log line:\n{shown}"));
        let line = &shown[shown[..at_log].rfind('\n').map_or(0, |i| i + 1)..at_log];
        let on_screen = line.rsplit(['\r']).next().unwrap_or(line);
        let on_screen = on_screen.rsplit("\x1b[2K").next().unwrap_or(on_screen);
        assert!(!on_screen.contains("MiB"), "{opts}: a log line written over the bar: {line:?}");
    }
    for opts in ["--no-progress", "--format json 2>/dev/null", "--format json --no-progress"] {
        let out = on_tty(opts);
        assert!(!out.contains("MiB/"), "{opts}: a progress bar:\n{out}");
        assert!(out.contains("192.0.2.1:51000"), "{opts}: no record:\n{out}");
    }
}

// ---------------------------------------------------------------------------
// RDP over UDP: the committed captures of scripts/rdpeudp-crafted.py (truth in
// pcaps/crafted/README.md): client leg 10 ms, server leg 40 ms.

fn committed(name: &str) -> Vec<Value> {
    replay_ok(&[&Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/crafted").join(name)])
}

fn leg(samples: u64, ms: f64) -> Value {
    serde_json::json!({"min": ms, "p50": ms, "p90": ms, "max": ms, "samples": samples, "handshake": ms, "floor": ms})
}

/// An RDPEUDP flow whose TCP connection the capture does not hold: a record
/// of its own, timed exactly by its SYN exchange and its data/ACK pairs
/// (none from a datagram sent twice, a delayed or a piggybacked ACK).
#[test]
fn t_rdpeudp_round_trips_are_exact() {
    let recs = committed("rdpeudp-alone.pcap");
    assert_eq!(recs.len(), 1, "{}", common::pretty(&recs));
    let r = &recs[0];
    assert_eq!((r["proto"].as_str(), r["transport"].as_str()), (Some("rdp"), Some("udp")), "{r}");
    assert_eq!(r["client_rtt_ms"], leg(7, 10.0), "{r}");
    assert_eq!(r["server_rtt_ms"], leg(6, 40.0), "{r}");
    assert_eq!(r["rdp"]["udp_protocol"], "rdpeudp", "{r}");
    assert_eq!(r["rdp"]["transports"], serde_json::json!(["udp"]), "{r}");
    assert!(r["rdp"]["link"].is_null() && r["rdp"]["parent_uid"].is_null(), "{r}");
    // No relay or typist verdict from the UDP path alone; no TCP retransmissions.
    assert!(r["typist_rtt_ms"].is_null() && r["client_relay"].is_null() && r["retransmissions"].is_null(), "{r}");
    assert_eq!(r["packets"], serde_json::json!({"client": 16, "server": 15}), "{r}");
}

/// The same UDP flow beside its TCP connection (same client address, the
/// server's address and port, opened while the connection lives): one
/// record, the connection's, with the UDP flow in `rdp.linked_flows` and
/// its exact legs; packets are the totals of both (TCP 7 + 4, UDP 16 + 15).
#[test]
fn t_rdp_udp_flow_links_to_its_tcp_connection() {
    let recs = committed("rdp-tcp-udp.pcap");
    assert_eq!(recs.len(), 1, "{}", common::pretty(&recs));
    let r = &recs[0];
    assert_eq!(r["transport"], "tcp", "{r}");
    assert_eq!(r["rdp"]["transports"], serde_json::json!(["tcp", "udp"]), "{r}");
    assert_eq!(r["rdp"]["security"], "tls", "{r}");
    assert_eq!(r["rdp"]["requested_protocols"], serde_json::json!(["rdp", "tls", "credssp"]), "{r}");
    assert_eq!(r["packets"], serde_json::json!({"client": 23, "server": 19}), "{r}");
    // The connection's own legs stay the TCP path's; the X.224 turnaround is 40 ms.
    assert_eq!(r["client_rtt_ms"], leg(3, 10.0), "{r}");
    assert_eq!(r["server_rtt_ms"], leg(2, 40.0), "{r}");
    assert_eq!(r["server_app_rtt_ms"]["floor"], 40.0, "{r}");
    let flows = r["rdp"]["linked_flows"].as_array().unwrap();
    assert_eq!(flows.len(), 1, "{r}");
    let f = &flows[0];
    assert_eq!((f["client"].as_str(), f["link"].as_str()), (Some("192.0.2.10:50000"), Some("addresses")), "{f}");
    assert_eq!(f["client_rtt_ms"], leg(7, 10.0), "{f}");
    assert_eq!(f["server_rtt_ms"], leg(6, 40.0), "{f}");
    assert_eq!(f["packets"], serde_json::json!({"client": 16, "server": 15}), "{f}");
    assert!(r["rdp"]["link"].is_null() && r["rdp"]["parent_uid"].is_null(), "{r}");
}

/// A UDP flow that outlives its TCP connection's FIN (FIN at 300 ms; one
/// more datagram at 7 s): the connection waits for it (docs/sessions.md
/// section 5), so one record, ended by its FIN at the flow's last packet,
/// with the flow folded in.
#[test]
fn t_rdp_connection_waits_for_its_udp_flow() {
    let recs = committed("rdp-udp-outlives-tcp.pcap");
    assert_eq!(recs.len(), 1, "{}", common::pretty(&recs));
    let tcp = &recs[0];
    assert_eq!(tcp["transport"], "tcp", "{tcp}");
    assert_eq!(tcp["end_reason"], "fin", "{tcp}");
    assert_eq!(tcp["end"], "2026-01-01T00:00:07.000000000Z", "{tcp}");
    assert_eq!(tcp["rdp"]["transports"], serde_json::json!(["tcp", "udp"]), "{tcp}");
    let flows = tcp["rdp"]["linked_flows"].as_array().unwrap();
    assert_eq!(flows.len(), 1, "{tcp}");
    assert_eq!(flows[0]["client_rtt_ms"], leg(7, 10.0), "{tcp}");
    assert_eq!(flows[0]["server_rtt_ms"], leg(6, 40.0), "{tcp}");
    // The TCP path's own legs are unchanged.
    assert_eq!(tcp["client_rtt_ms"]["samples"], 3, "{tcp}");
}

/// A desktop typed over its UDP transport (MS-RDPEMT moves input and screen
/// there): 30 keys, each press a 41-byte record in its own datagram (ACK
/// vectors of 1 to 3 elements before it, so the datagrams' sizes differ),
/// drawn by the server 5 ms after it arrives (a 40 ms path: echo 45 ms at
/// the sensor), each frame acknowledged by the client 0.5 ms after its last
/// datagram reaches it. `typed`: the client 10 ms away on both transports;
/// `relay`: the TCP connection ends at a relay 10 ms away which forwards the
/// UDP transport to the client 70 ms away. The session is the TCP
/// connection's record: its keys, echoes and frame acknowledgements come
/// from the UDP flow, its server side from the connection sequence on TCP.
#[test]
fn t_rdp_typed_over_udp_is_timed_in_its_session() {
    for (name, client_app, relay) in [("rdp-udp-typing.pcap", 10.5, false), ("rdp-udp-typing-relay.pcap", 70.5, true)] {
        let recs = committed(name);
        assert_eq!(recs.len(), 1, "{name}: {}", common::pretty(&recs));
        let r = &recs[0];
        assert_eq!((r["transport"].as_str(), r["keystrokes"].as_u64()), (Some("tcp"), Some(30)), "{name}: {r}");
        assert_eq!(r["rdp"]["transports"], serde_json::json!(["tcp", "udp"]), "{name}: {r}");
        assert_eq!(r["echo_ms"]["min"], 45.0, "{name}: {r}");
        assert!(r["echo_ms"]["samples"].as_u64() >= Some(20), "{name}: {r}");
        assert_eq!(r["client_app_rtt_ms"]["floor"], client_app, "{name}: {r}");
        assert!(r["client_app_rtt_ms"]["samples"].as_u64() >= Some(20), "{name}: {r}");
        // The connection's own client leg (TCP, to the relay in the second) is 10 ms.
        assert_eq!(r["client_rtt_ms"]["floor"], 10.0, "{name}: {r}");
        assert!(close(r["client_hidden_ms"].as_f64().unwrap(), client_app - 10.0, 0.01, 0.0), "{name}: {r}");
        assert_eq!(r["client_relay"]["suspected"], relay, "{name}: {r}");
        assert_eq!(r["typist_rtt_ms"], client_app, "{name}: {r}");
        // Attach User and six Channel Joins on TCP, answered 0.1 ms after reaching the server.
        assert_eq!(r["server_app_rtt_ms"]["samples"], 7, "{name}: {r}");
        assert!(close(r["server_app_rtt_ms"]["floor"].as_f64().unwrap(), 40.1, 0.01, 0.0), "{name}: {r}");
        assert_eq!(r["server_relay"]["suspected"], false, "{name}: {r}");
        assert_eq!(r["rdp"]["linked_flows"].as_array().map(Vec::len), Some(1), "{name}: {r}");
    }
    // Live (verdicts while sessions run): the connection is judged on what its UDP flow
    // brings, though its own TCP is quiet while the keys travel over UDP (typing from 1.3 s to
    // about 12 s, the connection's FIN at 13 s): the alert is raised while the keys are typed.
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/crafted/rdp-udp-typing-relay.pcap");
    let run = replay_with(&["--listen", "127.0.0.1:0", "--log-format", "json"], &[&file]);
    let raised: Vec<Value> = run
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "alert raised (session still open)")
        .collect();
    assert_eq!(raised.len(), 1, "{}", run.stderr);
    let at = raised[0]["fields"]["at"].as_str().unwrap();
    assert!(at < "2026-01-01T00:00:06", "raised at {at}");
    // The UDP transport alone (its connection not captured): its own record shows the desktop.
    let recs = committed("rdp-udp-typing-alone.pcap");
    assert_eq!(recs.len(), 1, "{}", common::pretty(&recs));
    let r = &recs[0];
    assert_eq!((r["transport"].as_str(), r["keystrokes"].as_u64()), (Some("udp"), Some(30)), "{r}");
    assert_eq!(
        (r["echo_ms"]["min"].as_f64(), r["client_app_rtt_ms"]["floor"].as_f64()),
        (Some(45.0), Some(10.5)),
        "{r}"
    );
    assert_eq!(
        (r["client_relay"]["suspected"].as_bool(), r["typist_rtt_ms"].as_f64()),
        (Some(false), Some(10.5)),
        "{r}"
    );
    // Datagrams of other sizes and paces (the flows above): no keys.
    for name in ["rdpeudp-alone.pcap", "rdp-tcp-udp.pcap", "rdp-udp-outlives-tcp.pcap"] {
        for r in committed(name) {
            assert_eq!(r["keystrokes"], 0, "{name}: {r}");
        }
    }
}

// ---------------------------------------------------------------------------
// Tunnels' control plane: the committed captures of scripts/tunnel-crafted.py
// (truth in pcaps/crafted/README.md): client leg 10 ms, server leg 40 ms.

fn control(ms: f64, samples: u64) -> Value {
    serde_json::json!({"min": ms, "p50": ms, "samples": samples})
}

#[test]
fn t_tunnel_wireguard_roaming_is_one_session_linked_by_index() {
    let recs = committed("wireguard-roaming.pcap");
    assert_eq!(recs.len(), 1, "{}", common::pretty(&recs));
    let r = &recs[0];
    let t = &r["tunnel"];
    assert_eq!((r["proto"].as_str(), r["client"].as_str()), (Some("wireguard"), Some("192.0.2.10:40000")), "{r}");
    assert_eq!(t["server_rtt_ms"], control(40.0, 1), "{r}");
    assert_eq!(r["server_app_rtt_ms"]["floor"], 40.0, "{r}");
    assert_eq!((t["handshakes"].as_u64(), t["rekeys"].as_u64()), (Some(2), Some(1)), "{r}");
    assert_eq!(t["data_packets"], serde_json::json!({"client": 11, "server": 11}), "{r}");
    assert_eq!(t["keepalives"], serde_json::json!({"client": 1, "server": 0}), "{r}");
    assert_eq!(r["packets"], serde_json::json!({"client": 14, "server": 13}), "{r}");
    let f = &t["linked_flows"][0];
    assert_eq!((f["link"].as_str(), f["client"].as_str()), (Some("index"), Some("198.51.100.7:61000")), "{r}");
    // The gateway's re-key on the new path timed the client's leg there.
    assert_eq!(f["client_rtt_ms"]["min"], 10.0, "{r}");
    assert!(r["alerts"].as_array().unwrap().is_empty(), "{r}");
}

#[test]
fn t_tunnel_ike_to_4500_by_spi_with_gateway_dead_peer_checks() {
    let recs = committed("ipsec-natt.pcap");
    assert_eq!(recs.len(), 1, "{}", common::pretty(&recs));
    let r = &recs[0];
    let t = &r["tunnel"];
    assert_eq!((r["proto"].as_str(), t["type"].as_str()), (Some("ike"), Some("ipsec")), "{r}");
    // IKE on 4500 is the session's exchange going on: its pairs are the
    // session's (the gateway's dead-peer checks time the client's leg).
    assert_eq!(t["server_rtt_ms"], control(40.0, 3), "{r}");
    assert_eq!(t["client_rtt_ms"], control(10.0, 2), "{r}");
    let f = &t["linked_flows"][0];
    assert_eq!((f["link"].as_str(), f["client"].as_str()), (Some("spi"), Some("192.0.2.10:4500")), "{r}");
    assert!(f["client_rtt_ms"].is_null() && f["server_rtt_ms"].is_null(), "{r}");
    assert_eq!(t["control_messages"], serde_json::json!({"client": 6, "server": 6}), "{r}");
    assert_eq!(t["data_packets"], serde_json::json!({"client": 10, "server": 10}), "{r}");
    assert_eq!(t["keepalives"], serde_json::json!({"client": 2, "server": 0}), "{r}");
    assert_eq!((t["handshakes"].as_u64(), t["rekeys"].as_u64()), (Some(1), Some(1)), "{r}");
    assert!(r["alerts"].as_array().unwrap().is_empty(), "{r}");
}

#[test]
fn t_tunnel_esp_links_to_its_ike_session_by_addresses() {
    let recs = committed("ipsec-esp.pcap");
    assert_eq!(recs.len(), 2, "{}", common::pretty(&recs));
    let ike = recs.iter().find(|r| r["proto"] == "ike").unwrap();
    let f = &ike["tunnel"]["linked_flows"][0];
    // The gateway sent the first ESP packet: the flow's sides are mapped to the session's.
    assert_eq!((f["link"].as_str(), f["client"].as_str()), (Some("addresses"), Some("192.0.2.10")), "{ike}");
    assert_eq!(ike["tunnel"]["data_packets"], serde_json::json!({"client": 5, "server": 5}), "{ike}");
    assert_eq!(ike["tunnel"]["server_rtt_ms"], control(40.0, 2), "{ike}");
    let esp = recs.iter().find(|r| r["proto"] == "esp").unwrap();
    assert_eq!((esp["client"].as_str(), esp["tunnel"]["link"].as_str()), (Some("192.0.2.99"), None), "{esp}");
}

#[test]
fn t_tunnel_openvpn_over_tcp_acks_time_each_leg() {
    let recs = committed("openvpn-tcp-tls-auth.pcap");
    assert_eq!(recs.len(), 1, "{}", common::pretty(&recs));
    let r = &recs[0];
    let t = &r["tunnel"];
    assert_eq!((t["type"].as_str(), t["mode"].as_str()), (Some("openvpn"), Some("tls-auth")), "{r}");
    assert_eq!(t["client_rtt_ms"], control(10.0, 3), "{r}");
    assert_eq!(t["server_rtt_ms"], control(40.0, 2), "{r}");
    assert_eq!(t["control_messages"], serde_json::json!({"client": 5, "server": 5}), "{r}");
    assert_eq!(t["data_packets"], serde_json::json!({"client": 2, "server": 1}), "{r}");
    assert!(t["keepalives"].is_null(), "{r}");
    // TCP's own legs agree with the control plane's: no relay.
    assert_eq!(r["server_rtt_ms"]["handshake"], 40.0, "{r}");
    assert!(r["alerts"].as_array().unwrap().is_empty(), "{r}");
}
