use super::*;
use etherparse::PacketBuilder;

fn tcp_frame(
    payload: &[u8],
    build: impl FnOnce(
        etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    ) -> etherparse::PacketBuilderStep<etherparse::TcpHeader>,
) -> Vec<u8> {
    let b =
        PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([192, 0, 2, 1], [192, 0, 2, 2], 61).tcp(40000, 22, 1000, 64240);
    let b = build(b);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

#[test]
fn decodes_tcp_with_options() {
    let f = tcp_frame(b"hello", |b| {
        b.syn()
            .ack(5)
            .options(&[
                etherparse::TcpOptionElement::MaximumSegmentSize(1460),
                etherparse::TcpOptionElement::SelectiveAcknowledgementPermitted,
                etherparse::TcpOptionElement::Timestamp(7, 9),
                etherparse::TcpOptionElement::Noop,
                etherparse::TcpOptionElement::WindowScale(7),
            ])
            .unwrap()
    });
    let p = decode(LinkType::Ethernet, 42, &f).unwrap();
    assert_eq!(p.src.to_string(), "192.0.2.1");
    assert_eq!(p.ttl, 61);
    let L4::Tcp(t) = &p.l4 else { panic!("not tcp") };
    assert_eq!((t.sport, t.dport, t.seq, t.ack), (40000, 22, 1000, 5));
    assert!(t.flags.syn() && t.flags.ack() && !t.flags.fin());
    assert_eq!(t.options.mss, Some(1460));
    assert_eq!(t.options.window_scale, Some(7));
    assert!(t.options.sack_permitted);
    assert_eq!(t.options.timestamps, Some((7, 9)));
    assert_eq!(t.payload_len, 5);
    assert_eq!(p.ip_len as usize, f.len() - 14);
}

#[test]
fn header_only_capture_keeps_lengths_from_headers() {
    let f = tcp_frame(&[0u8; 1000], |b| b.ack(1));
    let cut = &f[..14 + 20 + 20];
    let p = decode(LinkType::Ethernet, 0, cut).unwrap();
    assert_eq!(p.payload_len(), 1000);
    assert_eq!(p.ip_len, 1040);
    assert!(p.payload().is_empty());
}

#[test]
fn truncated_tcp_header_is_malformed() {
    let f = tcp_frame(b"", |b| b);
    assert_eq!(decode(LinkType::Ethernet, 0, &f[..14 + 20 + 10]).unwrap_err(), DropReason::TruncatedTcp);
    assert_eq!(decode(LinkType::Ethernet, 0, &f[..10]).unwrap_err(), DropReason::TruncatedLink);
}

#[test]
fn bad_ip_total_length_is_counted() {
    let mut f = tcp_frame(b"", |b| b);
    // IPv4 total length below the header length.
    f[14 + 2] = 0;
    f[14 + 3] = 10;
    assert!(decode(LinkType::Ethernet, 0, &f).is_err());
}

#[test]
fn tcp_data_offset_below_five_is_malformed() {
    let mut f = tcp_frame(b"abc", |b| b);
    f[14 + 20 + 12] = 0x20; // data offset 2 words
    assert!(decode(LinkType::Ethernet, 0, &f).is_err());
}

#[test]
fn vlan_sll_sll2_raw_and_null_links() {
    let mut ip = Vec::new();
    PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64).udp(5000, 51820).write(&mut ip, &[1, 2, 3]).unwrap();
    let check = |link, frame: &[u8]| {
        let p = decode(link, 0, frame).unwrap();
        assert_eq!(p.ports(), (5000, 51820));
        assert_eq!(p.payload_len(), 3);
    };
    check(LinkType::Raw, &ip);
    // 802.1Q and QinQ
    let mut qinq = vec![2; 6];
    qinq.extend([1; 6]);
    qinq.extend([0x88, 0xa8, 0, 10, 0x81, 0, 0, 20, 0x08, 0]);
    qinq.extend(&ip);
    check(LinkType::Ethernet, &qinq);
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0];
    sll.extend(&ip);
    check(LinkType::LinuxSll, &sll);
    let mut sll2 = vec![0x08, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
    sll2.extend(&ip);
    check(LinkType::LinuxSll2, &sll2);
    let mut null = 2u32.to_le_bytes().to_vec();
    null.extend(&ip);
    check(LinkType::Null, &null);
    let mut lo = 2u32.to_be_bytes().to_vec();
    lo.extend(&ip);
    check(LinkType::Loop, &lo);
}

#[test]
fn ipv6_with_extension_header() {
    let mut v = Vec::new();
    PacketBuilder::ipv6(
        [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        57,
    )
    .tcp(50000, 22, 1, 100)
    .write(&mut v, b"SSH-2.0-x\r\n")
    .unwrap();
    // Insert an 8-byte hop-by-hop header (next header TCP).
    let mut with_ext = v[..40].to_vec();
    with_ext[6] = 0; // next header: hop-by-hop
    let plen = u16::from_be_bytes([v[4], v[5]]) + 8;
    with_ext[4..6].copy_from_slice(&plen.to_be_bytes());
    with_ext.extend([6, 0, 1, 4, 0, 0, 0, 0]);
    with_ext.extend(&v[40..]);
    let p = decode(LinkType::Raw, 0, &with_ext).unwrap();
    assert_eq!(p.ttl, 57);
    assert_eq!(p.payload_len(), 11);
    assert_eq!(p.payload(), b"SSH-2.0-x\r\n");
}

#[test]
fn fragments_are_skipped() {
    let mut f = tcp_frame(b"abc", |b| b);
    f[14 + 6] = 0x20; // more fragments
    assert_eq!(decode(LinkType::Ethernet, 0, &f).unwrap_err(), DropReason::Fragment);
}

#[test]
fn garbage_never_panics() {
    let mut seed = 1u64;
    for len in 0..300 {
        let mut buf = vec![0u8; len];
        for b in buf.iter_mut() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *b = (seed >> 56) as u8;
        }
        for link in [LinkType::Ethernet, LinkType::Raw, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::Null] {
            let _ = decode(link, 0, &buf);
            if len > 14 {
                buf[12] = 0x08;
                buf[13] = 0;
                buf[14] = 0x45;
                let _ = decode(link, 0, &buf);
            }
        }
    }
}

#[test]
fn tcp_options_in_every_layout() {
    let ts = |v: u32, e: u32| [v.to_be_bytes(), e.to_be_bytes()].concat();
    // NOP NOP TIMESTAMP, the layout of nearly every segment (the fast path).
    let o = TcpOptions::parse(&[&[1, 1, 8, 10][..], &ts(7, 9)].concat());
    assert_eq!(o, TcpOptions { timestamps: Some((7, 9)), ..TcpOptions::default() });
    assert_eq!(TcpOptions::parse(&[]), TcpOptions::default());
    // Twelve bytes in another order, and a SACK block in twelve bytes.
    let o = TcpOptions::parse(&[&[8, 10][..], &ts(7, 9), &[1, 1]].concat());
    assert_eq!(o.timestamps, Some((7, 9)));
    let o = TcpOptions::parse(&[&[1, 1, 5, 10][..], &ts(100, 200)].concat());
    assert_eq!((o.sack_blocks(), o.timestamps), (&[(100, 200)][..], None));
    // An option whose length runs past the area ends parsing; what came before is kept.
    let o = TcpOptions::parse(&[2, 4, 5, 0xb4, 8, 10, 0, 0]);
    assert_eq!((o.mss, o.timestamps), (Some(1460), None));
}
