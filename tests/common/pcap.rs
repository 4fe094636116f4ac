//! A small, dependency-free pcap / pcapng writer and packet builder for
//! crafted test captures.
//!
//! * [`Tcp`] and [`Udp`] build IPv4/IPv6 packets (network layer and up) with
//!   correct lengths and checksums.
//! * [`Link`] wraps an IP packet in a link-layer header (Ethernet with
//!   optional 802.1Q / QinQ tags, Linux SLL, SLL2, raw IP, BSD null).
//! * [`Capture`] writes a list of [`Packet`]s as pcap (µs or ns) or pcapng,
//!   optionally truncating every frame to a snap length.
//!
//! All timestamps are absolute, in nanoseconds since the Unix epoch (`u64`).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// Nanoseconds in one millisecond.
pub const NS_PER_MS: u64 = 1_000_000;
/// 2026-01-01T00:00:00Z in seconds since the Unix epoch.
pub const EPOCH_2026_S: u64 = 1_767_225_600;
/// 2026-01-01T00:00:00Z in nanoseconds since the Unix epoch: the base time of
/// every crafted capture.
pub const T0: u64 = EPOCH_2026_S * 1_000_000_000;

/// Milliseconds (may be fractional) to nanoseconds, rounded to the nearest ns.
pub fn ms(x: f64) -> u64 {
    (x * 1e6).round() as u64
}

/// `T0 + x` milliseconds.
pub fn at(x_ms: f64) -> u64 {
    T0 + ms(x_ms)
}

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// A TCP option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpOpt {
    Nop,
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    /// SACK blocks as (left edge, right edge) sequence numbers.
    Sack(Vec<(u32, u32)>),
    Timestamps {
        val: u32,
        ecr: u32,
    },
    /// Raw option bytes (kind, length, data...), copied verbatim.
    Raw(Vec<u8>),
}

/// Encode options the way Linux lays them out: NOP padding before window
/// scale, timestamps and SACK so that they are 4-byte aligned, and NOPs at the
/// end up to a multiple of 4.
pub fn encode_tcp_options(opts: &[TcpOpt]) -> Vec<u8> {
    let mut out = Vec::new();
    for o in opts {
        match o {
            TcpOpt::Nop => out.push(1),
            TcpOpt::Mss(m) => {
                out.extend_from_slice(&[2, 4]);
                out.extend_from_slice(&m.to_be_bytes());
            }
            TcpOpt::WindowScale(s) => {
                while out.len() % 4 != 1 {
                    out.push(1);
                }
                out.extend_from_slice(&[3, 3, *s]);
            }
            TcpOpt::SackPermitted => out.extend_from_slice(&[4, 2]),
            TcpOpt::Sack(blocks) => {
                while out.len() % 4 != 2 {
                    out.push(1);
                }
                out.push(5);
                out.push((2 + 8 * blocks.len()) as u8);
                for (l, r) in blocks {
                    out.extend_from_slice(&l.to_be_bytes());
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
            TcpOpt::Timestamps { val, ecr } => {
                while out.len() % 4 != 2 {
                    out.push(1);
                }
                out.extend_from_slice(&[8, 10]);
                out.extend_from_slice(&val.to_be_bytes());
                out.extend_from_slice(&ecr.to_be_bytes());
            }
            TcpOpt::Raw(b) => out.extend_from_slice(b),
        }
    }
    while out.len() % 4 != 0 {
        out.push(1);
    }
    assert!(out.len() <= 40, "TCP options too long: {} bytes", out.len());
    out
}

/// Internet checksum over `data` with an initial partial sum.
fn checksum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = initial;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Write an IPv4 header's checksum (the header as long as its IHL says,
/// or as much of it as there is).
pub fn set_ipv4_checksum(ip: &mut [u8]) {
    ip[10..12].copy_from_slice(&[0, 0]);
    let ihl = (usize::from(ip[0] & 0x0f) * 4).min(ip.len());
    let sum = checksum(0, &ip[..ihl]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
}

fn pseudo_header_sum(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    let mut bytes = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            bytes.extend_from_slice(&s.octets());
            bytes.extend_from_slice(&d.octets());
            bytes.extend_from_slice(&[0, proto]);
            bytes.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            bytes.extend_from_slice(&s.octets());
            bytes.extend_from_slice(&d.octets());
            bytes.extend_from_slice(&(len as u32).to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => panic!("mixed IPv4/IPv6 addresses"),
    }
    let mut sum = 0u32;
    for c in bytes.chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    sum
}

/// Wrap a transport-layer segment in an IPv4 or IPv6 header (TTL/hop limit
/// 64, IPv4 with DF set and header checksum filled in).
pub fn ip_packet(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = 20 + l4.len();
            assert!(total <= 0xffff);
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&(total as u16).to_be_bytes());
            h.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let c = checksum(0, &h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h.extend_from_slice(l4);
            h
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            h.extend_from_slice(&[proto, 64]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h.extend_from_slice(l4);
            h
        }
        _ => panic!("mixed IPv4/IPv6 addresses"),
    }
}

/// A TCP segment to build.
#[derive(Clone, Debug)]
pub struct Tcp {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub options: Vec<TcpOpt>,
    pub payload: Vec<u8>,
}

impl Tcp {
    pub fn new(src: SocketAddr, dst: SocketAddr, flags: u8) -> Tcp {
        Tcp { src, dst, seq: 0, ack: 0, flags, window: 65535, options: Vec::new(), payload: Vec::new() }
    }

    /// The TCP header and payload, with a correct checksum.
    pub fn segment(&self) -> Vec<u8> {
        let opts = encode_tcp_options(&self.options);
        let hlen = 20 + opts.len();
        let mut s = Vec::with_capacity(hlen + self.payload.len());
        s.extend_from_slice(&self.src.port().to_be_bytes());
        s.extend_from_slice(&self.dst.port().to_be_bytes());
        s.extend_from_slice(&self.seq.to_be_bytes());
        s.extend_from_slice(&self.ack.to_be_bytes());
        s.push(((hlen / 4) as u8) << 4);
        s.push(self.flags);
        s.extend_from_slice(&self.window.to_be_bytes());
        s.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        s.extend_from_slice(&opts);
        s.extend_from_slice(&self.payload);
        let init = pseudo_header_sum(self.src.ip(), self.dst.ip(), PROTO_TCP, s.len());
        let c = checksum(init, &s);
        s[16..18].copy_from_slice(&c.to_be_bytes());
        s
    }

    /// The whole IP packet.
    pub fn ip(&self) -> Vec<u8> {
        ip_packet(self.src.ip(), self.dst.ip(), PROTO_TCP, &self.segment())
    }

    /// The IP packet, timestamped.
    pub fn at(&self, ts: u64) -> Packet {
        Packet::ip(ts, self.ip())
    }
}

/// A UDP datagram to build.
#[derive(Clone, Debug)]
pub struct Udp {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

impl Udp {
    pub fn new(src: SocketAddr, dst: SocketAddr, payload: Vec<u8>) -> Udp {
        Udp { src, dst, payload }
    }

    pub fn datagram(&self) -> Vec<u8> {
        let len = 8 + self.payload.len();
        let mut d = Vec::with_capacity(len);
        d.extend_from_slice(&self.src.port().to_be_bytes());
        d.extend_from_slice(&self.dst.port().to_be_bytes());
        d.extend_from_slice(&(len as u16).to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(&self.payload);
        let init = pseudo_header_sum(self.src.ip(), self.dst.ip(), PROTO_UDP, len);
        let mut c = checksum(init, &d);
        if c == 0 {
            c = 0xffff;
        }
        d[6..8].copy_from_slice(&c.to_be_bytes());
        d
    }

    pub fn ip(&self) -> Vec<u8> {
        ip_packet(self.src.ip(), self.dst.ip(), PROTO_UDP, &self.datagram())
    }

    pub fn at(&self, ts: u64) -> Packet {
        Packet::ip(ts, self.ip())
    }
}

/// What a packet record holds before link-layer encapsulation.
#[derive(Clone, Debug)]
pub enum Frame {
    /// An IP packet (v4 or v6, told by its first nibble); the capture's link
    /// type adds its header.
    Ip(Vec<u8>),
    /// Bytes written verbatim as the whole frame (for malformed frames).
    Raw(Vec<u8>),
}

/// One timestamped packet.
#[derive(Clone, Debug)]
pub struct Packet {
    /// Nanoseconds since the Unix epoch.
    pub ts: u64,
    pub frame: Frame,
    /// Original length override, in bytes of the whole frame (default: the
    /// frame's length, before snaplen truncation).
    pub orig_len: Option<u32>,
}

impl Packet {
    pub fn ip(ts: u64, ip: Vec<u8>) -> Packet {
        Packet { ts, frame: Frame::Ip(ip), orig_len: None }
    }

    pub fn raw(ts: u64, bytes: Vec<u8>) -> Packet {
        Packet { ts, frame: Frame::Raw(bytes), orig_len: None }
    }

    /// The IP packet bytes, if this is an IP frame.
    pub fn ip_bytes(&self) -> Option<&[u8]> {
        match &self.frame {
            Frame::Ip(b) => Some(b),
            Frame::Raw(_) => None,
        }
    }
}

/// Sort packets by timestamp (stable: equal timestamps keep their order).
pub fn sorted(mut packets: Vec<Packet>) -> Vec<Packet> {
    packets.sort_by_key(|p| p.ts);
    packets
}

/// Link-layer framing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Ethernet II (linktype 1). `vlans` lists VLAN ids outermost first: one
    /// id gives an 802.1Q tag, two give QinQ (outer TPID 0x88a8, inner
    /// 0x8100). Frames are padded to the 60-byte Ethernet minimum.
    Ethernet { vlans: Vec<u16> },
    /// Linux cooked capture v1 (linktype 113).
    Sll,
    /// Linux cooked capture v2 (linktype 276).
    Sll2,
    /// Raw IP (linktype 101).
    RawIp,
    /// BSD loopback / null (linktype 0), address family in little-endian.
    Null,
}

impl Link {
    pub fn ethernet() -> Link {
        Link::Ethernet { vlans: Vec::new() }
    }

    pub fn linktype(&self) -> u32 {
        match self {
            Link::Ethernet { .. } => 1,
            Link::Sll => 113,
            Link::Sll2 => 276,
            Link::RawIp => 101,
            Link::Null => 0,
        }
    }

    /// Frame an IP packet.
    pub fn encap(&self, ip: &[u8]) -> Vec<u8> {
        let v6 = ip.first().map(|b| b >> 4) == Some(6);
        let ethertype: u16 = if v6 { 0x86dd } else { 0x0800 };
        const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
        const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
        let mut f = Vec::with_capacity(ip.len() + 24);
        match self {
            Link::Ethernet { vlans } => {
                f.extend_from_slice(&MAC_B);
                f.extend_from_slice(&MAC_A);
                for (i, id) in vlans.iter().enumerate() {
                    let tpid: u16 = if i + 1 < vlans.len() { 0x88a8 } else { 0x8100 };
                    f.extend_from_slice(&tpid.to_be_bytes());
                    f.extend_from_slice(&(id & 0x0fff).to_be_bytes());
                }
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend_from_slice(ip);
                while f.len() < 60 {
                    f.push(0);
                }
            }
            Link::Sll => {
                f.extend_from_slice(&0u16.to_be_bytes()); // packet type: to us
                f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                f.extend_from_slice(&6u16.to_be_bytes());
                f.extend_from_slice(&MAC_A);
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend_from_slice(ip);
            }
            Link::Sll2 => {
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend_from_slice(&[0, 0]); // reserved
                f.extend_from_slice(&2u32.to_be_bytes()); // interface index
                f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                f.push(0); // packet type: to us
                f.push(6);
                f.extend_from_slice(&MAC_A);
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(ip);
            }
            Link::RawIp => f.extend_from_slice(ip),
            Link::Null => {
                let family: u32 = if v6 { 30 } else { 2 };
                f.extend_from_slice(&family.to_le_bytes());
                f.extend_from_slice(ip);
            }
        }
        f
    }
}

/// File format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum Format {
    /// Classic pcap, microsecond timestamps (magic a1b2c3d4).
    PcapMicro,
    /// Classic pcap, nanosecond timestamps (magic a1b23c4d).
    PcapNano,
    /// pcapng: one SHB, one IDB (if_tsresol = 9, nanoseconds), EPBs.
    PcapNg,
}

/// How to write a capture file.
#[derive(Clone, Debug)]
pub struct Capture {
    pub link: Link,
    pub format: Format,
    /// Frames longer than this are truncated (the record keeps the original
    /// length). 65535 by default.
    pub snaplen: u32,
}

impl Default for Capture {
    fn default() -> Capture {
        Capture { link: Link::ethernet(), format: Format::PcapMicro, snaplen: 65535 }
    }
}

impl Capture {
    pub fn new(link: Link, format: Format) -> Capture {
        Capture { link, format, snaplen: 65535 }
    }

    pub fn snaplen(mut self, snaplen: u32) -> Capture {
        self.snaplen = snaplen;
        self
    }

    fn frame(&self, p: &Packet) -> (Vec<u8>, u32) {
        let mut data = match &p.frame {
            Frame::Ip(ip) => self.link.encap(ip),
            Frame::Raw(b) => b.clone(),
        };
        let orig = p.orig_len.unwrap_or(data.len() as u32);
        data.truncate(self.snaplen as usize);
        (data, orig)
    }

    /// The whole file as bytes.
    pub fn bytes(&self, packets: &[Packet]) -> Vec<u8> {
        let mut out = Vec::new();
        match self.format {
            Format::PcapMicro | Format::PcapNano => {
                let magic: u32 = if self.format == Format::PcapNano { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
                out.extend_from_slice(&magic.to_le_bytes());
                out.extend_from_slice(&2u16.to_le_bytes());
                out.extend_from_slice(&4u16.to_le_bytes());
                out.extend_from_slice(&0i32.to_le_bytes());
                out.extend_from_slice(&0u32.to_le_bytes());
                out.extend_from_slice(&self.snaplen.to_le_bytes());
                out.extend_from_slice(&self.link.linktype().to_le_bytes());
                for p in packets {
                    let (data, orig) = self.frame(p);
                    let sec = (p.ts / 1_000_000_000) as u32;
                    let frac = if self.format == Format::PcapNano {
                        (p.ts % 1_000_000_000) as u32
                    } else {
                        ((p.ts % 1_000_000_000) / 1000) as u32
                    };
                    out.extend_from_slice(&sec.to_le_bytes());
                    out.extend_from_slice(&frac.to_le_bytes());
                    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                    out.extend_from_slice(&orig.to_le_bytes());
                    out.extend_from_slice(&data);
                }
            }
            Format::PcapNg => {
                // Section header block.
                let mut shb = Vec::new();
                shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
                shb.extend_from_slice(&1u16.to_le_bytes());
                shb.extend_from_slice(&0u16.to_le_bytes());
                shb.extend_from_slice(&(-1i64).to_le_bytes());
                push_block(&mut out, 0x0a0d_0d0a, &shb);
                // Interface description block, nanosecond resolution.
                let mut idb = Vec::new();
                idb.extend_from_slice(&(self.link.linktype() as u16).to_le_bytes());
                idb.extend_from_slice(&0u16.to_le_bytes());
                idb.extend_from_slice(&self.snaplen.to_le_bytes());
                idb.extend_from_slice(&9u16.to_le_bytes()); // if_tsresol
                idb.extend_from_slice(&1u16.to_le_bytes());
                idb.extend_from_slice(&[9, 0, 0, 0]);
                idb.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
                push_block(&mut out, 1, &idb);
                for p in packets {
                    let (data, orig) = self.frame(p);
                    let mut epb = Vec::new();
                    epb.extend_from_slice(&0u32.to_le_bytes());
                    epb.extend_from_slice(&((p.ts >> 32) as u32).to_le_bytes());
                    epb.extend_from_slice(&(p.ts as u32).to_le_bytes());
                    epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
                    epb.extend_from_slice(&orig.to_le_bytes());
                    epb.extend_from_slice(&data);
                    while epb.len() % 4 != 0 {
                        epb.push(0);
                    }
                    push_block(&mut out, 6, &epb);
                }
            }
        }
        out
    }

    /// Write the capture to `path`.
    pub fn write(&self, path: &Path, packets: &[Packet]) {
        std::fs::write(path, self.bytes(packets)).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

fn push_block(out: &mut Vec<u8>, block_type: u32, body: &[u8]) {
    let len = (12 + body.len()) as u32;
    out.extend_from_slice(&block_type.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&len.to_le_bytes());
}

/// The records of a classic pcap file (either byte order, µs or ns).
pub struct PcapRecords {
    pub little_endian: bool,
    /// (where the record's data starts, its captured length), up to the
    /// first record that runs past the end of the file.
    pub data: Vec<(usize, usize)>,
}

/// Read a classic pcap file's record headers; `None` when it is not one.
pub fn pcap_records(file: &[u8]) -> Option<PcapRecords> {
    let little_endian = match file.get(..4)? {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return None,
    };
    let mut data = Vec::new();
    let mut pos = 24;
    while pos + 16 <= file.len() {
        let b: [u8; 4] = file[pos + 8..pos + 12].try_into().unwrap();
        let incl = if little_endian { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) } as usize;
        if pos + 16 + incl > file.len() {
            break;
        }
        data.push((pos + 16, incl));
        pos += 16 + incl;
    }
    Some(PcapRecords { little_endian, data })
}

/// Byte offsets where each record starts in a classic pcap file written by
/// [`Capture::bytes`] (for cutting files mid-record).
pub fn pcap_record_offsets(file: &[u8]) -> Vec<usize> {
    pcap_records(file).map_or_else(Vec::new, |r| r.data.iter().map(|&(at, _)| at - 16).collect())
}

/// Sum of IP total lengths (IPv4 total length, or 40 + IPv6 payload length)
/// of the IP frames sent from `src`, and their count.
pub fn ip_bytes_from(packets: &[Packet], src: SocketAddr) -> (u64, u64) {
    let mut bytes = 0u64;
    let mut count = 0u64;
    for p in packets {
        let Some(ip) = p.ip_bytes() else { continue };
        let (sip, sport, len) = match ip[0] >> 4 {
            4 => {
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let sip = IpAddr::from(<[u8; 4]>::try_from(&ip[12..16]).unwrap());
                let sport = u16::from_be_bytes([ip[ihl], ip[ihl + 1]]);
                (sip, sport, u64::from(u16::from_be_bytes([ip[2], ip[3]])))
            }
            6 => {
                let sip = IpAddr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
                let sport = u16::from_be_bytes([ip[40], ip[41]]);
                (sip, sport, 40 + u64::from(u16::from_be_bytes([ip[4], ip[5]])))
            }
            _ => continue,
        };
        if SocketAddr::new(sip, sport) == src {
            bytes += len;
            count += 1;
        }
    }
    (bytes, count)
}

/// Format nanoseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn rfc3339_ns(ts: u64) -> String {
    let secs = ts / 1_000_000_000;
    let nanos = ts % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z", sod / 3600, (sod / 60) % 60, sod % 60)
}
