//! Replay throughput: echoloc's engine against a plain libpcap + etherparse
//! parse loop, on a generated header-only capture.
//!
//! `cargo bench --bench replay` — a plain `main` (harness = false) that prints
//! its figures. Knobs (environment):
//! - `ECHOLOC_BENCH_PACKETS` packets in the generated file (default 2,000,000)
//! - `ECHOLOC_BENCH_FLOWS`   concurrent connections (default 5,000)
//! - `ECHOLOC_BENCH_RUNS`    runs of each measurement (default 5)
//! - `ECHOLOC_BENCH_FILE`    use this pcap file instead of generating one
//! - `ECHOLOC_BENCH_ONLY`    `a`, `b`, `c3` or `c4`: run only that measurement (for a profiler)
//!
//! The generated file is kept in `target/bench-data/` and reused.

#[path = "../tests/common/rng.rs"]
#[allow(dead_code)]
mod rng;

use echoloc::decode::{self, LinkType};
use echoloc::engine::{Engine, EngineConfig};
use echoloc::flow::EndReason;
use echoloc::output::SessionRecord;
use etherparse::{LaxSlicedPacket, TransportSlice};
use rng::Rng;
use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TARGET_PPS: f64 = 5_000_000.0;
const TARGET_RATIO: f64 = 3.0;

fn main() {
    let packets = env_num("ECHOLOC_BENCH_PACKETS", 2_000_000);
    let flows = env_num("ECHOLOC_BENCH_FLOWS", 5_000).max(1);
    let runs = env_num("ECHOLOC_BENCH_RUNS", 5).max(1);

    let path = match std::env::var_os("ECHOLOC_BENCH_FILE") {
        Some(p) => PathBuf::from(p),
        None => {
            let dir = target_dir().join("bench-data");
            std::fs::create_dir_all(&dir).expect("create bench-data dir");
            let path = dir.join(format!("replay-v2-{packets}p-{flows}f.pcap"));
            if path.exists() {
                println!("reusing {}", path.display());
            } else {
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
            }
            path
        }
    };
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("file: {} ({:.1} MB), {runs} runs each, best and median", path.display(), size as f64 / 1e6);
    println!();

    match std::env::var("ECHOLOC_BENCH_ONLY").as_deref() {
        Ok("a") => return only("a. parse loop", measure(runs, || parse_loop(&path))),
        Ok("b") => return only("b. echoloc replay_file", measure(runs, || engine_replay(&path).0)),
        Ok("c3") => {
            let frames = Frames::load(&path);
            return only("c3. in memory: echoloc engine", measure(runs, || frames.engine_loop()));
        }
        Ok("c4") => {
            let frames = Frames::load(&path);
            return only("c4. in memory: engine + metrics", measure(runs, || frames.engine_loop_metrics()));
        }
        _ => {}
    }

    // (a) the floor: libpcap read + etherparse slicing, nothing else.
    let parse = measure(runs, || parse_loop(&path));
    // (b) what `echoloc replay` does.
    reset_peak_rss();
    let rss_before = rss_kib("VmRSS");
    let mut summary = None;
    let engine = measure(runs, || {
        let (n, s) = engine_replay(&path);
        summary = Some(s);
        n
    });
    let peak = rss_kib("VmHWM");
    // (c) the same with the frames already in memory: analysis without I/O.
    let frames = Frames::load(&path);
    let mem_parse = measure(runs, || frames.parse_loop());
    let mem_decode = measure(runs, || frames.decode_loop());
    let mem_engine = measure(runs, || frames.engine_loop());
    let mem_metrics = measure(runs, || frames.engine_loop_metrics());

    println!(
        "{:<40} {:>10} {:>9} {:>9} {:>12} {:>12} {:>8} {:>8}",
        "measurement", "packets", "best s", "median s", "best pkt/s", "median pkt/s", "ns/pkt", "x parse"
    );
    let rows: [(&str, &Stat, &Stat); 6] = [
        ("a. parse loop (libpcap + etherparse)", &parse, &parse),
        ("b. echoloc replay_file (full engine)", &engine, &parse),
        ("c1. in memory: etherparse only", &mem_parse, &mem_parse),
        ("c2. in memory: echoloc decode()", &mem_decode, &mem_parse),
        ("c3. in memory: echoloc engine", &mem_engine, &mem_parse),
        ("c4. in memory: engine + metrics (live)", &mem_metrics, &mem_parse),
    ];
    for (name, s, base) in rows {
        println!(
            "{:<40} {:>10} {:>9.3} {:>9.3} {:>12} {:>12} {:>8.1} {:>8.2}",
            name,
            s.packets,
            s.best.as_secs_f64(),
            s.median.as_secs_f64(),
            si(s.pps(s.best)),
            si(s.pps(s.median)),
            s.ns_per_packet(),
            s.best.as_secs_f64() / base.best.as_secs_f64()
        );
    }
    println!("(ns/pkt and 'x parse' from the best run; c-rows compare with c1)");
    println!();
    if let Some(s) = summary {
        println!(
            "engine: {} records ({} with an RTT), {} sessions opened, {} decode errors",
            s.records, s.with_rtt, s.opened, s.decode_errors
        );
    }
    match (rss_before, peak) {
        (Some(b), Some(p)) => println!(
            "peak RSS during the engine runs (VmHWM): {:.1} MiB (RSS before: {:.1} MiB)",
            p as f64 / 1024.0,
            b as f64 / 1024.0
        ),
        _ => println!("peak RSS: /proc/self/status not readable"),
    }
    let pps = engine.pps(engine.best);
    let ratio = engine.best.as_secs_f64() / parse.best.as_secs_f64();
    println!(
        "target {} pkt/s on one core: {} ({}); within {TARGET_RATIO}x of the parse loop: {} ({ratio:.2}x)",
        si(TARGET_PPS),
        if pps >= TARGET_PPS { "met" } else { "NOT met" },
        si(pps),
        if ratio <= TARGET_RATIO { "met" } else { "NOT met" },
    );
}

// ---------------------------------------------------------------- measuring

fn only(name: &str, s: Stat) {
    println!(
        "{name}: {} packets, best {:.3}s ({} pkt/s, {:.1} ns/pkt), median {:.3}s",
        s.packets,
        s.best.as_secs_f64(),
        si(s.pps(s.best)),
        s.ns_per_packet(),
        s.median.as_secs_f64()
    );
}

struct Stat {
    packets: u64,
    best: Duration,
    median: Duration,
}

impl Stat {
    fn pps(&self, d: Duration) -> f64 {
        self.packets as f64 / d.as_secs_f64()
    }
    fn ns_per_packet(&self) -> f64 {
        self.best.as_nanos() as f64 / self.packets.max(1) as f64
    }
}

/// Run `f` `runs` times; `f` returns the packets it handled.
fn measure(runs: u64, mut f: impl FnMut() -> u64) -> Stat {
    let mut times = Vec::new();
    let mut packets = 0;
    for _ in 0..runs {
        let t = Instant::now();
        packets = black_box(f());
        times.push(t.elapsed());
    }
    times.sort();
    Stat { packets, best: times[0], median: times[times.len() / 2] }
}

/// Read the file as `echoloc replay` does (libpcap, through the same stdio
/// buffer) and slice each frame with etherparse.
fn parse_loop(path: &Path) -> u64 {
    let mut cap = echoloc::capture::offline::open(path).expect("open capture");
    let mut n = 0u64;
    let mut sum = 0u64;
    loop {
        match cap.next_packet() {
            Ok(pkt) => {
                n += 1;
                sum = sum.wrapping_add(touch(pkt.data));
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => panic!("read capture: {e}"),
        }
    }
    black_box(sum);
    n
}

/// Slice a frame and read a few TCP fields, so the parse is not optimised away.
fn touch(frame: &[u8]) -> u64 {
    match LaxSlicedPacket::from_ethernet(frame) {
        Ok(p) => match p.transport {
            Some(TransportSlice::Tcp(t)) => {
                u64::from(t.sequence_number()) ^ u64::from(t.source_port()) ^ t.options().len() as u64
            }
            _ => 1,
        },
        Err(_) => 0,
    }
}

#[derive(Default)]
struct EngineSummary {
    records: u64,
    with_rtt: u64,
    opened: u64,
    decode_errors: u64,
}

fn engine_replay(path: &Path) -> (u64, EngineSummary) {
    let mut engine = Engine::new(EngineConfig::default(), None);
    let mut sum = EngineSummary::default();
    let mut out = |r: SessionRecord| {
        sum.records += 1;
        if r.client_rtt_ms.is_some() || r.server_rtt_ms.is_some() {
            sum.with_rtt += 1;
        }
    };
    let mut to = echoloc::runtime::offline::Replay { engine: &mut engine, out: &mut out };
    echoloc::capture::offline::replay_file(path, &mut to, &mut |_bytes: u64| {}).expect("replay");
    engine.finish_all(EndReason::EndOfInput, &mut out);
    sum.opened = engine.counters.opened.iter().sum();
    sum.decode_errors = engine.counters.decode_errors.iter().sum();
    (engine.counters.packets, sum)
}

/// Every frame of a capture in one buffer.
struct Frames {
    data: Vec<u8>,
    /// (timestamp ns, offset, length)
    index: Vec<(i64, usize, usize)>,
}

impl Frames {
    fn load(path: &Path) -> Frames {
        let mut cap = echoloc::capture::offline::open(path).expect("open capture");
        let mut f = Frames { data: Vec::new(), index: Vec::new() };
        while let Ok(pkt) = cap.next_packet() {
            let ts = pkt.header.ts.tv_sec * 1_000_000_000 + pkt.header.ts.tv_usec;
            f.index.push((ts, f.data.len(), pkt.data.len()));
            f.data.extend_from_slice(pkt.data);
        }
        f
    }

    fn frames(&self) -> impl Iterator<Item = (i64, &[u8])> {
        self.index.iter().map(|&(ts, off, len)| (ts, &self.data[off..off + len]))
    }

    fn parse_loop(&self) -> u64 {
        let sum = self.frames().fold(0u64, |acc, (_, f)| acc.wrapping_add(touch(f)));
        black_box(sum);
        self.index.len() as u64
    }

    fn decode_loop(&self) -> u64 {
        let mut sum = 0u64;
        for (ts, f) in self.frames() {
            if let Ok(p) = decode::decode(LinkType::Ethernet, ts, f) {
                sum = sum.wrapping_add(u64::from(p.ip_len) ^ u64::from(p.ports().0));
            }
        }
        black_box(sum);
        self.index.len() as u64
    }

    fn engine_loop(&self) -> u64 {
        self.engine_loop_with(None)
    }

    /// The engine as `echoloc live` runs it: Prometheus metrics on (the
    /// exported-series cap at its default, 500).
    fn engine_loop_metrics(&self) -> u64 {
        let m = echoloc::output::Metrics::new(500, std::time::Duration::from_secs(60), Default::default())
            .expect("metrics");
        self.engine_loop_with(Some(std::sync::Arc::new(m)))
    }

    fn engine_loop_with(&self, metrics: Option<std::sync::Arc<dyn echoloc::engine::Observer>>) -> u64 {
        let mut engine = Engine::new(EngineConfig::default(), metrics);
        let mut records = 0u64;
        let mut out = |_r: SessionRecord| records += 1;
        for (ts, f) in self.frames() {
            engine.frame(LinkType::Ethernet, ts, f, &mut out);
        }
        engine.finish_all(EndReason::EndOfInput, &mut out);
        black_box(records);
        engine.counters.packets
    }
}

// ------------------------------------------------------------ the generator

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

// ------------------------------------------------------------------ helpers

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Reset VmHWM to the current RSS (Linux ≥ 4.0); ignored elsewhere.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A "VmXXX:   1234 kB" line of /proc/self/status, in KiB.
fn rss_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn si(v: f64) -> String {
    if v >= 1e6 { format!("{:.2}M", v / 1e6) } else { format!("{:.0}k", v / 1e3) }
}
