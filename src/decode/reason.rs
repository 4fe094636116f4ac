//! Why a packet was skipped. Each reason is a label value of
//! `echoloc_decode_errors_total{reason}`.

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
