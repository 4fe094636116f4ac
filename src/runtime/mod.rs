//! The runtimes: replay of capture files (`offline`) and live capture
//! (`online`), two small loops over one engine, with what both need: where
//! records go, the metrics and their server.

pub mod offline;
pub mod online;
pub mod progress;

use crate::capture::Frame;
use crate::config::{self, Config, OutputFormat};
use crate::engine::{Engine, RecordSink};
use crate::output::{JsonWriter, Metrics, SessionRecord, TableWriter};
use crate::web_config::WebConfig;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

/// Where records go: JSON Lines or a table, to stdout or a file.
pub enum Sink {
    Json(JsonWriter<Box<dyn Write + Send>>),
    Table(TableWriter<Box<dyn Write + Send>>),
}

impl Sink {
    pub fn open(cfg: &Config) -> anyhow::Result<Sink> {
        let (w, terminal): (Box<dyn Write + Send>, bool) = match &cfg.output.file {
            Some(p) => {
                let f = std::fs::File::create(p).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
                (Box::new(std::io::BufWriter::new(f)), false)
            }
            None => (Box::new(std::io::BufWriter::new(std::io::stdout())), std::io::stdout().is_terminal()),
        };
        let json = match cfg.output.format {
            Some(f) => f == OutputFormat::Json,
            None => !terminal,
        };
        Ok(if json { Sink::Json(JsonWriter::new(w)) } else { Sink::Table(TableWriter::new(w)) })
    }

    pub fn write(&mut self, r: SessionRecord) {
        match self {
            Sink::Json(j) => j.write(&r),
            Sink::Table(t) => t.write(&r),
        }
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Json(j) => j.flush(),
            Sink::Table(t) => t.flush(),
        }
    }
}

/// Hand one captured frame to the engine.
#[inline]
fn feed(engine: &mut Engine, f: &Frame<'_>, out: &mut dyn RecordSink) {
    match f.link {
        Some(l) => engine.frame_wire(l, f.ts, f.data, Some(f.wire_len), out),
        None => engine.unknown_link(),
    }
}

pub fn metrics_for(cfg: &Config) -> anyhow::Result<Option<Arc<Metrics>>> {
    if cfg.metrics.listen.is_none() {
        return Ok(None);
    }
    let m = Metrics::new(cfg.metrics.max_exported_sessions, Duration::from_secs_f64(cfg.metrics.linger_s.max(0.0)))
        .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
    Ok(Some(Arc::new(m)))
}

/// Start the /metrics server on its own runtime thread.
pub fn start_server(cfg: &Config, metrics: &Arc<Metrics>) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let addr = config::parse_listen(cfg.metrics.listen.as_deref().unwrap_or(config::DEFAULT_LISTEN))?;
    let web = match &cfg.metrics.web_config_file {
        Some(p) => WebConfig::load(p)?,
        None => WebConfig::default(),
    };
    // Bind first, so a busy port is an error now rather than a log line later.
    let probe = std::net::TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    drop(probe);
    let m = metrics.clone();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    Ok(std::thread::spawn(move || {
        if let Err(e) = rt.block_on(crate::output::http::serve(addr, m, web)) {
            tracing::error!(error = %e, "metrics server stopped");
        }
    }))
}
