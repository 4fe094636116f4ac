//! Command-line interface. Flags override the config file.

use clap::{Args, Parser, Subcommand};
use echoloc::capture::{live, offline};
use echoloc::config::{self, Config, LogFormat, OutputFormat};
use echoloc::engine::{Engine, EngineConfig};
use echoloc::flow::EndReason;
use echoloc::output::{JsonWriter, Metrics, SessionRecord, TableWriter};
use echoloc::verdict::Judge;
use echoloc::web_config::WebConfig;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "echoloc",
    version,
    about = "Passive sensor: how far away is the person typing? Round trips of SSH, RDP and VPN sessions from packet timestamps."
)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay pcap/pcapng files (or directories of them) and report every session.
    Replay {
        /// Capture files or directories, read in order.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Keep serving /metrics after the input ends (needs --listen).
        #[arg(long)]
        serve: bool,
        /// Never show a progress bar.
        #[arg(long)]
        no_progress: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Capture live on one or more interfaces (span port, tap).
    Live {
        /// Interface to capture on (repeat for several).
        #[arg(long, short = 'i')]
        interface: Vec<String>,
        /// BPF capture filter, e.g. "tcp port 22 or tcp port 3389 or udp port 51820".
        #[arg(long)]
        bpf: Option<String>,
        /// Do not put the interface in promiscuous mode.
        #[arg(long)]
        no_promiscuous: bool,
        /// Kernel capture buffer, MiB.
        #[arg(long)]
        buffer_mib: Option<u32>,
        /// Deliver packets as they arrive (libpcap immediate mode): true or false.
        #[arg(long)]
        immediate: Option<bool>,
        /// Bytes captured per packet (headers suffice for timing; reading the SSH versions and algorithms needs full packets).
        #[arg(long)]
        snaplen: Option<u32>,
        #[command(flatten)]
        common: Common,
    },
    /// Validate a config file and print the effective settings.
    CheckConfig { file: PathBuf },
}

#[derive(Args, Debug)]
struct Common {
    /// Config file (TOML); flags given here override it.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Session record format (default: table on a terminal, else json).
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Write session records to this file instead of stdout.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Serve Prometheus /metrics on this address (live default 127.0.0.1:9617).
    #[arg(long)]
    listen: Option<String>,
    /// Exporter web-config file (tls_server_config, basic_auth_users).
    #[arg(long = "web.config.file")]
    web_config_file: Option<PathBuf>,
    /// Most sessions in each captured interface's table; when full the least
    /// recently active is evicted (established interactive sessions last).
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Idle timeout of TCP sessions, seconds.
    #[arg(long)]
    tcp_idle: Option<f64>,
    /// Idle timeout of UDP and other sessions, seconds.
    #[arg(long)]
    udp_idle: Option<f64>,
    /// Idle timeout of established interactive sessions (SSH, RDP, VNC,
    /// OpenVPN over TCP), seconds (default 14400: four hours).
    #[arg(long)]
    interactive_idle: Option<f64>,
    /// Most sessions with their own Prometheus series at once.
    #[arg(long)]
    max_exported_sessions: Option<usize>,
    /// Seconds a session's series stay after it ends.
    #[arg(long)]
    linger: Option<f64>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

/// Run a command; returns the exit status.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.cmd {
        Cmd::CheckConfig { file } => {
            let cfg = Config::load(&file)?;
            let text = format!("# {}: valid. Effective settings:\n{}", file.display(), toml::to_string_pretty(&cfg)?);
            // A closed pipe (`| head`) is not an error.
            let _ = std::io::stdout().write_all(text.as_bytes());
            Ok(0)
        }
        Cmd::Replay { paths, serve, no_progress, common } => {
            let cfg = merged(&common, None)?;
            init_logs(&cfg);
            replay(&cfg, &paths, serve, no_progress)
        }
        Cmd::Live { interface, bpf, no_promiscuous, buffer_mib, immediate, snaplen, common } => {
            let mut cfg = merged(&common, Some(config::DEFAULT_LISTEN))?;
            if !interface.is_empty() {
                cfg.capture.interfaces = interface;
            }
            if bpf.is_some() {
                cfg.capture.bpf = bpf;
            }
            if no_promiscuous {
                cfg.capture.promiscuous = false;
            }
            if let Some(b) = buffer_mib {
                cfg.capture.buffer_mib = b;
            }
            if let Some(i) = immediate {
                cfg.capture.immediate = i;
            }
            if let Some(s) = snaplen {
                cfg.capture.snaplen = s;
            }
            init_logs(&cfg);
            live_capture(&cfg)
        }
    }
}

/// The config file (if any) with the flags laid over it.
fn merged(c: &Common, default_listen: Option<&str>) -> anyhow::Result<Config> {
    let mut cfg = match &c.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(f) = c.format {
        cfg.output.format = Some(f);
    }
    if c.output.is_some() {
        cfg.output.file = c.output.clone();
    }
    if c.listen.is_some() {
        cfg.metrics.listen = c.listen.clone();
    }
    if cfg.metrics.listen.is_none() {
        cfg.metrics.listen = default_listen.map(String::from);
    }
    if c.web_config_file.is_some() {
        cfg.metrics.web_config_file = c.web_config_file.clone();
    }
    if let Some(m) = c.max_sessions {
        cfg.sessions.max_sessions = m;
    }
    if let Some(t) = c.tcp_idle {
        cfg.sessions.tcp_idle_s = t;
    }
    if let Some(t) = c.udp_idle {
        cfg.sessions.udp_idle_s = t;
    }
    if let Some(t) = c.interactive_idle {
        cfg.sessions.interactive_idle_s = t;
    }
    if let Some(m) = c.max_exported_sessions {
        cfg.metrics.max_exported_sessions = m;
    }
    if let Some(l) = c.linger {
        cfg.metrics.linger_s = l;
    }
    if let Some(l) = c.log_format {
        cfg.log.format = Some(l);
    }
    cfg.validate()?;
    Ok(cfg)
}

fn init_logs(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cfg.log.level.as_deref().unwrap_or("info")));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cfg.log.format == Some(LogFormat::Json) {
        let _ = b.json().try_init();
    } else {
        let _ = b.with_ansi(std::io::stderr().is_terminal()).try_init();
    }
}

fn engine_config(cfg: &Config) -> EngineConfig {
    let judge = Judge {
        thresholds: cfg.relay,
        // Validated when the config was loaded.
        policy: cfg.policy_table().unwrap_or_default(),
    };
    EngineConfig::new(&cfg.sessions, judge)
}

/// Where records go: JSON Lines or a table, to stdout or a file.
enum Sink {
    Json(JsonWriter<Box<dyn Write + Send>>),
    Table(TableWriter<Box<dyn Write + Send>>),
}

impl Sink {
    fn open(cfg: &Config) -> anyhow::Result<(Sink, bool)> {
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
        Ok((if json { Sink::Json(JsonWriter::new(w)) } else { Sink::Table(TableWriter::new(w)) }, json))
    }

    fn write(&mut self, r: SessionRecord) {
        match self {
            Sink::Json(j) => j.write(&r),
            Sink::Table(t) => t.write(&r),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Json(j) => j.flush(),
            Sink::Table(t) => t.flush(),
        }
    }
}

fn metrics_for(cfg: &Config) -> anyhow::Result<Option<Arc<Metrics>>> {
    if cfg.metrics.listen.is_none() {
        return Ok(None);
    }
    let m = Metrics::new(cfg.metrics.max_exported_sessions, Duration::from_secs_f64(cfg.metrics.linger_s.max(0.0)))
        .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
    Ok(Some(Arc::new(m)))
}

/// Start the /metrics server on its own runtime thread.
fn start_server(cfg: &Config, metrics: &Arc<Metrics>) -> anyhow::Result<std::thread::JoinHandle<()>> {
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
        if let Err(e) = rt.block_on(echoloc::output::http::serve(addr, m, web)) {
            tracing::error!(error = %e, "metrics server stopped");
        }
    }))
}

fn replay(cfg: &Config, paths: &[PathBuf], serve: bool, no_progress: bool) -> anyhow::Result<i32> {
    let metrics = metrics_for(cfg)?;
    if serve && metrics.is_none() {
        anyhow::bail!("--serve needs --listen ADDR");
    }
    let server = match &metrics {
        Some(m) => Some(start_server(cfg, m)?),
        None => None,
    };
    let files = offline::expand(paths)?;
    let (mut sink, json) = Sink::open(cfg)?;
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
    let mut engine = Engine::new(engine_config(cfg), metrics.clone());
    let mut failed = None;
    {
        let mut out = |r: SessionRecord| match &bar {
            Some(b) => b.suspend(|| sink.write(r)),
            None => sink.write(r),
        };
        for f in &files {
            let mut progress = |n: u64| {
                if let Some(b) = &bar {
                    b.inc(n)
                }
            };
            if let Err(e) = offline::replay_file(f, &mut engine, &mut out, &mut progress) {
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

fn live_capture(cfg: &Config) -> anyhow::Result<i32> {
    if cfg.capture.interfaces.is_empty() {
        anyhow::bail!("no interface: give --interface IF (see `ip link`) or capture.interfaces in the config");
    }
    let metrics = metrics_for(cfg)?;
    let opts: Vec<live::LiveOptions> = cfg
        .capture
        .interfaces
        .iter()
        .map(|i| live::LiveOptions {
            interface: i.clone(),
            bpf: cfg.capture.bpf.clone(),
            promiscuous: cfg.capture.promiscuous,
            buffer_bytes: (cfg.capture.buffer_mib.min(2047) * 1024 * 1024) as i32,
            immediate: cfg.capture.immediate,
            snaplen: cfg.capture.snaplen.min(i32::MAX as u32) as i32,
        })
        .collect();
    // Open every interface before anything else: a bad one is an error now.
    let mut caps = Vec::new();
    for o in &opts {
        caps.push(live::open(o)?);
    }
    if let Some(m) = &metrics {
        start_server(cfg, m)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook_consts::SIGINT, signal_hook_consts::SIGTERM] {
        let s = stop.clone();
        register_signal(sig, s)?;
    }
    let (sink, _) = Sink::open(cfg)?;
    let sink = Arc::new(std::sync::Mutex::new(sink));
    let mut threads = Vec::new();
    for (o, cap) in opts.into_iter().zip(caps) {
        let (stop, metrics, sink, ecfg) = (stop.clone(), metrics.clone(), sink.clone(), engine_config(cfg));
        threads.push(std::thread::spawn(move || {
            tracing::info!(interface = %o.interface, "capturing");
            let mut engine = Engine::new(ecfg, metrics.clone());
            let mut out = |r: SessionRecord| {
                if let Ok(mut s) = sink.lock() {
                    s.write(r);
                    let _ = s.flush();
                }
            };
            live::run(&o, cap, &mut engine, &mut out, metrics, &stop);
            engine.finish_all(EndReason::Shutdown, &mut out);
            tracing::info!(interface = %o.interface, "capture stopped; open sessions written");
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    if let Ok(mut s) = sink.lock() {
        let _ = s.flush();
    }
    Ok(0)
}

mod signal_hook_consts {
    pub const SIGINT: i32 = libc::SIGINT;
    pub const SIGTERM: i32 = libc::SIGTERM;
}

/// Set `flag` when the signal arrives (async-signal-safe: one atomic store).
fn register_signal(sig: i32, flag: Arc<AtomicBool>) -> anyhow::Result<()> {
    static FLAGS: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    let _ = FLAGS.set(flag);
    extern "C" fn handler(_: i32) {
        if let Some(f) = FLAGS.get() {
            f.store(true, Ordering::SeqCst);
        }
    }
    // SAFETY: the handler only performs an atomic store.
    let r = unsafe { libc::signal(sig, handler as *const () as libc::sighandler_t) };
    if r == libc::SIG_ERR {
        anyhow::bail!("cannot install handler for signal {sig}");
    }
    Ok(())
}
