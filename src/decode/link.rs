//! Link layers: Ethernet (with 802.1Q/QinQ tags), Linux cooked SLL and SLL2,
//! raw IPv4/IPv6, BSD loopback/null.

use super::DropReason;
use etherparse::{EtherType, Ethernet2HeaderSlice, SingleVlanHeaderSlice};

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

/// Find the network layer: (EtherType, offset of the IP header).
pub(super) fn network(link: LinkType, frame: &[u8]) -> Result<(u16, usize), DropReason> {
    match link {
        LinkType::Ethernet => {
            let eth = Ethernet2HeaderSlice::from_slice(frame).map_err(|_| DropReason::TruncatedLink)?;
            let mut ether_type = eth.ether_type();
            let mut off = eth.slice().len();
            // 802.1Q, 802.1ad (QinQ) and the old 0x9100 tags, up to four deep.
            for _ in 0..4 {
                if !matches!(
                    ether_type,
                    EtherType::VLAN_TAGGED_FRAME | EtherType::PROVIDER_BRIDGING | EtherType::VLAN_DOUBLE_TAGGED_FRAME
                ) {
                    break;
                }
                let tag = SingleVlanHeaderSlice::from_slice(&frame[off..]).map_err(|_| DropReason::TruncatedLink)?;
                ether_type = tag.ether_type();
                off += tag.slice().len();
            }
            Ok((ether_type.0, off))
        }
        LinkType::Raw => match frame.first().map(|b| b >> 4) {
            Some(4) => Ok((0x0800, 0)),
            Some(6) => Ok((0x86DD, 0)),
            Some(_) => Err(DropReason::NotIp),
            None => Err(DropReason::TruncatedIp),
        },
        LinkType::Ipv4 => Ok((0x0800, 0)),
        LinkType::Ipv6 => Ok((0x86DD, 0)),
        LinkType::LinuxSll => {
            // 16-byte header; protocol type in the last two bytes.
            let proto = be16(frame, 14).ok_or(DropReason::TruncatedLink)?;
            Ok((proto, 16))
        }
        LinkType::LinuxSll2 => {
            // 20-byte header; protocol type first.
            if frame.len() < 20 {
                return Err(DropReason::TruncatedLink);
            }
            Ok((be16(frame, 0).ok_or(DropReason::TruncatedLink)?, 20))
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
            match family {
                2 => Ok((0x0800, 4)),
                10 | 24 | 28 | 30 => Ok((0x86DD, 4)),
                _ => Err(DropReason::NotIp),
            }
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}
