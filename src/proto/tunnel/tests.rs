use super::*;
use crate::proto::openvpn::{Mode, control, detect_mode};

const MS: Ts = 1_000_000;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// corelight-zeek-spicy-openvpn/openvpn.pcap frames 1, 2, 5 (plain, UDP).
const PLAIN_CLIENT_RESET: &str = "389aa6b1e434889ad30000000000";
const PLAIN_SERVER_RESET: &str = "40e7a77eba7c1c51b501000000009aa6b1e434889ad300000000";
const PLAIN_SERVER_CONTROL: &str = "20e7a77eba7c1c51b501000000019aa6b1e434889ad300000001160303007a";
/// openvpn_udp_tls-auth.pcap frames 1, 2, 9 (tls-auth, HMAC SHA1: 20 bytes).
const TA_CLIENT_RESET: &str = "38813814621d67462dde86734d2cbff151b2b1231b61e42308a272818e0000000150ff262c0000000000";
const TA_SERVER_RESET: &str =
    "40573714a917f36048885887cdb6dd77785d00d15edbbe9aa6203a45570000000150ff262b0100000000813814621d67462d00000000";
const TA_SERVER_CONTROL: &str = "20573714a917f36048e6e80e0696548f50db2fb4e3229af10c35807f510000000450ff262b0100000003813814621d67462d00000001160301003a";

#[test]
fn openvpn_modes_and_reliability_layer_from_public_captures() {
    assert_eq!(detect_mode(&hex(PLAIN_CLIENT_RESET)), Some(Mode::Plain));
    assert_eq!(detect_mode(&hex(PLAIN_SERVER_RESET)), Some(Mode::Plain));
    // tshark: frame 2 acks message 0, carries message 0; frame 5 acks 1, carries 1.
    let c = control(Mode::Plain, &hex(PLAIN_SERVER_RESET)).unwrap();
    assert_eq!((c.opcode, c.key_id, &c.acks[..c.n_acks], c.packet_id), (8, 0, &[0][..], Some(0)));
    let c = control(Mode::Plain, &hex(PLAIN_SERVER_CONTROL)).unwrap();
    assert_eq!((c.opcode, &c.acks[..c.n_acks], c.packet_id), (4, &[1][..], Some(1)));
    assert_eq!(c.session_id, 0xe7a77eba7c1c51b5);
    for p in [TA_CLIENT_RESET, TA_SERVER_RESET, TA_SERVER_CONTROL] {
        assert_eq!(detect_mode(&hex(p)), Some(Mode::TlsAuth { hmac: 20 }), "{p}");
    }
    // tshark: frame 9 acks 3, carries message 1.
    let c = control(Mode::TlsAuth { hmac: 20 }, &hex(TA_SERVER_CONTROL)).unwrap();
    assert_eq!((&c.acks[..c.n_acks], c.packet_id), (&[3][..], Some(1)));
}

/// A control packet under `mode`: opcode, session id, [HMAC, replay id and
/// time], acks, [remote session], message packet-id.
fn ovpn(opcode: u8, key: u8, mode: Mode, acks: &[u32], id: Option<u32>) -> Vec<u8> {
    let mut p = vec![opcode << 3 | key];
    p.extend(0x1122_3344_5566_7788u64.to_be_bytes());
    match mode {
        Mode::Plain => {}
        Mode::TlsAuth { hmac } => {
            p.extend(vec![0xA5; hmac as usize]);
            p.extend(7u32.to_be_bytes());
            p.extend(1_700_000_000u32.to_be_bytes());
        }
        Mode::TlsCrypt => {
            p.extend(7u32.to_be_bytes());
            p.extend(1_700_000_000u32.to_be_bytes());
            p.extend(vec![0x5A; 32]);
            p.extend([0x99, 0x31, 0x77, 0x02, 0xF1, 0x10]);
            return p;
        }
    }
    p.push(acks.len() as u8);
    for a in acks {
        p.extend(a.to_be_bytes());
    }
    if !acks.is_empty() {
        p.extend(0x99u64.to_be_bytes());
    }
    if let Some(id) = id {
        p.extend(id.to_be_bytes());
    }
    p
}

#[test]
fn tls_auth_hmac_sizes_and_tls_crypt_are_told_apart() {
    for mode in [Mode::Plain, Mode::TlsAuth { hmac: 20 }, Mode::TlsAuth { hmac: 32 }, Mode::TlsAuth { hmac: 64 }] {
        assert_eq!(detect_mode(&ovpn(7, 0, mode, &[], Some(0))), Some(mode), "{mode:?} client reset");
        assert_eq!(detect_mode(&ovpn(8, 0, mode, &[0], Some(0))), Some(mode), "{mode:?} server reset");
        let c = control(mode, &ovpn(4, 1, mode, &[5, 6], Some(9))).unwrap();
        assert_eq!((c.key_id, &c.acks[..c.n_acks], c.packet_id), (1, &[5, 6][..], Some(9)));
        let c = control(mode, &ovpn(5, 0, mode, &[3], None)).unwrap();
        assert_eq!((&c.acks[..c.n_acks], c.packet_id), (&[3][..], None));
    }
    assert_eq!(detect_mode(&ovpn(7, 0, Mode::TlsCrypt, &[], None)), Some(Mode::TlsCrypt));
    assert_eq!(detect_mode(&[10 << 3, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1, 0]), Some(Mode::TlsCrypt), "tls-crypt-v2");
    // Data packets and garbage show no mode.
    assert_eq!(detect_mode(&[9 << 3, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), None);
}

fn tunnel(kind: Kind, transport: IpProto, ports: (u16, u16)) -> (Tunnel, Turns) {
    (Tunnel::new(kind, transport, ports), Turns::default())
}

#[test]
fn openvpn_acks_time_the_answering_side_first_transmissions_only() {
    let (mut t, mut turns) = tunnel(Kind::Openvpn, IpProto::UDP, (40000, 1194));
    let m = Mode::TlsAuth { hmac: 32 };
    let mut feed = |t: &mut Tunnel, ms: i64, from, p: Vec<u8>| {
        t.on_payload(ms * MS, from, None, &p, p.len(), &mut turns);
    };
    feed(&mut t, 0, Side::Client, ovpn(7, 0, m, &[], Some(0)));
    feed(&mut t, 30, Side::Server, ovpn(8, 0, m, &[0], Some(0))); // server leg 30
    feed(&mut t, 31, Side::Client, ovpn(5, 0, m, &[0], None)); // client leg 1
    // The server sends 1, 2, 3; 2 again; the client acks all three at once: pairs with 3 only.
    feed(&mut t, 40, Side::Server, ovpn(4, 0, m, &[], Some(1)));
    feed(&mut t, 41, Side::Server, ovpn(4, 0, m, &[], Some(2)));
    feed(&mut t, 42, Side::Server, ovpn(4, 0, m, &[], Some(3)));
    feed(&mut t, 45, Side::Client, ovpn(5, 0, m, &[1, 3, 2], None)); // client leg 3
    // A retransmission after its ack gives no sample.
    feed(&mut t, 50, Side::Server, ovpn(4, 0, m, &[], Some(2)));
    feed(&mut t, 51, Side::Client, ovpn(5, 0, m, &[2], None));
    // A soft reset (key 1) by the client, piggy-backed ack by the server.
    feed(&mut t, 60, Side::Client, ovpn(3, 1, m, &[], Some(0)));
    feed(&mut t, 80, Side::Server, ovpn(3, 1, m, &[0], Some(0))); // server leg 20
    // Data.
    feed(&mut t, 90, Side::Client, vec![9 << 3, 0, 0, 1, 0xAA, 0xBB, 0xCC]);
    assert_eq!(turns.app_rtt(Side::Server).map(|a| (a.min, a.samples)), Some((20.0, 2)));
    assert_eq!(turns.app_rtt(Side::Client).map(|a| (a.min, a.samples)), Some((1.0, 2)));
    assert_eq!((t.mode, t.handshakes, t.rekeys), (Some(m), 1, 1));
    assert_eq!((t.control, t.data), ([5, 6], [1, 0]));
}

#[test]
fn openvpn_over_tcp_is_framed_packet_by_packet() {
    let (mut t, mut turns) = tunnel(Kind::Openvpn, IpProto::TCP, (40000, 1194));
    let framed = |p: Vec<u8>| {
        let mut f = (p.len() as u16).to_be_bytes().to_vec();
        f.extend(p);
        f
    };
    let reset = framed(ovpn(7, 0, Mode::Plain, &[], Some(0)));
    feed(&mut t, 0, Side::Client, Some((1000, reset.len() as u32)), &reset, &mut turns);
    // The server's reset and two data packets in one segment, the second data packet cut over two.
    let mut seg = framed(ovpn(8, 0, Mode::Plain, &[0], Some(0)));
    seg.extend(framed(vec![9 << 3, 0, 0, 1, 1, 2, 3, 4]));
    let data = framed(vec![9 << 3, 0, 0, 1, 9, 9, 9, 9, 9, 9]);
    seg.extend(&data[..5]);
    feed(&mut t, 10 * MS, Side::Server, Some((5000, seg.len() as u32)), &seg, &mut turns);
    assert_eq!(t.data, [0, 1]);
    let rest = &data[5..];
    feed(&mut t, 11 * MS, Side::Server, Some((5000 + seg.len() as u32, rest.len() as u32)), rest, &mut turns);
    // A retransmitted segment is not counted again.
    feed(&mut t, 12 * MS, Side::Server, Some((5000 + seg.len() as u32, rest.len() as u32)), rest, &mut turns);
    assert_eq!((t.control, t.data), ([1, 1], [0, 2]));
    assert_eq!(turns.app_rtt(Side::Server).map(|a| a.min), Some(10.0));
    assert_eq!(carried(Kind::Openvpn, IpProto::TCP, false, &[6 << 3, 1, 2], 300), Carried::Data { len: 300 });
}

fn wg(kind: u8, a: u32, b: u32, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = kind;
    p[4..8].copy_from_slice(&a.to_le_bytes());
    p[8..12].copy_from_slice(&b.to_le_bytes());
    p
}

#[test]
fn wireguard_rekeys_by_either_side_time_the_side_that_answered() {
    let (mut t, mut turns) = tunnel(Kind::Wireguard, IpProto::UDP, (40000, 51820));
    // Client initiates (index 11), the server answers (22) after 5 ms.
    let s = feed(&mut t, 0, Side::Client, None, &wg(1, 11, 0, 148), &mut turns);
    assert_eq!(s, Seen::default());
    let s = feed(&mut t, 5 * MS, Side::Server, None, &wg(2, 22, 11, 92), &mut turns);
    assert_eq!(s.handshake, Some((11, 22)));
    // Data, a keepalive (32 bytes: empty).
    let s = feed(&mut t, 6 * MS, Side::Client, None, &wg(4, 22, 0, 32 + 64), &mut turns);
    assert_eq!(s.index, Some(22));
    feed(&mut t, 7 * MS, Side::Server, None, &wg(4, 11, 0, 32), &mut turns);
    // Two minutes later the gateway re-keys: the client answers after 40 ms.
    feed(&mut t, 120_000 * MS, Side::Server, None, &wg(1, 33, 0, 148), &mut turns);
    feed(&mut t, 120_040 * MS, Side::Client, None, &wg(2, 44, 33, 92), &mut turns);
    // Under load: a cookie reply answers an initiation.
    feed(&mut t, 130_000 * MS, Side::Client, None, &wg(1, 55, 0, 148), &mut turns);
    feed(&mut t, 130_002 * MS, Side::Server, None, &wg(3, 55, 0, 64), &mut turns);
    assert_eq!(turns.app_rtt(Side::Server).map(|a| (a.min, a.samples)), Some((2.0, 2)));
    assert_eq!(turns.app_rtt(Side::Client).map(|a| (a.min, a.samples)), Some((40.0, 1)));
    assert_eq!((t.handshakes, t.rekeys), (2, 1));
    assert_eq!((t.control, t.data, t.keepalives), ([3, 3], [1, 0], [0, 1]));
}

fn ike(ispi: u64, exchange: u8, flags: u8, msgid: u32) -> Vec<u8> {
    let mut p = vec![0u8; 28];
    p[0..8].copy_from_slice(&ispi.to_be_bytes());
    p[8] = 0x77;
    p[17] = 0x20;
    p[18] = exchange;
    p[19] = flags;
    p[20..24].copy_from_slice(&msgid.to_be_bytes());
    p[24..28].copy_from_slice(&28u32.to_be_bytes());
    p
}

#[test]
fn ike_exchanges_pair_by_who_asked_and_a_gateway_dpd_times_the_client() {
    // arkime/IKEv2.pcap frame 50: a CREATE_CHILD_SA request by the original responder.
    let real = hex("e5bc67550fd4d3eab51cdb5af0efa3ac2e202400000000000000015821");
    let h = ike::header(&real).unwrap();
    assert_eq!((h.initiator_spi, h.version, h.exchange), (0xe5bc67550fd4d3ea, 2, ike::CREATE_CHILD_SA));
    assert_eq!((h.initiator, h.response, h.message_id), (false, false, 0));
    let (mut t, mut turns) = tunnel(Kind::Ipsec, IpProto::UDP, (4500, 4500));
    let marked = |p: Vec<u8>| [vec![0, 0, 0, 0], p].concat();
    feed(&mut t, 0, Side::Client, None, &marked(ike(1, 35, 0x08, 1)), &mut turns); // IKE_AUTH
    feed(&mut t, 30 * MS, Side::Server, None, &marked(ike(1, 35, 0x20, 1)), &mut turns); // server leg 30
    // The gateway's DPD (INFORMATIONAL, its own message id 0), answered by the client after 80 ms.
    feed(&mut t, 1000 * MS, Side::Server, None, &marked(ike(1, 37, 0x00, 0)), &mut turns);
    feed(&mut t, 1080 * MS, Side::Client, None, &marked(ike(1, 37, 0x28, 0)), &mut turns);
    // ESP in UDP, and a NAT keepalive.
    let s = feed(&mut t, 1100 * MS, Side::Client, None, &[0xC0, 1, 2, 3, 0, 0, 0, 1, 9, 9, 9, 9], &mut turns);
    assert!(s.esp);
    feed(&mut t, 1200 * MS, Side::Client, None, &[0xFF], &mut turns);
    // A re-key.
    feed(&mut t, 2000 * MS, Side::Client, None, &marked(ike(1, 36, 0x08, 2)), &mut turns);
    let s = feed(&mut t, 2010 * MS, Side::Server, None, &marked(ike(1, 36, 0x20, 2)), &mut turns);
    assert_eq!(s.spi, Some(1));
    assert_eq!(turns.app_rtt(Side::Server).map(|a| (a.min, a.samples)), Some((10.0, 2)));
    assert_eq!(turns.app_rtt(Side::Client).map(|a| (a.min, a.samples)), Some((80.0, 1)));
    assert_eq!((t.control, t.data, t.keepalives, t.handshakes, t.rekeys), ([3, 3], [1, 0], [1, 0], 0, 1));
    // On 500 a payload is IKE or nothing: no ESP there.
    assert_eq!(carried(Kind::Ipsec, IpProto::UDP, false, &[0xC0, 1, 2, 3, 0, 0, 0, 1], 8), Carried::Other);
    assert_eq!(carried(Kind::Ipsec, IpProto::ESP, false, &[0xC0, 1, 2, 3], 120), Carried::Data { len: 120 });
}

/// A payload captured whole.
fn feed(t: &mut Tunnel, ts: Ts, from: Side, tcp: Option<(u32, u32)>, p: &[u8], turns: &mut Turns) -> Seen {
    t.on_payload(ts, from, tcp, p, p.len(), turns)
}

/// What ESP carries is data whatever the session was taken for: a short
/// packet gives no WireGuard receiver index (it panicked, found by fuzzing).
#[test]
fn esp_data_in_a_wireguard_tunnel_has_no_receiver_index() {
    let (mut t, mut turns) = tunnel(Kind::Wireguard, IpProto::ESP, (0, 0));
    for p in [&[][..], &[1, 2, 3], &[4, 0, 0, 0, 9, 0, 0, 0]] {
        let seen = t.on_payload(MS, Side::Client, None, p, p.len() + 40, &mut turns);
        assert_eq!(seen.index, if p.len() >= 8 { Some(9) } else { None }, "{p:?}");
    }
    assert_eq!(t.data, [3, 0]);
}
