//! A readable table of sessions, one row as each session ends, at most
//! [`WIDTH`] columns wide: the record's key figures, short (the JSON record
//! has them all, found by its uid).

use super::SessionRecord;
use std::io::{self, Write};

/// The widest a row may be (characters).
const WIDTH: usize = 120;

pub struct TableWriter<W: Write> {
    out: W,
    header_done: bool,
    pub error: Option<io::Error>,
}

/// The columns: header and width. Values never exceed their width (longer
/// ones are shortened in the middle, see [`fit`]); the last is not padded.
const COLUMNS: [(&str, usize); 12] = [
    ("UID", 8),
    ("PROTO", 7),
    ("CLIENT", 21),
    ("SERVER", 21),
    ("START", 8),
    ("DUR s", 5),
    ("KEYS", 5),
    ("RTT c/s", 9),
    ("ECHO", 4),
    ("HIDDEN c/s", 11),
    ("TYPIST", 6),
    ("END", 4),
];

impl<W: Write> TableWriter<W> {
    pub fn new(out: W) -> Self {
        TableWriter { out, header_done: false, error: None }
    }

    pub fn write(&mut self, r: &SessionRecord) {
        if self.error.is_some() {
            return;
        }
        let mut text = String::new();
        if !self.header_done {
            self.header_done = true;
            text.push_str(&row(&COLUMNS.map(|(h, _)| h.to_string())));
        }
        text.push_str(&row(&cells(r)));
        if let Err(e) = self.out.write_all(text.as_bytes()) {
            self.error = Some(e);
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => self.out.flush(),
        }
    }
}

/// One record's cells, in the order of [`COLUMNS`].
fn cells(r: &SessionRecord) -> [String; 12] {
    let suspected = |l: &Option<crate::analysis::relay::Relay>| l.as_ref().is_some_and(|l| l.suspected);
    // A relay suspected on a leg marks its hidden latency.
    let hidden = |v: Option<f64>, relay: bool| format!("{}{}", ms(v), if relay { "*" } else { "" });
    let over_policy = r.alerts.iter().any(|a| a == crate::verdict::RTT_OVER_POLICY);
    [
        r.uid.chars().take(8).collect(),
        // The one protocol name longer than the column.
        if r.proto == "wireguard" { "wg".into() } else { r.proto.into() },
        r.client.clone(),
        r.server.clone(),
        // HH:MM:SS, UTC.
        r.start.get(11..19).unwrap_or(&r.start).into(),
        duration(r.duration_s),
        // Under keystroke-timing obfuscation the count is a lower bound.
        r.keystrokes.map_or("-".into(), |k| {
            let n = if k < 10_000 { k.to_string() } else { format!("{}k", k / 1000) };
            if r.keystroke_obfuscation == Some(true) { format!("{n}+") } else { n }
        }),
        format!("{}/{}", ms(r.client_rtt_ms.map(|l| l.floor)), ms(r.server_rtt_ms.map(|l| l.floor))),
        ms(r.echo_ms.map(|e| e.p50)),
        format!(
            "{}/{}",
            hidden(r.client_hidden_ms, suspected(&r.client_relay)),
            hidden(r.server_hidden_ms, suspected(&r.server_relay))
        ),
        format!("{}{}", ms(r.typist_rtt_ms), if over_policy { "!" } else { "" }),
        match r.end_reason {
            "evicted" => "full",
            "end_of_input" => "eof",
            "shutdown" => "stop",
            other => other,
        }
        .into(),
    ]
}

/// Milliseconds to three significant figures, at most four characters
/// (five when negative): 0.07, 9.84, 15.2, 612, 1234, then seconds (12s).
fn ms(v: Option<f64>) -> String {
    let Some(v) = v.filter(|v| v.is_finite()) else { return "-".into() };
    let a = v.abs();
    let s = if a < 9.995 {
        format!("{a:.2}")
    } else if a < 99.95 {
        format!("{a:.1}")
    } else if a < 9999.5 {
        format!("{a:.0}")
    } else {
        format!("{:.0}s", a / 1000.0)
    };
    if v < 0.0 && s.bytes().any(|b| b.is_ascii_digit() && b != b'0') { format!("-{s}") } else { s }
}

/// Seconds, at most five characters: 0.2, 75.3, 3600, 86400, then hours (28h).
fn duration(s: f64) -> String {
    if s < 99.95 {
        format!("{s:.1}")
    } else if s < 99_999.5 {
        format!("{s:.0}")
    } else {
        format!("{:.0}h", s / 3600.0)
    }
}

/// `s` in at most `w` characters: a longer value (an IPv6 address) keeps its
/// beginning and its end (the port), joined by "…".
fn fit(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        return s.to_string();
    }
    if w < 3 {
        return s.chars().take(w).collect();
    }
    let tail = (w - 1) / 2;
    let head = w - 1 - tail;
    let mut out: String = s.chars().take(head).collect();
    out.push('…');
    out.extend(s.chars().skip(n - tail));
    out
}

fn row(cells: &[String]) -> String {
    let mut s = String::new();
    for (i, (c, (_, w))) in cells.iter().zip(COLUMNS).enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let c = fit(c, w);
        s.push_str(&format!("{c:<w$}"));
    }
    s.truncate(s.trim_end().len());
    debug_assert!(s.chars().count() <= WIDTH, "{s}");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_add_up_to_the_table_width() {
        let sum: usize = COLUMNS.iter().map(|(_, w)| w).sum::<usize>() + COLUMNS.len() - 1;
        assert_eq!(sum, WIDTH);
        for (h, w) in COLUMNS {
            assert!(h.len() <= w, "{h}");
        }
    }

    #[test]
    fn figures_fit_their_columns() {
        let cases = [
            (0.0712, "0.07"),
            (9.84, "9.84"),
            (9.999, "10.0"),
            (15.24, "15.2"),
            (99.97, "100"),
            (612.3, "612"),
            (9999.4, "9999"),
            (12_400.0, "12s"),
            (-0.31, "-0.31"),
            (-0.001, "0.00"),
        ];
        for (v, want) in cases {
            assert_eq!(ms(Some(v)), want, "{v}");
        }
        assert_eq!(ms(None), "-");
        for (s, want) in [(0.225, "0.2"), (75.34, "75.3"), (3600.0, "3600"), (86_400.0, "86400"), (100_000.0, "28h")] {
            assert_eq!(duration(s), want, "{s}");
        }
    }

    #[test]
    fn long_addresses_keep_both_ends() {
        let a = "[2001:db8:85a3::8a2e:370:7334]:51234";
        let f = fit(a, 21);
        assert_eq!(f.chars().count(), 21);
        assert_eq!(f, "[2001:db8:…334]:51234");
        assert_eq!(fit("192.0.2.1:22", 21), "192.0.2.1:22");
        assert_eq!(fit("255.255.255.255:65535", 21), "255.255.255.255:65535");
    }
}
