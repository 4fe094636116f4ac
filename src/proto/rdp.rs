//! RDP: TPKT + X.224; the connection request and its confirm are the
//! handshake pair (the server's turnaround).

use super::{Proto, Spec};
use crate::analysis::turns::Msg;
use crate::ip_proto::IpProto;

pub const SPEC: Spec = Spec {
    proto: Proto::Rdp,
    ports: &[(IpProto::TCP, 3389, 3389), (IpProto::UDP, 3389, 3389)],
    probe: |transport, _, p| transport == IpProto::TCP && x224_connection(p).is_some(),
    message: Some(|_, p| match x224_connection(p)? {
        0xE0 => Some(Msg::Request(0)),
        _ => Some(Msg::Answer(0)),
    }),
    app: None,
    remote_access: true,
};

/// A TPKT (version 3) packet carrying an X.224 connection request or
/// confirm: its TPDU code, 0xE0 (request) or 0xD0 (confirm).
fn x224_connection(p: &[u8]) -> Option<u8> {
    let code = p.get(5)? & 0xF0;
    (p.len() >= 7 && p[0] == 3 && p[1] == 0 && matches!(code, 0xE0 | 0xD0)).then_some(code)
}
