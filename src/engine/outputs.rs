//! What the engine hands its outputs, as interfaces the outputs implement:
//! the engine knows no output.

use crate::analysis::RttSample;
use crate::flow::{Counters, EndReason, FlowKey, Session};
use crate::proto::Proto;
use crate::time::Ts;
use crate::verdict::{Judge, Verdict};

/// Where finished sessions go, judged: the outputs make their records.
pub trait RecordSink {
    fn record(&mut self, s: &Session, reason: EndReason, verdict: &Verdict);
}

/// What the engine tells the outputs as it goes (the Prometheus exporter
/// implements it); the engine knows no output.
pub trait Observer: Send + Sync {
    /// Transport round-trip samples of a `proto` session (those taken before
    /// its protocol was known, once it is).
    fn rtt_samples(&self, proto: Proto, samples: &[Option<RttSample>]);
    /// A keystroke's echo delay, ms.
    fn echo(&self, proto: Proto, ms: f64);
    /// A session has new figures at packet time `now` (the observer decides
    /// how often to judge and show them).
    fn session_update(&self, key: &FlowKey, s: &Session, now: Ts, judge: &Judge);
    /// A session ended, with its verdict.
    fn session_end(&self, key: &FlowKey, s: &Session, verdict: &Verdict);
    /// The engine's counters now, and as they were at the last call.
    fn counters(&self, now: &Counters, before: &Counters);
}
