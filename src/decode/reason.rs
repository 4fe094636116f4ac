//! Why a packet was skipped. Each reason is a label value of
//! `echoloc_decode_errors_total{reason}`.

use etherparse::LaxSlicedPacket;
use etherparse::err::Layer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    TruncatedLink,
    TruncatedIp,
    BadIpHeader,
    BadIpLength,
    TruncatedTcp,
    BadTcpHeader,
    BadTcpLength,
    TruncatedUdp,
    BadUdpLength,
    Fragment,
    NotIp,
    UnknownLink,
}

impl DropReason {
    pub const ALL: [DropReason; 12] = [
        DropReason::TruncatedLink,
        DropReason::TruncatedIp,
        DropReason::BadIpHeader,
        DropReason::BadIpLength,
        DropReason::TruncatedTcp,
        DropReason::BadTcpHeader,
        DropReason::BadTcpLength,
        DropReason::TruncatedUdp,
        DropReason::BadUdpLength,
        DropReason::Fragment,
        DropReason::NotIp,
        DropReason::UnknownLink,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TruncatedLink => "truncated_link",
            DropReason::TruncatedIp => "truncated_ip",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::BadIpLength => "bad_ip_length",
            DropReason::TruncatedTcp => "truncated_tcp",
            DropReason::BadTcpHeader => "bad_tcp_header",
            DropReason::BadTcpLength => "bad_tcp_length",
            DropReason::TruncatedUdp => "truncated_udp",
            DropReason::BadUdpLength => "bad_udp_length",
            DropReason::Fragment => "fragment",
            DropReason::NotIp => "not_ip",
            DropReason::UnknownLink => "unknown_link",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The reason a lax slice stopped early, if it did.
pub(super) fn from_stop(p: &LaxSlicedPacket<'_>) -> Option<DropReason> {
    use etherparse::err::packet::SliceError as E;
    let (err, layer) = p.stop_err.as_ref()?;
    Some(match (err, layer) {
        (E::Len(_), Layer::TcpHeader) => DropReason::TruncatedTcp,
        (_, Layer::TcpHeader) => DropReason::BadTcpHeader,
        (_, Layer::UdpHeader) => DropReason::TruncatedUdp,
        (E::Len(_), Layer::Ipv4Header | Layer::Ipv6Header) => DropReason::TruncatedIp,
        (_, Layer::Ipv4Header | Layer::Ipv6Header | Layer::IpHeader) => DropReason::BadIpHeader,
        (E::Len(_), Layer::Ethernet2Header | Layer::VlanHeader) => DropReason::TruncatedLink,
        (E::Len(_), _) => DropReason::TruncatedIp,
        _ => DropReason::BadIpHeader,
    })
}
