//! What the engine hands its outputs, as interfaces the outputs implement:
//! the engine knows no output.

use crate::analysis::RttSample;
use crate::flow::{Counters, EndReason, FlowKey, Session};
use crate::proto::Proto;
use crate::time::Ts;
use crate::verdict::Verdict;

/// Where finished sessions go, judged: the outputs make their records.
pub trait RecordSink {
    fn record(&mut self, s: &Session, reason: EndReason, verdict: &Verdict);
    /// A live session's verdict first reached `alert` at packet time `now`
    /// (alerts first reached when a session ends come with its record).
    fn alert(&mut self, _s: &Session, _alert: &'static str, _verdict: &Verdict, _now: Ts) {}
}

/// What the engine tells the outputs as it goes (the Prometheus exporter
/// implements it); the engine knows no output.
pub trait Observer: Send + Sync {
    /// Transport round-trip samples of a `proto` session (those taken before
    /// its protocol was known, once it is).
    fn rtt_samples(&self, proto: Proto, samples: &[Option<RttSample>]);
    /// A keystroke's echo delay (ms) in a `proto` session of `client`.
    fn echo(&self, proto: Proto, client: std::net::IpAddr, ms: f64);
    /// A live session's verdict as it stands (worked out at most once a
    /// second of packet time, when it has new figures).
    fn session_update(&self, key: &FlowKey, s: &Session, verdict: &Verdict);
    /// A session's verdict first reached `alert` (once per session and
    /// alert: while it runs, or when it ends).
    fn alert_raised(&self, s: &Session, alert: &'static str);
    /// A session ended, with its verdict.
    fn session_end(&self, key: &FlowKey, s: &Session, verdict: &Verdict);
    /// The engine's counters now, and as they were at the last call.
    fn counters(&self, now: &Counters, before: &Counters);
}
