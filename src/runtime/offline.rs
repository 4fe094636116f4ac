//! Replay: capture files (or directories of them) read in a row through one
//! engine, records written as sessions end, metrics served if asked.

use super::{Sink, metrics_for, sensor_name, start_server};
use crate::capture::{Frame, Receiver, offline};
use crate::config::Config;
use crate::engine::{Engine, EngineConfig, Observer, RecordSink};
use crate::flow::EndReason;
use crate::output::SessionRecord;
use crate::time::Ts;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The engine behind capture files read in a row.
pub struct Replay<'a> {
    pub engine: &'a mut Engine,
    pub out: &'a mut dyn RecordSink,
}

impl Receiver for Replay<'_> {
    fn file_start(&mut self, path: &Path, ts: Ts) {
        if self.engine.start_file(ts, self.out) {
            tracing::info!(file = %path.display(), "file does not continue the previous one in time: new timeline, open sessions written");
        }
    }

    #[inline]
    fn frame(&mut self, f: &Frame<'_>) {
        super::feed(self.engine, f, self.out);
    }
}

/// Replay `paths`; returns the exit status (2 when a file could not be read
/// to its end, after the records of what was read are written).
pub fn replay(cfg: &Config, paths: &[PathBuf], serve: bool, no_progress: bool) -> anyhow::Result<i32> {
    let metrics = metrics_for(cfg)?;
    if serve && metrics.is_none() {
        anyhow::bail!("--serve needs --listen ADDR");
    }
    let server = match &metrics {
        Some(m) => Some(start_server(cfg, m)?),
        None => None,
    };
    let files = offline::expand(paths)?;
    let (mut sink, json) = Sink::open(cfg, false)?;
    let show_progress = !no_progress && !json && std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
    let bar = if show_progress {
        let b = indicatif::ProgressBar::new(offline::total_bytes(&files));
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {wide_bar} {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let mut engine = Engine::new(EngineConfig::from_config(cfg), metrics.clone().map(|m| m as Arc<dyn Observer>));
    let mut failed = None;
    // Records name the sensor, and the file (as given) of their first packet.
    let sensor = sensor_name(cfg);
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    {
        let mut out = |mut r: SessionRecord| {
            r.sensor.clone_from(&sensor);
            r.source = names.get(r.input as usize).cloned();
            match &bar {
                Some(b) => b.suspend(|| sink.write(r)),
                None => sink.write(r),
            }
        };
        for (i, f) in files.iter().enumerate() {
            engine.set_input(u32::try_from(i).unwrap_or(u32::MAX));
            let mut progress = |n: u64| {
                if let Some(b) = &bar {
                    b.inc(n)
                }
            };
            if let Err(e) = offline::replay_file(f, &mut Replay { engine: &mut engine, out: &mut out }, &mut progress) {
                failed = Some(e);
                break;
            }
        }
        engine.finish_all(EndReason::EndOfInput, &mut out);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Err(e) = sink.flush()
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("echoloc: writing records: {e}");
        return Ok(2);
    }
    if let Some(e) = failed {
        eprintln!("echoloc: {e}");
        return Ok(2);
    }
    if serve && let Some(h) = server {
        tracing::info!("input done; serving metrics until stopped");
        let _ = h.join();
    }
    Ok(0)
}
