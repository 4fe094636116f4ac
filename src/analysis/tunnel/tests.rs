use super::*;
use crate::analysis::stats::xorshift64;

const MS: Ts = 1_000_000;
/// WireGuard sizes of an inner SSH keystroke (and its echo) and an inner pure ACK.
const KEY: u32 = 128;
const ACK: u32 = 96;

/// A typed line over a tunnel seen at the gateway: each key `echo_ms` later
/// echoed by the server at the key's size, the client's inner ACK one round
/// trip (`rtt_ms`) after the echo unless its next key left before (the ACK
/// rides on it). Gaps drawn from `gaps_ms`. Returns the packets in time order.
fn typing(keys: usize, gaps_ms: (u64, u64), echo_ms: f64, rtt_ms: f64, seed: u64) -> Vec<(Ts, Side, u32)> {
    let gaps_ms = (gaps_ms.0 as Ts, gaps_ms.1 as Ts);
    let mut rng = seed;
    let mut t: Ts = 1_000 * MS;
    let mut out = Vec::new();
    let mut key_times = Vec::new();
    for _ in 0..keys {
        key_times.push(t);
        t += (gaps_ms.0 + (xorshift64(&mut rng) % (gaps_ms.1 - gaps_ms.0) as u64) as Ts) * MS;
    }
    for &k in &key_times {
        out.push((k, Side::Client, KEY));
        let echo = k + (echo_ms * 1e6) as Ts;
        out.push((echo, Side::Server, KEY));
        let ack = echo + (rtt_ms * 1e6) as Ts;
        // The client ACKs at once (a key typed before the echo reached
        // it does not cover the echo): the ACK of an earlier echo may come
        // after a later one.
        out.push((ack, Side::Client, ACK));
    }
    out.sort_by_key(|&(t, s, _)| (t, s as u8));
    out
}

fn run(packets: &[(Ts, Side, u32)]) -> (TunnelTyping, Vec<f64>, Vec<f64>) {
    let mut t = TunnelTyping::default();
    let (mut echoes, mut rtts) = (Vec::new(), Vec::new());
    for &(ts, from, len) in packets {
        let step = t.on_packet(ts, from, len);
        echoes.extend(step.echo);
        rtts.extend(step.rtt);
    }
    echoes.extend(t.take_early_echoes());
    (t, echoes, rtts)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[test]
fn near_typist_keys_echoes_and_round_trip() {
    let (t, mut echoes, mut rtts) = run(&typing(60, (150, 400), 2.5, 20.4, 7));
    assert_eq!(t.keystrokes(), 60);
    assert_eq!(t.classes(), Some(SizeClasses { key: KEY, echo: KEY, ack: ACK }));
    assert_eq!(echoes.len(), 60);
    assert!((median(&mut echoes) - 2.5).abs() < 0.01);
    assert!(rtts.len() >= 50, "{}", rtts.len());
    assert!((median(&mut rtts) - 20.4).abs() < 0.5, "{:?}", rtts);
}

/// A far typist (200 ms round trip) typing faster than the round trip:
/// many ACKs ride on the next key, and ACKs of earlier echoes arrive after
/// later ones; the shared lag is still the round trip.
#[test]
fn far_typist_round_trip_is_the_shared_lag() {
    let (t, _, mut rtts) = run(&typing(60, (150, 400), 2.5, 200.8, 11));
    // The first keys' ACKs, before the round trip is known, may pair with a later key's echo.
    assert!((56..=60).contains(&t.keystrokes()), "{}", t.keystrokes());
    assert!(rtts.len() >= 10, "{}", rtts.len());
    let m = median(&mut rtts);
    assert!((m - 200.8).abs() < 8.0, "{m} {rtts:?}");
    let est = t.lag_estimate().unwrap();
    assert!((est.p50 - 200.8).abs() < 8.0, "{est:?}");
}

/// A download through the tunnel: the server sends full packets, the
/// client only ACKs. Nobody typed.
#[test]
fn bulk_transfer_is_not_typing() {
    let mut packets = Vec::new();
    let mut t = 1_000 * MS;
    for i in 0..20_000 {
        packets.push((t, Side::Server, 1452));
        if i % 2 == 1 {
            packets.push((t + 20 * MS, Side::Client, ACK));
        }
        t += MS / 4;
    }
    packets.sort_by_key(|&(t, s, _)| (t, s as u8));
    let (t, echoes, rtts) = run(&packets);
    assert_eq!((t.keystrokes(), t.classes(), echoes.len(), rtts.len()), (0, None, 0, 0));
}

/// Background chatter: each side sends small packets of its own at random
/// (DNS, pings, an OpenVPN ping): nothing answers a client packet with one
/// of its size followed by a smaller one, time after time.
#[test]
fn chatter_is_not_typing() {
    let mut rng = 5;
    let mut packets = Vec::new();
    let mut t = 1_000 * MS;
    for _ in 0..2_000 {
        t += (50 + (xorshift64(&mut rng) % 2_000) as Ts) * MS;
        let side = if xorshift64(&mut rng).is_multiple_of(2) { Side::Client } else { Side::Server };
        let len = [112, 144, 160, 200][(xorshift64(&mut rng) % 4) as usize];
        packets.push((t, side, len));
    }
    let (t, _, _) = run(&packets);
    assert_eq!(t.keystrokes(), 0, "{:?}", t.classes());
}

/// Keys sent by a program (a paste: key-sized packets 2 ms apart) are not counted.
#[test]
fn paste_is_not_typed() {
    let mut packets = typing(20, (150, 400), 2.5, 20.0, 3);
    let t0 = packets.last().unwrap().0 + 1_000 * MS;
    for i in 0..100 {
        packets.push((t0 + i * 2 * MS, Side::Client, KEY));
    }
    packets.push((t0 + 205 * MS, Side::Server, KEY));
    let (t, _, _) = run(&packets);
    // The paste's first packet stands alone at a person's pace: at most that one more.
    assert!((20..=21).contains(&t.keystrokes()), "{}", t.keystrokes());
}

/// A trace of a real tunnel (lines `ts_ns c|s outer_len`), from `TUNNEL_TRACE`:
/// `cargo test --lib tunnel::tests::trace -- --ignored --nocapture`.
#[test]
#[ignore]
fn trace() {
    let text = std::fs::read_to_string(std::env::var("TUNNEL_TRACE").unwrap()).unwrap();
    let packets: Vec<(Ts, Side, u32)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let side = if f[1] == "c" { Side::Client } else { Side::Server };
            Some((f[0].parse().ok()?, side, f[2].parse().ok()?))
        })
        .collect();
    let (t, mut echoes, mut rtts) = run(&packets);
    println!("keys {} classes {:?} echoes {} rtts {}", t.keystrokes(), t.classes(), echoes.len(), rtts.len());
    for c in &t.classes {
        if c.candidates > 5 {
            let mut cl = c.closures.clone();
            cl.sort_by(|a, b| a.total_cmp(b));
            println!(
                "{} cand {} others {} closures {} cycles {} ack {} {:?}",
                c.size,
                c.candidates,
                c.others,
                c.closures.len(),
                c.cycles,
                c.ack,
                cl
            );
        }
    }
    println!("window {:?} open {}", t.window, t.open.len());
    if !echoes.is_empty() {
        println!("echo median {:.3}", median(&mut echoes));
    }
    if !rtts.is_empty() {
        println!("rtt median {:.3} min {:.3} {:?}", median(&mut rtts), rtts[0], t.lag_estimate());
    }
}
