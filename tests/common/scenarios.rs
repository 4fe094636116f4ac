//! Crafted TCP scenarios with their truth written out as numbers.
//!
//! Unless said otherwise: client 192.0.2.1:40000, server 192.0.2.2:5001, one
//! way delays c = 10 ms (client leg RTT 20 ms) and s = 2.5 ms (server leg RTT
//! 5 ms), handshake SYN at T0 (2026-01-01T00:00:00Z), SYN/ACK at +5 ms, ACK at
//! +25 ms. Options: MSS only, so SYNs have a 24-byte TCP header and other
//! segments 20.
//!
//! Sample counting convention of the truth: `samples` includes the
//! handshake sample of that leg (SYN->SYN/ACK for the server leg, SYN/ACK->ACK
//! for the client leg).

use super::conv::{Conversation, Dir, Fate};
use super::pcap::{Packet, at, ip_bytes_from, ms};
use std::net::SocketAddr;

/// Expected RTT figures of one leg: every reported figure (min, p50, p90,
/// max) equals `rtt_ms`.
#[derive(Clone, Debug)]
pub struct Leg {
    pub rtt_ms: f64,
    pub samples: u64,
    pub handshake_ms: Option<f64>,
}

/// Expected record of one session.
#[derive(Clone, Debug)]
pub struct Truth {
    pub client: String,
    pub server: String,
    pub proto: &'static str,
    pub transport: &'static str,
    /// ns since the epoch.
    pub start: u64,
    pub end: u64,
    pub end_reason: &'static str,
    /// (client, server)
    pub packets: (u64, u64),
    /// Sum of IP total lengths, (client, server).
    pub bytes: (u64, u64),
    /// None: the field must be null.
    pub client_leg: Option<Leg>,
    pub server_leg: Option<Leg>,
    /// (client, server); None: not checked.
    pub retrans: Option<(u64, u64)>,
}

pub struct Scenario {
    pub name: &'static str,
    pub packets: Vec<Packet>,
    pub truth: Truth,
}

pub fn client_addr() -> SocketAddr {
    "192.0.2.1:40000".parse().unwrap()
}

pub fn server_addr() -> SocketAddr {
    "192.0.2.2:5001".parse().unwrap()
}

/// The standard conversation: c = 10 ms, s = 2.5 ms.
pub fn conv() -> Conversation {
    Conversation::new(client_addr(), server_addr(), ms(10.0), ms(2.5))
}

fn leg(rtt_ms: f64, samples: u64, handshake_ms: Option<f64>) -> Option<Leg> {
    Some(Leg { rtt_ms, samples, handshake_ms })
}

/// Truth skeleton for `conv`'s addresses: bytes computed from the packets
/// (IP total lengths), the rest to fill in.
fn truth(cv: &Conversation, packets: &[Packet]) -> Truth {
    let (cb, cp) = ip_bytes_from(packets, cv.client);
    let (sb, sp) = ip_bytes_from(packets, cv.server);
    Truth {
        client: cv.client.to_string(),
        server: cv.server.to_string(),
        proto: "tcp",
        transport: "tcp",
        start: packets.first().unwrap().ts,
        end: packets.last().unwrap().ts,
        end_reason: "end_of_input",
        packets: (cp, sp),
        bytes: (cb, sb),
        client_leg: None,
        server_leg: None,
        retrans: Some((0, 0)),
    }
}

/// (a) Handshake RTTs: client leg 20 ms, server leg 5 ms, plus one data
/// exchange each way.
///
/// ```text
///   0    C SYN            5    S SYN/ACK       25   C ACK
///   100  C 100 bytes      105  S ACK     -> server leg sample 5 ms
///   106  S 1000 bytes     126  C ACK     -> client leg sample 20 ms
/// ```
pub fn handshake() -> Scenario {
    let mut cv = conv();
    cv.handshake(at(0.0));
    cv.data(Dir::C2S, at(100.0), 100);
    cv.ack(Dir::S2C, at(105.0));
    cv.data(Dir::S2C, at(106.0), 1000);
    cv.ack(Dir::C2S, at(126.0));
    let packets = cv.packets();
    let mut t = truth(&cv, &packets);
    t.start = at(0.0);
    t.end = at(126.0);
    t.packets = (4, 3);
    // client: SYN 44 + ACK 40 + data 140 + ACK 40; server: SYN/ACK 44 + ACK 40 + data 1040
    t.bytes = (264, 1124);
    t.client_leg = leg(20.0, 2, Some(20.0));
    t.server_leg = leg(5.0, 2, Some(5.0));
    Scenario { name: "handshake", packets, truth: t }
}

/// (b) Loss with SACK. A is lost after the sensor; B, C, D arrive and each is
/// answered by a duplicate ACK whose SACK right edge is B, C, D's end: three
/// server-leg samples of exactly 5 ms. The fast retransmission of A (seen at
/// 128 ms = third dup ACK at 108 + 2c) is acked at 133: no sample. New data
/// E at 200 is acked at 205: one sample.
///
/// Server leg: handshake + 3 SACK + E = 5 samples, all 5 ms. Client leg:
/// handshake only. Retransmissions: client 1.
pub fn sack_loss() -> Scenario {
    sack_loss_with(conv().with_sack())
}

fn sack_loss_with(mut cv: Conversation) -> Scenario {
    cv.handshake(at(0.0));
    let a = cv.data_fate(Dir::C2S, at(100.0), 1000, Fate::LostAfterSensor);
    cv.data(Dir::C2S, at(101.0), 1000);
    cv.data(Dir::C2S, at(102.0), 1000);
    cv.data(Dir::C2S, at(103.0), 1000);
    cv.ack(Dir::S2C, at(106.0)); // ack=A.start, SACK B
    cv.ack(Dir::S2C, at(107.0)); // SACK B..C
    cv.ack(Dir::S2C, at(108.0)); // SACK B..D
    cv.retransmit(a, at(128.0));
    cv.ack(Dir::S2C, at(133.0)); // ack D.end
    cv.data(Dir::C2S, at(200.0), 1000);
    cv.ack(Dir::S2C, at(205.0));
    let packets = cv.packets();
    let mut t = truth(&cv, &packets);
    t.packets = (8, 6);
    t.end = at(205.0);
    t.client_leg = leg(20.0, 1, Some(20.0));
    t.server_leg = leg(5.0, 5, Some(5.0));
    t.retrans = Some((1, 0));
    Scenario { name: "sack_loss", packets, truth: t }
}

/// (b) The SACK scenario again with the client's ISN at 0xFFFFF800, so that
/// segment C (and the SACK block edges after it) cross the 2^32 wrap. Same
/// truth as [`sack_loss`].
pub fn sack_loss_wrapped() -> Scenario {
    let mut sc = sack_loss_with(conv().isns(0xFFFF_F800, 0xFFFF_FFF0).with_sack());
    sc.name = "sack_loss_wrapped";
    sc
}

/// (c) Karn's rule on the other direction: server data lost after the
/// sensor and retransmitted; the client's ACK gives no client-leg sample.
///
/// ```text
///   100  S A (800 B), lost after the sensor
///   400  S A again (RTO)       420 C ACK   -> no sample
///   500  S B (800 B)           520 C ACK   -> 20 ms
/// ```
/// Client leg: handshake + B = 2 samples. Retransmissions: server 1.
pub fn karn_server_data() -> Scenario {
    let mut cv = conv();
    cv.handshake(at(0.0));
    let a = cv.data_fate(Dir::S2C, at(100.0), 800, Fate::LostAfterSensor);
    cv.retransmit(a, at(400.0));
    cv.ack(Dir::C2S, at(420.0));
    cv.data(Dir::S2C, at(500.0), 800);
    cv.ack(Dir::C2S, at(520.0));
    let packets = cv.packets();
    let mut t = truth(&cv, &packets);
    t.packets = (4, 4);
    t.end = at(520.0);
    t.client_leg = leg(20.0, 2, Some(20.0));
    t.server_leg = leg(5.0, 1, Some(5.0));
    t.retrans = Some((0, 1));
    Scenario { name: "karn_server_data", packets, truth: t }
}

/// (c) Karn's rule, no SACK.
///
/// ```text
///   100  C A (500 B), lost after the sensor
///   300  C A again (RTO)          305 S ACK A      -> no sample (retransmitted)
///   400  C B (500 B), lost after the sensor
///   401  C C (500 B)              406 S dup ACK    -> no sample (acks nothing new)
///   600  C B again (RTO)          605 S ACK B..C   -> no sample: C was not
///        retransmitted but a retransmission of the covered range intervened
///   700  C D (500 B)              705 S ACK        -> sample 5 ms
/// ```
/// Server leg: handshake + D = 2 samples. Retransmissions: client 2.
pub fn karn() -> Scenario {
    let mut cv = conv();
    cv.handshake(at(0.0));
    let a = cv.data_fate(Dir::C2S, at(100.0), 500, Fate::LostAfterSensor);
    cv.retransmit(a, at(300.0));
    cv.ack(Dir::S2C, at(305.0));
    let b = cv.data_fate(Dir::C2S, at(400.0), 500, Fate::LostAfterSensor);
    cv.data(Dir::C2S, at(401.0), 500);
    cv.ack(Dir::S2C, at(406.0));
    cv.retransmit(b, at(600.0));
    cv.ack(Dir::S2C, at(605.0));
    cv.data(Dir::C2S, at(700.0), 500);
    cv.ack(Dir::S2C, at(705.0));
    let packets = cv.packets();
    let mut t = truth(&cv, &packets);
    t.packets = (8, 5);
    t.end = at(705.0);
    t.client_leg = leg(20.0, 1, Some(20.0));
    t.server_leg = leg(5.0, 2, Some(5.0));
    t.retrans = Some((2, 0));
    Scenario { name: "karn", packets, truth: t }
}

/// (c) Karn's rule with a large window, no SACK: segment A is lost after
/// the sensor while 69 more full segments (B1..B69, 0.1 ms apart) are in
/// flight. Each B is answered by a duplicate ACK (no sample). The fast
/// retransmission of A is seen at 125.3 ms (third dup ACK at 105.3 + 2c);
/// the server's ACK at 130.3 covers A..B69: no sample (a retransmission of
/// the covered range intervened; timing it from B69 would give 23.4 ms).
/// New data C at 200 is acked at 205: 5 ms.
///
/// Server leg: handshake + C = 2 samples, all 5 ms. Retransmissions: client 1.
pub fn karn_large_window() -> Scenario {
    let mut cv = conv();
    cv.handshake(at(0.0));
    let a = cv.data_fate(Dir::C2S, at(100.0), 1448, Fate::LostAfterSensor);
    for i in 1..=69 {
        cv.data(Dir::C2S, at(100.0 + 0.1 * i as f64), 1448);
        cv.ack(Dir::S2C, at(105.0 + 0.1 * i as f64));
    }
    cv.retransmit(a, at(125.3));
    cv.ack(Dir::S2C, at(130.3));
    cv.data(Dir::C2S, at(200.0), 1448);
    cv.ack(Dir::S2C, at(205.0));
    let packets = cv.packets();
    let mut t = truth(&cv, &packets);
    t.packets = (74, 72);
    t.end = at(205.0);
    t.client_leg = leg(20.0, 1, Some(20.0));
    t.server_leg = leg(5.0, 2, Some(5.0));
    t.retrans = Some((1, 0));
    Scenario { name: "karn_large_window", packets, truth: t }
}

/// (d) Delayed ACK covering several segments. No delayed-ACK timer is
/// modelled: the server acks immediately when it acks.
///
/// ```text
///   100 C A (1448 B), 101 C B (1448 B)   106 S ACK B.end
///       -> one sample, ACK time - B's time = 5 ms (A's time would give 6)
///   200 C C, 200.5 C D, 201 C E (1448 B each)
///       205.5 S ACK D.end -> sample from D = 5 ms; 206 S ACK E.end -> 5 ms
/// ```
/// Server leg: handshake + 3 = 4 samples, all 5 ms.
pub fn delayed_ack() -> Scenario {
    let mut cv = conv();
    cv.handshake(at(0.0));
    cv.data(Dir::C2S, at(100.0), 1448);
    cv.data(Dir::C2S, at(101.0), 1448);
    cv.ack(Dir::S2C, at(106.0));
    cv.data(Dir::C2S, at(200.0), 1448);
    cv.data(Dir::C2S, at(200.5), 1448);
    cv.data(Dir::C2S, at(201.0), 1448);
    cv.ack(Dir::S2C, at(205.5));
    cv.ack(Dir::S2C, at(206.0));
    let packets = cv.packets();
    let mut t = truth(&cv, &packets);
    t.packets = (7, 4);
    t.end = at(206.0);
    t.client_leg = leg(20.0, 1, Some(20.0));
    t.server_leg = leg(5.0, 4, Some(5.0));
    Scenario { name: "delayed_ack", packets, truth: t }
}

/// (e) Retransmitted SYN: the first SYN (0 ms) is lost after the sensor,
/// the second (1000 ms) is answered at 1005; ACK at 1025. Handshake server
/// leg = 5 ms (from the most recent SYN), client leg 20 ms. Data at 1100,
/// acked at 1105. Start is the first SYN. Retransmission counts not checked
/// (whether a SYN counts is left to the implementation).
pub fn syn_retransmit() -> Scenario {
    let mut cv = conv();
    let syn = cv.syn_fate(at(0.0), Fate::LostAfterSensor);
    cv.retransmit(syn, at(1000.0));
    cv.syn_ack(at(1005.0));
    cv.ack(Dir::C2S, at(1025.0));
    cv.data(Dir::C2S, at(1100.0), 100);
    cv.ack(Dir::S2C, at(1105.0));
    let packets = cv.packets();
    let mut t = truth(&cv, &packets);
    t.packets = (4, 2);
    t.start = at(0.0);
    t.end = at(1105.0);
    t.client_leg = leg(20.0, 1, Some(20.0));
    t.server_leg = leg(5.0, 2, Some(5.0));
    t.retrans = None;
    Scenario { name: "syn_retransmit", packets, truth: t }
}

/// (e) Retransmitted SYN/ACK: the first SYN/ACK (5 ms) is lost after the
/// sensor; the client's SYN timer resends the SYN at 1000 ms and the server
/// answers with its SYN/ACK again at 1005; ACK at 1025. Client-leg handshake
/// from the most recent SYN/ACK: 20 ms (not 1020). Server leg 5 ms either
/// way; the resent SYN -> SYN/ACK pair is ambiguous and gives no second
/// sample. Retransmission counts not checked.
pub fn synack_retransmit() -> Scenario {
    let mut cv = conv();
    cv.syn(at(0.0));
    let sa = cv.new_syn_ack_fate(at(5.0), Fate::LostAfterSensor);
    cv.resend_syn(at(1000.0));
    cv.retransmit(sa, at(1005.0));
    cv.ack(Dir::C2S, at(1025.0));
    cv.data(Dir::C2S, at(1100.0), 100);
    cv.ack(Dir::S2C, at(1105.0));
    let packets = cv.packets();
    let mut t = truth(&cv, &packets);
    t.packets = (4, 3);
    t.end = at(1105.0);
    t.client_leg = leg(20.0, 1, Some(20.0));
    t.server_leg = leg(5.0, 2, Some(5.0));
    t.retrans = None;
    Scenario { name: "synack_retransmit", packets, truth: t }
}

/// (f) Sequence wrap. Client ISN 0xFFFFFF80: its first data segment (200 B,
/// seq 0xFFFFFF81) ends at 0x00000049, across 2^32. Server ISN 0xFFFFFFFF:
/// the client's handshake ACK number is 0 and the server's first data byte is
/// seq 0.
///
/// ```text
///   100 C 200 B (wraps)   105 S ACK 0x49  -> 5 ms
///   110 C 300 B           115 S ACK       -> 5 ms
///   120 S 400 B (seq 0)   140 C ACK       -> 20 ms
/// ```
/// Server leg: 3 samples; client leg: 2.
pub fn seq_wrap() -> Scenario {
    let mut cv = conv().isns(0xFFFF_FF80, 0xFFFF_FFFF);
    cv.handshake(at(0.0));
    cv.data(Dir::C2S, at(100.0), 200);
    cv.ack(Dir::S2C, at(105.0));
    cv.data(Dir::C2S, at(110.0), 300);
    cv.ack(Dir::S2C, at(115.0));
    cv.data(Dir::S2C, at(120.0), 400);
    cv.ack(Dir::C2S, at(140.0));
    let packets = cv.packets();
    let mut t = truth(&cv, &packets);
    t.packets = (5, 4);
    t.end = at(140.0);
    t.client_leg = leg(20.0, 2, Some(20.0));
    t.server_leg = leg(5.0, 3, Some(5.0));
    Scenario { name: "seq_wrap", packets, truth: t }
}

/// (g) Keystrokes echoed after 30 ms think time, the echo carrying the ACK.
///
/// ```text
///   100 C K1 (36 B)  135 S echo (36 B, acks K1, no pure ACK)  155 C ACK
///   300 C K2         305 S pure ACK (sample 5)  335 S echo    355 C ACK
///   500 C K3         535 S echo (acks K3)                     555 C ACK
/// ```
/// Server leg: handshake + K2 = 2 samples, all 5 ms: the echoes' ACKs (35 ms
/// after the keystroke) are not network RTT samples. Client leg: handshake +
/// three echoes = 4 samples of 20 ms.
pub fn piggyback_echo() -> Scenario {
    let mut cv = conv();
    cv.handshake(at(0.0));
    cv.data(Dir::C2S, at(100.0), 36);
    cv.data(Dir::S2C, at(135.0), 36);
    cv.ack(Dir::C2S, at(155.0));
    cv.data(Dir::C2S, at(300.0), 36);
    cv.ack(Dir::S2C, at(305.0));
    cv.data(Dir::S2C, at(335.0), 36);
    cv.ack(Dir::C2S, at(355.0));
    cv.data(Dir::C2S, at(500.0), 36);
    cv.data(Dir::S2C, at(535.0), 36);
    cv.ack(Dir::C2S, at(555.0));
    let packets = cv.packets();
    let mut t = truth(&cv, &packets);
    t.packets = (8, 5);
    t.end = at(555.0);
    t.client_leg = leg(20.0, 4, Some(20.0));
    t.server_leg = leg(5.0, 2, Some(5.0));
    Scenario { name: "piggyback_echo", packets, truth: t }
}

/// (h) TCP timestamps (1 ms TSval tick, taken at the sender's departure
/// time). A pure ACK whose number matches no segment end is sampled through
/// its TSecr; only data-bearing segments carrying a new TSval start such
/// samples, and pure ACKs start none.
///
/// ```text
///   100     C D1 (100 B)                    105    S ACK D1      -> 5 ms (seq/ack)
///   200     C G1 (2896 B, TSval V)
///   200.3   C G2 (2896 B, TSval V again: same 1 ms tick, no new TSval)
///   205     S ACK G1.start+1448 (partial, TSecr V)            -> 5 ms (timestamp echo)
///   205.01  S ACK G1.end                    -> none (G1 already sampled; 5.01 anyway)
///   205.3   S ACK G2.start+1448 (partial, TSecr V)
///           -> none: G2 started no timestamp sample, and taking V's first
///              time (G1, 200) would give 5.3 ms
///   205.31  S ACK G2.end                                      -> 5.01 ms (seq/ack)
///   240     C duplicate ACK echoing the TSval of the server's pure ACK of
///           205.31                          -> none (pure ACKs start no sample;
///              it would give 34.69 ms)
///   300     S S1 (500 B)                    320    C ACK         -> 20 ms
/// ```
/// Server leg: handshake + D1 + G1 + G2 = 4 samples; client leg: handshake +
/// S1 = 2 samples.
pub fn timestamps() -> Scenario {
    let mut cv = conv().with_timestamps();
    cv.handshake(at(0.0));
    cv.data(Dir::C2S, at(100.0), 100);
    cv.ack(Dir::S2C, at(105.0));
    let g1 = cv.data(Dir::C2S, at(200.0), 2896);
    let g2 = cv.data(Dir::C2S, at(200.3), 2896);
    cv.ack_upto(Dir::S2C, at(205.0), g1.start + 1448);
    cv.ack(Dir::S2C, at(205.01));
    cv.ack_upto(Dir::S2C, at(205.3), g2.start + 1448);
    cv.ack(Dir::S2C, at(205.31));
    cv.ack(Dir::C2S, at(240.0));
    cv.data(Dir::S2C, at(300.0), 500);
    cv.ack(Dir::C2S, at(320.0));
    let packets = cv.packets();
    let mut t = truth(&cv, &packets);
    t.packets = (7, 7);
    t.end = at(320.0);
    t.client_leg = leg(20.0, 2, Some(20.0));
    t.server_leg = leg(5.0, 4, Some(5.0));
    Scenario { name: "timestamps", packets, truth: t }
}

/// (i) IPv6 SSH session: client [2001:db8::1]:40000, server [2001:db8::2]:22.
///
/// ```text
///   30 S banner (40 B)   50 C ACK   -> client leg 20 ms
///   60 C banner (21 B)   65 S ACK   -> server leg 5 ms
/// ```
pub fn ipv6_ssh() -> Scenario {
    let mut cv = Conversation::new(
        "[2001:db8::1]:40000".parse().unwrap(),
        "[2001:db8::2]:22".parse().unwrap(),
        ms(10.0),
        ms(2.5),
    );
    cv.handshake(at(0.0));
    cv.data_bytes(Dir::S2C, at(30.0), b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
    cv.ack(Dir::C2S, at(50.0));
    cv.data_bytes(Dir::C2S, at(60.0), b"SSH-2.0-OpenSSH_9.6\r\n");
    cv.ack(Dir::S2C, at(65.0));
    let packets = cv.packets();
    let mut t = truth(&cv, &packets);
    t.client = "[2001:db8::1]:40000".into();
    t.server = "[2001:db8::2]:22".into();
    t.proto = "ssh";
    t.packets = (4, 3);
    // IPv6 header 40 + TCP 20 (24 on SYNs) + payload
    // client: SYN 64 + ACK 60 + ACK 60 + banner 81; server: SYN/ACK 64 + banner 100 + ACK 60
    t.bytes = (265, 224);
    t.end = at(65.0);
    t.client_leg = leg(20.0, 2, Some(20.0));
    t.server_leg = leg(5.0, 2, Some(5.0));
    Scenario { name: "ipv6_ssh", packets, truth: t }
}

/// (j) Bulk-ish session for the header-only test: 1400-byte payloads.
///
/// ```text
///   100   C 1400 B            105   S ACK        -> 5 ms
///   110   S 1400 B, 110.1 S 1400 B   130.1 C ACK  -> 20 ms (newest segment)
/// ```
pub fn bulk() -> Scenario {
    let mut cv = conv();
    cv.handshake(at(0.0));
    cv.data(Dir::C2S, at(100.0), 1400);
    cv.ack(Dir::S2C, at(105.0));
    cv.data(Dir::S2C, at(110.0), 1400);
    cv.data(Dir::S2C, at(110.1), 1400);
    cv.ack(Dir::C2S, at(130.1));
    let packets = cv.packets();
    let mut t = truth(&cv, &packets);
    t.packets = (4, 4);
    // client: SYN 44 + ACK 40 + 1440 + ACK 40; server: SYN/ACK 44 + ACK 40 + 2 * 1440
    t.bytes = (1564, 2964);
    t.end = at(130.1);
    t.client_leg = leg(20.0, 2, Some(20.0));
    t.server_leg = leg(5.0, 2, Some(5.0));
    Scenario { name: "bulk", packets, truth: t }
}

/// All TCP scenarios with full truth (for checks that apply to each).
pub fn all() -> Vec<Scenario> {
    vec![
        handshake(),
        sack_loss(),
        sack_loss_wrapped(),
        karn(),
        karn_server_data(),
        karn_large_window(),
        delayed_ack(),
        syn_retransmit(),
        synack_retransmit(),
        seq_wrap(),
        piggyback_echo(),
        timestamps(),
        ipv6_ssh(),
        bulk(),
    ]
}
