//! Content signatures of the protocols echoloc watches.

use super::Proto;
use super::handshake::{ike_message, openvpn_hard_reset};
use crate::analysis::turns::Msg;
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
    pub fn feed(&mut self, transport: u8, server_port: u16, from: Side, payload: &[u8]) {
        if self.found.is_some() || self.seen >= BUDGET || payload.is_empty() {
            return;
        }
        self.seen += 1;
        self.found = detect_payload(transport, server_port, payload);
        if self.found.is_none() {
            // OpenVPN has no magic: a client hard reset answered by a server hard reset.
            match (from, openvpn_hard_reset(transport, payload)) {
                (Side::Client, Some(Msg::Request(_))) => self.openvpn_reset = true,
                (Side::Server, Some(Msg::Answer(_))) if self.openvpn_reset => self.found = Some(Proto::Openvpn),
                _ => {}
            }
        }
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

/// The protocol one payload proves, if any.
pub fn detect_payload(transport: u8, server_port: u16, p: &[u8]) -> Option<Proto> {
    match transport {
        6 => detect_tcp(p),
        17 => detect_udp(server_port, p),
        _ => None,
    }
}

fn detect_tcp(p: &[u8]) -> Option<Proto> {
    if p.starts_with(b"SSH-") {
        return Some(Proto::Ssh);
    }
    // SSH inside a thin tunnel framing (WebSocket, HTTP CONNECT-less proxies): the banner within the first bytes.
    if p.len() > 8 && p[..p.len().min(16)].windows(8).any(|w| w == b"SSH-2.0-" || w == b"SSH-1.99") {
        return Some(Proto::Ssh);
    }
    if p.starts_with(b"RFB 0") {
        return Some(Proto::Vnc);
    }
    if x224_connection(p).is_some() {
        return Some(Proto::Rdp);
    }
    if tls_hello(p).is_some() {
        return Some(Proto::Tls);
    }
    None
}

/// A TPKT (version 3) packet carrying an X.224 connection request or
/// confirm: its TPDU code, 0xE0 (request) or 0xD0 (confirm).
pub(super) fn x224_connection(p: &[u8]) -> Option<u8> {
    let code = p.get(5)? & 0xF0;
    (p.len() >= 7 && p[0] == 3 && p[1] == 0 && matches!(code, 0xE0 | 0xD0)).then_some(code)
}

/// A TLS handshake record starting with a ClientHello (1) or ServerHello
/// (2): that message type.
pub(super) fn tls_hello(p: &[u8]) -> Option<u8> {
    let kind = *p.get(5)?;
    (p[0] == 0x16 && p[1] == 3 && p[2] <= 4 && matches!(kind, 1 | 2)).then_some(kind)
}

fn detect_udp(server_port: u16, p: &[u8]) -> Option<Proto> {
    if is_wireguard(p) {
        return Some(Proto::Wireguard);
    }
    if matches!(server_port, 500 | 4500) && is_ike(p) {
        return Some(Proto::Ike);
    }
    None
}

/// WireGuard: a message type 1–4, three reserved zero bytes, the fixed size
/// of that type (transport data: 16-byte header + a multiple of 16).
pub(super) fn is_wireguard(p: &[u8]) -> bool {
    if p.len() < 32 || p[1..4] != [0, 0, 0] {
        return false;
    }
    match p[0] {
        1 => p.len() == 148,
        2 => p.len() == 92,
        3 => p.len() == 64,
        4 => (p.len() - 16).is_multiple_of(16),
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_on_any_port() {
        let mut c = Classifier::default();
        c.feed(6, 443, Side::Server, b"SSH-2.0-OpenSSH_9.2p1\r\n");
        assert_eq!(c.proto(Proto::by_port(6, 443)), Proto::Ssh);
    }

    #[test]
    fn port_fallback_and_default() {
        let c = Classifier::default();
        assert_eq!(c.proto(Proto::by_port(6, 22)), Proto::Ssh);
        assert_eq!(c.proto(Proto::by_port(6, 8080)), Proto::Tcp);
        assert_eq!(c.proto(Proto::by_port(17, 9999)), Proto::Udp);
    }

    #[test]
    fn rdp_connection_request() {
        let cr = [3, 0, 0, 19, 14, 0xE0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 3, 0, 0, 0];
        assert_eq!(detect_payload(6, 3389, &cr), Some(Proto::Rdp));
    }

    #[test]
    fn wireguard_sizes() {
        let mut init = vec![0u8; 148];
        init[0] = 1;
        assert_eq!(detect_payload(17, 51194, &init), Some(Proto::Wireguard));
        init.push(0);
        assert_eq!(detect_payload(17, 51194, &init), None);
    }

    #[test]
    fn openvpn_needs_a_reset_and_its_answer() {
        let mut reset = vec![7 << 3];
        reset.extend([1u8; 25]);
        let mut answer = vec![8 << 3];
        answer.extend([2u8; 25]);
        let mut c = Classifier::default();
        c.feed(17, 1198, Side::Client, &reset);
        assert_eq!(c.found, None);
        c.feed(17, 1198, Side::Server, &answer);
        assert_eq!(c.found, Some(Proto::Openvpn));
        // A DNS query and answer with the same id never match.
        let mut dns = Classifier::default();
        let q = [0x08, 0x12, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'w', b'w'];
        dns.feed(17, 53, Side::Client, &q);
        dns.feed(17, 53, Side::Server, &q);
        assert_eq!(dns.proto(Proto::by_port(17, 53)), Proto::Udp);
    }

    #[test]
    fn ike_header_with_and_without_marker() {
        let mut h = vec![0u8; 28];
        h[0] = 1;
        h[17] = 0x20;
        h[27] = 28;
        assert_eq!(detect_payload(17, 500, &h), Some(Proto::Ike));
        let mut natt = vec![0u8; 4];
        natt.extend_from_slice(&h);
        assert_eq!(detect_payload(17, 4500, &natt), Some(Proto::Ike));
    }
}
