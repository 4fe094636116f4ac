//! A flood of spoofed one-packet flows (TCP SYNs or lone UDP datagrams)
//! merged in time order with the packets of a real capture, written
//! straight to a pcap file: a million flows in well under a second.
//! Shared by `tests/flood.rs` and `benches/flood.rs` (which includes this
//! file and `rng.rs` by path).

use super::rng::Rng;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::Path;

/// A classic pcap file read whole (either byte order, µs or ns).
pub struct Pcap {
    pub linktype: u32,
    pub snaplen: u32,
    pub records: Vec<Record>,
}

/// One packet record: time in ns since the epoch, length on the wire, bytes.
pub struct Record {
    pub ts: u64,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

impl Pcap {
    pub fn read(path: &Path) -> Pcap {
        let b = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let (le, nanos) = match u32::from_le_bytes(b[0..4].try_into().unwrap()) {
            0xa1b2_c3d4 => (true, false),
            0xa1b2_3c4d => (true, true),
            0xd4c3_b2a1 => (false, false),
            0x4d3c_b2a1 => (false, true),
            m => panic!("{}: not a classic pcap file (magic {m:08x})", path.display()),
        };
        let u32_at = |i: usize| {
            let w: [u8; 4] = b[i..i + 4].try_into().unwrap();
            if le { u32::from_le_bytes(w) } else { u32::from_be_bytes(w) }
        };
        let (snaplen, linktype) = (u32_at(16), u32_at(20));
        let mut records = Vec::new();
        let mut i = 24;
        while i + 16 <= b.len() {
            let (sec, frac, caplen, orig_len) = (u32_at(i), u32_at(i + 4), u32_at(i + 8), u32_at(i + 12));
            let ts = u64::from(sec) * 1_000_000_000 + u64::from(frac) * if nanos { 1 } else { 1000 };
            let data = b[i + 16..i + 16 + caplen as usize].to_vec();
            records.push(Record { ts, orig_len, data });
            i += 16 + caplen as usize;
        }
        Pcap { linktype, snaplen, records }
    }

    pub fn first_ts(&self) -> u64 {
        self.records.first().map_or(0, |r| r.ts)
    }

    pub fn last_ts(&self) -> u64 {
        self.records.last().map_or(0, |r| r.ts)
    }
}

/// What each flood flow is: one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A TCP SYN (MSS option), never answered.
    Syn,
    /// A UDP datagram of 16 to 64 random bytes, never answered.
    Udp,
}

/// A flood: `flows` one-packet flows evenly spread over `from..to` (ns),
/// each from its own spoofed source (the low 24 bits of the address are the
/// flow's number, so no two flows share a tuple; the first octet, 11 to 126,
/// and the port are random), half of them to the watched session's server
/// address and port, a quarter to its address on random ports, a quarter
/// to its port on the other addresses of its /24.
#[derive(Clone, Debug)]
pub struct Flood {
    pub kind: Kind,
    pub flows: u32,
    pub from: u64,
    pub to: u64,
    pub server: (Ipv4Addr, u16),
    pub seed: u64,
}

impl Flood {
    /// Flow `i`'s time.
    fn ts(&self, i: u32) -> u64 {
        self.from + (u128::from(self.to - self.from) * u128::from(i) / u128::from(self.flows)) as u64
    }

    /// Flow `i`'s packet, link header included, into `buf`.
    fn frame(&self, i: u32, rng: &mut Rng, linktype: u32, buf: &mut Vec<u8>) {
        buf.clear();
        let r = rng.next();
        let src = Ipv4Addr::new(11 + (r % 116) as u8, (i >> 16) as u8, (i >> 8) as u8, i as u8);
        let sport = 1024 + ((r >> 8) % 64_000) as u16;
        let (mut dst, mut dport) = self.server;
        match (r >> 24) % 4 {
            0 | 1 => {}
            2 => dport = 1 + ((r >> 32) % 65_535) as u16,
            _ => {
                let o = dst.octets();
                let host = 1 + ((r >> 32) % 254) as u8;
                dst = Ipv4Addr::new(o[0], o[1], o[2], if host == o[3] { host ^ 1 } else { host });
            }
        }
        match linktype {
            1 => buf.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]),
            101 => {}
            l => panic!("link type {l}: only Ethernet and raw IP are written"),
        }
        let ip_at = buf.len();
        let mut l4 = [0u8; 8 + 64];
        let (proto, l4_len) = match self.kind {
            Kind::Syn => {
                let seq = rng.next() as u32;
                l4[0..2].copy_from_slice(&sport.to_be_bytes());
                l4[2..4].copy_from_slice(&dport.to_be_bytes());
                l4[4..8].copy_from_slice(&seq.to_be_bytes());
                l4[12] = 6 << 4; // 24-byte header
                l4[13] = 0x02; // SYN
                l4[14..16].copy_from_slice(&64_240u16.to_be_bytes());
                l4[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
                (6u8, 24)
            }
            Kind::Udp => {
                let n = 16 + (rng.below(49) as usize);
                let len = 8 + n;
                l4[0..2].copy_from_slice(&sport.to_be_bytes());
                l4[2..4].copy_from_slice(&dport.to_be_bytes());
                l4[4..6].copy_from_slice(&(len as u16).to_be_bytes());
                for chunk in l4[8..len].chunks_mut(8) {
                    let w = rng.next().to_le_bytes();
                    chunk.copy_from_slice(&w[..chunk.len()]);
                }
                (17u8, len)
            }
        };
        let total = 20 + l4_len;
        let ttl = 32 + (r >> 48) as u8 % 200;
        let id = (r >> 40) as u16;
        buf.extend_from_slice(&[0x45, 0]);
        buf.extend_from_slice(&(total as u16).to_be_bytes());
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&[0x40, 0, ttl, proto, 0, 0]);
        buf.extend_from_slice(&src.octets());
        buf.extend_from_slice(&dst.octets());
        let c = checksum(0, &buf[ip_at..]);
        buf[ip_at + 10..ip_at + 12].copy_from_slice(&c.to_be_bytes());
        // The transport checksum over the pseudo-header.
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&src.octets());
        pseudo[4..8].copy_from_slice(&dst.octets());
        pseudo[9] = proto;
        pseudo[10..12].copy_from_slice(&(l4_len as u16).to_be_bytes());
        let at = if proto == 6 { 16 } else { 6 };
        let c = checksum(sum(&pseudo), &l4[..l4_len]);
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        buf.extend_from_slice(&l4[..l4_len]);
    }
}

fn sum(data: &[u8]) -> u32 {
    let mut s = 0u32;
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    s
}

fn checksum(initial: u32, data: &[u8]) -> u16 {
    let mut s = initial + sum(data);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Write `session`'s packets and `flood`'s flows, merged in time order (a
/// session packet first on a tie), to `out` as a nanosecond pcap of the
/// session's link type and snap length. Returns the number of packets.
pub fn write_merged(out: &Path, session: &Pcap, flood: &Flood) -> u64 {
    let f = std::fs::File::create(out).unwrap_or_else(|e| panic!("creating {}: {e}", out.display()));
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut head = Vec::with_capacity(24);
    head.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
    head.extend_from_slice(&2u16.to_le_bytes());
    head.extend_from_slice(&4u16.to_le_bytes());
    head.extend_from_slice(&[0; 8]);
    head.extend_from_slice(&session.snaplen.to_le_bytes());
    head.extend_from_slice(&session.linktype.to_le_bytes());
    w.write_all(&head).unwrap();
    let put = |w: &mut BufWriter<std::fs::File>, ts: u64, orig: u32, data: &[u8]| {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts % 1_000_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig.to_le_bytes());
        w.write_all(&h).unwrap();
        w.write_all(data).unwrap();
    };
    let mut rng = Rng(flood.seed);
    let mut buf = Vec::with_capacity(128);
    let mut own = session.records.iter().peekable();
    for i in 0..flood.flows {
        let ts = flood.ts(i);
        while let Some(r) = own.next_if(|r| r.ts <= ts) {
            put(&mut w, r.ts, r.orig_len, &r.data);
        }
        flood.frame(i, &mut rng, session.linktype, &mut buf);
        put(&mut w, ts, buf.len() as u32, &buf);
    }
    for r in own {
        put(&mut w, r.ts, r.orig_len, &r.data);
    }
    w.flush().unwrap();
    session.records.len() as u64 + u64::from(flood.flows)
}
