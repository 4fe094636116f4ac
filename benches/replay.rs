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
mod common {
    pub mod synth;
}

use common::synth;

use echoloc::decode::{self, LinkType};
use echoloc::engine::{Engine, EngineConfig};
use echoloc::flow::EndReason;
use echoloc::output::SessionRecord;
use echoloc::runtime::Inline;
use echoloc::runtime::offline::Replay;
use etherparse::{LaxSlicedPacket, TransportSlice};
use std::hint::black_box;
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
        None => synth::capture(packets, flows),
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
    let mut feed = Inline { engine: &mut engine, out: &mut out };
    echoloc::capture::offline::replay_file(path, &mut Replay { feed: &mut feed }, &mut |_bytes: u64| {})
        .expect("replay");
    feed.finish(EndReason::EndOfInput);
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

// ------------------------------------------------------------------ helpers

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
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
