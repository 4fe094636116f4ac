//! IP protocol numbers: which transport a packet carries (the IPv4
//! protocol field, the IPv6 next header after extension headers).

use std::fmt;

/// An IP protocol number. Shown as its number (the uid's canonical form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IpProto(pub u8);

impl IpProto {
    pub const TCP: IpProto = IpProto(6);
    pub const UDP: IpProto = IpProto(17);
    pub const ESP: IpProto = IpProto(50);

    /// Whether echoloc makes sessions of this transport (TCP, UDP, ESP).
    pub fn is_session(self) -> bool {
        matches!(self, IpProto::TCP | IpProto::UDP | IpProto::ESP)
    }

    /// Whether its packets carry ports.
    pub fn has_ports(self) -> bool {
        matches!(self, IpProto::TCP | IpProto::UDP)
    }
}

impl fmt::Display for IpProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
