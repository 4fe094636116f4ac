//! A readable table of sessions, one row as each session ends.

use super::SessionRecord;
use std::io::{self, Write};

pub struct TableWriter<W: Write> {
    out: W,
    header_done: bool,
    pub error: Option<io::Error>,
}

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
            text.push_str(&row(&[
                "PROTO",
                "CLIENT",
                "SERVER",
                "START (UTC)",
                "DUR s",
                "KEYS",
                "RTT c/s ms",
                "ECHO ms",
                "HIDDEN c/s ms",
                "RELAY c/s",
                "TYPIST ms",
                "<= km",
                "END",
                "ALERTS",
            ]));
        }
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let relay = |r: &Option<crate::analysis::relay::Relay>| match r {
            Some(r) if r.suspected => format!("YES({})", r.hops_est),
            Some(_) => "no".into(),
            None => "-".into(),
        };
        text.push_str(&row(&[
            r.proto,
            &r.client,
            &r.server,
            r.start.get(..19).unwrap_or(&r.start),
            &format!("{:.1}", r.duration_s),
            // Under keystroke-timing obfuscation the count is a lower bound.
            &r.keystrokes.map_or("-".into(), |k| {
                if r.keystroke_obfuscation == Some(true) { format!(">={k}") } else { k.to_string() }
            }),
            &format!("{}/{}", ms(r.client_rtt_ms.map(|l| l.floor)), ms(r.server_rtt_ms.map(|l| l.floor))),
            &ms(r.echo_ms.map(|e| e.p50)),
            &format!("{}/{}", ms(r.client_hidden_ms), ms(r.server_hidden_ms)),
            &format!("{}/{}", relay(&r.client_relay), relay(&r.server_relay)),
            &ms(r.typist_rtt_ms),
            &r.max_distance_km.map_or("-".into(), |k| format!("{k:.0}")),
            r.end_reason,
            &r.alerts.join(","),
        ]));
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

const WIDTHS: [usize; 14] = [9, 22, 22, 19, 7, 5, 13, 7, 13, 9, 9, 6, 12, 0];

fn row(cols: &[&str]) -> String {
    let mut s = String::new();
    for (c, w) in cols.iter().zip(WIDTHS) {
        s.push_str(&format!("{c:<w$} "));
    }
    s.truncate(s.trim_end().len());
    s.push('\n');
    s
}
