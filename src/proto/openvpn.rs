//! OpenVPN has no magic: a client hard reset answered by a server hard
//! reset proves it (see `detect::Classifier`), and that pair is its
//! handshake turnaround.

use super::{Proto, Spec};
use crate::analysis::turns::Msg;
use crate::ip_proto::IpProto;

pub const SPEC: Spec = Spec {
    proto: Proto::Openvpn,
    ports: &[(IpProto::TCP, 1194, 1194), (IpProto::UDP, 1194, 1194)],
    probe: |_, _, _| false,
    message: Some(hard_reset),
    app: None,
    remote_access: true,
};

/// An OpenVPN hard reset with key id 0 (over TCP behind its 16-bit length):
/// the client's (opcodes 1, 7, 10) asks, the server's (2, 8) answers.
pub fn hard_reset(transport: IpProto, p: &[u8]) -> Option<Msg> {
    let b = match transport {
        IpProto::UDP if p.len() >= 14 => p[0],
        IpProto::TCP if p.len() >= 16 && u16::from_be_bytes([p[0], p[1]]) as usize == p.len() - 2 => p[2],
        _ => return None,
    };
    match (b >> 3, b & 7) {
        (1 | 7 | 10, 0) => Some(Msg::Request(0)),
        (2 | 8, 0) => Some(Msg::Answer(0)),
        _ => None,
    }
}
