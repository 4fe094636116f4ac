//! The engine's limits and timeouts, from a config's `[sessions]` section.

use crate::config::{Config, SessionsConfig};
use crate::time::{NS_PER_SEC, Ts};
use crate::verdict::Judge;

/// Limits and timeouts of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Idle limit of TCP connections not (yet) established, and of
    /// established ones of other protocols.
    pub tcp_idle: Ts,
    /// Idle limit of established remote-access sessions (SSH, RDP, VNC,
    /// OpenVPN over TCP): see [`crate::flow::Lane::LongIdle`].
    pub long_idle: Ts,
    pub udp_idle: Ts,
    /// How long a closed TCP connection lingers to absorb its last packets.
    pub close_linger: Ts,
    pub max_sessions: usize,
    /// Relay thresholds and the typist round-trip policy.
    pub judge: Judge,
    /// Judge sessions while they run (at most once a second of packet time
    /// each, when they have new figures), so alerts are raised live: set by
    /// live capture, and whenever there is an observer (metrics).
    pub live_verdicts: bool,
    /// Keep an RDP connection request's cookie (a user name) for its record.
    pub rdp_record_cookie: bool,
}

impl EngineConfig {
    /// The limits a config's `[sessions]` section sets (seconds there,
    /// packet-time nanoseconds here).
    pub fn new(sessions: &SessionsConfig, judge: Judge) -> EngineConfig {
        let ns = |secs: f64| (secs * NS_PER_SEC as f64) as Ts;
        EngineConfig {
            tcp_idle: ns(sessions.tcp_idle_s),
            long_idle: ns(sessions.interactive_idle_s),
            udp_idle: ns(sessions.udp_idle_s),
            close_linger: 5 * NS_PER_SEC,
            max_sessions: sessions.max_sessions,
            judge,
            live_verdicts: false,
            rdp_record_cookie: false,
        }
    }

    /// The longest idle limit: how long a timeline may pause between two
    /// capture files.
    pub fn longest_idle(&self) -> Ts {
        self.tcp_idle.max(self.udp_idle).max(self.long_idle).max(self.close_linger)
    }

    /// The engine a config asks for (validated when it was loaded).
    pub fn from_config(cfg: &Config) -> EngineConfig {
        let judge = Judge { thresholds: cfg.relay, policy: cfg.policy_table().unwrap_or_default() };
        EngineConfig { rdp_record_cookie: cfg.rdp.record_cookie, ..EngineConfig::new(&cfg.sessions, judge) }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig::new(&SessionsConfig::default(), Judge::default())
    }
}
