//! The JSON session record: a stable contract (see README "Session record").
//! Fields are added, never renamed. `null` means "could not be measured".

use crate::analysis::Summary;
use crate::flow::{EndReason, FlowKey, Session};
use crate::time::{Ts, rfc3339};
use serde::Serialize;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PerSide<T> {
    pub client: T,
    pub server: T,
}

/// Round-trip figures of one leg, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LegRtt {
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub max: f64,
    pub samples: u64,
    /// From the TCP handshake; null when the handshake was not seen.
    pub handshake: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionRecord {
    pub uid: String,
    pub proto: &'static str,
    pub transport: &'static str,
    pub client: String,
    pub server: String,
    pub start: String,
    pub end: String,
    pub duration_s: f64,
    pub end_reason: &'static str,
    pub packets: PerSide<u64>,
    pub bytes: PerSide<u64>,
    pub client_rtt_ms: Option<LegRtt>,
    pub server_rtt_ms: Option<LegRtt>,
    pub retransmissions: Option<PerSide<u64>>,
    /// Lowest IP TTL (hop limit) seen from each side.
    pub ttl: PerSide<Option<u8>>,
    #[serde(skip)]
    pub start_ts: Ts,
}

impl SessionRecord {
    pub fn new(key: &FlowKey, s: &Session, reason: EndReason) -> SessionRecord {
        let rtt = s.rtt.as_deref();
        let leg = |i: usize| rtt.and_then(|r| leg_rtt(&r.legs[i], r.handshake[i]));
        SessionRecord {
            uid: uid(key, s.start),
            proto: s.proto().as_str(),
            transport: match s.transport {
                6 => "tcp",
                17 => "udp",
                50 => "esp",
                _ => "ip",
            },
            client: addr(s.client, s.transport),
            server: addr(s.server, s.transport),
            start: rfc3339(s.start),
            end: rfc3339(s.last),
            duration_s: round((s.last - s.start) as f64 / 1e9, 9),
            end_reason: reason.as_str(),
            packets: PerSide { client: s.packets[0], server: s.packets[1] },
            bytes: PerSide { client: s.bytes[0], server: s.bytes[1] },
            client_rtt_ms: leg(0),
            server_rtt_ms: leg(1),
            retransmissions: rtt.map(|r| {
                let [c, sv] = r.retransmissions();
                PerSide { client: c, server: sv }
            }),
            ttl: PerSide { client: s.ttl[0], server: s.ttl[1] },
            start_ts: s.start,
        }
    }
}

fn leg_rtt(sum: &Summary, handshake: Option<f64>) -> Option<LegRtt> {
    let q = sum.quantiles()?;
    Some(LegRtt {
        min: round(q.min, 4),
        p50: round(q.p50, 4),
        p90: round(q.p90, 4),
        max: round(q.max, 4),
        samples: q.samples,
        handshake: handshake.map(|h| round(h, 4)),
    })
}

/// Round to `digits` decimals (keeps records free of float noise).
pub fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// "ip:port", "[ipv6]:port"; protocols without ports show the address alone.
fn addr(a: SocketAddr, transport: u8) -> String {
    if transport == 6 || transport == 17 { a.to_string() } else { a.ip().to_string() }
}

/// A stable session id: "C" and base62 of a fixed-key hash of the
/// connection and its start time (the same capture gives the same ids).
pub fn uid(key: &FlowKey, start: Ts) -> String {
    let mut h = ahash::RandomState::with_seeds(1, 2, 3, 4).build_hasher();
    key.hash(&mut h);
    start.hash(&mut h);
    let mut n = h.finish();
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(12);
    out.push('C');
    for _ in 0..11 {
        out.push(DIGITS[(n % 62) as usize] as char);
        n /= 62;
    }
    out
}
