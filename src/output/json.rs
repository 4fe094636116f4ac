//! JSON Lines: one session record per line.

use super::SessionRecord;
use std::io::{self, Write};

pub struct JsonWriter<W: Write> {
    out: W,
    pub error: Option<io::Error>,
}

impl<W: Write> JsonWriter<W> {
    pub fn new(out: W) -> Self {
        JsonWriter { out, error: None }
    }

    pub fn write(&mut self, rec: &SessionRecord) {
        if self.error.is_some() {
            return;
        }
        let r =
            serde_json::to_writer(&mut self.out, rec).map_err(io::Error::from).and_then(|_| self.out.write_all(b"\n"));
        if let Err(e) = r {
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
