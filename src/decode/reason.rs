//! Why a packet was skipped. Each reason is a label value of
//! `echoloc_decode_errors_total{reason}`.

use crate::labels::label_enum;

label_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum DropReason {
        TruncatedLink = "truncated_link",
        TruncatedIp = "truncated_ip",
        BadIpHeader = "bad_ip_header",
        BadIpLength = "bad_ip_length",
        TruncatedTcp = "truncated_tcp",
        BadTcpHeader = "bad_tcp_header",
        BadTcpLength = "bad_tcp_length",
        TruncatedUdp = "truncated_udp",
        BadUdpLength = "bad_udp_length",
        Fragment = "fragment",
        NotIp = "not_ip",
        UnknownLink = "unknown_link",
    }
}
