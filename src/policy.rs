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

    /// The site of a client: the index of the most specific rule covering
    /// it, in the order of [`Policy::sites`].
    pub fn site_of(&self, ip: IpAddr) -> Option<usize> {
        self.rules.iter().position(|(n, _)| n.contains(&ip))
    }

    /// The rules' subnets as text (`10.20.0.0/16`), most specific first.
    pub fn sites(&self) -> impl Iterator<Item = String> + '_ {
        self.rules.iter().map(|(n, _)| n.to_string())
    }

    /// The most specific rule covering `ip`.
    pub fn limit_for(&self, ip: IpAddr) -> Option<Limit> {
        self.rules.iter().find(|(n, _)| n.contains(&ip)).map(|&(subnet, max_rtt_ms)| Limit { subnet, max_rtt_ms })
    }
}
