//! Follows both byte streams of an SSH connection far enough to read the
//! clear-text start, and tells each new data segment from a retransmission.

use super::kex::{KexInit, Negotiated, keystroke_size};
use super::{SshInfo, openssh_version};
use crate::analysis::seq;
use crate::side::Side;

/// Clear-text bytes kept per direction before giving up (KEXINITs are a few KB).
const MAX_CLEAR: usize = 64 * 1024;
/// Without readable clear text, data segments per side assumed to be the handshake.
const GUESS_CLEAR_SEGMENTS: u32 = 4;

/// A new (not retransmitted) data segment of the SSH connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SshEvent {
    pub from: Side,
    /// TCP payload length.
    pub len: u32,
    /// Sent after this side's NEWKEYS: only its size is known.
    pub encrypted: bool,
    /// Read as clear text: what the stream knows (`info`) may have changed.
    pub clear: bool,
}

/// One direction. Small (the KEXINIT, read once, is boxed) so both
/// directions share the cache lines every data segment reads.
#[derive(Debug, Default)]
#[repr(C)]
struct Dir {
    next: Option<u32>,
    segments: u32,
    version_done: bool,
    unreadable: bool,
    /// The first data segment was readable and not a version line: joined mid-stream.
    midstream: bool,
    newkeys: bool,
    buf: Vec<u8>,
    kexinit: Option<Box<KexInit>>,
}

/// Both directions first (`repr(C)`): every data segment reads them.
#[derive(Debug, Default)]
#[repr(C)]
pub struct SshStream {
    dirs: [Dir; 2],
    pub info: SshInfo,
}

impl SshStream {
    /// Feed one TCP segment; `payload` is its captured part (may be shorter than `len`).
    pub fn on_segment(&mut self, from: Side, seq_no: u32, len: u32, payload: &[u8]) -> Option<SshEvent> {
        if len == 0 {
            return None;
        }
        let d = &mut self.dirs[from as usize];
        match seq::follow(&mut d.next, seq_no, len) {
            seq::Continuity::Old => return None,
            seq::Continuity::Gap => d.unreadable = true, // stop reading clear text
            seq::Continuity::InOrder => {}
        }
        d.segments += 1;
        let encrypted_before = d.newkeys || (d.unreadable && d.segments > GUESS_CLEAR_SEGMENTS);
        let clear = !d.newkeys && !d.unreadable;
        if clear {
            if payload.len() as u32 != len {
                d.unreadable = true; // not captured (short snap length)
            } else if d.segments == 1
                && !d.version_done
                && !payload.starts_with(b"SSH-")
                && !payload.windows(4).take(16).any(|w| w == b"SSH-")
            {
                // Joined mid-stream: already encrypted.
                d.newkeys = true;
                d.unreadable = true;
                d.midstream = true;
            } else if d.buf.len() + payload.len() > MAX_CLEAR {
                d.unreadable = true;
            } else {
                d.buf.extend_from_slice(payload);
                self.parse(from);
            }
        }
        let d = &mut self.dirs[from as usize];
        let encrypted = encrypted_before || (d.unreadable && d.segments > GUESS_CLEAR_SEGMENTS);
        if d.newkeys || d.unreadable {
            d.buf = Vec::new();
        }
        Some(SshEvent { from, len, encrypted, clear })
    }

    /// Was the connection seen from its start? `Some(true)` once a version
    /// line was read, `Some(false)` when a side's first data was readable and
    /// not one (joined mid-stream), `None` while nothing tells (headers only).
    pub fn start_seen(&self) -> Option<bool> {
        if self.dirs.iter().any(|d| d.version_done) {
            Some(true)
        } else if self.dirs.iter().any(|d| d.midstream) {
            Some(false)
        } else {
            None
        }
    }

    /// Read what the buffered clear text holds: the identification line,
    /// KEXINIT, and NEWKEYS (after which this direction is encrypted).
    fn parse(&mut self, from: Side) -> Option<()> {
        let d = &mut self.dirs[from as usize];
        if !d.version_done {
            let eol = d.buf.iter().position(|&b| b == b'\n')?;
            let line = String::from_utf8_lossy(&d.buf[..eol]).trim_end_matches('\r').to_string();
            let start = line.find("SSH-").unwrap_or(0);
            let id: String = line[start..].chars().filter(|c| !c.is_control()).take(255).collect();
            d.buf.drain(..=eol);
            d.version_done = true;
            match from {
                Side::Client => self.info.client_version = Some(id),
                Side::Server => {
                    self.info.ping_supported = openssh_version(&id).map(|v| v >= (9, 5));
                    self.info.server_version = Some(id);
                }
            }
        }
        let d = &mut self.dirs[from as usize];
        while d.buf.len() >= 6 {
            let plen = u32::from_be_bytes([d.buf[0], d.buf[1], d.buf[2], d.buf[3]]) as usize;
            if !(5..=35000).contains(&plen) {
                d.unreadable = true;
                return None;
            }
            if d.buf.len() < 4 + plen {
                break;
            }
            let pad = d.buf[4] as usize;
            let payload = &d.buf[5..(4 + plen).saturating_sub(pad).max(5)];
            match payload.first().copied() {
                Some(20) => {
                    let hassh = match from {
                        Side::Client => &mut self.info.hassh,
                        Side::Server => &mut self.info.hassh_server,
                    };
                    if hassh.is_none() {
                        *hassh = super::kex::hassh(payload, from);
                    }
                    d.kexinit = KexInit::parse(payload).map(Box::new);
                }
                Some(21) => {
                    d.newkeys = true;
                    d.buf.drain(..4 + plen);
                    break;
                }
                _ => {}
            }
            d.buf.drain(..4 + plen);
        }
        self.negotiate();
        Some(())
    }

    fn negotiate(&mut self) {
        if self.info.cipher.is_some() {
            return;
        }
        if let (Some(c), Some(s)) = (&self.dirs[0].kexinit, &self.dirs[1].kexinit)
            && let Some(n) = Negotiated::from(c, s)
        {
            self.info.keystroke_size = Some(keystroke_size(&n));
            self.info.kex = n.kex;
            self.info.cipher = Some(n.cipher);
            self.info.mac = n.mac;
        }
    }
}
