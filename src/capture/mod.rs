//! Capture: pcap/pcapng files (replay) and live interfaces, both through
//! libpcap. A capture knows nothing of what follows: it hands its frames to
//! a [`Receiver`], which the runtimes connect to the engine.

pub mod live;
pub mod offline;

use crate::decode::LinkType;
use crate::time::Ts;

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The capture's link type; `None` when echoloc cannot read it.
    pub link: Option<LinkType>,
    pub ts: Ts,
    /// What was captured (maybe cut short by the snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub wire_len: u32,
}

/// Where a capture's frames go.
pub trait Receiver {
    /// A capture file (each of several in a row) begins with a frame at `ts`.
    fn file_start(&mut self, _path: &std::path::Path, _ts: Ts) {}
    fn frame(&mut self, f: &Frame<'_>);
    /// Live: the capture has nothing more to read right now.
    fn drained(&mut self) {}
    /// Live: nothing came for a while; `wall` is the wall clock (ns), which
    /// the packet clock may follow so idle sessions still end.
    fn quiet(&mut self, _wall: Ts) {}
    /// Live: about once a second, with the interface's libpcap counters.
    fn tick(&mut self, _stats: Option<live::Stats>) {}
}

/// A libpcap timestamp (seconds, and micro- or nanoseconds) as nanoseconds.
pub fn ts_ns(sec: i64, frac: i64, nanos: bool) -> Ts {
    sec.saturating_mul(1_000_000_000).saturating_add(if nanos { frac } else { frac * 1000 })
}

/// A packet's time, from a capture opened with nanosecond precision.
fn packet_ts(pkt: &pcap::Packet<'_>) -> Ts {
    ts_ns(pkt.header.ts.tv_sec, pkt.header.ts.tv_usec, true)
}

/// One libpcap packet (of a capture opened with nanosecond precision) as a frame.
fn frame<'a>(link: Option<LinkType>, pkt: &pcap::Packet<'a>) -> Frame<'a> {
    Frame { link, ts: packet_ts(pkt), data: pkt.data, wire_len: pkt.header.len }
}
