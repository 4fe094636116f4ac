//! Decode: link layer, IPv4/IPv6 and TCP/UDP headers into a [`Packet`] view.
//!
//! Nothing here allocates. Payload lengths come from the IP and TCP headers,
//! so captures with a short snap length (headers only) are analysed fully;
//! only a header that is itself cut short is malformed.

mod link;
mod mptcp;
mod reason;
mod tcp;

pub use link::LinkType;

pub use mptcp::{Dss, DssMap, Mptcp};
pub use reason::DropReason;
pub use tcp::{TcpFlags, TcpOptions};

use crate::ip_proto::IpProto;
use crate::time::Ts;
use etherparse::{
    IpAuthHeaderSlice, IpNumber, Ipv4HeaderSlice, Ipv6ExtensionsSlice, Ipv6HeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};
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
        proto: IpProto,
        /// Its real length from the IP header, and the captured part.
        payload_len: u32,
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
    /// The options area as captured (read again only for Multipath TCP).
    pub options_area: &'a [u8],
}

impl Tcp<'_> {
    /// The segment's Multipath TCP option, if any (see [`Mptcp::find`]).
    pub fn mptcp(&self) -> Option<Mptcp> {
        Mptcp::find(self.options_area)
    }
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

    pub fn ip_proto(&self) -> IpProto {
        match &self.l4 {
            L4::Tcp(_) => IpProto::TCP,
            L4::Udp(_) => IpProto::UDP,
            L4::Other { proto, .. } => *proto,
        }
    }

    /// Transport payload length from the headers.
    pub fn payload_len(&self) -> u32 {
        match &self.l4 {
            L4::Tcp(t) => t.payload_len,
            L4::Udp(u) => u.payload_len,
            L4::Other { payload_len, .. } => *payload_len,
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
///
/// Headers are read through etherparse's header slices, which borrow the
/// frame: nothing is copied or allocated.
#[inline(always)]
pub fn decode_wire(link: LinkType, ts: Ts, frame: &[u8], wire_len: Option<u32>) -> Result<Packet<'_>, DropReason> {
    let (ether_type, off) = link::network(link, frame)?;
    let ip = &frame[off..];
    let net = match ether_type {
        0x0800 => ipv4(ip)?,
        0x86DD => ipv6(ip)?,
        _ => return Err(DropReason::NotIp),
    };
    if let Some(wire) = wire_len
        && net.ip_len > wire.saturating_sub(off as u32)
    {
        return Err(DropReason::BadIpLength);
    }
    if net.fragmented {
        return Err(DropReason::Fragment);
    }
    let l4 = match net.proto {
        6 => {
            let t = TcpHeaderSlice::from_slice(net.payload).map_err(|e| match e {
                etherparse::err::tcp::HeaderSliceError::Len(_) => DropReason::TruncatedTcp,
                etherparse::err::tcp::HeaderSliceError::Content(_) => DropReason::BadTcpHeader,
            })?;
            let hl = t.slice().len();
            let payload_len = net.payload_len.checked_sub(hl as u32).ok_or(DropReason::BadTcpLength)?;
            let raw = t.slice();
            L4::Tcp(Tcp {
                sport: t.source_port(),
                dport: t.destination_port(),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                flags: TcpFlags(raw[13]),
                window: t.window_size(),
                options: TcpOptions::parse(t.options()),
                payload_len,
                payload: &net.payload[hl..],
                options_area: &net.payload[20..hl],
            })
        }
        17 => {
            let u = UdpHeaderSlice::from_slice(net.payload).map_err(|_| DropReason::TruncatedUdp)?;
            let ulen = u.length() as u32;
            if ulen < 8 || ulen > net.payload_len {
                return Err(DropReason::BadUdpLength);
            }
            let end = (ulen as usize).min(net.payload.len());
            L4::Udp(Udp {
                sport: u.source_port(),
                dport: u.destination_port(),
                payload_len: ulen - 8,
                payload: &net.payload[8..end],
            })
        }
        proto => L4::Other { proto: IpProto(proto), payload_len: net.payload_len, payload: net.payload },
    };
    Ok(Packet { ts, src: net.src, dst: net.dst, ttl: net.ttl, ip_len: net.ip_len, l4 })
}

/// The network layer of a packet: addresses, and the transport payload as
/// declared by the headers (`payload_len`) and as captured (`payload`).
struct Net<'a> {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    ip_len: u32,
    proto: u8,
    fragmented: bool,
    payload_len: u32,
    payload: &'a [u8],
}

#[inline(always)]
fn ipv4(b: &[u8]) -> Result<Net<'_>, DropReason> {
    use etherparse::err::ipv4::HeaderSliceError as E;
    let h = Ipv4HeaderSlice::from_slice(b).map_err(|e| match e {
        E::Len(_) => DropReason::TruncatedIp,
        E::Content(_) => DropReason::BadIpHeader,
    })?;
    let hlen = h.slice().len() as u32;
    let total = match h.total_len() as u32 {
        0 => b.len() as u32, // segmentation offload: length left to the capture
        t if t < hlen => return Err(DropReason::BadIpLength),
        t => t,
    };
    let mut rest = &b[hlen as usize..(total as usize).min(b.len())];
    let mut payload_len = total - hlen;
    let mut proto = h.protocol();
    if proto == IpNumber::AUTHENTICATION_HEADER {
        let ah = IpAuthHeaderSlice::from_slice(rest).map_err(|_| DropReason::TruncatedIp)?;
        let n = ah.slice().len();
        payload_len = payload_len.checked_sub(n as u32).ok_or(DropReason::BadIpLength)?;
        proto = ah.next_header();
        rest = &rest[n..];
    }
    Ok(Net {
        src: IpAddr::V4(h.source_addr()),
        dst: IpAddr::V4(h.destination_addr()),
        ttl: h.ttl(),
        ip_len: total,
        proto: proto.0,
        fragmented: h.is_fragmenting_payload(),
        payload_len,
        payload: rest,
    })
}

fn ipv6(b: &[u8]) -> Result<Net<'_>, DropReason> {
    use etherparse::err::ipv6::HeaderSliceError as E;
    let h = Ipv6HeaderSlice::from_slice(b).map_err(|e| match e {
        E::Len(_) => DropReason::TruncatedIp,
        E::Content(_) => DropReason::BadIpHeader,
    })?;
    let declared = match h.payload_length() as u32 {
        0 => b.len() as u32 - 40, // jumbogram or offload
        n => n,
    };
    let mut rest = &b[40..(40 + declared as usize).min(b.len())];
    let mut proto = h.next_header();
    let mut fragmented = false;
    let mut payload_len = declared;
    if proto.is_ipv6_ext_header_value() {
        let (exts, next, after) = Ipv6ExtensionsSlice::from_slice(proto, rest).map_err(|e| match e {
            etherparse::err::ipv6_exts::HeaderSliceError::Len(_) => DropReason::TruncatedIp,
            etherparse::err::ipv6_exts::HeaderSliceError::Content(_) => DropReason::BadIpHeader,
        })?;
        let n = (rest.len() - after.len()) as u32;
        payload_len = payload_len.checked_sub(n).ok_or(DropReason::BadIpLength)?;
        fragmented = exts.is_fragmenting_payload();
        proto = next;
        rest = after;
    }
    Ok(Net {
        src: IpAddr::V6(h.source_addr()),
        dst: IpAddr::V6(h.destination_addr()),
        ttl: h.hop_limit(),
        ip_len: declared + 40,
        proto: proto.0,
        fragmented,
        payload_len,
        payload: rest,
    })
}

#[cfg(test)]
mod tests;
