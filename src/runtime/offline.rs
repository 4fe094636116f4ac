//! Replay: capture files (or directories of them) read in a row through one
//! engine, records written as sessions end, metrics served if asked.

use super::pool::Pool;
use super::{Feed, Inline, Sink, metrics_for, progress, sensor_name, start_server};
use crate::capture::{Frame, Receiver, offline};
use crate::config::Config;
use crate::engine::{Engine, Observer};
use crate::flow::EndReason;
use crate::output::{Records, SessionRecord};
use crate::time::Ts;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The engine(s) behind capture files read in a row.
pub struct Replay<'a, F: Feed> {
    pub feed: &'a mut F,
}

impl<F: Feed> Receiver for Replay<'_, F> {
    fn file_start(&mut self, path: &Path, ts: Ts) {
        if self.feed.file_start(ts) {
            tracing::info!(file = %path.display(), "file does not continue the previous one in time: new timeline, open sessions written");
        }
    }

    #[inline]
    fn frame(&mut self, f: &Frame<'_>) {
        self.feed.frame(f);
    }
}

/// Inputs of this size or more are replayed on every core by default.
const PARALLEL_BYTES: u64 = 256 << 20;

/// Replay `paths`; returns the exit status: 2 when an input could not be
/// read to its end (each is reported on stderr, `echoloc: FILE: cause`, and
/// the others are read all the same), after the records of everything read
/// are written.
pub fn replay(cfg: &Config, paths: &[PathBuf], serve: bool, no_progress: bool) -> anyhow::Result<i32> {
    let metrics = metrics_for(cfg)?;
    if serve && metrics.is_none() {
        anyhow::bail!("--serve needs --listen ADDR");
    }
    let server = match &metrics {
        Some(m) => Some(start_server(cfg, m)?),
        None => None,
    };
    let (files, input_errors) = offline::expand(paths);
    let mut sink = Sink::open(cfg, false)?;
    let total = offline::total_bytes(&files);
    let bar = progress::wanted(no_progress, std::io::stderr().is_terminal()).then(|| progress::Progress::start(total));
    // Records on the terminal the bar is on are written with it off the screen.
    let records_on_terminal = bar.is_some() && cfg.output.file.is_none() && std::io::stdout().is_terminal();
    let report = |e: &dyn std::fmt::Display| progress::suspend(|| eprintln!("echoloc: {e}"));
    let mut failed = input_errors.len();
    for e in &input_errors {
        report(e);
    }
    let workers = super::workers(cfg, |cores| if total >= PARALLEL_BYTES { cores } else { 1 });
    let ecfg = super::engine_config(cfg, 1, workers, metrics.as_deref());
    let observer = metrics.clone().map(|m| m as Arc<dyn Observer>);
    // Records name the sensor, and the file (as given) of their first packet.
    let sensor = sensor_name(cfg);
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut write = |mut r: SessionRecord| {
        r.sensor.clone_from(&sensor);
        r.source = names.get(r.input as usize).cloned();
        if records_on_terminal { progress::suspend(|| sink.write(r)) } else { sink.write(r) }
    };
    let skip_handshake_only = cfg.output.skip_handshake_only;
    if workers <= 1 {
        let mut engine = Engine::new(ecfg, observer);
        let mut out = Records { write: &mut write, skip_handshake_only };
        let mut inline = Inline { engine: &mut engine, out: &mut out };
        failed += read_files(&mut inline, &files, bar.as_ref(), &report);
        inline.finish(EndReason::EndOfInput);
    } else {
        std::thread::scope(|scope| {
            let mut pool = Pool::start(scope, workers, &ecfg, observer, skip_handshake_only, |records| {
                for r in records {
                    write(r);
                }
            });
            failed += read_files(&mut pool, &files, bar.as_ref(), &report);
            pool.finish(EndReason::EndOfInput);
        });
    }
    drop(bar);
    if let Err(e) = sink.flush()
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("echoloc: writing records: {e}");
        return Ok(2);
    }
    if failed > 0 {
        return Ok(2);
    }
    if serve && let Some(h) = server {
        tracing::info!("input done; serving metrics until stopped");
        let _ = h.join();
    }
    Ok(0)
}

/// Every file in a row through `feed`; returns how many could not be read
/// to their end. A file that fails is reported and the next one read: what
/// was read of it counts, as if it ended at the fault; one that cannot be
/// opened leaves the engines as they were.
fn read_files<F: Feed>(
    feed: &mut F,
    files: &[PathBuf],
    bar: Option<&progress::Progress>,
    report: &dyn Fn(&dyn std::fmt::Display),
) -> usize {
    let mut failed = 0;
    for (i, f) in files.iter().enumerate() {
        feed.set_input(u32::try_from(i).unwrap_or(u32::MAX));
        let mut progress = |n: u64| {
            if let Some(b) = bar {
                b.inc(n)
            }
        };
        if let Err(e) = offline::replay_file(f, &mut Replay { feed: &mut *feed }, &mut progress) {
            report(&e);
            failed += 1;
        }
    }
    failed
}
