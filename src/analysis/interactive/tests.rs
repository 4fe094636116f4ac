use super::sim::Sim;
use super::*;
const MS: Ts = 1_000_000;

#[test]
fn automatic_answers_are_not_keystrokes() {
    let mut s = Sim::new(Some(36));
    // Authentication: the client answers 40 ms after each server message.
    let mut t = s.authenticate(40, &[0, 0, 0, 0, 0, 0]);
    for _ in 0..3 {
        t += 300 * MS;
        s.key_echo(t, 1);
    }
    // A command's end: server EOF/CLOSE, the client's EOF/CLOSE 40 ms later.
    t += 300 * MS;
    s.send(t, Side::Server, 100);
    s.send(t + 40 * MS, Side::Client, 36);
    s.send(t + 40 * MS + 10_000, Side::Client, 36);
    assert_eq!(s.a.keystroke_count(), 3);
    // A person typing 300 ms later counts.
    s.send(t + 340 * MS, Side::Client, 36);
    assert_eq!(s.a.keystroke_count(), 4);
}

#[test]
fn a_late_channel_eof_before_any_typing_is_not_a_keystroke() {
    // `ssh host cmd` with stdin closed, over a jittery path (or from a
    // stalled client host): the channel EOF answers the exec request's
    // reply 31 ms late, far outside the client's usual 20 ms answer.
    let mut s = Sim::new(Some(36));
    let t = s.authenticate(20, &[0, 1, 0, 1, 0, 1, 0, 1]);
    s.send(t, Side::Server, 72); // exec accepted
    s.send(t + 51 * MS, Side::Client, 36); // channel EOF
    s.send(t + 250 * MS, Side::Server, 96); // the command's output
    assert_eq!(s.a.keystrokes, 0);
    // A person reacting to what the server showed takes longer: typed.
    s.send(t + 600 * MS, Side::Client, 36);
    assert_eq!(s.a.keystrokes, 1);
}

#[test]
fn a_far_typists_keys_after_their_echoes_all_count() {
    // At the server's edge the typist is 150 ms away: the client software
    // answers 150 ms after a server message, and keys typed 120-180 ms
    // apart follow their echoes (sent at once by the server's pty) by the same.
    let mut s = Sim::new(Some(36));
    let mut t = s.authenticate(150, &[0, 1, 0, 1, 0, 1, 0, 1]) + 2000 * MS;
    for gap in [160, 150, 140, 170, 155, 145, 180, 150, 120, 165] {
        s.send(t, Side::Client, 36);
        s.send(t + MS / 2, Side::Server, 36);
        t += gap * MS;
    }
    assert_eq!(s.a.keystroke_count(), 10);
    // A command's output that ends with the channel's EOF/CLOSE: the client's
    // CLOSE answers it.
    s.send(t, Side::Client, 36);
    s.send(t + MS / 2, Side::Server, 228);
    s.send(t + 151 * MS, Side::Client, 36);
    assert_eq!(s.a.keystroke_count(), 11);
}

#[test]
fn several_keys_in_flight_each_pair_with_their_own_echo() {
    // At the typist's edge, 400 ms round trip, 8-10 keys a second: four
    // keys are in flight at once. Each echo acknowledges its own key's bytes.
    let mut s = Sim::new(Some(36));
    let mut t = s.authenticate(1, &[0; 8]) + 1000 * MS;
    let gaps = [100, 110, 125, 105, 120, 100, 115, 125, 110, 100, 120, 105];
    let mut events: Vec<(Ts, Side, u32)> = Vec::new();
    let mut ends = Vec::new();
    let mut end = s.client_end();
    for g in gaps {
        end += 36;
        events.push((t, Side::Client, 0));
        ends.push(end);
        events.push((t + 400 * MS, Side::Server, end));
        t += g * MS;
    }
    events.sort_by_key(|e| e.0);
    for (ts, side, ack) in events {
        match side {
            Side::Client => s.send(ts, side, 36),
            Side::Server => s.send_acking(ts, side, 36, ack),
        };
    }
    let q = s.a.echo.quantiles().unwrap();
    assert_eq!((q.min, q.max, q.samples), (400.0, 400.0, 12));
    assert_eq!(s.a.keystroke_count(), 12);
}

#[test]
fn a_segment_sent_before_the_key_arrived_is_not_its_echo() {
    // The server's output crosses the key on the wire: it does not
    // acknowledge the key, so the key waits for its own echo.
    let mut s = Sim::new(Some(36));
    let mut t = s.authenticate(1, &[0; 8]) + 1000 * MS;
    for _ in 0..3 {
        s.key_echo(t, 60);
        t += 300 * MS;
    }
    let before = s.client_end();
    s.send(t, Side::Client, 36);
    assert_eq!(s.send_acking(t + 10 * MS, Side::Server, 36, before), None);
    assert_eq!(s.send(t + 60 * MS, Side::Server, 36), Some(60.0));
}

#[test]
fn a_redraw_after_keys_without_their_own_echo_gives_no_sample() {
    // vim: `d` draws nothing, `w` then redraws. Which key the redraw answers
    // is not known from the wire: no sample (pairing it with `d` would read
    // the person's pause as a deep echo).
    let mut s = Sim::new(Some(36));
    let mut t = s.authenticate(1, &[0; 8]) + 1000 * MS;
    for _ in 0..3 {
        s.key_echo(t, 4);
        t += 300 * MS;
    }
    s.send(t, Side::Client, 36); // d
    s.send(t + 250 * MS, Side::Client, 36); // w
    assert_eq!(s.send(t + 254 * MS, Side::Server, 36), None);
    // A screen redraw of another size answers keys but is no echo.
    s.send(t + 600 * MS, Side::Client, 36);
    assert_eq!(s.send(t + 604 * MS, Side::Server, 180), None);
    // The next key and its echo pair again.
    s.key_echo(t + 900 * MS, 4);
    let q = s.a.echo.quantiles().unwrap();
    assert_eq!((q.max, q.samples), (4.0, 4));
}

#[test]
fn echoes_a_relay_held_back_pair_in_order_and_a_late_one_is_no_sample() {
    // At a relay's outer side: the relay's Nagle timer holds echoes, then
    // sends two at once; another echo leaves just after the next key reached
    // the relay, and acknowledges it: which key it answers is unknown.
    let mut s = Sim::new(Some(36));
    let mut t = s.authenticate(1, &[0; 8]) + 1000 * MS;
    for _ in 0..3 {
        s.key_echo(t, 40);
        t += 300 * MS;
    }
    s.send(t, Side::Client, 36);
    s.send(t + 110 * MS, Side::Client, 36);
    assert_eq!(s.send(t + 170 * MS, Side::Server, 72), Some(60.0)); // and 170 for the first
    s.send(t + 300 * MS, Side::Client, 36);
    s.send(t + 400 * MS, Side::Client, 36);
    assert_eq!(s.send(t + 410 * MS, Side::Server, 36), None);
    let q = s.a.echo.quantiles().unwrap();
    assert_eq!((q.min, q.max, q.samples), (40.0, 170.0, 5));
}

#[test]
fn keys_count_only_once_the_session_shows_typing() {
    // scp's one-byte acknowledgements, window adjusts, keep-alives: key-sized
    // client packets that nothing echoes.
    let mut s = Sim::new(Some(36));
    let mut t = s.authenticate(1, &[0; 8]);
    for _ in 0..20 {
        t += 400 * MS;
        s.send(t, Side::Client, 36);
        s.send(t + MS, Side::Server, 80);
    }
    assert_eq!(s.a.keystroke_count(), 0);
    for _ in 0..3 {
        t += 300 * MS;
        s.key_echo(t, 1);
    }
    assert_eq!(s.a.keystroke_count(), 23);
}

#[test]
fn machine_speed_characters_are_not_keystrokes() {
    let mut s = Sim::new(Some(36));
    s.authenticate(10, &[0; 5]);
    // A script writes 20 characters 2 ms apart, after a first one.
    let t0 = 1000 * MS;
    for i in 0..21 {
        s.send(t0 + i * 2 * MS, Side::Client, 36);
    }
    assert_eq!(s.a.keystrokes, 1);
    assert_eq!(s.a.chaff_count(), 0);
}

#[test]
fn keystrokes_pair_with_echoes() {
    let mut s = Sim::new(Some(36));
    let mut t = 0;
    for _ in 0..10 {
        t += 200 * MS;
        s.key_echo(t, 30);
    }
    assert_eq!(s.a.keystrokes, 10);
    let q = s.a.echo.quantiles().unwrap();
    assert_eq!((q.min, q.max, q.samples), (30.0, 30.0, 10));
}

#[test]
fn bulk_download_window_adjusts_are_not_keystrokes() {
    let mut s = Sim::new(Some(36));
    for i in 0..1000 {
        s.send(i * MS, Side::Server, 32768);
        if i % 10 == 0 {
            s.send(i * MS, Side::Client, 36);
        }
    }
    assert_eq!(s.a.keystrokes, 0);
}

#[test]
fn keys_twenty_ms_apart_are_keys_where_no_chaff_can_be() {
    // OpenSSH 9.2 on both ends: a key typed 17-24 ms after the previous one
    // (a roll-over), with its own echo, is a key.
    let mut s = Sim::new(Some(36));
    let mut t = s.authenticate(1, &[0; 8]) + 1000 * MS;
    for gap in [300, 17, 250, 24, 280, 20, 400] {
        s.key_echo(t, 1);
        t += gap * MS;
    }
    assert_eq!((s.a.keystroke_count(), s.a.chaff_count()), (7, 0));
    assert_eq!(s.a.ping_rtt(), None);
}

/// OpenSSH ≥ 9.5 on both ends, typist's edge 30 ms from the server: one
/// key, then a train of chaff (PINGs answered by PONGs).
fn chaff_train(key_with_ping: bool) -> Sim {
    let mut s = Sim::new(Some(36));
    s.a.set_chaff_capability(Some(true), key_with_ping);
    let mut t = s.authenticate(1, &[0; 8]) + 1000 * MS;
    for _ in 0..3 {
        s.key_echo(t, 30);
        t += 2000 * MS;
    }
    s.key_echo(t, 30);
    for i in 1..=50 {
        let units = if key_with_ping && i % 10 == 0 { 2 } else { 1 };
        s.send(t + i * 20 * MS, Side::Client, 36 * units);
        s.send(t + i * 20 * MS + 30 * MS, Side::Server, 36 * units); // PONG (and echo)
    }
    s
}

#[test]
fn chaff_on_a_20ms_grid_is_counted_apart_and_pongs_time_the_peer() {
    let s = chaff_train(false);
    assert_eq!((s.a.keystroke_count(), s.a.chaff_count()), (4, 50));
    assert!(s.a.obfuscated());
    assert_eq!(s.a.echo.count(), 4);
    let q = s.a.ping_rtt().unwrap();
    assert_eq!((q.min, q.max), (30.0, 30.0));
    assert!(q.samples >= 49, "{q:?}");
}

#[test]
fn a_key_sent_with_a_ping_counts_and_is_echoed() {
    // OpenSSH 9.5-9.9: the five keys typed inside the train share a segment with a PING.
    let s = chaff_train(true);
    assert_eq!((s.a.keystroke_count(), s.a.chaff_count()), (9, 50));
    assert_eq!(s.a.echo.count(), 9);
}

#[test]
fn learns_the_size_class_without_kexinit() {
    let mut s = Sim::new(None);
    s.authenticate(10, &[0; 5]);
    // Typing, human gaps (irregular).
    let mut t = 200 * MS;
    for i in 0..20 {
        t += (150 + 37 * (i % 5)) * MS;
        s.key_echo(t, 5);
    }
    assert!(s.a.keystroke_count() >= 18, "{}", s.a.keystroke_count());
}

#[test]
fn the_size_class_follows_the_negotiated_size_and_what_is_typed() {
    let typing = |s: &mut Sim, size: u32, keys: i64| {
        let mut t = 200 * MS;
        for i in 0..keys {
            t += (150 + 37 * (i % 5)) * MS;
            s.send(t, Side::Client, size);
            s.send(t + 5 * MS, Side::Server, size);
        }
    };
    // Negotiated once the session is under way: keys count from the first.
    let mut a = Sim::new(None);
    a.authenticate(10, &[0; 5]);
    a.a.set_keystroke_size(Some(52));
    assert_eq!(a.a.keystroke_size(), Some(52));
    typing(&mut a, 52, 3);
    assert_eq!((a.a.keystrokes, a.a.echo.count()), (3, 3));
    // A session tunnelled inside this one wraps each key: its size, once
    // it dominates, wins over the negotiated one.
    let mut b = Sim::new(Some(36));
    b.authenticate(10, &[0; 5]);
    typing(&mut b, 84, 20);
    assert_eq!(b.a.keystroke_count(), 20);
    assert!(b.a.keystrokes >= 15, "{}", b.a.keystrokes);
}

#[test]
fn auth_turnarounds_have_a_robust_floor() {
    let mut s = Sim::new(Some(36));
    let mut t = 0;
    for d in [150, 151, 153, 152, 400] {
        s.send(t, Side::Server, 100);
        t += d * MS;
        s.send(t, Side::Client, 100);
        t += 31 * MS;
    }
    let (floor, sum) = s.a.app_floor(Side::Client, Some(30.0), false).unwrap();
    assert_eq!(floor, 150.0);
    assert_eq!(sum.count(), 5);
}

#[test]
fn joined_mid_stream_there_is_no_authentication_to_time() {
    // The first segments seen are typing, not authentication: a person's
    // think time is no turnaround.
    let mut a = Interactive::new(Some(36));
    for i in 0..20 {
        a.on_data(i * 400 * MS, Side::Server, 100, None);
        a.on_data(i * 400 * MS + 300 * MS, Side::Client, 100, None);
    }
    assert!(a.app_floor(Side::Client, None, false).is_none());
}

/// Typing at the server's edge, then the server's `query` segment, then
/// the client's `reply` `after_ms` later.
fn reply_to(s: &mut Sim, t: Ts, query: u32, acks_new_data: bool, after_ms: Ts) -> Ts {
    if acks_new_data {
        s.send(t - 300 * MS, Side::Client, 36);
    }
    s.send(t, Side::Server, query);
    s.send(t + after_ms * MS, Side::Client, 44);
    t + 2000 * MS
}

#[test]
fn a_terminal_level_needs_two_replies_that_agree() {
    let mut s = Sim::new(Some(36));
    let mut t = s.authenticate(20, &[0; 8]) + 1000 * MS;
    for _ in 0..3 {
        s.key_echo(t, 1);
        t += 300 * MS;
    }
    t = reply_to(&mut s, t + 1000 * MS, 44, false, 75);
    assert_eq!(s.a.terminal_level(true), None, "one reply may be a person's key");
    // An answer to the client's own data (an echo, a redraw) is no query.
    t = reply_to(&mut s, t, 44, true, 76);
    assert_eq!(s.a.terminal_level(true), None);
    reply_to(&mut s, t, 44, false, 76);
    let l = s.a.terminal_level(true).unwrap();
    assert_eq!((l.min, l.count), (75.0, 2));
}
