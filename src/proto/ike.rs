//! IKE (v1, v2) on UDP 500 and 4500: its header (behind the non-ESP marker
//! on 4500) proves it; the response flag, the SA and the message id pair
//! requests with answers; on 4500 ESP and NAT keepalives share the port pair.

use super::{Proto, Spec};
use crate::ip_proto::IpProto;

pub const SPEC: Spec = Spec {
    proto: Proto::Ike,
    ports: &[(IpProto::UDP, 500, 500), (IpProto::UDP, 4500, 4500)],
    probe: |transport, server_port, p, len| {
        transport == IpProto::UDP && matches!(server_port, 500 | 4500) && is_ike(p, len)
    },
    // Its control plane pairs its own messages (`tunnel.rs`).
    message: None,
    app: None,
    remote_access: false,
};

/// An IKE message, behind the 4-byte non-ESP marker of port 4500 when there
/// is one (an initiator SPI is never zero: four zero bytes are the marker).
fn ike_message(p: &[u8]) -> &[u8] {
    if p.len() >= 4 && p[..4] == [0, 0, 0, 0] { &p[4..] } else { p }
}

/// IKE (v1 or v2) header, optionally behind the 4-byte non-ESP marker of
/// port 4500, whose length is the payload's on the wire (`len`).
fn is_ike(p: &[u8], len: usize) -> bool {
    let marker = p.len() - ike_message(p).len();
    let p = ike_message(p);
    if p.len() < 28 {
        return false;
    }
    let version = p[17];
    let length = u32::from_be_bytes([p[24], p[25], p[26], p[27]]) as usize;
    matches!(version, 0x10 | 0x20) && length + marker == len
}

/// What an IKE header tells in clear (RFC 7296 3.1, RFC 2408 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub initiator_spi: u64,
    pub responder_spi: u64,
    /// 1 or 2.
    pub version: u8,
    pub exchange: u8,
    /// IKEv2: sent by the original initiator of the IKE SA.
    pub initiator: bool,
    /// IKEv2: a response (IKEv1 has no such flag).
    pub response: bool,
    pub message_id: u32,
}

/// What pairs a request with its answer: the IKE SA (its initiator's SPI,
/// whose low 32 bits tell the SAs of two peers apart) and the message id.
/// Who asked is the pairing's own business: each side numbers its requests.
pub fn pair_id(h: &Header) -> u64 {
    (h.initiator_spi & 0xFFFF_FFFF) << 32 | h.message_id as u64
}

/// IKEv2 exchange types.
pub const IKE_SA_INIT: u8 = 34;
pub const CREATE_CHILD_SA: u8 = 36;
/// IKEv1 exchange types: Identity Protection (main mode), Aggressive, Quick Mode.
pub const MAIN_MODE: u8 = 2;
pub const AGGRESSIVE: u8 = 4;
pub const QUICK_MODE: u8 = 32;

/// The header of an IKE message (behind the non-ESP marker, if any).
pub fn header(p: &[u8]) -> Option<Header> {
    let p = ike_message(p);
    if p.len() < 28 || !matches!(p[17], 0x10 | 0x20) {
        return None;
    }
    let v2 = p[17] == 0x20;
    Some(Header {
        initiator_spi: u64::from_be_bytes(p[0..8].try_into().ok()?),
        responder_spi: u64::from_be_bytes(p[8..16].try_into().ok()?),
        version: p[17] >> 4,
        exchange: p[18],
        initiator: v2 && p[19] & 0x08 != 0,
        response: v2 && p[19] & 0x20 != 0,
        message_id: u32::from_be_bytes([p[20], p[21], p[22], p[23]]),
    })
}

/// What a UDP payload between IKE peers carries: on 4500 (NAT traversal,
/// RFC 3948) IKE behind four zero bytes, ESP (its SPI first, never zero),
/// or a NAT keepalive (the single byte 0xFF); on 500 IKE alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    Ike(Header),
    Esp,
    Keepalive,
    Other,
}

pub fn payload(natt: bool, p: &[u8]) -> Payload {
    if natt && p == [0xFF] {
        return Payload::Keepalive;
    }
    if natt && p.len() >= 8 && p[..4] != [0, 0, 0, 0] {
        return Payload::Esp;
    }
    if natt && p.len() >= 4 && p[..4] != [0, 0, 0, 0] {
        return Payload::Other;
    }
    match header(p) {
        Some(h) => Payload::Ike(h),
        _ => Payload::Other,
    }
}
