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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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
    // Bound now, so a busy port is an error now rather than a log line later.
    let listener = listen(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let m = metrics.clone();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    Ok(std::thread::spawn(move || {
        if let Err(e) = rt.block_on(crate::output::http::serve(listener, m, web)) {
            tracing::error!(error = %e, "metrics server stopped");
        }
    }))
}

/// A listening socket on `addr`. `[::]` (from `:PORT`) takes IPv4 as well,
/// whatever the system's default (`net.ipv6.bindv6only`); without IPv6 on
/// the host, it is `0.0.0.0`.
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let open = |addr: SocketAddr| -> std::io::Result<std::net::TcpListener> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        if addr.is_ipv6() && addr.ip().is_unspecified() {
            s.set_only_v6(false)?;
        }
        // As the standard library's listeners: a restart need not wait for
        // the old connections' TIME_WAIT.
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(1024)?;
        Ok(s.into())
    };
    match open(addr) {
        Err(e) if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            open(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port()))
        }
        r => r,
    }
}
