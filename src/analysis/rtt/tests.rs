use super::*;

const MS: i64 = 1_000_000;

/// A scripted connection seen by a sensor: client leg `c` ms, server leg `s` ms (round trips).
struct Script {
    t: RttTracker,
    samples: Vec<RttSample>,
}

impl Script {
    fn new() -> Script {
        Script { t: RttTracker::default(), samples: Vec::new() }
    }

    #[allow(clippy::too_many_arguments)]
    fn seg(
        &mut self,
        ts: i64,
        from: Side,
        seq: u32,
        ack: u32,
        flags: &str,
        len: u32,
        tsopt: Option<(u32, u32)>,
        sack: &[(u32, u32)],
    ) {
        let s = Segment {
            ts,
            from,
            seq,
            ack,
            syn: flags.contains('S'),
            ack_flag: flags.contains('A'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
            payload_len: len,
            timestamps: tsopt,
            sack,
        };
        for smp in self.t.on_segment(&s).into_iter().flatten() {
            self.samples.push(smp);
        }
    }

    fn kinds(&self, leg: Side, kind: SampleKind) -> Vec<i64> {
        self.samples.iter().filter(|s| s.leg == leg && s.kind == kind).map(|s| s.ns).collect()
    }
}

use Side::{Client as C, Server as S};

fn handshake(sc: &mut Script, t0: i64, cisn: u32, sisn: u32) {
    sc.seg(t0, C, cisn, 0, "S", 0, None, &[]);
    sc.seg(t0 + 5 * MS, S, sisn, cisn.wrapping_add(1), "SA", 0, None, &[]);
    sc.seg(t0 + 25 * MS, C, cisn.wrapping_add(1), sisn.wrapping_add(1), "A", 0, None, &[]);
}

#[test]
fn handshake_splits_legs() {
    let mut sc = Script::new();
    handshake(&mut sc, 0, 100, 900);
    assert_eq!(sc.kinds(S, SampleKind::Handshake), vec![5 * MS]);
    assert_eq!(sc.kinds(C, SampleKind::Handshake), vec![20 * MS]);
    assert_eq!(sc.t.handshake, [Some(20.0), Some(5.0)]);
}

#[test]
fn retransmitted_syn_uses_the_latest() {
    let mut sc = Script::new();
    sc.seg(0, C, 100, 0, "S", 0, None, &[]);
    sc.seg(1000 * MS, C, 100, 0, "S", 0, None, &[]);
    sc.seg(1005 * MS, S, 900, 101, "SA", 0, None, &[]);
    assert_eq!(sc.kinds(S, SampleKind::Handshake), vec![5 * MS]);
}

#[test]
fn data_ack_pairs_both_ways() {
    let mut sc = Script::new();
    handshake(&mut sc, 0, 100, 900);
    // client data at 30 ms, server pure ACK 5 ms later
    sc.seg(30 * MS, C, 101, 901, "PA", 36, None, &[]);
    sc.seg(35 * MS, S, 901, 137, "A", 0, None, &[]);
    // server data at 40 ms, client pure ACK 20 ms later
    sc.seg(40 * MS, S, 901, 137, "PA", 100, None, &[]);
    sc.seg(60 * MS, C, 137, 1001, "A", 0, None, &[]);
    assert_eq!(sc.kinds(S, SampleKind::Ack), vec![5 * MS]);
    assert_eq!(sc.kinds(C, SampleKind::Ack), vec![20 * MS]);
}

#[test]
fn piggybacked_ack_after_think_time_is_not_network_rtt() {
    let mut sc = Script::new();
    handshake(&mut sc, 0, 100, 900);
    sc.seg(30 * MS, C, 101, 901, "PA", 36, None, &[]);
    // The echo leaves the server 30 ms after the keystroke arrived: 5 ms + 30 ms.
    sc.seg(65 * MS, S, 901, 137, "PA", 36, None, &[]);
    assert!(sc.kinds(S, SampleKind::Ack).is_empty());
    assert_eq!(sc.kinds(S, SampleKind::Piggyback), vec![35 * MS]);
    let q = sc.t.legs[S as usize].quantiles().unwrap();
    assert_eq!((q.min, q.max, q.samples), (5.0, 5.0, 1));
}

#[test]
fn karn_no_sample_from_retransmitted_segment() {
    let mut sc = Script::new();
    handshake(&mut sc, 0, 100, 900);
    sc.seg(30 * MS, C, 101, 901, "PA", 100, None, &[]);
    sc.seg(230 * MS, C, 101, 901, "PA", 100, None, &[]); // RTO retransmission
    sc.seg(235 * MS, S, 901, 201, "A", 0, None, &[]);
    assert!(sc.kinds(S, SampleKind::Ack).is_empty());
    assert_eq!(sc.t.retransmissions(), [1, 0]);
    // Later clean data gives samples again.
    sc.seg(300 * MS, C, 201, 901, "PA", 10, None, &[]);
    sc.seg(305 * MS, S, 901, 211, "A", 0, None, &[]);
    assert_eq!(sc.kinds(S, SampleKind::Ack), vec![5 * MS]);
}

#[test]
fn loss_with_sack_samples_right_edges_not_the_repair() {
    let mut sc = Script::new();
    handshake(&mut sc, 0, 100, 900);
    // Segments A (lost), B, C of 100 bytes at 30, 31, 32 ms.
    sc.seg(30 * MS, C, 101, 901, "A", 100, None, &[]);
    sc.seg(31 * MS, C, 201, 901, "A", 100, None, &[]);
    sc.seg(32 * MS, C, 301, 901, "A", 100, None, &[]);
    sc.seg(36 * MS, S, 901, 101, "A", 0, None, &[(201, 301)]);
    sc.seg(37 * MS, S, 901, 101, "A", 0, None, &[(201, 401)]);
    // Repair of A, then the cumulative ACK: no sample (A retransmitted).
    sc.seg(40 * MS, C, 101, 901, "A", 100, None, &[]);
    sc.seg(45 * MS, S, 901, 401, "A", 0, None, &[]);
    assert_eq!(sc.kinds(S, SampleKind::Ack), vec![5 * MS, 5 * MS]);
}

#[test]
fn delayed_ack_covering_two_segments_times_the_later() {
    let mut sc = Script::new();
    handshake(&mut sc, 0, 100, 900);
    sc.seg(30 * MS, S, 901, 101, "A", 1000, None, &[]);
    sc.seg(31 * MS, S, 1901, 101, "A", 1000, None, &[]);
    sc.seg(51 * MS, C, 101, 2901, "A", 0, None, &[]);
    assert_eq!(sc.kinds(C, SampleKind::Ack), vec![20 * MS]);
}

#[test]
fn sequence_wrap_is_handled() {
    let mut sc = Script::new();
    let cisn = u32::MAX - 50;
    handshake(&mut sc, 0, cisn, 900);
    sc.seg(30 * MS, C, cisn.wrapping_add(1), 901, "A", 100, None, &[]); // crosses 2^32
    sc.seg(35 * MS, S, 901, cisn.wrapping_add(101), "A", 0, None, &[]);
    sc.seg(40 * MS, C, cisn.wrapping_add(101), 901, "A", 100, None, &[]);
    sc.seg(45 * MS, S, 901, cisn.wrapping_add(201), "A", 0, None, &[]);
    assert_eq!(sc.kinds(S, SampleKind::Ack), vec![5 * MS, 5 * MS]);
    assert_eq!(sc.t.retransmissions(), [0, 0]);
}

#[test]
fn timestamps_only_from_data_with_new_tsval() {
    let mut sc = Script::new();
    handshake(&mut sc, 0, 100, 900);
    // A pure ACK with a TSval starts nothing; its echo gives no sample.
    sc.seg(30 * MS, C, 101, 901, "A", 0, Some((50, 1)), &[]);
    sc.seg(35 * MS, S, 901, 101, "A", 0, Some((7, 50)), &[]);
    assert!(sc.kinds(S, SampleKind::Ack).is_empty());
    // TSO-sized segment acked in two parts: the partial ACK echoes the TSval.
    sc.seg(40 * MS, C, 101, 901, "A", 2000, Some((51, 7)), &[]);
    sc.seg(45 * MS, S, 901, 1101, "A", 0, Some((8, 51)), &[]);
    assert_eq!(sc.kinds(S, SampleKind::Ack), vec![5 * MS]);
    // The second partial ACK echoes the same TSval: no second sample.
    sc.seg(46 * MS, S, 901, 2101, "A", 0, Some((9, 51)), &[]);
    assert_eq!(sc.kinds(S, SampleKind::Ack), vec![5 * MS]);
}

#[test]
fn rst_gives_nothing() {
    let mut sc = Script::new();
    sc.seg(0, C, 100, 0, "S", 0, None, &[]);
    sc.seg(MS, S, 0, 101, "RA", 0, None, &[]);
    assert!(sc.samples.is_empty());
}

#[test]
fn out_of_order_timestamps_give_no_negative_sample() {
    let mut sc = Script::new();
    handshake(&mut sc, 0, 100, 900);
    sc.seg(30 * MS, C, 101, 901, "PA", 36, None, &[]);
    sc.seg(29 * MS, S, 901, 137, "A", 0, None, &[]); // stamped before the data it acks
    assert!(sc.kinds(S, SampleKind::Ack).is_empty());
    assert!(sc.samples.iter().all(|s| s.ns >= 0));
}
