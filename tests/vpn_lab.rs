//! Ground truth from the VPN lab (lab/vpn-lab.py): a laptop's SSH session
//! carried by WireGuard (wireguard-go), OpenVPN over UDP (tls-auth) and TCP
//! (tls-crypt), IKEv2/ESP-in-UDP (strongSwan, userspace ESP) and
//! AnyConnect (ocserv + openconnect: TLS control, DTLS data) to a server
//! behind the gateway, through delaying bridges, captured at the gateway's
//! outer side (what a corporate edge sensor sees). Every committed set is
//! replayed and checked against its truth.json, at that outer vantage:
//! keystrokes within 15 % of typed, the typist's round trip through the
//! tunnel within max(4 ms, 10 %), the echo delay within max(1 ms, 10 %),
//! the tunnel's own round trip per leg within max(1.5 ms, 5 %), no
//! keystroke and no typist where nobody typed (a bulk transfer, an idle
//! tunnel); where the typist reaches the laptop through a port forwarder,
//! the relay beyond the laptop (hidden latency within max(4 ms, 10 %), the
//! far typist's round trip, a relay alert), and no relay alert anywhere else.

mod common;

use common::close;
use serde_json::Value;

/// The tunnel's record: the session of a tunnel protocol with the most packets.
fn tunnel_record(recs: &[Value]) -> Option<&Value> {
    recs.iter()
        .filter(|r| matches!(r["proto"].as_str(), Some("wireguard" | "openvpn" | "esp" | "ike" | "anyconnect")))
        .max_by_key(|r| r["packets"]["client"].as_u64().unwrap_or(0) + r["packets"]["server"].as_u64().unwrap_or(0))
}

#[test]
fn vpn_lab_captures_match_their_truth() {
    let dirs = common::truth_sets("vpn");
    assert!(dirs.len() >= 20, "expected the committed VPN lab sets, found {}", dirs.len());
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for dir in &dirs {
        let truth: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut fail = |what: String| failures.push(format!("{name}: {what}"));
        let recs = common::replay_ok(&[&dir.join("outer.pcap")]);
        let jitter = truth["configured_delays_ms"]["d1_jitter"].as_f64().unwrap_or(0.0);
        let Some(r) = tunnel_record(&recs) else {
            fail(format!("no tunnel record among {:?}", recs.iter().map(|r| &r["proto"]).collect::<Vec<_>>()));
            continue;
        };
        // The typist beyond the laptop (the relay scenario: a port forwarder on
        // the laptop, the typist 40 ms one way behind it): the inner SSH's
        // answers come from them, and only there is a relay suspected.
        let far = truth["far_typist_rtt_ms"].as_f64();
        for x in &recs {
            let relay = far.is_some() && std::ptr::eq(x, r);
            let want: &[&str] = if relay { &["relay_suspected"] } else { &[] };
            if x["alerts"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect::<Vec<_>>() != want {
                fail(format!("{} alerts {}, want {want:?}", x["proto"], x["alerts"]));
            }
        }
        let typed = truth["keys_typed"].as_u64().unwrap();
        // The tunnel's own round trip per leg: its control messages' (over
        // TCP, the laptop's TCP acknowledging the gateway: the TCP leg's;
        // AnyConnect's is its TLS connection's).
        let over_tcp = r["transport"] == "tcp";
        for (leg, field) in [("client", "tunnel_client_rtt_ms"), ("server", "tunnel_server_rtt_ms")] {
            let Some(want) = truth[field].as_f64() else { continue };
            let got = if over_tcp {
                r[format!("{leg}_rtt_ms")]["p50"].as_f64()
            } else {
                r["tunnel"][format!("{leg}_rtt_ms")]["p50"].as_f64()
            };
            match got {
                Some(got) if close(got, want, 1.5 + 2.0 * jitter, 0.05) => {}
                got => fail(format!("tunnel {leg} leg {got:?} vs truth {want}")),
            }
        }
        let keys = r["keystrokes"].as_u64().unwrap_or(0);
        let typist = r["typist_rtt_ms"].as_f64();
        // What the tunnel carried, and the inner size classes it learnt.
        let (carried, sizes) = (&r["tunnel"]["inner_traffic"], &r["tunnel"]["inner_sizes"]);
        if typed > 0 {
            // OpenVPN over TCP: the packet without its 2-byte length (the truth
            // counts TCP payload); AnyConnect's data goes over DTLS, on UDP.
            let framing = if over_tcp && r["proto"] == "openvpn" { 2 } else { 0 };
            let mut want = truth["outer_size_classes"].clone();
            for v in want.as_object_mut().unwrap().values_mut() {
                *v = (v.as_u64().unwrap() - framing).into();
            }
            if carried != "interactive" || *sizes != want {
                fail(format!("inner traffic {carried}, sizes {sizes} vs truth {want}"));
            }
        } else if carried == "interactive" || !sizes.is_null() {
            fail(format!("nobody typed: inner traffic {carried}, sizes {sizes}"));
        }
        if typed == 0 {
            if keys != 0 || typist.is_some() || !r["echo_ms"].is_null() {
                fail(format!("nobody typed: {keys} keystrokes, typist {typist:?}, echo {}", r["echo_ms"]));
            }
        } else {
            if (keys as f64 - typed as f64).abs() > 0.15 * typed as f64 {
                fail(format!("keystrokes {keys} vs typed {typed}"));
            }
            // The typist: the laptop, or the far typist behind its forwarder,
            // hidden from the laptop's round trip by the relay's.
            let laptop = truth["typist_rtt_ms"].as_f64().unwrap();
            let want = far.unwrap_or(laptop);
            match typist {
                Some(got) if close(got, want, 4.0 + 2.0 * jitter, 0.1) => {}
                got => fail(format!("typist rtt {got:?} vs truth {want}")),
            }
            let hidden = far.map_or(0.0, |f| f - laptop);
            match r["client_hidden_ms"].as_f64() {
                Some(got) if close(got, hidden, 4.0 + 2.0 * jitter, 0.1) => {}
                got => fail(format!("client hidden {got:?} vs truth {hidden}")),
            }
            if r["client_relay"]["suspected"].as_bool() != Some(far.is_some()) {
                fail(format!("client relay {} (relay beyond the laptop: {})", r["client_relay"], far.is_some()));
            }
            let want = truth["echo_ms_truth"]["median"].as_f64().unwrap();
            match r["echo_ms"]["p50"].as_f64() {
                Some(got) if close(got, want, 1.0, 0.1) => {}
                got => fail(format!("echo p50 {got:?} vs truth {want}")),
            }
        }
        table.push(format!(
            "{name}: keys {keys}/{typed} typist {typist:?}/{} echo {}/{}",
            truth["typist_rtt_ms"], r["echo_ms"]["p50"], truth["echo_ms_truth"]["median"]
        ));
    }
    println!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
