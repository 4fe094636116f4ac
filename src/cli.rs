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

/// Help text ending with the default it stands for. The defaults are the
/// config's: a flag not given leaves the config file's value, so clap is
/// given no default of its own.
fn with_default(text: &str, default: impl std::fmt::Display) -> String {
    format!("{text} [default: {default}]")
}

fn defaults() -> Config {
    Config::default()
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay pcap/pcapng files, plain or gzip-compressed (or directories of them), and report every session.
    Replay {
        /// Capture files or directories, read in order ("-": standard input).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Keep serving /metrics after the input ends (needs --listen).
        #[arg(long)]
        serve: bool,
        /// Never show a progress bar (shown on stderr when it is a terminal).
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
        /// BPF capture filter, e.g. "tcp port 22 or tcp port 3389 or udp port 51820" [default: none].
        #[arg(long)]
        bpf: Option<String>,
        /// Put the interface in promiscuous mode [default: on].
        #[arg(long, overrides_with = "no_promiscuous")]
        promiscuous: bool,
        /// Do not put the interface in promiscuous mode.
        #[arg(long, overrides_with = "promiscuous")]
        no_promiscuous: bool,
        #[arg(long, help = with_default("Kernel capture buffer, MiB", defaults().capture.buffer_mib))]
        buffer_mib: Option<u32>,
        /// Deliver each packet as it arrives (libpcap immediate mode): the kernel buffer then holds one
        /// packet a slot of the snap length (64 KiB on an interface with offloads), so a 64 MiB buffer
        /// holds ~1,000 packets and maps 128 MiB [default: off].
        #[arg(long, overrides_with = "no_immediate")]
        immediate: bool,
        /// Let the kernel pack packets into blocks, handed over when full or after 100 ms (the
        /// default).
        #[arg(long, overrides_with = "immediate")]
        no_immediate: bool,
        #[arg(long, help = with_default(
            "Bytes captured per packet (headers suffice for timing; reading the SSH versions and algorithms needs full packets)",
            defaults().capture.snaplen,
        ))]
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
    /// Session record format [default: table on a terminal, else json].
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Write session records to this file [default: stdout].
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// The sensor's name in every record's `sensor` field (default: the host name).
    #[arg(long, value_name = "NAME")]
    sensor: Option<String>,
    /// Leave TCP sessions without payload either way (a lone SYN, a
    /// handshake only: scans) out of the records; they are still counted.
    #[arg(long)]
    skip_handshake_only: bool,
    /// Keep an RDP connection request's cookie (`mstshash=NAME`: a user
    /// name) in the record's `rdp.cookie` (config `rdp.record_cookie`).
    #[arg(long)]
    rdp_record_cookie: bool,
    #[arg(long, visible_alias = "web.listen-address", help = with_default(
        "Serve Prometheus /metrics on this address: IP:PORT, [IPv6]:PORT, HOST:PORT (localhost:9617) or :PORT (every interface)",
        format!("{} for live; none for replay", config::DEFAULT_LISTEN),
    ))]
    listen: Option<String>,
    /// Exporter web-config file (tls_server_config, http_server_config, basic_auth_users) [default: none].
    #[arg(long = "web.config.file", visible_alias = "web-config-file")]
    web_config_file: Option<PathBuf>,
    #[arg(long, help = with_default(
        "Most sessions in each captured interface's table; when full the least recently active is evicted (established interactive sessions last)",
        defaults().sessions.max_sessions,
    ))]
    max_sessions: Option<usize>,
    /// Worker engines (threads), flows spread among them by host pair
    /// [default: live: the cores available shared among the interfaces;
    /// replay: all cores for inputs of 256 MiB or more, else 1].
    #[arg(long)]
    workers: Option<usize>,
    #[arg(long, help = with_default("Idle timeout of TCP sessions, seconds", defaults().sessions.tcp_idle_s))]
    tcp_idle: Option<f64>,
    #[arg(long, help = with_default("Idle timeout of UDP and other sessions, seconds", defaults().sessions.udp_idle_s))]
    udp_idle: Option<f64>,
    #[arg(long, help = with_default(
        "Idle timeout of established interactive sessions (SSH, RDP, VNC, OpenVPN over TCP), seconds",
        defaults().sessions.interactive_idle_s,
    ))]
    interactive_idle: Option<f64>,
    #[arg(long, help = with_default(
        "Most sessions with their own Prometheus series at once",
        defaults().metrics.max_exported_sessions,
    ))]
    max_exported_sessions: Option<usize>,
    #[arg(long, help = with_default("Seconds a session's series stay after it ends", defaults().metrics.linger_s))]
    linger: Option<f64>,
    /// Log format [default: text].
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
            cfg.validate()?;
            init_logs(&cfg);
            runtime::offline::replay(&cfg, &paths, serve, no_progress)
        }
        Cmd::Live {
            interface,
            bpf,
            promiscuous,
            no_promiscuous,
            buffer_mib,
            immediate,
            no_immediate,
            snaplen,
            common,
        } => {
            let mut cfg = merged(&common, Some(config::DEFAULT_LISTEN))?;
            if !interface.is_empty() {
                cfg.capture.interfaces = interface;
            }
            if bpf.is_some() {
                cfg.capture.bpf = bpf;
            }
            // Of a flag and its --no- form the last given wins (clap keeps one).
            if promiscuous || no_promiscuous {
                cfg.capture.promiscuous = promiscuous;
            }
            if let Some(b) = buffer_mib {
                cfg.capture.buffer_mib = b;
            }
            if immediate || no_immediate {
                cfg.capture.immediate = immediate;
            }
            if let Some(s) = snaplen {
                cfg.capture.snaplen = s;
            }
            cfg.validate()?;
            init_logs(&cfg);
            runtime::online::live_capture(&cfg)
        }
    }
}

/// The config file (if any) with the flags laid over it (validated by the caller).
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
    cfg.output.skip_handshake_only |= c.skip_handshake_only;
    cfg.rdp.record_cookie |= c.rdp_record_cookie;
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
    if c.workers.is_some() {
        cfg.capture.workers = c.workers;
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
    Ok(cfg)
}

fn init_logs(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cfg.log.level.as_deref().unwrap_or("info")));
    // Log lines take a replay's progress bar off the screen while written.
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| runtime::progress::LogWriter);
    if cfg.log.format == Some(LogFormat::Json) {
        let _ = b.json().try_init();
    } else {
        let _ = b.with_ansi(std::io::stderr().is_terminal()).try_init();
    }
}
