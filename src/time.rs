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
/// chrono does the calendar; the digits are written here, into a fixed
/// pattern (chrono's own formatter, item by item through `fmt`, cost about
/// five times as much, twice per session record). Every `Ts` falls in the
/// years 1677–2262: four digits.
pub fn rfc3339(ts: Ts) -> String {
    use chrono::{Datelike, Timelike};
    let secs = ts.div_euclid(NS_PER_SEC);
    let nanos = ts.rem_euclid(NS_PER_SEC) as u32;
    let mut b = *b"1970-01-01T00:00:00.000000000Z";
    if let Some(dt) = chrono::DateTime::from_timestamp(secs, nanos) {
        let (d, t) = (dt.date_naive(), dt.time());
        for (at, v) in [
            (0..4, d.year() as u32),
            (5..7, d.month()),
            (8..10, d.day()),
            (11..13, t.hour()),
            (14..16, t.minute()),
            (17..19, t.second()),
            (20..29, nanos),
        ] {
            digits(&mut b[at], v);
        }
    }
    String::from_utf8(b.to_vec()).unwrap_or_default()
}

/// `v` in decimal, right-aligned and zero-padded to the width of `out`.
fn digits(out: &mut [u8], mut v: u32) {
    for c in out.iter_mut().rev() {
        *c = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_nanoseconds() {
        assert_eq!(rfc3339(1_500_000_000_123_456_789), "2017-07-14T02:40:00.123456789Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn formats_as_chrono_does_across_the_range_of_ts() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut stamps =
            vec![i64::MIN, i64::MAX, 0, 951_782_400 * NS_PER_SEC, 4_107_542_399 * NS_PER_SEC + 999_999_999];
        for _ in 0..20_000 {
            stamps.push(crate::analysis::stats::xorshift64(&mut x) as i64);
        }
        for ts in stamps {
            let dt = chrono::DateTime::from_timestamp(ts.div_euclid(NS_PER_SEC), ts.rem_euclid(NS_PER_SEC) as u32)
                .expect("every Ts is a date");
            assert_eq!(rfc3339(ts), dt.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true), "ts {ts}");
        }
    }

    #[test]
    fn converts_to_ms() {
        assert_eq!(ms(30_500_000), 30.5);
    }
}
