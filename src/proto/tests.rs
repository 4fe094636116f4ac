//! Handshake messages of every protocol module: through [`message`] where
//! the engine pairs them, and the tunnels' own readers (their control plane
//! pairs them: `tunnel.rs`).

use super::*;
use crate::ip_proto::IpProto;

#[test]
fn pairs_wireguard_by_index() {
    let mut init = vec![0u8; 148];
    init[0] = 1;
    init[4..8].copy_from_slice(&7u32.to_le_bytes());
    let mut resp = vec![0u8; 92];
    resp[0] = 2;
    resp[4..8].copy_from_slice(&9u32.to_le_bytes());
    resp[8..12].copy_from_slice(&7u32.to_le_bytes());
    assert_eq!(wireguard::message(&init, init.len()), Some(Msg::Request(7)));
    assert_eq!(wireguard::message(&resp, resp.len()), Some(Msg::Answer(7)));
    // The engine leaves them to the tunnel's control plane.
    assert_eq!(message(Proto::Wireguard, IpProto::UDP, &init), None);
}

#[test]
fn openvpn_hard_resets_over_udp_and_tcp() {
    // P_CONTROL_HARD_RESET_CLIENT_V2 (7) and _SERVER_V2 (8), key id 0.
    let mut udp = vec![0u8; 14];
    udp[0] = 7 << 3;
    assert_eq!(openvpn::hard_reset(IpProto::UDP, &udp), Some(Msg::Request(0)));
    udp[0] = 8 << 3;
    assert_eq!(openvpn::hard_reset(IpProto::UDP, &udp), Some(Msg::Answer(0)));
    udp[0] = (8 << 3) | 1; // key id 1: not the first handshake
    assert_eq!(openvpn::hard_reset(IpProto::UDP, &udp), None);
    // Over TCP behind the 16-bit length; without it, no message.
    let mut tcp = vec![0u8; 16];
    tcp[1] = 14;
    tcp[2] = 7 << 3;
    assert_eq!(openvpn::hard_reset(IpProto::TCP, &tcp), Some(Msg::Request(0)));
    tcp[1] = 20;
    assert_eq!(openvpn::hard_reset(IpProto::TCP, &tcp), None);
}

#[test]
fn tls_rdp_and_ike() {
    assert_eq!(message(Proto::Tls, IpProto::TCP, &[0x16, 3, 1, 0, 200, 1]), Some(Msg::Request(0)));
    assert_eq!(message(Proto::Tls, IpProto::TCP, &[0x16, 3, 3, 0, 90, 2]), Some(Msg::Answer(0)));
    assert_eq!(message(Proto::Rdp, IpProto::TCP, &[3, 0, 0, 19, 14, 0xE0, 0]), Some(Msg::Request(0)));
    assert_eq!(message(Proto::Rdp, IpProto::TCP, &[3, 0, 0, 19, 14, 0xD0, 0]), Some(Msg::Answer(0)));
    // The same checks as the classifier's: a record of an unknown TLS version, or a
    // TPKT too short to hold its X.224 header, is no handshake message.
    assert_eq!(message(Proto::Tls, IpProto::TCP, &[0x16, 3, 9, 0, 200, 1]), None);
    assert_eq!(message(Proto::Rdp, IpProto::TCP, &[3, 0, 0, 19, 14, 0xE0]), None);
    let mut ike = vec![0u8; 28];
    ike[0] = 0x5a; // initiator SPI
    ike[17] = 0x20;
    ike[18] = 34;
    ike[19] = 0x08; // initiator, request
    let req = ike::header(&ike).unwrap();
    ike[19] = 0x20; // response
    let answer = ike::header(&ike).unwrap();
    assert_eq!((req.response, answer.response), (false, true));
    assert_eq!(ike::pair_id(&req), ike::pair_id(&answer));
    assert_eq!(message(Proto::Ssh, IpProto::TCP, b"SSH-2.0-x"), None);
}
