//! Which protocol a session carries: each protocol's probe over the first
//! payloads, OpenVPN's hard-reset pair, else the server port.

use super::openvpn::hard_reset;
use super::{PROTOCOLS, Proto};
use crate::analysis::turns::Msg;
use crate::ip_proto::IpProto;
use crate::side::Side;

/// Payload-bearing packets looked at per session before falling back to ports.
const BUDGET: u8 = 8;

/// Per-session protocol detection state.
#[derive(Debug, Clone, Copy, Default)]
pub struct Classifier {
    pub found: Option<Proto>,
    seen: u8,
    /// The client sent an OpenVPN hard reset; the server's reset confirms it.
    openvpn_reset: bool,
}

impl Classifier {
    /// Look at one payload; `server_port` is the session's server port.
    /// `payload` as captured, `len` its length on the wire.
    pub fn feed(&mut self, transport: IpProto, server_port: u16, from: Side, payload: &[u8], len: usize) {
        if self.found.is_some() || self.seen >= BUDGET || payload.is_empty() {
            return;
        }
        self.seen += 1;
        self.found = detect_payload(transport, server_port, payload, len);
        if self.found.is_none() {
            // OpenVPN has no magic: a client hard reset answered by a server hard reset.
            match (from, hard_reset(transport, payload)) {
                (Side::Client, Some(Msg::Request(_))) => self.openvpn_reset = true,
                (Side::Server, Some(Msg::Answer(_))) if self.openvpn_reset => self.found = Some(Proto::Openvpn),
                _ => {}
            }
        }
    }

    /// A client's OpenVPN hard reset was seen, its answer not yet: the
    /// session may be OpenVPN (its tunnel state starts with that reset).
    pub fn openvpn_candidate(&self) -> bool {
        self.found.is_none() && self.openvpn_reset && self.seen < BUDGET
    }

    /// Whether the protocol can no longer change.
    pub fn settled(&self) -> bool {
        self.found.is_some() || self.seen >= BUDGET
    }

    /// The protocol: content if it matched, else `by_port` (the server
    /// port's, else the transport's: [`Proto::by_port`]).
    pub fn proto(&self, by_port: Proto) -> Proto {
        self.found.unwrap_or(by_port)
    }
}

/// The protocol one payload proves, if any: the first whose probe matches,
/// in the order of [`PROTOCOLS`].
pub fn detect_payload(transport: IpProto, server_port: u16, p: &[u8], len: usize) -> Option<Proto> {
    PROTOCOLS.iter().find(|s| (s.probe)(transport, server_port, p, len)).map(|s| s.proto)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_on_any_port() {
        let mut c = Classifier::default();
        c.feed(IpProto::TCP, 443, Side::Server, b"SSH-2.0-OpenSSH_9.2p1\r\n", 23);
        assert_eq!(c.proto(Proto::by_port(IpProto::TCP, 443)), Proto::Ssh);
    }

    #[test]
    fn port_fallback_and_default() {
        let c = Classifier::default();
        assert_eq!(c.proto(Proto::by_port(IpProto::TCP, 22)), Proto::Ssh);
        assert_eq!(c.proto(Proto::by_port(IpProto::TCP, 8080)), Proto::Tcp);
        assert_eq!(c.proto(Proto::by_port(IpProto::UDP, 9999)), Proto::Udp);
    }

    #[test]
    fn rdp_connection_request() {
        let cr = [3, 0, 0, 19, 14, 0xE0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 3, 0, 0, 0];
        assert_eq!(detect_payload(IpProto::TCP, 3389, &cr, cr.len()), Some(Proto::Rdp));
    }

    #[test]
    fn wireguard_sizes() {
        let mut init = vec![0u8; 148];
        init[0] = 1;
        assert_eq!(detect_payload(IpProto::UDP, 51194, &init, init.len()), Some(Proto::Wireguard));
        // Captured with a short snap length: the size on the wire still proves it.
        assert_eq!(detect_payload(IpProto::UDP, 51194, &init[..86], 148), Some(Proto::Wireguard));
        assert_eq!(detect_payload(IpProto::UDP, 51194, &init[..86], 149), None);
        init.push(0);
        assert_eq!(detect_payload(IpProto::UDP, 51194, &init, init.len()), None);
    }

    #[test]
    fn openvpn_needs_a_reset_and_its_answer() {
        let mut reset = vec![7 << 3];
        reset.extend([1u8; 25]);
        let mut answer = vec![8 << 3];
        answer.extend([2u8; 25]);
        let mut c = Classifier::default();
        c.feed(IpProto::UDP, 1198, Side::Client, &reset, reset.len());
        assert_eq!(c.found, None);
        c.feed(IpProto::UDP, 1198, Side::Server, &answer, answer.len());
        assert_eq!(c.found, Some(Proto::Openvpn));
        // A DNS query and answer with the same id never match.
        let mut dns = Classifier::default();
        let q = [0x08, 0x12, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'w', b'w'];
        dns.feed(IpProto::UDP, 53, Side::Client, &q, q.len());
        dns.feed(IpProto::UDP, 53, Side::Server, &q, q.len());
        assert_eq!(dns.proto(Proto::by_port(IpProto::UDP, 53)), Proto::Udp);
    }

    #[test]
    fn ike_header_with_and_without_marker() {
        let mut h = vec![0u8; 28];
        h[0] = 1;
        h[17] = 0x20;
        h[27] = 28;
        assert_eq!(detect_payload(IpProto::UDP, 500, &h, h.len()), Some(Proto::Ike));
        let mut natt = vec![0u8; 4];
        natt.extend_from_slice(&h);
        assert_eq!(detect_payload(IpProto::UDP, 4500, &natt, natt.len()), Some(Proto::Ike));
        // A longer message captured in part: its header's length is the wire's.
        let (mut long, mut marked) = (h.clone(), natt.clone());
        long[27] = 200;
        marked[31] = 200;
        assert_eq!(detect_payload(IpProto::UDP, 500, &long, 200), Some(Proto::Ike));
        assert_eq!(detect_payload(IpProto::UDP, 4500, &marked, 204), Some(Proto::Ike));
        assert_eq!(detect_payload(IpProto::UDP, 500, &long, 201), None);
    }
}
