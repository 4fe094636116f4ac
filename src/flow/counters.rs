//! Totals of what an engine saw, flushed to the metrics now and then.

use super::EndReason;
use crate::decode::DropReason;
use crate::proto::Proto;

/// Totals of what an engine saw: packets, bytes, decode errors by reason,
/// sessions opened by protocol and ended by protocol and reason, evictions.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub decode_errors: [u64; DropReason::ALL.len()],
    pub opened: [u64; Proto::ALL.len()],
    pub ended: [[u64; EndReason::ALL.len()]; Proto::ALL.len()],
    pub evicted: u64,
    /// Ended TCP sessions that carried no payload either way (a lone SYN,
    /// a handshake only: scans), by protocol.
    pub handshake_only: [u64; Proto::ALL.len()],
    /// Sessions in this engine's table when the counters were last flushed
    /// (a level, not a total: each engine adds its change to the gauge, so
    /// `echoloc_sessions_active` is the sum over every captured interface).
    pub active: u64,
}
