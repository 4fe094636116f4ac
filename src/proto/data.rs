//! One data segment of an interactive session, as its protocol's dissector
//! reads it.

use crate::side::Side;
use crate::time::Ts;

/// One data segment, as the dissectors read it.
#[derive(Debug, Clone, Copy)]
pub struct Data<'a> {
    pub ts: Ts,
    pub from: Side,
    /// Where the segment starts in its sender's byte stream, and what it
    /// acknowledges of the other's (TCP's numbers, or a Multipath TCP
    /// connection's data sequence).
    pub seq: u32,
    pub ack: Option<u32>,
    /// Payload length from the headers, and the captured part.
    pub len: u32,
    pub payload: &'a [u8],
    /// The connection's TCP handshake was seen.
    pub syn_seen: bool,
}
