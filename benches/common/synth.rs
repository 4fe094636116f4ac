//! The benches' synthetic capture: header-only TCP over many concurrent
//! connections (handshakes, data and ACKs with TCP timestamps, some
//! retransmissions, closes), written once to `target/bench-data/` and reused.

use crate::rng::Rng;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The capture of `packets` packets over `flows` concurrent connections:
/// generated into `target/bench-data/` unless it is there already.
pub fn capture(packets: u64, flows: u64) -> PathBuf {
    let dir = target_dir().join("bench-data");
    std::fs::create_dir_all(&dir).expect("create bench-data dir");
    let path = dir.join(format!("replay-v2-{packets}p-{flows}f.pcap"));
    if path.exists() {
        println!("reusing {}", path.display());
        return path;
    }
    let t = Instant::now();
    let tmp = path.with_extension("pcap.tmp");
    let st = generate(&tmp, packets, flows).expect("write capture");
    std::fs::rename(&tmp, &path).expect("rename capture");
    println!(
        "generated {} in {:.2}s: {} packets, {} connections ({} concurrent), {} retransmissions, {:.1}s of traffic",
        path.display(),
        t.elapsed().as_secs_f64(),
        st.packets,
        st.connections,
        flows,
        st.retransmissions,
        st.span_s
    );
    path
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

struct GenStats {
    packets: u64,
    connections: u64,
    retransmissions: u64,
    span_s: f64,
}

/// What a connection sends next; sequence numbers, ACKs and TCP timestamps
/// are filled in when the packet is written.
#[derive(Clone, Copy)]
enum Act {
    Syn,
    SynAck,
    /// A pure ACK.
    Ack,
    /// New data of this many bytes (PSH on short segments).
    Data(u32),
    /// The sender's last data segment again.
    Retx,
    Fin,
}

#[derive(Default, Clone, Copy)]
struct End {
    isn: u32,
    snd_nxt: u32,
    last_seq: u32,
    last_len: u32,
    ts_base: u32,
    /// Last TSval received from the peer (echoed as TSecr).
    peer_tsval: u32,
    ip_id: u16,
}

struct Conn {
    client_ip: [u8; 4],
    server_ip: [u8; 4],
    cport: u16,
    sport: u16,
    ends: [End; 2],
    /// Actions still to send, as (side, act), side 0 = client; popped from the end.
    todo: Vec<(u8, Act)>,
    exchanges_left: u32,
    fin_queued: bool,
}

impl Conn {
    fn new(rng: &mut Rng, serial: u64) -> Conn {
        // Clients in 198.18.0.0/15 (benchmarking range), servers in 203.0.113.0/24.
        let c = serial % 100_000;
        let client_ip = [198, 18 + (c >> 16) as u8, (c >> 8) as u8, c as u8];
        let server_ip = [203, 0, 113, 1 + rng.below(50) as u8];
        let sport = [22, 22, 22, 443, 3389, 5901][rng.below(6) as usize];
        let cport = 32768 + ((serial / 100_000 * 7919 + rng.below(28000)) % 28000) as u16;
        let mut ends = [End::default(); 2];
        for e in &mut ends {
            e.isn = rng.next() as u32;
            e.snd_nxt = e.isn;
            e.ts_base = rng.next() as u32;
            e.ip_id = rng.next() as u16;
        }
        // Mean ~100 packets a connection.
        let exchanges_left = 5 + rng.below(50) as u32;
        let mut todo = vec![(0, Act::Ack), (1, Act::SynAck), (0, Act::Syn)];
        if rng.chance(20) {
            // A lost SYN/ACK, sent again.
            todo.insert(1, (1, Act::SynAck));
        }
        Conn { client_ip, server_ip, cport, sport, ends, todo, exchanges_left, fin_queued: false }
    }

    /// Queue the next exchange (or the close); false when the connection is done.
    fn refill(&mut self, rng: &mut Rng) -> bool {
        if !self.todo.is_empty() {
            return true;
        }
        if self.exchanges_left == 0 {
            if self.fin_queued {
                return false;
            }
            self.fin_queued = true;
            let first = rng.below(2) as u8;
            self.todo = vec![(first, Act::Ack), (1 - first, Act::Fin), (first, Act::Fin)];
            return true;
        }
        self.exchanges_left -= 1;
        let mut ex: Vec<(u8, Act)> = Vec::with_capacity(16);
        match rng.below(10) {
            // Interactive: a keystroke, its echo (ACK piggybacked), a pure ACK.
            0..=5 => {
                ex.push((0, Act::Data(36)));
                if rng.chance(300) {
                    ex.push((1, Act::Ack));
                }
                ex.push((1, Act::Data(36 + 16 * rng.below(4) as u32)));
                ex.push((0, Act::Ack));
            }
            // Server bulk: a burst of full segments, ACKed every other one.
            6..=8 => {
                let n = 2 + rng.below(8);
                for i in 0..n {
                    ex.push((1, Act::Data(1448)));
                    if i % 2 == 1 || i == n - 1 {
                        ex.push((0, Act::Ack));
                    }
                }
            }
            // Client upload.
            _ => {
                ex.push((0, Act::Data(200 + rng.below(1200) as u32)));
                ex.push((1, Act::Ack));
            }
        }
        // Some retransmissions: a data segment sent again before the ACK.
        if rng.chance(30)
            && let Some(i) = ex.iter().position(|(_, a)| matches!(a, Act::Data(_)))
        {
            let side = ex[i].0;
            ex.insert(i + 1, (side, Act::Retx));
        }
        ex.reverse();
        self.todo = ex;
        true
    }
}

/// Write a pcap (microsecond, Ethernet, snaplen 96) of `packets` header-only
/// TCP packets over `flows` concurrent connections.
fn generate(path: &Path, packets: u64, flows: u64) -> std::io::Result<GenStats> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut gh = Vec::with_capacity(24);
    gh.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    gh.extend_from_slice(&2u16.to_le_bytes());
    gh.extend_from_slice(&4u16.to_le_bytes());
    gh.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    gh.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    gh.extend_from_slice(&96u32.to_le_bytes()); // snaplen
    gh.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    w.write_all(&gh)?;

    let mut rng = Rng(0x5EED_EC40_10C0);
    let mut serial = 0u64;
    let mut conns: Vec<Conn> = (0..flows)
        .map(|_| {
            serial += 1;
            Conn::new(&mut rng, serial)
        })
        .collect();
    let start_us: u64 = 1_767_225_600 * 1_000_000; // 2026-01-01T00:00:00Z
    let mut now_us = start_us;
    let mut st = GenStats { packets: 0, connections: flows, retransmissions: 0, span_s: 0.0 };
    let mut buf = [0u8; 16 + 96];
    while st.packets < packets {
        // ~200k packets/s overall: 1–9 µs between packets.
        now_us += 1 + rng.below(9);
        let slot = rng.below(flows) as usize;
        if !conns[slot].refill(&mut rng) {
            serial += 1;
            st.connections += 1;
            conns[slot] = Conn::new(&mut rng, serial);
        }
        let c = &mut conns[slot];
        let (side, act) = c.todo.pop().expect("refilled");
        if matches!(act, Act::Retx) {
            st.retransmissions += 1;
        }
        let n = write_packet(&mut buf, c, side as usize, act, now_us);
        w.write_all(&buf[..n])?;
        st.packets += 1;
    }
    w.flush()?;
    st.span_s = (now_us - start_us) as f64 / 1e6;
    Ok(st)
}

/// Build record header + frame into `buf`; returns the bytes used.
fn write_packet(buf: &mut [u8; 112], c: &mut Conn, side: usize, act: Act, now_us: u64) -> usize {
    let peer = 1 - side;
    let tsval = c.ends[side].ts_base.wrapping_add((now_us / 1000) as u32);
    let tsecr = c.ends[side].peer_tsval;
    let peer_nxt = c.ends[peer].snd_nxt;
    let e = &mut c.ends[side];
    e.ip_id = e.ip_id.wrapping_add(1);
    let ip_id = e.ip_id;
    let (seq, payload, flags, ack) = match act {
        Act::Syn => (e.isn, 0, 0x02, 0),
        Act::SynAck => (e.isn, 0, 0x12, peer_nxt),
        Act::Ack => (e.snd_nxt, 0, 0x10, peer_nxt),
        Act::Data(len) => (e.snd_nxt, len, if len < 1448 { 0x18 } else { 0x10 }, peer_nxt),
        Act::Retx => (e.last_seq, e.last_len, 0x18, peer_nxt),
        Act::Fin => (e.snd_nxt, 0, 0x11, peer_nxt),
    };
    match act {
        Act::Syn | Act::SynAck => e.snd_nxt = e.isn.wrapping_add(1),
        Act::Data(len) => {
            e.last_seq = e.snd_nxt;
            e.last_len = len;
            e.snd_nxt = e.snd_nxt.wrapping_add(len);
        }
        Act::Fin => e.snd_nxt = e.snd_nxt.wrapping_add(1),
        Act::Ack | Act::Retx => {}
    }
    c.ends[peer].peer_tsval = tsval;

    let syn = matches!(act, Act::Syn | Act::SynAck);
    let (src_ip, dst_ip, sp, dp) = if side == 0 {
        (c.client_ip, c.server_ip, c.cport, c.sport)
    } else {
        (c.server_ip, c.client_ip, c.sport, c.cport)
    };
    let tcp_hl: usize = if syn { 40 } else { 32 };
    let ip_total = 20 + tcp_hl + payload as usize;
    let caplen = 14 + 20 + tcp_hl;

    let (rec, f) = buf.split_at_mut(16);
    rec[0..4].copy_from_slice(&((now_us / 1_000_000) as u32).to_le_bytes());
    rec[4..8].copy_from_slice(&((now_us % 1_000_000) as u32).to_le_bytes());
    rec[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
    rec[12..16].copy_from_slice(&((14 + ip_total) as u32).to_le_bytes());

    // Ethernet
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1 + side as u8]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1 + peer as u8]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    // IPv4
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&(ip_total as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    ip[8] = if side == 0 { 61 } else { 52 };
    ip[9] = 6;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&src_ip);
    ip[16..20].copy_from_slice(&dst_ip);
    let ck =
        etherparse::Ipv4HeaderSlice::from_slice(ip).expect("a 20-byte IPv4 header").to_header().calc_header_checksum();
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    // TCP (checksum left 0: the payload is not captured)
    let t = &mut f[34..34 + tcp_hl];
    t[0..2].copy_from_slice(&sp.to_be_bytes());
    t[2..4].copy_from_slice(&dp.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = ((tcp_hl / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&(if syn { 64240u16 } else { 501 }).to_be_bytes());
    t[16..20].copy_from_slice(&[0, 0, 0, 0]);
    let mut ts_opt = [8u8, 10, 0, 0, 0, 0, 0, 0, 0, 0];
    ts_opt[2..6].copy_from_slice(&tsval.to_be_bytes());
    ts_opt[6..10].copy_from_slice(&(if act_is_syn_only(act) { 0 } else { tsecr }).to_be_bytes());
    if syn {
        // MSS 1460, SACK permitted, timestamps, NOP, window scale 7 (Linux order).
        t[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
        t[24..26].copy_from_slice(&[4, 2]);
        t[26..36].copy_from_slice(&ts_opt);
        t[36..40].copy_from_slice(&[1, 3, 3, 7]);
    } else {
        t[20..22].copy_from_slice(&[1, 1]);
        t[22..32].copy_from_slice(&ts_opt);
    }
    16 + caplen
}

fn act_is_syn_only(a: Act) -> bool {
    matches!(a, Act::Syn)
}
