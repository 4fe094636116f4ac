//! The typist round-trip policy: client subnets and the most a typist
//! there may be away (ms); the most specific subnet applies.

use ipnet::IpNet;
use std::net::IpAddr;

/// Client subnet → expected maximum typist round trip (ms).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<(IpNet, f64)>,
}

/// The policy rule that applies to one client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub subnet: IpNet,
    /// Expected maximum typist round trip, ms.
    pub max_rtt_ms: f64,
}

impl Limit {
    /// Whether a typist round trip (ms) breaks this limit: strictly above it.
    pub fn exceeded_by(&self, typist_rtt_ms: f64) -> bool {
        typist_rtt_ms > self.max_rtt_ms
    }
}

impl Policy {
    /// A policy of (subnet, maximum round trip in ms) rules, in any order.
    pub fn new(mut rules: Vec<(IpNet, f64)>) -> Policy {
        rules.sort_by_key(|r| std::cmp::Reverse(r.0.prefix_len()));
        Policy { rules }
    }

    /// The most specific rule covering `ip`.
    pub fn limit_for(&self, ip: IpAddr) -> Option<Limit> {
        self.rules.iter().find(|(n, _)| n.contains(&ip)).map(|&(subnet, max_rtt_ms)| Limit { subnet, max_rtt_ms })
    }
}
