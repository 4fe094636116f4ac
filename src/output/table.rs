//! A readable table of sessions, one row as each session ends.

use super::{LegRtt, SessionRecord};
use std::io::{self, Write};

pub struct TableWriter<W: Write> {
    out: W,
    header_done: bool,
    pub error: Option<io::Error>,
}

const HEADER: &str = "PROTO      CLIENT                                        SERVER                                        START                     DUR(s)   PKTS C/S       CLIENT RTT ms (hs/p50)  SERVER RTT ms (hs/p50)  END";

impl<W: Write> TableWriter<W> {
    pub fn new(out: W) -> Self {
        TableWriter { out, header_done: false, error: None }
    }

    pub fn write(&mut self, r: &SessionRecord) {
        if self.error.is_some() {
            return;
        }
        let mut line = String::new();
        if !self.header_done {
            self.header_done = true;
            line.push_str(HEADER);
            line.push('\n');
        }
        line.push_str(&format!(
            "{:<10} {:<45} {:<45} {:<25} {:>8.3} {:>13} {:>23} {:>23}  {}\n",
            r.proto,
            r.client,
            r.server,
            &r.start[..r.start.len().min(23)],
            r.duration_s,
            format!("{}/{}", r.packets.client, r.packets.server),
            leg(r.client_rtt_ms.as_ref()),
            leg(r.server_rtt_ms.as_ref()),
            r.end_reason,
        ));
        if let Err(e) = self.out.write_all(line.as_bytes()) {
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

fn leg(l: Option<&LegRtt>) -> String {
    match l {
        None => "-".into(),
        Some(l) => {
            let hs = l.handshake.map_or("-".into(), |h| format!("{h:.2}"));
            format!("{hs}/{:.2} ({})", l.p50, l.samples)
        }
    }
}
