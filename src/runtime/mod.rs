//! The runtimes: replay of capture files (`offline`) and live capture
//! (`online`), two small loops over one engine, with what both need: where
//! records go, the metrics and their server.

mod affinity;
mod memory;
pub mod offline;
pub mod online;
pub mod pool;
pub mod progress;

use crate::capture::Frame;
use crate::config::{self, Config, OutputFormat};
use crate::engine::{Engine, EngineConfig, RecordSink};
use crate::flow::EndReason;
use crate::output::{JsonWriter, Metrics, SessionRecord, TableWriter};
use crate::time::Ts;
use crate::web_config::WebConfig;
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where records go: JSON Lines or a table, to stdout or a file.
pub struct Sink {
    writer: Writer,
    /// The file, when not stdout, and whether it is appended to.
    file: Option<(PathBuf, bool)>,
}

enum Writer {
    Json(JsonWriter<Box<dyn Write + Send>>),
    Table(TableWriter<Box<dyn Write + Send>>),
}

impl Sink {
    /// The configured output; `append` keeps what a file holds (live
    /// capture: a restart loses no records), else the file is replaced.
    pub fn open(cfg: &Config, append: bool) -> anyhow::Result<Sink> {
        let file = cfg.output.file.clone().map(|p| (p, append));
        let (w, terminal): (Box<dyn Write + Send>, bool) = match &file {
            Some((p, append)) => (open_file(p, *append)?, false),
            None => (Box::new(std::io::BufWriter::new(std::io::stdout())), std::io::stdout().is_terminal()),
        };
        let json = match cfg.output.format {
            Some(f) => f == OutputFormat::Json,
            None => !terminal,
        };
        let writer = if json { Writer::Json(JsonWriter::new(w)) } else { Writer::Table(TableWriter::new(w)) };
        Ok(Sink { writer, file })
    }

    pub fn write(&mut self, r: SessionRecord) {
        match &mut self.writer {
            Writer::Json(j) => j.write(&r),
            Writer::Table(t) => t.write(&r),
        }
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.writer {
            Writer::Json(j) => j.flush(),
            Writer::Table(t) => t.flush(),
        }
    }

    /// Reopen the output file by its name (after logrotate moved it): what
    /// was written is flushed to the old file first, then records go to the
    /// file now at that path (appended). If it cannot be opened, records
    /// keep going to the old one. Nothing to do for stdout.
    pub fn reopen(&mut self) {
        let Some((path, _)) = self.file.clone() else { return };
        if let Err(e) = self.flush() {
            tracing::warn!(file = %path.display(), error = %e, "flushing records before reopening");
        }
        match open_file(&path, true) {
            Ok(w) => {
                self.writer = match self.writer {
                    Writer::Json(_) => Writer::Json(JsonWriter::new(w)),
                    Writer::Table(_) => Writer::Table(TableWriter::new(w)),
                };
                tracing::info!(file = %path.display(), "output reopened");
            }
            Err(e) => tracing::error!(error = %e, "cannot reopen the output; records still go to the old file"),
        }
    }
}

fn open_file(p: &Path, append: bool) -> anyhow::Result<Box<dyn Write + Send>> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(p)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    Ok(Box::new(std::io::BufWriter::new(f)))
}

/// The sensor's name its records carry: `output.sensor` (`--sensor`), else
/// the host name; None when neither can be had.
pub fn sensor_name(cfg: &Config) -> Option<String> {
    cfg.output.sensor.clone().or_else(hostname)
}

/// The machine's host name (gethostname(2)).
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// What the runtimes feed frames to: one engine in line ([`Inline`]), or
/// worker engines on several cores ([`pool::Pool`]).
pub trait Feed {
    fn frame(&mut self, f: &Frame<'_>);
    /// A capture file begins with a frame at `ts`; true when it starts a new
    /// timeline (see `Engine::start_file`).
    fn file_start(&mut self, ts: Ts) -> bool;
    /// Sessions opened from now on come from input `i`.
    fn set_input(&mut self, i: u32);
    /// Move the packet clock to `ts` (live: the wall clock after a quiet spell).
    fn advance(&mut self, ts: Ts);
    /// The capture has nothing more to read for now: what waits, goes.
    fn drained(&mut self) {}
    fn flush_metrics(&mut self);
}

/// One engine, fed in line, writing to `out`.
pub struct Inline<'a> {
    pub engine: &'a mut Engine,
    pub out: &'a mut dyn RecordSink,
}

impl Inline<'_> {
    pub fn finish(self, reason: EndReason) {
        self.engine.finish_all(reason, self.out);
    }
}

impl Feed for Inline<'_> {
    #[inline]
    fn frame(&mut self, f: &Frame<'_>) {
        match f.link {
            Some(l) => self.engine.frame_wire(l, f.ts, f.data, Some(f.wire_len), self.out),
            None => self.engine.unknown_link(),
        }
    }

    fn file_start(&mut self, ts: Ts) -> bool {
        self.engine.start_file(ts, self.out)
    }

    fn set_input(&mut self, i: u32) {
        self.engine.set_input(i);
    }

    fn advance(&mut self, ts: Ts) {
        self.engine.advance(ts, self.out);
    }

    fn flush_metrics(&mut self) {
        self.engine.flush_metrics();
    }
}

/// How many worker engines to run: `capture.workers` (`--workers`) when set,
/// else `auto`'s choice given the cores available.
fn workers(cfg: &Config, auto: impl FnOnce(usize) -> usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cfg.capture.workers.unwrap_or_else(|| auto(cores)).max(1)
}

/// The engine config for each of `workers` worker engines of each of
/// `inputs` (captured interfaces): `--max-sessions` is each input's, shared
/// out among its workers (rounded up), and lowered, if need be, to fit the
/// memory limit of the process's cgroup (see [`memory`]).
fn engine_config(cfg: &Config, inputs: usize, workers: usize, metrics: Option<&Metrics>) -> EngineConfig {
    let mut ecfg = EngineConfig::from_config(cfg);
    ecfg.max_sessions = ecfg.max_sessions.div_ceil(workers.max(1));
    let limit = memory::cgroup_limit();
    let fitted = memory::fit(ecfg.max_sessions, inputs * workers.max(1), limit);
    if fitted < ecfg.max_sessions {
        tracing::warn!(
            configured = ecfg.max_sessions,
            max_sessions = fitted,
            memory_limit_bytes = limit.unwrap_or(0),
            "max_sessions lowered to fit the cgroup memory limit (4 KiB per session)"
        );
        ecfg.max_sessions = fitted;
    }
    if let Some(m) = metrics {
        m.sessions_limit.set((ecfg.max_sessions * workers.max(1)) as i64);
    }
    ecfg
}

pub fn metrics_for(cfg: &Config) -> anyhow::Result<Option<Arc<Metrics>>> {
    if cfg.metrics.listen.is_none() {
        return Ok(None);
    }
    let policy = cfg.policy_table()?;
    let m =
        Metrics::new(cfg.metrics.max_exported_sessions, Duration::from_secs_f64(cfg.metrics.linger_s.max(0.0)), policy)
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
