//! Capture: pcap/pcapng files (replay) and live interfaces, both through
//! libpcap, both feeding the same [`crate::engine::Engine`].

pub mod live;
pub mod offline;

use crate::time::Ts;

/// A libpcap timestamp (seconds, and micro- or nanoseconds) as nanoseconds.
pub fn ts_ns(sec: i64, frac: i64, nanos: bool) -> Ts {
    sec.saturating_mul(1_000_000_000).saturating_add(if nanos { frac } else { frac * 1000 })
}
