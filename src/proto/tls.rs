//! TLS: a handshake record starting with a ClientHello proves it; the
//! ServerHello answers the ClientHello (the server's turnaround).

use super::{Proto, Spec};
use crate::analysis::turns::Msg;
use crate::ip_proto::IpProto;

pub const SPEC: Spec = Spec {
    proto: Proto::Tls,
    ports: &[(IpProto::TCP, 443, 443)],
    probe: |transport, _, p, _| transport == IpProto::TCP && hello(p).is_some(),
    message: Some(|_, p| match hello(p)? {
        1 => Some(Msg::Request(0)),
        _ => Some(Msg::Answer(0)),
    }),
    app: None,
    remote_access: false,
};

/// A TLS handshake record starting with a ClientHello (1) or ServerHello
/// (2): that message type.
fn hello(p: &[u8]) -> Option<u8> {
    let kind = *p.get(5)?;
    (p[0] == 0x16 && p[1] == 3 && p[2] <= 4 && matches!(kind, 1 | 2)).then_some(kind)
}
