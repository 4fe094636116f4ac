//! Community ID flow hash, version 1 (github.com/corelight/community-id-spec):
//! the flow identifier Zeek, Suricata, Arkime, Elastic and Wireshark write,
//! so a SIEM can join their records to echoloc's by one string.

use crate::ip_proto::IpProto;
use base64::Engine;
use std::net::{IpAddr, SocketAddr};

/// The seed: 0, the specification's default (a different seed gives
/// different ids, so every tool must use the same one to match).
const SEED: u16 = 0;

/// `"1:"` + base64 of SHA-1 over seed (2 bytes, big-endian), the smaller
/// endpoint's address, the other's address (4 or 16 bytes each), the IP
/// protocol (1 byte), a zero byte, then, for protocols with ports (TCP, UDP,
/// SCTP), the smaller endpoint's port and the other's (2 bytes each,
/// big-endian). The smaller endpoint is the lower address, or on equal
/// addresses the lower port: the id does not depend on direction. Other
/// protocols (ESP) hash the addresses alone. ICMP, whose "ports" are derived
/// from its type and code, is not a session here and is not handled.
pub fn community_id(transport: IpProto, a: SocketAddr, b: SocketAddr) -> String {
    let with_ports = transport.has_ports() || transport == IpProto(132);
    let octets = |ip: IpAddr| -> ([u8; 16], usize) {
        let mut out = [0u8; 16];
        match ip {
            IpAddr::V4(v4) => {
                out[..4].copy_from_slice(&v4.octets());
                (out, 4)
            }
            IpAddr::V6(v6) => (v6.octets(), 16),
        }
    };
    let (ia, la) = octets(a.ip());
    let (ib, lb) = octets(b.ip());
    let (pa, pb) = if with_ports { (a.port(), b.port()) } else { (0, 0) };
    // Compared as the specification's byte strings: address, then port.
    let a_first = (&ia[..la], pa) <= (&ib[..lb], pb);
    let ((i1, l1, p1), (i2, l2, p2)) =
        if a_first { ((ia, la, pa), (ib, lb, pb)) } else { ((ib, lb, pb), (ia, la, pa)) };
    let mut input = Vec::with_capacity(2 + 32 + 2 + 4);
    input.extend_from_slice(&SEED.to_be_bytes());
    input.extend_from_slice(&i1[..l1]);
    input.extend_from_slice(&i2[..l2]);
    input.push(transport.0);
    input.push(0);
    if with_ports {
        input.extend_from_slice(&p1.to_be_bytes());
        input.extend_from_slice(&p2.to_be_bytes());
    }
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    let mut out = String::with_capacity(30);
    out.push_str("1:");
    base64::engine::general_purpose::STANDARD.encode_string(digest.as_ref(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Expected values from the reference implementation, computed with
    /// `pip install communityid==1.5.0` and
    /// `communityid.CommunityID().calc(communityid.FlowTuple(proto, src, dst, sport, dport))`
    /// (`FlowTuple(50, src, dst)` for ESP). tests/fields.rs compares every
    /// bundled capture's records with the package itself.
    #[test]
    fn matches_the_reference_implementation() {
        let tcp = IpProto::TCP;
        let want = "1:JVThucTMXWwQd4CzK1zoyKXez6o=";
        assert_eq!(community_id(tcp, a("192.0.2.1:40000"), a("192.0.2.2:22")), want);
        assert_eq!(community_id(tcp, a("192.0.2.2:22"), a("192.0.2.1:40000")), want, "either direction");
        // The specification's ordering example and tenzir's documented value.
        assert_eq!(community_id(tcp, a("10.0.0.1:1234"), a("127.0.0.1:80")), "1:F/BCgQTUT/FXrTnSBgdsKwJ26iE=");
        assert_eq!(community_id(tcp, a("1.2.3.4:4584"), a("43.3.132.3:3483")), "1:koNcqhFRD5kb254ZrLsdv630jCM=");
        // Equal addresses: the ports decide the order.
        let udp = community_id(IpProto::UDP, a("192.0.2.9:51820"), a("192.0.2.9:500"));
        assert_eq!(udp, "1:N4BEoqX6tQHrGlPFKpt957aYY5U=");
        assert_eq!(community_id(IpProto::UDP, a("192.0.2.9:500"), a("192.0.2.9:51820")), udp);
        assert_eq!(
            community_id(tcp, a("[2001:db8::1]:50022"), a("[2001:db8::2]:22")),
            "1:4TKd4LTyj0nimb3TZ4M8E88wpYI="
        );
        // ESP: no ports in the hash (a session's ports are 0 anyway).
        assert_eq!(
            community_id(IpProto::ESP, a("[2001:db8::1]:0"), a("[2001:db8::2]:0")),
            "1:JIAyWiD7dl1e74CJAdetAUPF/To="
        );
        assert_eq!(community_id(IpProto::ESP, a("198.51.100.7:0"), a("192.0.2.1:0")), "1:UhROjTEXmDxRjREyYUYIzZQe3GU=");
    }
}
