//! WireGuard: fixed message sizes prove it; the initiation (sender index)
//! and the response naming it (receiver index) are the handshake pair.

use super::{Proto, Spec};
use crate::analysis::turns::Msg;
use crate::ip_proto::IpProto;

pub const SPEC: Spec = Spec {
    proto: Proto::Wireguard,
    ports: &[(IpProto::UDP, 51820, 51820)],
    probe: |transport, _, p, len| transport == IpProto::UDP && is_wireguard(p, len),
    // Its control plane pairs its own messages (`tunnel.rs`).
    message: None,
    app: None,
    remote_access: false,
};

/// A handshake message: the initiation (its sender index) asks, the
/// response or the cookie reply naming that index (receiver index) answers.
/// Either side initiates (each re-key, whoever starts it): the answer times
/// the leg of the side that answered.
/// The handshake message a payload (`len` bytes on the wire, `p` the
/// captured start) is, if any.
pub fn message(p: &[u8], len: usize) -> Option<Msg> {
    if !is_wireguard(p, len) {
        return None;
    }
    match p[0] {
        1 => Some(Msg::Request(le32(&p[4..8]))),
        2 => Some(Msg::Answer(le32(&p[8..12]))),
        // A cookie reply (under load) answers the initiation it names.
        3 => Some(Msg::Answer(le32(&p[4..8]))),
        _ => None,
    }
}

/// WireGuard: a message type 1–4, three reserved zero bytes, the fixed size
/// of that type (transport data: 16-byte header + a multiple of 16).
/// `len`: the payload's length on the wire (a short snap length captures less).
pub fn is_wireguard(p: &[u8], len: usize) -> bool {
    if p.len() < 16 || len < 32 || p[1..4] != [0, 0, 0] {
        return false;
    }
    match p[0] {
        1 => len == 148,
        2 => len == 92,
        3 => len == 64,
        4 => (len - 16).is_multiple_of(16),
        _ => false,
    }
}

pub fn le32(b: &[u8]) -> u64 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64
}
