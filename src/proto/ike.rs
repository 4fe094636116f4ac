//! IKE (v1, v2) on UDP 500 and 4500: its header (behind the non-ESP marker
//! on 4500) proves it; the response flag and the message id pair requests
//! with answers.

use super::{Proto, Spec};
use crate::analysis::turns::Msg;
use crate::ip_proto::IpProto;

pub const SPEC: Spec = Spec {
    proto: Proto::Ike,
    ports: &[(IpProto::UDP, 500, 500), (IpProto::UDP, 4500, 4500)],
    probe: |transport, server_port, p| transport == IpProto::UDP && matches!(server_port, 500 | 4500) && is_ike(p),
    message: Some(|_, p| {
        let p = ike_message(p);
        if p.len() < 28 || !matches!(p[17], 0x10 | 0x20) {
            return None;
        }
        let id = (u32::from_be_bytes([p[20], p[21], p[22], p[23]]) as u64) << 8 | p[18] as u64;
        if p[19] & 0x20 != 0 { Some(Msg::Answer(id)) } else { Some(Msg::Request(id)) }
    }),
    app: None,
    remote_access: false,
};

/// An IKE message, behind the 4-byte non-ESP marker of port 4500 when there
/// is one (an initiator SPI is never zero: four zero bytes are the marker).
fn ike_message(p: &[u8]) -> &[u8] {
    if p.len() >= 4 && p[..4] == [0, 0, 0, 0] { &p[4..] } else { p }
}

/// IKE (v1 or v2) header, optionally behind the 4-byte non-ESP marker of port 4500.
fn is_ike(p: &[u8]) -> bool {
    let p = ike_message(p);
    if p.len() < 28 {
        return false;
    }
    let version = p[17];
    let length = u32::from_be_bytes([p[24], p[25], p[26], p[27]]) as usize;
    matches!(version, 0x10 | 0x20) && length == p.len()
}
