//! Crafted interactive SSH sessions with known typing (see
//! `common/typing.rs`): keystroke-timing obfuscation as OpenSSH 9.5–9.9 and
//! 10 send it, fast typing where no chaff can be, and what is left unmeasured.

mod common;

use common::pcap::Capture;
use common::typing::{Chaff, Plan, Session};
use common::{replay_ok, write_capture};
use serde_json::Value;

/// The session's one SSH record.
fn replay(name: &str, s: &Session) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = write_capture(dir.path(), &format!("{name}.pcap"), &Capture::default(), &s.packets);
    let recs = replay_ok(&[&path]);
    let ssh: Vec<&Value> = recs.iter().filter(|r| r["proto"] == "ssh").collect();
    assert_eq!(ssh.len(), 1, "{recs:?}");
    ssh[0].clone()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn openssh_9_keys_sent_with_a_ping_are_counted() {
    let plan = Plan {
        client_version: "SSH-2.0-OpenSSH_9.7",
        server_version: "SSH-2.0-OpenSSH_9.7",
        chaff: Chaff::KeyWithPing,
        ..Plan::default()
    };
    let s = plan.build();
    let r = replay("key_with_ping", &s);
    assert_eq!(r["keystroke_obfuscation"], true, "{r}");
    let keys = u(&r["keystrokes"]);
    assert!(keys.abs_diff(s.typed) * 10 <= s.typed, "keystrokes {keys} of {} typed: {r}", s.typed);
    assert_eq!(u(&r["chaff"]), s.pings, "{r}");
    // Every key's echo (with the PONG of its PING) is paired with the key.
    assert_eq!(r["echo_ms"]["p50"], 0.35, "{r}");
    assert_eq!(r["ping_rtt_ms"]["p50"], 0.2, "{r}");
}

#[test]
fn openssh_10_keys_inside_trains_give_a_lower_bound_and_an_estimate() {
    let plan = Plan {
        client_version: "SSH-2.0-OpenSSH_10.0",
        server_version: "SSH-2.0-OpenSSH_10.0",
        chaff: Chaff::KeyAlone,
        ..Plan::default()
    };
    let s = plan.build();
    let r = replay("key_alone", &s);
    assert_eq!(r["keystroke_obfuscation"], true, "{r}");
    // Each train's first key leaves at once; the rest look like chaff.
    assert_eq!(u(&r["keystrokes"]), s.trains, "{r}");
    assert_eq!(u(&r["chaff"]) + s.trains, s.pings + s.typed, "{r}");
    // At the server's edge the pty's echo (0.25 ms) and sshd's PONG (0.1 ms) stay apart.
    assert_eq!(u(&r["keystrokes_estimate"]), s.typed, "{r}");
}

#[test]
fn fast_keys_are_keys_where_no_chaff_can_be() {
    // OpenSSH 9.2 (no obfuscation): roll-overs 15-30 ms apart are keys, not chaff.
    let plan = Plan { gap_ms: (15.0, 30.0), lines: 2, keys_per_line: 10, ..Plan::default() };
    let s = plan.build();
    let r = replay("fast_keys", &s);
    assert_eq!((u(&r["keystrokes"]), u(&r["chaff"])), (s.typed, 0), "{r}");
    assert_eq!(r["keystroke_obfuscation"], false);
    assert_eq!(r["ping_rtt_ms"], Value::Null);
    assert_eq!(u(&r["keystrokes_estimate"]), s.typed);
}

#[test]
fn a_far_typist_is_measured_from_the_servers_edge() {
    // 150 ms away: the typist's round trip is the client's authentication
    // answers, and each key pairs with its own echo.
    let plan = Plan { client_ms: 75.0, ..Plan::default() };
    let s = plan.build();
    let r = replay("far_typist", &s);
    assert_eq!(u(&r["keystrokes"]), s.typed, "{r}");
    let typist = r["typist_rtt_ms"].as_f64().unwrap();
    assert!((150.0..=152.0).contains(&typist), "{r}");
    assert!(u(&r["typist_rtt_samples"]) >= 3, "{r}");
    assert_eq!(r["echo_ms"]["min"], 0.35, "{r}");
    assert_eq!(r["echo_ms"]["p90"], 0.35, "{r}");
}

#[test]
fn a_session_joined_mid_stream_places_nobody() {
    // The capture starts while the person types: no handshake, no version
    // lines, no authentication. Keys and echoes are there; the typist's
    // distance is not.
    let s = Plan::default().build();
    let skip = s.packets.iter().position(|p| p.ts >= common::pcap::at(5000.0)).unwrap();
    let cut = Session { packets: s.packets[skip..].to_vec(), ..s };
    let r = replay("mid_stream", &cut);
    assert!(u(&r["keystrokes"]) >= cut.typed - 1, "{r}");
    assert_eq!(r["client_app_rtt_ms"], Value::Null, "a person's think time is no turnaround: {r}");
    assert_eq!((&r["typist_rtt_ms"], &r["max_distance_km"]), (&Value::Null, &Value::Null), "{r}");
    assert_eq!(r["typist_rtt_samples"], Value::Null);
    assert_ne!(r["client_relay"]["suspected"], true, "{r}");
}

#[test]
fn delayed_acks_alone_place_nobody() {
    // A TLS flow joined mid-stream, captured on the client host itself: its
    // only client-leg samples are the host's own 40 ms delayed ACKs.
    use common::conv::{Conversation, Dir};
    use common::pcap::at;
    let client = "192.0.2.50:51000".parse().unwrap();
    let server = "198.51.100.80:443".parse().unwrap();
    let mut cv = Conversation::new(client, server, common::pcap::ms(0.02), common::pcap::ms(15.0)).established();
    for i in 0..20 {
        let t = 1000.0 + 500.0 * i as f64;
        cv.data(Dir::C2S, at(t), 120);
        cv.data(Dir::S2C, at(t + 30.1), 300);
        cv.ack(Dir::C2S, at(t + 70.1));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_capture(dir.path(), "delayed_acks.pcap", &Capture::default(), &cv.packets());
    let r = &replay_ok(&[&path])[0];
    assert_eq!(r["proto"], "tls");
    let floor = r["client_rtt_ms"]["floor"].as_f64().unwrap();
    assert!((39.9..=40.1).contains(&floor), "{r}");
    assert_eq!((&r["typist_rtt_ms"], &r["max_distance_km"]), (&Value::Null, &Value::Null), "{r}");
}

#[test]
fn a_connection_that_opens_in_the_middle_of_a_byte_stream_times_no_authentication() {
    // The join subflow of a Multipath TCP connection: its own handshake, then
    // the middle of an SSH session (no version lines). The person's think
    // time between keys is no authentication turnaround: no client level, no
    // relay, and the typist is as far as the subflow's own round trip.
    let joined = Plan { joined: true, ..Plan::default() }.build();
    let r = replay("join_subflow", &joined);
    assert_eq!(r["client_app_rtt_ms"], Value::Null, "{r}");
    assert_ne!(r["client_relay"]["suspected"], true, "{r}");
    assert_eq!(r["typist_rtt_ms"], 60.0, "{r}");
}
