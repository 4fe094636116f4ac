//! Connection keys. Both directions of a connection map to one key.

use crate::ip_proto::IpProto;
use std::net::{IpAddr, SocketAddr};

/// A direction-free connection key: the lower endpoint first. Compact
/// (addresses as integers) so lookups compare and hash few bytes.
///
/// Aligned to 8 (not the 16 of `u128`), so it takes 40 bytes rather than 48
/// and leaves room for the session's first fields in the table slot's first
/// cache line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, packed(8))]
pub struct FlowKey {
    lo_ip: u128,
    hi_ip: u128,
    lo_port: u16,
    hi_port: u16,
    pub proto: IpProto,
    v6: bool,
}

impl FlowKey {
    /// The key of a packet, and whether its source is the key's `lo` end.
    pub fn new(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: IpProto) -> (FlowKey, bool) {
        let (a, b) = (ip_bits(src), ip_bits(dst));
        let v6 = src.is_ipv6();
        if (a, sport) <= (b, dport) {
            (FlowKey { lo_ip: a, hi_ip: b, lo_port: sport, hi_port: dport, proto, v6 }, true)
        } else {
            (FlowKey { lo_ip: b, hi_ip: a, lo_port: dport, hi_port: sport, proto, v6 }, false)
        }
    }

    /// The key as five words, for the session table's hash.
    pub fn words(&self) -> [u64; 5] {
        let (lo, hi) = (self.lo_ip, self.hi_ip);
        let rest = u64::from(self.lo_port)
            | u64::from(self.hi_port) << 16
            | u64::from(self.proto.0) << 32
            | u64::from(self.v6) << 40;
        [lo as u64, (lo >> 64) as u64, hi as u64, (hi >> 64) as u64, rest]
    }

    /// The lower endpoint.
    pub fn lo(&self) -> SocketAddr {
        SocketAddr::new(ip_of(self.lo_ip, self.v6), self.lo_port)
    }

    /// The higher endpoint.
    pub fn hi(&self) -> SocketAddr {
        SocketAddr::new(ip_of(self.hi_ip, self.v6), self.hi_port)
    }
}

fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A hash of the two addresses of a packet, the same both ways and on every
/// run (no random seed): which worker engine a packet goes to. Ports are
/// left out, so every flow between two hosts meets in one worker, as
/// sessions over several tuples need (RDP's UDP side channel, IKE on 500 and
/// 4500, ESP beside them).
pub fn host_pair_hash(a: IpAddr, b: IpAddr) -> u64 {
    let (a, b) = (ip_bits(a), ip_bits(b));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let fold = |x: u128| x as u64 ^ (x >> 64) as u64;
    mix(fold(lo) ^ mix(fold(hi)))
}

/// splitmix64's finaliser: every input bit reaches every output bit.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn ip_of(bits: u128, v6: bool) -> IpAddr {
    if v6 { IpAddr::V6(bits.into()) } else { IpAddr::V4((bits as u32).into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_share_a_key() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let (k1, lo1) = FlowKey::new(a, 40000, b, 22, IpProto::TCP);
        let (k2, lo2) = FlowKey::new(b, 22, a, 40000, IpProto::TCP);
        assert_eq!(k1, k2);
        assert_ne!(lo1, lo2);
        let (k3, _) = FlowKey::new(a, 40000, b, 22, IpProto::UDP);
        assert_ne!(k1, k3);
        assert_eq!(k1.lo().to_string(), "192.0.2.1:40000");
        assert_eq!(k1.hi().to_string(), "192.0.2.2:22");
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let (k4, _) = FlowKey::new(v6, 22, "2001:db8::2".parse().unwrap(), 50000, IpProto::TCP);
        assert_eq!(k4.lo().to_string(), "[2001:db8::1]:22");
    }

    #[test]
    fn host_pair_hash_is_the_same_both_ways_and_spreads_pairs() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (a, b) = (ip("192.0.2.1"), ip("198.51.100.7"));
        assert_eq!(host_pair_hash(a, b), host_pair_hash(b, a));
        // No seed: the same on every run (pinned), so a replay's workers
        // get the same flows every time.
        assert_eq!(host_pair_hash(a, b), 0xe060_83ae_c2c6_c46e);
        assert_ne!(host_pair_hash(a, b), host_pair_hash(a, ip("198.51.100.8")));
        // 10,000 client addresses to one server over 2 and 8 workers: no
        // worker gets more than its share by over 10 %.
        for n in [2u64, 8] {
            let mut per = vec![0u32; n as usize];
            for i in 0..10_000u32 {
                let c = IpAddr::V4((0x0A00_0000 + i * 7).into());
                per[(host_pair_hash(c, b) % n) as usize] += 1;
            }
            let share = 10_000 / n as u32;
            assert!(per.iter().all(|&x| x.abs_diff(share) < share / 10), "{per:?}");
        }
    }

    #[test]
    fn every_field_of_a_key_reaches_its_hash_words() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let base = FlowKey::new(ip("192.0.2.1"), 40000, ip("192.0.2.2"), 22, IpProto::TCP).0;
        let others = [
            FlowKey::new(ip("192.0.2.3"), 40000, ip("192.0.2.2"), 22, IpProto::TCP).0,
            FlowKey::new(ip("192.0.2.1"), 40000, ip("192.0.2.4"), 22, IpProto::TCP).0,
            FlowKey::new(ip("192.0.2.1"), 40001, ip("192.0.2.2"), 22, IpProto::TCP).0,
            FlowKey::new(ip("192.0.2.1"), 40000, ip("192.0.2.2"), 23, IpProto::TCP).0,
            FlowKey::new(ip("192.0.2.1"), 40000, ip("192.0.2.2"), 22, IpProto::UDP).0,
            // The same address bits as IPv6 (::c000:201), and the ports swapped.
            FlowKey::new(ip("::c000:201"), 40000, ip("::c000:202"), 22, IpProto::TCP).0,
            FlowKey::new(ip("192.0.2.1"), 22, ip("192.0.2.2"), 40000, IpProto::TCP).0,
            FlowKey::new(ip("2001:db8::1"), 40000, ip("2001:db8::2"), 22, IpProto::TCP).0,
        ];
        for k in others {
            assert_ne!(k, base);
            assert_ne!(k.words(), base.words(), "{k:?}");
        }
        assert_eq!(FlowKey::new(ip("192.0.2.2"), 22, ip("192.0.2.1"), 40000, IpProto::TCP).0.words(), base.words());
    }
}
