//! Replay throughput against the number of worker engines: the whole of
//! `echoloc replay` but the output (libpcap read, decode, flow table,
//! analysis; records counted, not written), one engine in line against a
//! pool of 1, 2, … workers (`--workers`), on the synthetic capture of the
//! replay bench.
//!
//! `cargo bench --bench workers` — a plain `main` that prints its figures.
//! Knobs (environment):
//! - `ECHOLOC_BENCH_PACKETS`, `ECHOLOC_BENCH_FLOWS` as for the replay bench
//!   (default 2,000,000 packets over 5,000 connections)
//! - `ECHOLOC_BENCH_FILE`    use this pcap file instead
//! - `ECHOLOC_BENCH_RUNS`    rounds (default 5); each round runs every
//!   configuration once, in turn, so a ratio is taken within a round
//! - `ECHOLOC_BENCH_WORKERS` the most workers tried (default: the cores, at least 2)

#[path = "../tests/common/rng.rs"]
#[allow(dead_code)]
mod rng;
mod common {
    pub mod synth;
}

use common::synth;
use echoloc::capture::offline::replay_file;
use echoloc::engine::{Engine, EngineConfig};
use echoloc::flow::EndReason;
use echoloc::output::{Records, SessionRecord};
use echoloc::runtime::Inline;
use echoloc::runtime::offline::Replay;
use echoloc::runtime::pool::Pool;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() {
    let num = |name: &str, default: u64| {
        std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
    };
    let packets = num("ECHOLOC_BENCH_PACKETS", 2_000_000);
    let flows = num("ECHOLOC_BENCH_FLOWS", 5_000).max(1);
    let runs = num("ECHOLOC_BENCH_RUNS", 5).max(1) as usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let most = num("ECHOLOC_BENCH_WORKERS", cores.max(2) as u64).max(1) as usize;
    let path = match std::env::var_os("ECHOLOC_BENCH_FILE") {
        Some(p) => PathBuf::from(p),
        None => synth::capture(packets, flows),
    };
    println!("file: {}, {runs} rounds, {cores} cores", path.display());

    // 0: one engine in line; n ≥ 1: a pool of n workers.
    let configs: Vec<usize> = (0..=most).collect();
    let mut secs = vec![Vec::new(); configs.len()];
    let mut ratios = vec![Vec::new(); configs.len()];
    let mut counts = vec![(0u64, 0u64); configs.len()];
    // CPU time (ns a packet) of the reading thread and of the whole process.
    let mut reader_ns = vec![Vec::new(); configs.len()];
    let mut total_ns = vec![Vec::new(); configs.len()];
    for _ in 0..runs {
        let mut round = Vec::new();
        for (i, &n) in configs.iter().enumerate() {
            let (t, r0, p0) =
                (Instant::now(), cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID), cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID));
            counts[i] = replay(&path, n);
            let s = t.elapsed().as_secs_f64();
            let packets = counts[i].0.max(1) as f64;
            reader_ns[i].push((cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID) - r0) as f64 / packets);
            total_ns[i].push((cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID) - p0) as f64 / packets);
            secs[i].push(s);
            round.push(s);
        }
        for (i, s) in round.iter().enumerate() {
            ratios[i].push(round[0] / s);
        }
    }
    println!();
    println!(
        "{:<16} {:>9} {:>9} {:>12} {:>10} {:>14} {:>11} {:>8}",
        "engines", "packets", "median s", "median pkt/s", "x in line", "reader CPU ns", "all CPU ns", "records"
    );
    for (i, &n) in configs.iter().enumerate() {
        let name = if n == 0 { "one, in line".to_string() } else { format!("pool of {n}") };
        let (p, r) = counts[i];
        let m = median(&mut secs[i]);
        let x = median(&mut ratios[i]);
        let (rd, all) = (median(&mut reader_ns[i]), median(&mut total_ns[i]));
        println!("{name:<16} {p:>9} {m:>9.3} {:>12.0} {x:>9.2}x {rd:>14.0} {all:>11.0} {r:>8}", p as f64 / m);
    }
    println!("(x in line: median over rounds of in-line time / this time, each round's runs back to back;");
    println!(" CPU ns a packet, medians: the reading thread's (in line: all the work) and the whole process's)");
}

/// A CPU clock (thread or process), ns.
fn cpu_ns(clock: libc::clockid_t) -> i64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec for clock_gettime to write.
    unsafe { libc::clock_gettime(clock, &mut t) };
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Replay the file through one engine (`workers` 0) or a pool; returns
/// (packets read, records).
fn replay(path: &Path, workers: usize) -> (u64, u64) {
    let mut records = 0u64;
    let mut packets = 0u64;
    let count = |_: SessionRecord| records += 1;
    if workers == 0 {
        let mut engine = Engine::new(EngineConfig::default(), None);
        let mut out = Records { write: count, skip_handshake_only: false };
        let mut feed = Inline { engine: &mut engine, out: &mut out };
        replay_file(path, &mut Replay { feed: &mut feed }, &mut |_| {}).expect("replay");
        feed.finish(EndReason::EndOfInput);
        packets = engine.counters.packets;
    } else {
        let ecfg = EngineConfig {
            max_sessions: EngineConfig::default().max_sessions.div_ceil(workers),
            ..EngineConfig::default()
        };
        std::thread::scope(|scope| {
            let mut pool =
                Pool::start(scope, workers, &ecfg, None, false, |r: Vec<SessionRecord>| records += r.len() as u64);
            let mut counting = Counting { pool: &mut pool, n: 0 };
            replay_file(path, &mut counting, &mut |_| {}).expect("replay");
            packets = counting.n;
            pool.finish(EndReason::EndOfInput);
        });
    }
    (packets, records)
}

/// The pool's receiver, counting frames (the workers' counters stay theirs).
struct Counting<'a, 's> {
    pool: &'a mut Pool<'s>,
    n: u64,
}

impl echoloc::capture::Receiver for Counting<'_, '_> {
    fn file_start(&mut self, path: &Path, ts: i64) {
        Replay { feed: &mut *self.pool }.file_start(path, ts);
    }

    fn frame(&mut self, f: &echoloc::capture::Frame<'_>) {
        self.n += 1;
        echoloc::runtime::Feed::frame(self.pool, f);
    }
}
