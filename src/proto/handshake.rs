//! Request → answer pairs in the clear handshakes of TLS, RDP, WireGuard,
//! IKE and OpenVPN. The answer is computed by the real protocol peer, so
//! the time from request to answer is an application turnaround that
//! reaches past any relay in between (a SOCKS proxy, a port forwarder).

use super::Proto;

/// One handshake message, as far as pairing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    /// Asks for an answer; `id` pairs it with that answer.
    Request(u64),
    Answer(u64),
}

/// The handshake message a payload starts with, if any.
pub fn message(proto: Proto, p: &[u8]) -> Option<Msg> {
    match proto {
        // TLS handshake record: ClientHello asks, ServerHello answers.
        Proto::Tls if p.len() >= 6 && p[0] == 0x16 && p[1] == 3 => match p[5] {
            1 => Some(Msg::Request(0)),
            2 => Some(Msg::Answer(0)),
            _ => None,
        },
        // TPKT + X.224: connection request, connection confirm.
        Proto::Rdp if p.len() >= 6 && p[0] == 3 && p[1] == 0 => match p[5] & 0xF0 {
            0xE0 => Some(Msg::Request(0)),
            0xD0 => Some(Msg::Answer(0)),
            _ => None,
        },
        // WireGuard initiation (sender index) and response (receiver index = it).
        Proto::Wireguard if p.len() >= 12 && p[1..4] == [0, 0, 0] => match p[0] {
            1 if p.len() == 148 => Some(Msg::Request(le32(&p[4..8]))),
            2 if p.len() == 92 => Some(Msg::Answer(le32(&p[8..12]))),
            _ => None,
        },
        // IKE: the response flag and the message id pair them (behind the
        // non-ESP marker on port 4500).
        Proto::Ike => {
            let marked = p.len() >= 32
                && p[..4] == [0, 0, 0, 0]
                && u32::from_be_bytes([p[28], p[29], p[30], p[31]]) as usize == p.len() - 4;
            let p = if marked { &p[4..] } else { p };
            if p.len() < 28 || !matches!(p[17], 0x10 | 0x20) {
                return None;
            }
            let id = (u32::from_be_bytes([p[20], p[21], p[22], p[23]]) as u64) << 8 | p[18] as u64;
            if p[19] & 0x20 != 0 { Some(Msg::Answer(id)) } else { Some(Msg::Request(id)) }
        }
        // OpenVPN hard resets, key id 0, over UDP or behind TCP's 16-bit length.
        Proto::Openvpn => {
            let b = match p {
                [_, _, b, ..] if p.len() >= 16 && u16::from_be_bytes([p[0], p[1]]) as usize == p.len() - 2 => *b,
                [b, ..] if p.len() >= 14 => *b,
                _ => return None,
            };
            match (b >> 3, b & 7) {
                (1 | 7 | 10, 0) => Some(Msg::Request(0)),
                (2 | 8, 0) => Some(Msg::Answer(0)),
                _ => None,
            }
        }
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
        assert_eq!(message(Proto::Wireguard, &init), Some(Msg::Request(7)));
        assert_eq!(message(Proto::Wireguard, &resp), Some(Msg::Answer(7)));
    }

    #[test]
    fn tls_rdp_and_ike() {
        assert_eq!(message(Proto::Tls, &[0x16, 3, 1, 0, 200, 1]), Some(Msg::Request(0)));
        assert_eq!(message(Proto::Tls, &[0x16, 3, 3, 0, 90, 2]), Some(Msg::Answer(0)));
        assert_eq!(message(Proto::Rdp, &[3, 0, 0, 19, 14, 0xE0]), Some(Msg::Request(0)));
        assert_eq!(message(Proto::Rdp, &[3, 0, 0, 19, 14, 0xD0]), Some(Msg::Answer(0)));
        let mut ike = vec![0u8; 28];
        ike[0] = 0x5a; // initiator SPI
        ike[17] = 0x20;
        ike[18] = 34;
        ike[19] = 0x08; // initiator, request
        let req = message(Proto::Ike, &ike).unwrap();
        ike[19] = 0x20; // response
        let Msg::Request(id) = req else { panic!() };
        assert_eq!(message(Proto::Ike, &ike), Some(Msg::Answer(id)));
        assert_eq!(message(Proto::Ssh, b"SSH-2.0-x"), None);
    }
}
