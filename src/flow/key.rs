//! Connection keys. Both directions of a connection map to one key.

use std::net::{IpAddr, SocketAddr};

/// The two ends of a session as seen by the sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The side that opened the connection (the SYN sender).
    Client = 0,
    /// The side that accepted it.
    Server = 1,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// A direction-free connection key: the lower endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo: SocketAddr,
    pub hi: SocketAddr,
    pub proto: u8,
}

impl FlowKey {
    /// The key of a packet, and whether its source is the key's `lo` end.
    pub fn new(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: u8) -> (FlowKey, bool) {
        let a = SocketAddr::new(src, sport);
        let b = SocketAddr::new(dst, dport);
        if (src, sport) <= (dst, dport) {
            (FlowKey { lo: a, hi: b, proto }, true)
        } else {
            (FlowKey { lo: b, hi: a, proto }, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_share_a_key() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let (k1, lo1) = FlowKey::new(a, 40000, b, 22, 6);
        let (k2, lo2) = FlowKey::new(b, 22, a, 40000, 6);
        assert_eq!(k1, k2);
        assert_ne!(lo1, lo2);
        let (k3, _) = FlowKey::new(a, 40000, b, 22, 17);
        assert_ne!(k1, k3);
    }
}
