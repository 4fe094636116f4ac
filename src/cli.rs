//! Command-line interface: parses the flags, lays them over the config
//! file, and hands the result to a runtime (`echoloc::runtime`).

use clap::{Args, Parser, Subcommand};
use echoloc::config::{self, Config, LogFormat, OutputFormat};
use echoloc::runtime;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

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
    /// The sensor's name in every record's `sensor` field (default: the host name).
    #[arg(long, value_name = "NAME")]
    sensor: Option<String>,
    /// Serve Prometheus /metrics on this address (live default 127.0.0.1:9617).
    #[arg(long)]
    listen: Option<String>,
    /// Exporter web-config file (tls_server_config, http_server_config, basic_auth_users).
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
            runtime::offline::replay(&cfg, &paths, serve, no_progress)
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
            runtime::online::live_capture(&cfg)
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
    if c.sensor.is_some() {
        cfg.output.sensor = c.sensor.clone();
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
