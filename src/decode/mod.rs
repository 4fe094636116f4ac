//! Decode: link layer, IPv4/IPv6 and TCP/UDP headers into a [`Packet`] view.
//!
//! Nothing here allocates. Payload lengths come from the IP and TCP headers,
//! so captures with a short snap length (headers only) are analysed fully;
//! only a header that is itself cut short is malformed.

mod link;
mod reason;
mod tcp;

pub use link::LinkType;

pub use reason::DropReason;
pub use tcp::{TcpFlags, TcpOptions};

use crate::time::Ts;
use etherparse::{LaxNetSlice, TransportSlice};
use std::net::IpAddr;

/// One decoded IP packet. `payload` holds only the captured bytes of the
/// transport payload; `payload_len` is its real length from the headers.
#[derive(Debug, Clone)]
pub struct Packet<'a> {
    pub ts: Ts,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IP packet length from the header (what the sender put on the wire above the link layer).
    pub ip_len: u32,
    pub l4: L4<'a>,
}

/// The transport layer of a packet.
#[derive(Debug, Clone)]
pub enum L4<'a> {
    Tcp(Tcp<'a>),
    Udp(Udp<'a>),
    /// Another IP protocol (ESP, ICMP…): only the protocol number and payload.
    Other {
        proto: u8,
        payload: &'a [u8],
    },
}

#[derive(Debug, Clone)]
pub struct Tcp<'a> {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub options: TcpOptions,
    pub payload_len: u32,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone)]
pub struct Udp<'a> {
    pub sport: u16,
    pub dport: u16,
    pub payload_len: u32,
    pub payload: &'a [u8],
}

impl Packet<'_> {
    pub fn ports(&self) -> (u16, u16) {
        match &self.l4 {
            L4::Tcp(t) => (t.sport, t.dport),
            L4::Udp(u) => (u.sport, u.dport),
            L4::Other { .. } => (0, 0),
        }
    }

    pub fn ip_proto(&self) -> u8 {
        match &self.l4 {
            L4::Tcp(_) => 6,
            L4::Udp(_) => 17,
            L4::Other { proto, .. } => *proto,
        }
    }

    /// Transport payload length from the headers.
    pub fn payload_len(&self) -> u32 {
        match &self.l4 {
            L4::Tcp(t) => t.payload_len,
            L4::Udp(u) => u.payload_len,
            L4::Other { payload, .. } => payload.len() as u32,
        }
    }

    /// The captured part of the transport payload.
    pub fn payload(&self) -> &[u8] {
        match &self.l4 {
            L4::Tcp(t) => t.payload,
            L4::Udp(u) => u.payload,
            L4::Other { payload, .. } => payload,
        }
    }
}

/// Decode one captured frame of the given link type.
pub fn decode(link: LinkType, ts: Ts, frame: &[u8]) -> Result<Packet<'_>, DropReason> {
    decode_wire(link, ts, frame, None)
}

/// Decode one captured frame whose length on the wire was `wire_len` (the
/// pcap original length). An IP length that claims more than the wire
/// carried is malformed; a frame cut by the snap length is not.
pub fn decode_wire(link: LinkType, ts: Ts, frame: &[u8], wire_len: Option<u32>) -> Result<Packet<'_>, DropReason> {
    let sliced = link::slice(link, frame)?;
    let net = match &sliced.net {
        Some(n) => n,
        None => return Err(reason::from_stop(&sliced).unwrap_or(DropReason::NotIp)),
    };
    let (src, dst, ttl, ip_len, payload_len, fragmented) = match net {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            let hlen = h.ihl() as u32 * 4;
            let total = h.total_len() as u32;
            if total != 0 && total < hlen {
                return Err(DropReason::BadIpLength);
            }
            let total = if total == 0 { frame.len() as u32 } else { total };
            let ext = ext_len(v4.payload().payload, h.slice());
            let ip_payload = (total - hlen).checked_sub(ext).ok_or(DropReason::BadIpLength)?;
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.ttl(),
                total,
                ip_payload,
                v4.is_payload_fragmented(),
            )
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            let plen = h.payload_length() as u32;
            let ext = ext_len(v6.payload().payload, h.slice());
            let plen = if plen == 0 { v6.payload().payload.len() as u32 + ext } else { plen };
            let ip_payload = plen.checked_sub(ext).ok_or(DropReason::BadIpLength)?;
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                h.hop_limit(),
                plen + 40,
                ip_payload,
                v6.is_payload_fragmented(),
            )
        }
        LaxNetSlice::Arp(_) => return Err(DropReason::NotIp),
    };
    if let Some(wire) = wire_len {
        let ip_start = match net {
            LaxNetSlice::Ipv4(v4) => v4.header().slice().as_ptr(),
            LaxNetSlice::Ipv6(v6) => v6.header().slice().as_ptr(),
            LaxNetSlice::Arp(_) => frame.as_ptr(),
        };
        let link_len = (ip_start as usize).saturating_sub(frame.as_ptr() as usize) as u32;
        if ip_len > wire.saturating_sub(link_len) {
            return Err(DropReason::BadIpLength);
        }
    }
    if fragmented {
        return Err(DropReason::Fragment);
    }
    let l4 = match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => {
            let hl = t.header_len() as u32;
            let payload_len = payload_len.checked_sub(hl).ok_or(DropReason::BadTcpLength)?;
            L4::Tcp(Tcp {
                sport: t.source_port(),
                dport: t.destination_port(),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                flags: TcpFlags::from_slice(t),
                window: t.window_size(),
                options: TcpOptions::parse(t.options()),
                payload_len,
                payload: t.payload(),
            })
        }
        Some(TransportSlice::Udp(u)) => {
            let ulen = u.length() as u32;
            if ulen < 8 || ulen > payload_len {
                return Err(DropReason::BadUdpLength);
            }
            let payload_len = ulen - 8;
            L4::Udp(Udp { sport: u.source_port(), dport: u.destination_port(), payload_len, payload: u.payload() })
        }
        Some(_) => {
            let p = net.ip_payload_ref().map(|p| p.payload).unwrap_or(&[]);
            L4::Other { proto: net.ip_payload_ref().map(|p| p.ip_number.0).unwrap_or(0), payload: p }
        }
        None => {
            if let Some(r) = reason::from_stop(&sliced) {
                return Err(r);
            }
            let p = net.ip_payload_ref();
            let proto = p.map(|p| p.ip_number.0).unwrap_or(0);
            if proto == 6 || proto == 17 {
                return Err(if proto == 6 { DropReason::TruncatedTcp } else { DropReason::TruncatedUdp });
            }
            L4::Other { proto, payload: p.map(|p| p.payload).unwrap_or(&[]) }
        }
    };
    Ok(Packet { ts, src, dst, ttl, ip_len, l4 })
}

/// Bytes between the end of the fixed IP header and the start of the
/// transport payload (IPv4 AH / IPv6 extension headers).
fn ext_len(payload: &[u8], header: &[u8]) -> u32 {
    let start = header.as_ptr() as usize + header.len();
    (payload.as_ptr() as usize).saturating_sub(start) as u32
}

#[cfg(test)]
mod tests;
