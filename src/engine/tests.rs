//! The engine's own tests: session order, Multipath TCP subflows.

use super::*;
use crate::output::SessionRecord;
use etherparse::{PacketBuilder, PacketBuilderStep, TcpHeader};

/// A TCP segment's flags by letter: `S` SYN, `A` ACK (of 1), `F` FIN, `R` RST; others are ignored.
fn with_flags(mut b: PacketBuilderStep<TcpHeader>, flags: &str) -> PacketBuilderStep<TcpHeader> {
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(1),
            'F' => b.fin(),
            'R' => b.rst(),
            _ => b,
        };
    }
    b
}

/// A bare SYN (or RST) from client port `cport` to 192.0.2.2:22.
fn segment(cport: u16, rst: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64).tcp(cport, 22, 1, 64240);
    let b = if rst { b.rst() } else { b.syn() };
    let mut f = Vec::new();
    b.write(&mut f, &[]).unwrap();
    f
}

#[test]
fn open_sessions_end_in_order_of_start_not_of_table_slot() {
    const S: Ts = NS_PER_SEC;
    let mut e = Engine::new(EngineConfig::default(), None);
    let mut ended: Vec<String> = Vec::new();
    let mut out = |r: SessionRecord| ended.push(r.client.clone());
    e.frame(LinkType::Ethernet, S, &segment(1001, false), &mut out);
    e.frame(LinkType::Ethernet, 2 * S, &segment(1002, false), &mut out);
    e.frame(LinkType::Ethernet, 3 * S, &segment(1001, true), &mut out);
    // The reset session's slot is freed once its linger is over, and the
    // next session takes it: it starts last but holds the lowest slot.
    e.frame(LinkType::Ethernet, 20 * S, &segment(1003, false), &mut out);
    e.frame(LinkType::Ethernet, 10 * S + 20 * S, &segment(1004, false), &mut out);
    e.finish_all(EndReason::EndOfInput, &mut out);
    assert_eq!(ended, ["192.0.2.1:1001", "192.0.2.1:1002", "192.0.2.1:1003", "192.0.2.1:1004"]);
}

mod mptcp {
    use super::*;
    use crate::flow::mptcp::token;

    const S: Ts = NS_PER_SEC;
    const KEY_C: u64 = 0x0001_0203_0405_0607;
    const KEY_S: u64 = 0xf2e5_1856_bb89_b88f;
    const FIRST: ([u8; 4], u16) = ([192, 0, 2, 10], 35572);
    const JOIN: ([u8; 4], u16) = ([198, 51, 100, 10], 46635);

    /// A segment of subflow `sub` → its server (`to_client` reverses it),
    /// with TCP flags (`D`: ten bytes of data) and one Multipath TCP option body.
    fn seg(sub: ([u8; 4], u16), to_client: bool, flags: &str, seq: u32, mp: &[u8]) -> Vec<u8> {
        let server = [sub.0[0], sub.0[1], sub.0[2], 20];
        let (src, dst, sp, dp) = if to_client { (server, sub.0, 22, sub.1) } else { (sub.0, server, sub.1, 22) };
        let b = with_flags(PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src, dst, 64).tcp(sp, dp, seq, 64240), flags);
        let mut opt = vec![30, mp.len() as u8 + 2];
        opt.extend_from_slice(mp);
        while opt.len() % 4 != 0 {
            opt.push(1);
        }
        let b = b.options_raw(&opt).unwrap();
        let mut f = Vec::new();
        let data: &[u8] = if flags.contains('D') { b"0123456789" } else { b"" };
        b.write(&mut f, data).unwrap();
        f
    }

    fn capable(keys: &[u64]) -> Vec<u8> {
        let mut o = vec![0x01, 0x01];
        for k in keys {
            o.extend_from_slice(&k.to_be_bytes());
        }
        o
    }

    /// The first subflow's handshake (keys exchanged), then a join SYN
    /// naming the server's token and its handshake, at `t0` seconds.
    fn open(e: &mut Engine, t0: Ts, out: &mut dyn RecordSink) {
        let tok = token(KEY_S).to_be_bytes();
        let join = [&[0x10, 0x00][..], &tok, &[1, 2, 3, 4]].concat();
        for (i, f) in [
            seg(FIRST, false, "S", 100, &capable(&[])),
            seg(FIRST, true, "SA", 500, &capable(&[KEY_S])),
            seg(FIRST, false, "A", 101, &capable(&[KEY_C, KEY_S])),
            seg(JOIN, false, "S", 900, &join),
            seg(JOIN, true, "SA", 700, &[0x10, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ]
        .iter()
        .enumerate()
        {
            e.frame(LinkType::Ethernet, t0 + i as Ts * S / 100, f, out);
        }
    }

    #[test]
    fn a_connection_waits_for_its_join_subflows_and_lists_them() {
        let mut e = Engine::new(EngineConfig::default(), None);
        let mut recs: Vec<SessionRecord> = Vec::new();
        let mut out = |r: SessionRecord| recs.push(r);
        open(&mut e, S, &mut out);
        // The first subflow is reset; the join runs on for a minute.
        e.frame(LinkType::Ethernet, 2 * S, &seg(FIRST, false, "R", 101, &[0x20, 0x00]), &mut out);
        e.frame(LinkType::Ethernet, 60 * S, &seg(JOIN, false, "AF", 901, &[0x20, 0x00]), &mut out);
        e.frame(LinkType::Ethernet, 61 * S, &seg(JOIN, true, "AF", 701, &[0x20, 0x00]), &mut out);
        e.advance(70 * S, &mut out);
        assert_eq!(recs.len(), 1, "{recs:#?}");
        let r = &recs[0];
        assert_eq!((r.client.as_str(), r.end_reason), ("192.0.2.10:35572", "rst"));
        assert_eq!(r.end, crate::time::rfc3339(61 * S), "the connection ends with its last subflow");
        assert_eq!(r.packets.client, 3 + 2, "{r:?}");
        let m = r.mptcp.as_ref().unwrap();
        assert_eq!(m.role, "connection");
        let subs: Vec<_> =
            m.subflows.iter().map(|s| (s.tuple.client.as_str(), s.tuple.end_reason, s.tuple.packets.client)).collect();
        assert_eq!(subs, [("192.0.2.10:35572", "rst", 3), ("198.51.100.10:46635", "fin", 2)]);
        assert_eq!(e.table.len(), 0);
        assert!(e.tokens.is_empty(), "tokens go with their connection");
        assert_eq!(e.counters.opened.iter().sum::<u64>(), 1, "a subflow is no session of its own");
    }

    #[test]
    fn a_join_that_outlives_its_connections_record_names_it() {
        // Two slots: a third connection evicts the first subflow (no data
        // yet: evicted before established sessions) while its join, which
        // carries the data, is open; the join is then written alone, naming it.
        let cfg = EngineConfig { max_sessions: 2, ..EngineConfig::default() };
        let mut e = Engine::new(cfg, None);
        let mut recs: Vec<SessionRecord> = Vec::new();
        let mut out = |r: SessionRecord| recs.push(r);
        open(&mut e, S, &mut out);
        e.frame(LinkType::Ethernet, 3 * S, &seg(JOIN, false, "AD", 901, &[0x20, 0x00]), &mut out);
        e.frame(LinkType::Ethernet, 3 * S + 1000, &seg(JOIN, true, "AD", 701, &[0x20, 0x00]), &mut out);
        e.frame(LinkType::Ethernet, 4 * S, &segment(1001, false), &mut out);
        e.finish_all(EndReason::EndOfInput, &mut out);
        let got: Vec<_> =
            recs.iter().map(|r| (r.client.as_str(), r.mptcp.as_ref().map(|m| (m.role, m.subflows.len())))).collect();
        assert_eq!(
            got,
            [
                ("192.0.2.10:35572", Some(("connection", 1))),
                ("198.51.100.10:46635", Some(("join", 0))),
                ("192.0.2.1:1001", None)
            ]
        );
        assert_eq!(recs[1].mptcp.as_ref().unwrap().parent_uid.as_deref(), Some(recs[0].uid.as_str()));
        assert_eq!(recs[1].client_relay, None, "a subflow alone gives no verdict");
        assert_eq!(e.counters.opened.iter().sum::<u64>(), 3);
        assert!(e.tokens.is_empty());
    }

    #[test]
    fn an_unknown_token_makes_a_join_of_no_known_connection() {
        let mut e = Engine::new(EngineConfig::default(), None);
        let mut recs: Vec<SessionRecord> = Vec::new();
        let mut out = |r: SessionRecord| recs.push(r);
        let join = [0x10, 0x00, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4];
        e.frame(LinkType::Ethernet, S, &seg(JOIN, false, "S", 900, &join), &mut out);
        e.finish_all(EndReason::EndOfInput, &mut out);
        let m = recs[0].mptcp.as_ref().unwrap();
        assert_eq!((m.role, m.parent_uid.as_deref()), ("join", None));
    }
}

mod rdp {
    use super::*;

    const MS: Ts = 1_000_000;

    /// A TCP segment between 192.0.2.1:`cport` and 192.0.2.2:3389.
    fn tcp(cport: u16, to_server: bool, flags: &str, seq: u32, payload: &[u8]) -> Vec<u8> {
        let (src, dst, sp, dp) = if to_server {
            ([192, 0, 2, 1], [192, 0, 2, 2], cport, 3389)
        } else {
            ([192, 0, 2, 2], [192, 0, 2, 1], 3389, cport)
        };
        let b = with_flags(PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src, dst, 64).tcp(sp, dp, seq, 64240), flags);
        let mut f = Vec::new();
        b.write(&mut f, payload).unwrap();
        f
    }

    /// A UDP datagram from 192.0.2.1:`cport` to 192.0.2.2:3389: an RDPEUDP SYN.
    fn udp_syn(cport: u16) -> Vec<u8> {
        let mut p = vec![0xFF, 0xFF, 0xFF, 0xFF, 0, 64, 0, 1, 0, 0, 0, 7, 0x04, 0xD0, 0x04, 0xD0];
        p.extend_from_slice(&[0; 4]);
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64).udp(cport, 3389);
        let mut f = Vec::new();
        b.write(&mut f, &p).unwrap();
        f
    }

    const CR: &[u8] = &[3, 0, 0, 11, 6, 0xE0, 0, 0, 0, 0, 0];

    /// The map of open RDP connections holds only connections in the table,
    /// and a UDP flow links only to a connection still open.
    #[test]
    fn connections_are_noted_while_open_and_udp_flows_link_to_them() {
        let mut e = Engine::new(EngineConfig::default(), None);
        let mut recs: Vec<SessionRecord> = Vec::new();
        let mut out = |r: SessionRecord| recs.push(r);
        e.frame(LinkType::Ethernet, 0, &tcp(40000, true, "S", 1, &[]), &mut out);
        e.frame(LinkType::Ethernet, MS, &tcp(40000, true, "A", 2, CR), &mut out);
        assert_eq!(e.channels.len(), 1);
        e.frame(LinkType::Ethernet, 2 * MS, &udp_syn(50000), &mut out);
        // The connection resets: it waits for its open UDP flow, and takes no new one.
        e.frame(LinkType::Ethernet, 3 * MS, &tcp(40000, true, "R", 13, &[]), &mut out);
        e.frame(LinkType::Ethernet, 6 * NS_PER_SEC, &udp_syn(50001), &mut out);
        assert_eq!(e.channels.len(), 1, "the connection waits for its UDP flow");
        e.finish_all(EndReason::EndOfInput, &mut out);
        assert!(e.channels.is_empty(), "{:?}", e.channels);
        let rdp = |r: &SessionRecord| r.rdp.clone().unwrap();
        let tcp = recs.iter().find(|r| r.transport == "tcp").unwrap();
        assert_eq!(rdp(tcp).clear.transports, ["tcp", "udp"]);
        assert_eq!(rdp(tcp).linked_flows.len(), 1, "the flow of port 50000 is folded in");
        // Opened after the connection was reset: linked to nothing.
        let alone = recs.iter().find(|r| r.client_port == Some(50001)).unwrap();
        assert_eq!((rdp(alone).link, rdp(alone).parent_uid), (None, None));
        assert_eq!(recs.len(), 2);
    }
}

/// Tunnels' further tuples (docs/sessions.md, section 5): a WireGuard peer
/// that roamed, IKE moving from 500 to 4500, ESP beside its IKE session.
mod tunnel {
    use super::*;
    use etherparse::IpNumber;

    const S: Ts = NS_PER_SEC;
    const GW: [u8; 4] = [203, 0, 113, 1];

    fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src.0, dst.0, 64).udp(src.1, dst.1);
        let mut f = Vec::new();
        b.write(&mut f, payload).unwrap();
        f
    }

    fn esp(src: [u8; 4], dst: [u8; 4], spi: u32) -> Vec<u8> {
        let mut p = spi.to_be_bytes().to_vec();
        p.extend([0, 0, 0, 1]);
        p.extend([0xAB; 48]);
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src, dst, 64);
        let mut f = Vec::new();
        b.write(&mut f, IpNumber(50), &p).unwrap();
        f
    }

    fn wg(kind: u8, a: u32, b: u32, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = kind;
        p[4..8].copy_from_slice(&a.to_le_bytes());
        p[8..12].copy_from_slice(&b.to_le_bytes());
        p
    }

    fn run(frames: &[(Ts, Vec<u8>)]) -> Vec<SessionRecord> {
        let mut e = Engine::new(EngineConfig::default(), None);
        let mut recs = Vec::new();
        let mut out = |r: SessionRecord| recs.push(r);
        for (ts, f) in frames {
            e.frame(LinkType::Ethernet, *ts, f, &mut out);
        }
        e.finish_all(EndReason::EndOfInput, &mut out);
        assert!(e.tunnel_ids.is_empty(), "identifiers go with their sessions: {:?}", e.tunnel_ids);
        recs
    }

    #[test]
    fn a_wireguard_peer_that_roams_stays_one_session_linked_by_index() {
        let wifi = ([192, 0, 2, 10], 40000);
        let lte = ([198, 51, 100, 7], 61000);
        let gw = (GW, 51820);
        let recs = run(&[
            (S, udp(wifi, gw, &wg(1, 11, 0, 148))),
            (S + 5_000_000, udp(gw, wifi, &wg(2, 22, 11, 92))),
            (2 * S, udp(wifi, gw, &wg(4, 22, 0, 96))),
            (2 * S, udp(gw, wifi, &wg(4, 11, 0, 96))),
            // The laptop moves to LTE: its data names the gateway's index 22.
            (30 * S, udp(lte, gw, &wg(4, 22, 0, 96))),
            (30 * S, udp(gw, lte, &wg(4, 11, 0, 32))),
            // The gateway re-keys on the new path, the client answers after 60 ms.
            (80 * S, udp(gw, lte, &wg(1, 33, 0, 148))),
            (80 * S + 60_000_000, udp(lte, gw, &wg(2, 44, 33, 92))),
            (81 * S, udp(lte, gw, &wg(4, 33, 0, 96))),
        ]);
        assert_eq!(recs.len(), 1, "{recs:#?}");
        let r = &recs[0];
        assert_eq!((r.proto, r.client.as_str()), ("wireguard", "192.0.2.10:40000"));
        assert_eq!((r.packets.client, r.packets.server), (5, 4));
        let t = r.tunnel.as_ref().unwrap();
        assert_eq!((t.handshakes, t.rekeys), (2, 1));
        assert_eq!((t.data_packets.client, t.data_packets.server), (3, 1));
        assert_eq!((t.keepalives.unwrap().client, t.keepalives.unwrap().server), (0, 1));
        assert_eq!(t.linked_flows.len(), 1);
        let f = &t.linked_flows[0];
        assert_eq!(
            (f.link, f.tuple.client.as_str(), f.tuple.server.as_str()),
            ("index", "198.51.100.7:61000", "203.0.113.1:51820")
        );
        // The gateway's re-key on the new path timed the client's leg there.
        assert_eq!(f.tuple.client_rtt_ms.map(|l| l.min), Some(60.0));
        assert_eq!(t.server_rtt_ms.map(|l| l.min), Some(5.0));
        assert!(r.alerts.is_empty());
    }

    fn ike(ispi: u64, exchange: u8, flags: u8, msgid: u32) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0..8].copy_from_slice(&ispi.to_be_bytes());
        p[17] = 0x20;
        p[18] = exchange;
        p[19] = flags;
        p[20..24].copy_from_slice(&msgid.to_be_bytes());
        p[24..28].copy_from_slice(&28u32.to_be_bytes());
        p
    }

    fn marked(p: Vec<u8>) -> Vec<u8> {
        [vec![0, 0, 0, 0], p].concat()
    }

    #[test]
    fn ike_moving_to_4500_links_by_spi_and_esp_by_addresses() {
        let c500 = ([192, 0, 2, 10], 500);
        let g500 = (GW, 500);
        let c4500 = ([192, 0, 2, 10], 4500);
        let g4500 = (GW, 4500);
        let recs = run(&[
            (S, udp(c500, g500, &ike(0x7A7A_0000_0000_0007, 34, 0x08, 0))),
            (S + 20_000_000, udp(g500, c500, &ike(0x7A7A_0000_0000_0007, 34, 0x20, 0))),
            // NAT detected: IKE_AUTH on 4500, then ESP in UDP and a keepalive.
            (2 * S, udp(c4500, g4500, &marked(ike(0x7A7A_0000_0000_0007, 35, 0x08, 1)))),
            (2 * S + 30_000_000, udp(g4500, c4500, &marked(ike(0x7A7A_0000_0000_0007, 35, 0x20, 1)))),
            (3 * S, udp(c4500, g4500, &[0xC0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8])),
            (4 * S, udp(c4500, g4500, &[0xFF])),
            // ESP (IP protocol 50) between the same peers, the gateway first.
            (5 * S, esp(GW, [192, 0, 2, 10], 0xC1)),
            (5 * S, esp([192, 0, 2, 10], GW, 0xC2)),
        ]);
        assert_eq!(recs.len(), 1, "{recs:#?}");
        let r = &recs[0];
        assert_eq!((r.proto, r.client.as_str()), ("ike", "192.0.2.10:500"));
        let t = r.tunnel.as_ref().unwrap();
        assert_eq!(t.kind, "ipsec");
        let links: Vec<_> =
            t.linked_flows.iter().map(|f| (f.link, f.tuple.client.as_str(), f.tuple.server.as_str())).collect();
        assert_eq!(links, [("spi", "192.0.2.10:4500", "203.0.113.1:4500"), ("addresses", "192.0.2.10", "203.0.113.1")]);
        assert_eq!((t.control_messages.client, t.control_messages.server), (2, 2));
        assert_eq!((t.data_packets.client, t.data_packets.server), (2, 1));
        assert_eq!(t.keepalives.map(|k| k.client), Some(1));
        assert_eq!(t.handshakes, 1);
        assert_eq!((r.packets.client, r.packets.server), (5, 3));
    }

    #[test]
    fn esp_in_udp_alone_is_an_esp_record_and_esp_without_ike_is_its_own() {
        let c = ([192, 0, 2, 10], 4500);
        let g = (GW, 4500);
        let recs = run(&[
            (S, udp(c, g, &marked(ike(0x9B9B_0000_0000_0009, 35, 0x08, 1)))),
            (S + 10_000_000, udp(g, c, &marked(ike(0x9B9B_0000_0000_0009, 35, 0x20, 1)))),
            (2 * S, udp(c, g, &[0xC0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8])),
            (3 * S, esp([192, 0, 2, 99], GW, 0xC3)),
        ]);
        assert_eq!(recs.len(), 2, "{recs:#?}");
        let natt = recs.iter().find(|r| r.transport == "udp").unwrap();
        assert_eq!(natt.proto, "esp");
        let t = natt.tunnel.as_ref().unwrap();
        assert_eq!((t.control_messages.client, t.data_packets.client), (1, 1));
        assert_eq!(t.server_rtt_ms.map(|l| l.min), Some(10.0));
        let lone = recs.iter().find(|r| r.transport == "esp").unwrap();
        assert_eq!((lone.proto, lone.tunnel.as_ref().unwrap().link), ("esp", None));
    }
}

/// An AnyConnect tunnel (docs/sessions.md, section 5): its DTLS data
/// channel joins the TLS connection from the same client to the same
/// gateway address and port, which becomes the tunnel's session; QUIC on
/// that port, and TLS alone, stay what they were.
mod anyconnect {
    use super::*;

    const MS: Ts = 1_000_000;
    const C: [u8; 4] = [192, 0, 2, 10];
    const GW: [u8; 4] = [198, 51, 100, 1];

    fn tcp(cport: u16, to_gw: bool, flags: &str, seq: u32, payload: &[u8]) -> Vec<u8> {
        let (src, dst, sp, dp) = if to_gw { (C, GW, cport, 443) } else { (GW, C, 443, cport) };
        let b = with_flags(PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src, dst, 64).tcp(sp, dp, seq, 64240), flags);
        let mut f = Vec::new();
        b.write(&mut f, payload).unwrap();
        f
    }

    fn udp(cport: u16, to_gw: bool, payload: &[u8]) -> Vec<u8> {
        let (src, dst, sp, dp) = if to_gw { (C, GW, cport, 443) } else { (GW, C, 443, cport) };
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src, dst, 64).udp(sp, dp);
        let mut f = Vec::new();
        b.write(&mut f, payload).unwrap();
        f
    }

    /// A TLS handshake record holding a ClientHello (1) or ServerHello (2).
    fn tls_hello(kind: u8) -> Vec<u8> {
        let mut p = vec![0x16, 3, 1, 0, 44, kind, 0, 0, 40, 3, 3];
        p.resize(49, 0x11);
        p
    }

    /// A DTLS record (DTLS 1.2 header) of `kind`, epoch, `body` bytes (its first `first`).
    fn dtls(kind: u8, epoch: u8, body: usize, first: u8) -> Vec<u8> {
        let mut p = vec![kind, 0xfe, 0xfd, 0, epoch, 0, 0, 0, 0, 0, 1];
        p.extend((body as u16).to_be_bytes());
        p.push(first);
        p.resize(13 + body, 0x22);
        p
    }

    /// A TLS connection from client port `cport`: handshake, then records both ways.
    fn tls_connection(t0: Ts, cport: u16) -> Vec<(Ts, Vec<u8>)> {
        vec![
            (t0, tcp(cport, true, "S", 0, &[])),
            (t0 + 20 * MS, tcp(cport, false, "SA", 0, &[])),
            (t0 + 20 * MS, tcp(cport, true, "A", 1, &[])),
            (t0 + 21 * MS, tcp(cport, true, "A", 1, &tls_hello(1))),
            (t0 + 41 * MS, tcp(cport, false, "A", 1, &tls_hello(2))),
            (t0 + 42 * MS, tcp(cport, true, "A", 50, &[0x17, 3, 3, 0, 30, 1, 2, 3])),
        ]
    }

    fn run(frames: &mut [(Ts, Vec<u8>)]) -> (Vec<SessionRecord>, Engine) {
        frames.sort_by_key(|f| f.0);
        let mut e = Engine::new(EngineConfig::default(), None);
        let mut recs = Vec::new();
        let mut out = |r: SessionRecord| recs.push(r);
        for (ts, f) in frames.iter() {
            e.frame(LinkType::Ethernet, *ts, f, &mut out);
        }
        e.finish_all(EndReason::EndOfInput, &mut out);
        assert!(e.channels.is_empty(), "entries go with their connections: {:?}", e.channels);
        (recs, e)
    }

    #[test]
    fn a_dtls_channel_turns_its_tls_connection_into_one_tunnel_session() {
        let mut frames = tls_connection(0, 40000);
        // A browser's QUIC to the same gateway and port: not a channel.
        let quic = [0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0x44, 0xd0, 0, 0, 0];
        frames.push((100 * MS, udp(50000, true, &quic)));
        frames.push((120 * MS, udp(50000, false, &quic)));
        // The data channel: a cookie exchange, the handshake, then data and a DPD.
        frames.extend([
            (200 * MS, udp(50001, true, &dtls(22, 0, 150, 1))),
            (201 * MS, udp(50001, false, &dtls(22, 0, 35, 3))),
            (221 * MS, udp(50001, true, &dtls(22, 0, 182, 1))),
            (222 * MS, udp(50001, false, &dtls(22, 0, 95, 2))),
            (300 * MS, udp(50001, true, &dtls(23, 1, 113, 0))),
            (303 * MS, udp(50001, false, &dtls(23, 1, 113, 0))),
            (323 * MS, udp(50001, true, &dtls(23, 1, 77, 0))),
            (400 * MS, udp(50001, true, &dtls(23, 1, 25, 0))),
            (401 * MS, udp(50001, false, &dtls(23, 1, 25, 0))),
        ]);
        // A second TLS connection to the gateway, nothing beside it: it stays TLS.
        frames.extend(tls_connection(500 * MS, 40002));
        let (recs, e) = run(&mut frames);
        assert_eq!(recs.len(), 3, "{recs:#?}");
        let tunnel = recs.iter().find(|r| r.client_port == Some(40000)).unwrap();
        assert_eq!((tunnel.proto, tunnel.transport), ("anyconnect", "tcp"));
        let t = tunnel.tunnel.as_ref().unwrap();
        assert_eq!((t.kind, t.link, t.handshakes), ("anyconnect", None, 1));
        assert_eq!(t.linked_flows.len(), 1);
        assert_eq!(
            (t.linked_flows[0].tuple.client.as_str(), t.linked_flows[0].link),
            ("192.0.2.10:50001", "addresses")
        );
        assert_eq!((t.data_packets.client, t.data_packets.server), (2, 1));
        assert_eq!(t.keepalives.map(|k| (k.client, k.server)), Some((1, 1)));
        assert_eq!((t.control_messages.client, t.control_messages.server), (2, 2));
        // The gateway's answers: the TLS handshake (20 ms) and the DTLS
        // cookie exchange and handshake (1 ms each), in the session's pairs.
        let server = t.server_rtt_ms.unwrap();
        assert_eq!((server.min, server.samples), (1.0, 3));
        // The data channel's packets and bytes are the session's too.
        assert_eq!((tunnel.packets.client, tunnel.packets.server), (4 + 5, 2 + 4));
        let quic = recs.iter().find(|r| r.client_port == Some(50000)).unwrap();
        assert_eq!((quic.proto, quic.tunnel.is_none()), ("udp", true));
        let alone = recs.iter().find(|r| r.client_port == Some(40002)).unwrap();
        assert_eq!((alone.proto, alone.tunnel.is_none()), ("tls", true));
        // Counted once, as what they proved to be.
        let opened = |p: Proto| e.counters.opened[p.index()];
        assert_eq!((opened(Proto::Anyconnect), opened(Proto::Tls), opened(Proto::Udp)), (1, 1, 1));
    }

    #[test]
    fn a_channel_without_its_connection_is_its_own_and_a_closed_one_takes_none() {
        let mut frames = tls_connection(0, 40000);
        // The TLS connection closes; a data channel opened after that joins nothing.
        frames.push((50 * MS, tcp(40000, true, "RA", 80, &[])));
        frames.extend([
            (200 * MS, udp(50001, true, &dtls(22, 0, 150, 1))),
            (201 * MS, udp(50001, false, &dtls(22, 0, 95, 2))),
            (300 * MS, udp(50001, true, &dtls(23, 1, 113, 0))),
        ]);
        let (recs, e) = run(&mut frames);
        assert_eq!(recs.len(), 2, "{recs:#?}");
        let tls = recs.iter().find(|r| r.transport == "tcp").unwrap();
        assert_eq!((tls.proto, tls.tunnel.is_none()), ("tls", true));
        let dtls = recs.iter().find(|r| r.transport == "udp").unwrap();
        assert_eq!(dtls.proto, "anyconnect");
        let t = dtls.tunnel.as_ref().unwrap();
        assert_eq!((t.link, t.handshakes, t.data_packets.client), (None, 1, 1));
        assert_eq!(t.server_rtt_ms.map(|l| l.samples), Some(1));
        assert_eq!(e.counters.opened[Proto::Anyconnect.index()], 1);
    }
}

/// A full table under a flood (docs/sessions.md, section 2): one-packet
/// flows evict one another, never a session that was answered, and an
/// established interactive one goes last.
mod flood {
    use super::*;
    use crate::flow::Tier;

    const MS: Ts = 1_000_000;

    /// A TCP segment (flags as [`with_flags`], `P`: with `payload`).
    fn tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: &str, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src.0, dst.0, 64).tcp(src.1, dst.1, 1, 64240);
        let mut f = Vec::new();
        with_flags(b, flags).write(&mut f, payload).unwrap();
        f
    }

    fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src.0, dst.0, 64).udp(src.1, dst.1);
        let mut f = Vec::new();
        b.write(&mut f, payload).unwrap();
        f
    }

    /// `n` spoofed one-packet flows, 1 µs apart from `t`: SYNs to port 22,
    /// or datagrams to port 51820.
    fn flood(e: &mut Engine, t: Ts, n: u32, syn: bool, out: &mut dyn RecordSink) {
        for i in 0..n {
            let src = ([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 1024 + (i % 60000) as u16);
            let f = if syn {
                tcp(src, ([192, 0, 2, 2], 22), "S", &[])
            } else {
                udp(src, ([192, 0, 2, 2], 51820), &[7; 40])
            };
            e.frame(LinkType::Ethernet, t + Ts::from(i) * 1000, &f, out);
        }
    }

    const C: ([u8; 4], u16) = ([192, 0, 2, 1], 40000);
    const SRV: ([u8; 4], u16) = ([192, 0, 2, 2], 22);

    fn run(cfg: EngineConfig, steps: impl FnOnce(&mut Engine, &mut dyn RecordSink)) -> (Vec<SessionRecord>, Engine) {
        let mut e = Engine::new(cfg, None);
        let mut recs = Vec::new();
        let mut out = |r: SessionRecord| recs.push(r);
        steps(&mut e, &mut out);
        e.finish_all(EndReason::EndOfInput, &mut out);
        (recs, e)
    }

    fn small() -> EngineConfig {
        EngineConfig { max_sessions: 100, ..EngineConfig::default() }
    }

    /// A connection answered but not yet established (its protocol unknown)
    /// outlasts 1,000 SYNs through a 100-session table, and so does its
    /// close: its record ends by FIN, not eviction.
    #[test]
    fn an_answered_connection_and_its_close_outlast_a_syn_flood() {
        let (recs, e) = run(small(), |e, out| {
            e.frame(LinkType::Ethernet, 0, &tcp(C, SRV, "S", &[]), out);
            e.frame(LinkType::Ethernet, MS, &tcp(SRV, C, "SA", &[]), out);
            e.frame(LinkType::Ethernet, 2 * MS, &tcp(C, SRV, "A", &[]), out);
            flood(e, 3 * MS, 1000, true, out);
            e.frame(LinkType::Ethernet, 10 * MS, &tcp(SRV, C, "A", b"SSH-2.0-OpenSSH_9.2\r\n"), out);
            e.frame(LinkType::Ethernet, 11 * MS, &tcp(C, SRV, "A", b"SSH-2.0-OpenSSH_9.2\r\n"), out);
            e.frame(LinkType::Ethernet, 12 * MS, &tcp(C, SRV, "AF", &[]), out);
            e.frame(LinkType::Ethernet, 13 * MS, &tcp(SRV, C, "AF", &[]), out);
            flood(e, 14 * MS, 1000, true, out);
        });
        let ssh: Vec<_> = recs.iter().filter(|r| r.client == "192.0.2.1:40000").collect();
        assert_eq!(ssh.len(), 1, "{ssh:#?}");
        assert_eq!((ssh[0].proto, ssh[0].end_reason, ssh[0].packets.client), ("ssh", "fin", 4));
        assert_eq!(e.counters.evicted, 2000 - 99, "the flood's own flows, all but the last 99");
        assert_eq!(recs.len(), 2001);
    }

    /// An established UDP tunnel silent for a while outlasts a flood of
    /// lone datagrams (to its own port too), and so does a flow of another
    /// protocol that was answered; the flood's datagrams evict one another.
    #[test]
    fn an_established_udp_tunnel_outlasts_a_flood_of_lone_datagrams() {
        let wg = |kind: u8, len: usize| {
            let mut p = vec![0u8; len];
            p[0] = kind;
            p
        };
        let peer = ([192, 0, 2, 9], 51820);
        let gw = ([192, 0, 2, 2], 51820);
        let dns = ([192, 0, 2, 9], 5353);
        let (recs, e) = run(small(), |e, out| {
            e.frame(LinkType::Ethernet, 0, &udp(peer, gw, &wg(1, 148)), out);
            e.frame(LinkType::Ethernet, MS, &udp(gw, peer, &wg(2, 92)), out);
            e.frame(LinkType::Ethernet, 2 * MS, &udp(dns, ([192, 0, 2, 53], 53), b"query"), out);
            e.frame(LinkType::Ethernet, 3 * MS, &udp(([192, 0, 2, 53], 53), dns, b"answer"), out);
            flood(e, 5 * MS, 5000, false, out);
            e.frame(LinkType::Ethernet, 20 * MS, &udp(peer, gw, &wg(4, 32)), out);
        });
        let wg: Vec<_> = recs.iter().filter(|r| r.client == "192.0.2.9:51820").collect();
        assert_eq!(wg.len(), 1, "{wg:#?}");
        assert_eq!((wg[0].proto, wg[0].end_reason, wg[0].packets.client), ("wireguard", "end_of_input", 2));
        let dns: Vec<_> = recs.iter().filter(|r| r.client == "192.0.2.9:5353").collect();
        assert_eq!((dns.len(), dns[0].end_reason), (1, "end_of_input"));
        assert_eq!(e.counters.evicted, 5000 - 98);
    }

    /// The tiers a session earns as it goes, and a refused connection (a
    /// scan answered by a reset) falls back to the lowest.
    #[test]
    fn sessions_earn_their_tier_and_a_refused_one_falls_back() {
        let mut e = Engine::new(EngineConfig::default(), None);
        let mut out = |_: SessionRecord| {};
        let tier = |e: &Engine, c: ([u8; 4], u16), s: ([u8; 4], u16)| {
            let key = FlowKey::new(c.0.into(), c.1, s.0.into(), s.1, IpProto::TCP).0;
            e.table.tier(e.table.find(&key).unwrap())
        };
        let web = ([192, 0, 2, 3], 443);
        type Endpoint = ([u8; 4], u16);
        let steps: [(Vec<u8>, Endpoint, Tier); 7] = [
            (tcp(C, SRV, "S", &[]), SRV, Tier::OneWay),
            (tcp(SRV, C, "SA", &[]), SRV, Tier::Handshake),
            (tcp(SRV, C, "A", b"SSH-2.0-x\r\n"), SRV, Tier::Handshake),
            (tcp(C, SRV, "A", b"SSH-2.0-y\r\n"), SRV, Tier::Interactive),
            (tcp(C, web, "S", &[]), web, Tier::OneWay),
            (tcp(web, C, "SA", &[]), web, Tier::Handshake),
            (tcp(C, web, "A", b"GET"), web, Tier::Handshake),
        ];
        for (i, (f, srv, want)) in steps.iter().enumerate() {
            e.frame(LinkType::Ethernet, i as Ts * MS, f, &mut out);
            assert_eq!(tier(&e, C, *srv), *want, "step {i}");
        }
        e.frame(LinkType::Ethernet, 8 * MS, &tcp(web, C, "A", b"200 OK"), &mut out);
        assert_eq!(tier(&e, C, web), Tier::Established);
        // Captured headers only (a short snap length): the payload on the wire counts.
        let web2 = ([192, 0, 2, 3], 8443);
        for (i, f) in
            [tcp(C, web2, "S", &[]), tcp(web2, C, "SA", &[]), tcp(C, web2, "A", b"GET"), tcp(web2, C, "A", b"200")]
                .iter()
                .enumerate()
        {
            e.frame(LinkType::Ethernet, 8 * MS + i as Ts, &f[..54], &mut out);
        }
        assert_eq!(tier(&e, C, web2), Tier::Established, "header-only");
        let closed = ([192, 0, 2, 4], 23);
        e.frame(LinkType::Ethernet, 9 * MS, &tcp(C, closed, "S", &[]), &mut out);
        e.frame(LinkType::Ethernet, 10 * MS, &tcp(closed, C, "SA", &[]), &mut out);
        assert_eq!(tier(&e, C, closed), Tier::Handshake);
        e.frame(LinkType::Ethernet, 11 * MS, &tcp(C, closed, "R", &[]), &mut out);
        assert_eq!(tier(&e, C, closed), Tier::OneWay, "reset without data");
        e.frame(LinkType::Ethernet, 12 * MS, &tcp(C, SRV, "AF", &[]), &mut out);
        e.frame(LinkType::Ethernet, 13 * MS, &tcp(SRV, C, "AF", &[]), &mut out);
        assert_eq!(tier(&e, C, SRV), Tier::Interactive, "closed, it keeps its tier while it lingers");
    }
}
