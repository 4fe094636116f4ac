//! Request → answer pairs in the clear handshakes of TLS, RDP, WireGuard,
//! IKE and OpenVPN. The answer is computed by the real protocol peer, so
//! the time from request to answer is an application turnaround that
//! reaches past any relay in between (a SOCKS proxy, a port forwarder).

use super::Proto;
use crate::analysis::turns::Msg;

/// The handshake message a payload starts with, if any; `transport` is the
/// IP protocol (OpenVPN frames its packets over TCP, not over UDP).
pub fn message(proto: Proto, transport: u8, p: &[u8]) -> Option<Msg> {
    match proto {
        // TLS handshake record: ClientHello asks, ServerHello answers.
        Proto::Tls => match super::detect::tls_hello(p)? {
            1 => Some(Msg::Request(0)),
            _ => Some(Msg::Answer(0)),
        },
        // TPKT + X.224: connection request, connection confirm.
        Proto::Rdp => match super::detect::x224_connection(p)? {
            0xE0 => Some(Msg::Request(0)),
            _ => Some(Msg::Answer(0)),
        },
        // WireGuard initiation (sender index) and response (receiver index = it).
        Proto::Wireguard if super::detect::is_wireguard(p) => match p[0] {
            1 => Some(Msg::Request(le32(&p[4..8]))),
            2 => Some(Msg::Answer(le32(&p[8..12]))),
            _ => None,
        },
        // IKE: the response flag and the message id pair them (behind the
        // non-ESP marker on port 4500).
        Proto::Ike => {
            let p = ike_message(p);
            if p.len() < 28 || !matches!(p[17], 0x10 | 0x20) {
                return None;
            }
            let id = (u32::from_be_bytes([p[20], p[21], p[22], p[23]]) as u64) << 8 | p[18] as u64;
            if p[19] & 0x20 != 0 { Some(Msg::Answer(id)) } else { Some(Msg::Request(id)) }
        }
        Proto::Openvpn => openvpn_hard_reset(transport, p),
        _ => None,
    }
}

/// An IKE message, behind the 4-byte non-ESP marker of port 4500 when there
/// is one (an initiator SPI is never zero: four zero bytes are the marker).
pub(super) fn ike_message(p: &[u8]) -> &[u8] {
    if p.len() >= 4 && p[..4] == [0, 0, 0, 0] { &p[4..] } else { p }
}

/// An OpenVPN hard reset with key id 0 (over TCP behind its 16-bit length):
/// the client's (opcodes 1, 7, 10) asks, the server's (2, 8) answers.
pub(super) fn openvpn_hard_reset(transport: u8, p: &[u8]) -> Option<Msg> {
    let b = match transport {
        17 if p.len() >= 14 => p[0],
        6 if p.len() >= 16 && u16::from_be_bytes([p[0], p[1]]) as usize == p.len() - 2 => p[2],
        _ => return None,
    };
    match (b >> 3, b & 7) {
        (1 | 7 | 10, 0) => Some(Msg::Request(0)),
        (2 | 8, 0) => Some(Msg::Answer(0)),
        _ => None,
    }
}

fn le32(b: &[u8]) -> u64 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_wireguard_by_index() {
        let mut init = vec![0u8; 148];
        init[0] = 1;
        init[4..8].copy_from_slice(&7u32.to_le_bytes());
        let mut resp = vec![0u8; 92];
        resp[0] = 2;
        resp[4..8].copy_from_slice(&9u32.to_le_bytes());
        resp[8..12].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(message(Proto::Wireguard, 17, &init), Some(Msg::Request(7)));
        assert_eq!(message(Proto::Wireguard, 17, &resp), Some(Msg::Answer(7)));
    }

    #[test]
    fn openvpn_hard_resets_over_udp_and_tcp() {
        // P_CONTROL_HARD_RESET_CLIENT_V2 (7) and _SERVER_V2 (8), key id 0.
        let mut udp = vec![0u8; 14];
        udp[0] = 7 << 3;
        assert_eq!(message(Proto::Openvpn, 17, &udp), Some(Msg::Request(0)));
        udp[0] = 8 << 3;
        assert_eq!(message(Proto::Openvpn, 17, &udp), Some(Msg::Answer(0)));
        udp[0] = (8 << 3) | 1; // key id 1: not the first handshake
        assert_eq!(message(Proto::Openvpn, 17, &udp), None);
        // Over TCP behind the 16-bit length; without it, no message.
        let mut tcp = vec![0u8; 16];
        tcp[1] = 14;
        tcp[2] = 7 << 3;
        assert_eq!(message(Proto::Openvpn, 6, &tcp), Some(Msg::Request(0)));
        tcp[1] = 20;
        assert_eq!(message(Proto::Openvpn, 6, &tcp), None);
    }

    #[test]
    fn tls_rdp_and_ike() {
        assert_eq!(message(Proto::Tls, 6, &[0x16, 3, 1, 0, 200, 1]), Some(Msg::Request(0)));
        assert_eq!(message(Proto::Tls, 6, &[0x16, 3, 3, 0, 90, 2]), Some(Msg::Answer(0)));
        assert_eq!(message(Proto::Rdp, 6, &[3, 0, 0, 19, 14, 0xE0, 0]), Some(Msg::Request(0)));
        assert_eq!(message(Proto::Rdp, 6, &[3, 0, 0, 19, 14, 0xD0, 0]), Some(Msg::Answer(0)));
        // The same checks as the classifier's: a record of an unknown TLS version, or a
        // TPKT too short to hold its X.224 header, is no handshake message.
        assert_eq!(message(Proto::Tls, 6, &[0x16, 3, 9, 0, 200, 1]), None);
        assert_eq!(message(Proto::Rdp, 6, &[3, 0, 0, 19, 14, 0xE0]), None);
        let mut ike = vec![0u8; 28];
        ike[0] = 0x5a; // initiator SPI
        ike[17] = 0x20;
        ike[18] = 34;
        ike[19] = 0x08; // initiator, request
        let req = message(Proto::Ike, 17, &ike).unwrap();
        ike[19] = 0x20; // response
        let Msg::Request(id) = req else { panic!() };
        assert_eq!(message(Proto::Ike, 17, &ike), Some(Msg::Answer(id)));
        assert_eq!(message(Proto::Ssh, 6, b"SSH-2.0-x"), None);
    }
}
