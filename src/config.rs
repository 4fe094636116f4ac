//! Configuration: one TOML file can hold everything the command line sets;
//! command-line flags override the file.

use crate::analysis::relay::Thresholds;
use crate::policy::Policy;
use crate::web_config::WebConfig;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9617";

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub capture: CaptureConfig,
    pub sessions: SessionsConfig,
    pub metrics: MetricsConfig,
    pub output: OutputConfig,
    pub log: LogConfig,
    pub rdp: RdpConfig,
    pub relay: Thresholds,
    /// Client subnet → expected maximum typist round trip, ms.
    pub policy: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    pub interfaces: Vec<String>,
    pub bpf: Option<String>,
    pub promiscuous: bool,
    pub buffer_mib: u32,
    pub immediate: bool,
    pub snaplen: u32,
    /// Worker engines per captured interface (live) or per replay, each on
    /// its own thread with its share of the session table; none: live takes
    /// the cores available shared among the interfaces, a replay takes them
    /// all for inputs of 256 MiB or more, else one.
    pub workers: Option<usize>,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interfaces: Vec::new(),
            bpf: None,
            promiscuous: true,
            buffer_mib: 64,
            immediate: false,
            snaplen: 65535,
            workers: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    pub max_sessions: usize,
    pub tcp_idle_s: f64,
    pub udp_idle_s: f64,
    /// Idle limit of established interactive sessions (SSH, RDP, VNC,
    /// OpenVPN over TCP): hours, so a shell left open is one session.
    pub interactive_idle_s: f64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig { max_sessions: 1_000_000, tcp_idle_s: 300.0, udp_idle_s: 60.0, interactive_idle_s: 14_400.0 }
    }
}

/// What RDP sessions' records may hold.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RdpConfig {
    /// Keep the connection request's cookie (`mstshash=NAME`: a user name)
    /// in the record's `rdp.cookie`; off by default. Never in metrics or logs.
    pub record_cookie: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: Option<String>,
    pub max_exported_sessions: usize,
    pub linger_s: f64,
    pub web_config_file: Option<PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: None, max_exported_sessions: 500, linger_s: 60.0, web_config_file: None }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Default: a table on a terminal, else JSON Lines.
    pub format: Option<OutputFormat>,
    /// File for session records; stdout when unset.
    pub file: Option<PathBuf>,
    /// Leave TCP sessions that carried no payload either way (a lone SYN,
    /// a handshake only: scans) out of the records; they are still counted
    /// (`echoloc_sessions_handshake_only_total`).
    pub skip_handshake_only: bool,
    /// The sensor's name in every record (`sensor`); the host name when unset.
    pub sensor: Option<String>,
}

/// How session records are written.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Json,
    Table,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Default: text.
    pub format: Option<LogFormat>,
    pub level: Option<String>,
}

/// The log levels `log.level` takes.
pub const LOG_LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

impl Config {
    /// Read and validate a config file. A TOML error says where:
    /// `FILE:LINE:COLUMN: message`; a bad value names its key.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        let cfg: Config = toml::from_str(&text).map_err(|e| {
            let at = e.span().map(|s| line_col(&text, s.start)).map_or(String::new(), |(l, c)| format!(":{l}:{c}"));
            anyhow::anyhow!("{}{at}: {}", path.display(), e.message().trim_end())
        })?;
        cfg.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// Check every value: the errors name the key (and the flag that sets it).
    pub fn validate(&self) -> anyhow::Result<()> {
        self.policy_table()?;
        if self.capture.workers == Some(0) {
            anyhow::bail!("capture.workers (--workers) must be at least 1");
        }
        if let Some(l) = &self.metrics.listen {
            parse_listen(l).map_err(|e| anyhow::anyhow!("metrics.listen (--listen): {e}"))?;
        }
        let mut seen = std::collections::HashSet::new();
        for i in &self.capture.interfaces {
            if !seen.insert(i) {
                anyhow::bail!("capture.interfaces (--interface): {i} is given twice");
            }
        }
        if let Some(f) = &self.capture.bpf {
            check_bpf(f).map_err(|e| anyhow::anyhow!("capture.bpf (--bpf): {f:?} is not a capture filter: {e}"))?;
        }
        if let Some(l) = &self.log.level
            && !LOG_LEVELS.contains(&l.to_ascii_lowercase().as_str())
        {
            anyhow::bail!("log.level: {l:?} is not one of {}", LOG_LEVELS.join(", "));
        }
        if self.sessions.max_sessions == 0 {
            anyhow::bail!("sessions.max_sessions must be at least 1");
        }
        if self.sessions.tcp_idle_s.is_nan()
            || self.sessions.tcp_idle_s <= 0.0
            || self.sessions.udp_idle_s.is_nan()
            || self.sessions.udp_idle_s <= 0.0
            || self.sessions.interactive_idle_s.is_nan()
            || self.sessions.interactive_idle_s <= 0.0
        {
            anyhow::bail!("idle timeouts must be positive");
        }
        if self.output.sensor.as_deref().is_some_and(|s| s.trim().is_empty()) {
            anyhow::bail!("output.sensor must not be empty (leave it out for the host name)");
        }
        if let Some(w) = &self.metrics.web_config_file {
            WebConfig::load(w)?;
        }
        Ok(())
    }

    /// The policy as a table of subnets, most specific first.
    pub fn policy_table(&self) -> anyhow::Result<Policy> {
        let mut rules = Vec::new();
        for (net, ms) in &self.policy {
            let n: IpNet =
                net.parse().map_err(|_| anyhow::anyhow!("policy: {net:?} is not a subnet like \"10.20.0.0/16\""))?;
            if ms.is_nan() || *ms <= 0.0 {
                anyhow::bail!("policy: {net}: the maximum round trip must be a positive number of ms");
            }
            rules.push((n, *ms));
        }
        Ok(Policy::new(rules))
    }
}

/// Where /metrics is served: `IP:PORT`, `[IPv6]:PORT`, `:PORT` (every
/// interface, IPv4 and IPv6, as Prometheus exporters take it: `[::]`, which
/// the server opens for both) or `HOST:PORT` (resolved; its first IPv4
/// address if it has one: `localhost:9617` is 127.0.0.1).
pub fn parse_listen(s: &str) -> anyhow::Result<SocketAddr> {
    let bad =
        || anyhow::anyhow!("listen address {s:?} is not like 127.0.0.1:9617, [::1]:9617, localhost:9617 or :9617");
    if let Some(port) = s.strip_prefix(':') {
        return Ok(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port.parse().map_err(|_| bad())?));
    }
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains([':', '[', ']', '/']) || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    let addrs: Vec<SocketAddr> =
        s.to_socket_addrs().map_err(|e| anyhow::anyhow!("listen address {s:?}: cannot resolve {host}: {e}"))?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().ok_or_else(bad)
}

/// Compile a BPF filter as libpcap would for an Ethernet capture.
fn check_bpf(filter: &str) -> Result<(), String> {
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(|e| e.to_string())?;
    dead.compile(filter, true).map(drop).map_err(|e| match e {
        pcap::Error::PcapError(m) => m,
        other => other.to_string(),
    })
}

/// 1-based line and column (in characters) of byte `at` of `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_picks_most_specific_subnet() {
        let cfg: Config = toml::from_str("[policy]\n\"10.0.0.0/8\" = 150\n\"10.20.0.0/16\" = 100\n").unwrap();
        let p = cfg.policy_table().unwrap();
        let l = p.limit_for("10.20.1.2".parse().unwrap()).unwrap();
        assert_eq!(l.max_rtt_ms, 100.0);
        assert!(l.exceeded_by(100.1) && !l.exceeded_by(100.0));
        assert_eq!(p.limit_for("10.9.1.2".parse().unwrap()).unwrap().max_rtt_ms, 150.0);
        assert!(p.limit_for("192.0.2.1".parse().unwrap()).is_none());
    }

    #[test]
    fn listen_addresses() {
        let a = |s: &str| parse_listen(s).unwrap().to_string();
        assert_eq!(a("127.0.0.1:9617"), "127.0.0.1:9617");
        assert_eq!(a("[::1]:9617"), "[::1]:9617");
        assert_eq!(a(":9617"), "[::]:9617");
        assert_eq!(a("localhost:9617"), "127.0.0.1:9617");
        for bad in ["9617", ":", ":http", "localhost", "localhost:port", "::1:9617", "[::1]", "127.0.0.1:70000", ""] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = |t: &str| toml::from_str::<Config>(t).unwrap().validate().unwrap_err().to_string();
        let e = err("[capture]\nbpf = \"tcp port foo\"\n");
        assert!(e.starts_with("capture.bpf (--bpf): \"tcp port foo\" is not a capture filter: "), "{e}");
        let e = err("[log]\nlevel = \"verbose\"\n");
        assert_eq!(e, "log.level: \"verbose\" is not one of error, warn, info, debug, trace, off");
        let e = err("[capture]\ninterfaces = [\"eth1\", \"eth2\", \"eth1\"]\n");
        assert_eq!(e, "capture.interfaces (--interface): eth1 is given twice");
        let e = err("[metrics]\nlisten = \"9617\"\n");
        assert!(e.starts_with("metrics.listen (--listen): "), "{e}");
        let ok = "[capture]\nbpf = \"tcp port 22 or udp port 51820\"\n[log]\nlevel = \"DEBUG\"\n";
        toml::from_str::<Config>(ok).unwrap().validate().unwrap();
    }

    #[test]
    fn line_and_column_of_a_byte() {
        let t = "a = 1\n[x]\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, t.find(" = 2").unwrap()), (3, 3));
    }

    #[test]
    fn rejects_unknown_keys_and_bad_subnets() {
        assert!(toml::from_str::<Config>("[capture]\ninterface = \"eth0\"\n").is_err());
        let cfg: Config = toml::from_str("[policy]\n\"10.20.0.0\" = 100\n").unwrap();
        assert!(cfg.validate().is_err());
    }
}
