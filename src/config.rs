//! Configuration: one TOML file can hold everything the command line sets;
//! command-line flags override the file.

use crate::analysis::relay::Thresholds;
use crate::policy::Policy;
use crate::web_config::WebConfig;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
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
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interfaces: Vec::new(),
            bpf: None,
            promiscuous: true,
            buffer_mib: 64,
            immediate: true,
            snaplen: 65535,
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

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        let cfg: Config =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {}", path.display(), e.message()))?;
        cfg.validate().map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.policy_table()?;
        if let Some(l) = &self.metrics.listen {
            parse_listen(l)?;
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

pub fn parse_listen(s: &str) -> anyhow::Result<SocketAddr> {
    s.parse().map_err(|_| anyhow::anyhow!("listen address {s:?} is not like 127.0.0.1:9617 or [::1]:9617"))
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
    fn rejects_unknown_keys_and_bad_subnets() {
        assert!(toml::from_str::<Config>("[capture]\ninterface = \"eth0\"\n").is_err());
        let cfg: Config = toml::from_str("[policy]\n\"10.20.0.0\" = 100\n").unwrap();
        assert!(cfg.validate().is_err());
    }
}
