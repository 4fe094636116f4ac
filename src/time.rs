//! Packet time. Every figure echoloc reports comes from capture timestamps,
//! never from the wall clock, so a replay gives the same answer every time.

/// Nanoseconds since the Unix epoch, as stamped by the capture.
pub type Ts = i64;

pub const NS_PER_MS: f64 = 1_000_000.0;
pub const NS_PER_SEC: i64 = 1_000_000_000;

/// Nanoseconds to milliseconds.
pub fn ms(ns: i64) -> f64 {
    ns as f64 / NS_PER_MS
}

/// RFC 3339 UTC with nanosecond fraction, e.g. `2026-01-01T00:00:00.000000000Z`.
pub fn rfc3339(ts: Ts) -> String {
    let secs = ts.div_euclid(NS_PER_SEC);
    let nanos = ts.rem_euclid(NS_PER_SEC) as u32;
    match chrono::DateTime::from_timestamp(secs, nanos) {
        Some(dt) => dt.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        None => "1970-01-01T00:00:00.000000000Z".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_nanoseconds() {
        assert_eq!(rfc3339(1_500_000_000_123_456_789), "2017-07-14T02:40:00.123456789Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn converts_to_ms() {
        assert_eq!(ms(30_500_000), 30.5);
    }
}
