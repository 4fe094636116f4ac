//! Capture: pcap/pcapng files (replay) and live interfaces, both through
//! libpcap, both feeding the same [`crate::engine::Engine`].

pub mod live;
pub mod offline;

use crate::decode::LinkType;
use crate::engine::{Engine, RecordSink};
use crate::time::Ts;

/// A libpcap timestamp (seconds, and micro- or nanoseconds) as nanoseconds.
pub fn ts_ns(sec: i64, frac: i64, nanos: bool) -> Ts {
    sec.saturating_mul(1_000_000_000).saturating_add(if nanos { frac } else { frac * 1000 })
}

/// A packet's time, from a capture opened with nanosecond precision.
fn packet_ts(pkt: &pcap::Packet<'_>) -> Ts {
    ts_ns(pkt.header.ts.tv_sec, pkt.header.ts.tv_usec, true)
}

/// Hand one libpcap packet (opened with nanosecond precision) to the engine.
fn feed(engine: &mut Engine, link: Option<LinkType>, pkt: &pcap::Packet<'_>, out: &mut dyn RecordSink) {
    let ts = packet_ts(pkt);
    match link {
        Some(l) => engine.frame_wire(l, ts, pkt.data, Some(pkt.header.len), out),
        None => engine.unknown_link(),
    }
}
