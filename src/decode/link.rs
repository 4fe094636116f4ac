//! Link layers: Ethernet (with 802.1Q/QinQ tags), Linux cooked SLL and SLL2,
//! raw IPv4/IPv6, BSD loopback/null.

use super::DropReason;
use etherparse::{EtherType, LaxSlicedPacket};

/// The link types echoloc reads, from the pcap LINKTYPE_ numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    LinuxSll,
    LinuxSll2,
    Raw,
    Ipv4,
    Ipv6,
    /// BSD loopback, family in host byte order (LINKTYPE_NULL).
    Null,
    /// OpenBSD loopback, family in network byte order (LINKTYPE_LOOP).
    Loop,
}

impl LinkType {
    /// Map a pcap link type number; `None` for link types echoloc cannot read.
    pub fn from_pcap(n: i32) -> Option<LinkType> {
        Some(match n {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            12 | 14 | 101 => LinkType::Raw,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            _ => return None,
        })
    }
}

/// Slice a frame down to its network and transport layers.
pub(super) fn slice(link: LinkType, frame: &[u8]) -> Result<LaxSlicedPacket<'_>, DropReason> {
    match link {
        LinkType::Ethernet => LaxSlicedPacket::from_ethernet(frame).map_err(|_| DropReason::TruncatedLink),
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => {
            LaxSlicedPacket::from_ip(frame).map_err(|_| DropReason::TruncatedIp)
        }
        LinkType::LinuxSll => {
            // 16-byte header; protocol type in the last two bytes.
            let proto = be16(frame, 14).ok_or(DropReason::TruncatedLink)?;
            Ok(LaxSlicedPacket::from_ether_type(EtherType(proto), &frame[16..]))
        }
        LinkType::LinuxSll2 => {
            // 20-byte header; protocol type first.
            let proto = be16(frame, 0).ok_or(DropReason::TruncatedLink)?;
            if frame.len() < 20 {
                return Err(DropReason::TruncatedLink);
            }
            Ok(LaxSlicedPacket::from_ether_type(EtherType(proto), &frame[20..]))
        }
        LinkType::Null | LinkType::Loop => {
            if frame.len() < 4 {
                return Err(DropReason::TruncatedLink);
            }
            let raw = [frame[0], frame[1], frame[2], frame[3]];
            let family = if link == LinkType::Loop {
                u32::from_be_bytes(raw)
            } else {
                // Host byte order of the capturing machine: accept either.
                let le = u32::from_le_bytes(raw);
                if le < 256 { le } else { u32::from_be_bytes(raw) }
            };
            let ether_type = match family {
                2 => EtherType::IPV4,
                10 | 24 | 28 | 30 => EtherType::IPV6,
                _ => return Err(DropReason::NotIp),
            };
            Ok(LaxSlicedPacket::from_ether_type(ether_type, &frame[4..]))
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}
