//! VNC (RFB): client messages are in clear. Key events give exact
//! keystroke times (only that a key went down is kept, never which key);
//! the server's next framebuffer update is the echo.

use super::{App, Data, Proto, Spec, Stream};
use crate::analysis::interactive::Interactive;
use crate::analysis::seq::{self, Continuity};
use crate::ip_proto::IpProto;
use crate::side::Side;

pub const SPEC: Spec = Spec {
    proto: Proto::Vnc,
    ports: &[(IpProto::TCP, 5900, 5910)],
    probe: |transport, _, p, _| transport == IpProto::TCP && p.starts_with(b"RFB 0"),
    message: None,
    app: Some(app),
    remote_access: true,
};

/// Key events are exact keystrokes; any framebuffer update after a key is
/// its echo, one way (the sensor to the server and back is not in it).
fn app() -> App {
    App { stream: Stream::Vnc(VncStream::default()), inter: Interactive::screen() }
}

/// A data segment: the client's key-down events are keystrokes, the
/// server's updates their echoes.
#[inline(always)]
pub(super) fn on_data(stream: &mut VncStream, inter: &mut Interactive, d: &Data<'_>) -> Option<f64> {
    let ev = stream.on_segment(d.from, d.seq, d.len, d.payload)?;
    match d.from {
        Side::Client => {
            for _ in 0..ev.key_downs {
                inter.keystroke(d.ts, d.seq.wrapping_add(d.len));
            }
            None
        }
        Side::Server => inter.on_data(d.ts, Side::Server, d.len, None),
    }
}

#[derive(Debug, Default)]
pub struct VncStream {
    next: [Option<u32>; 2],
}

/// A new (not retransmitted) data segment of a VNC connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VncEvent {
    pub from: Side,
    /// Key-down events in a client segment made only of client messages.
    pub key_downs: u32,
}

impl VncStream {
    pub fn on_segment(&mut self, from: Side, seq_no: u32, len: u32, payload: &[u8]) -> Option<VncEvent> {
        if len == 0 || seq::follow(&mut self.next[from as usize], seq_no, len) == Continuity::Old {
            return None;
        }
        let key_downs = match from {
            Side::Client if payload.len() as u32 == len => key_downs(payload).unwrap_or(0),
            _ => 0,
        };
        Some(VncEvent { from, key_downs })
    }
}

/// Key-down events in a run of RFB client messages; `None` unless the bytes
/// are exactly a sequence of valid client messages (handshake bytes are not).
pub fn key_downs(mut p: &[u8]) -> Option<u32> {
    let mut downs = 0;
    if p.is_empty() {
        return None;
    }
    while !p.is_empty() {
        let len = match p[0] {
            0 => 20,                                                             // SetPixelFormat
            2 => 4 + 4 * u16::from_be_bytes([*p.get(2)?, *p.get(3)?]) as usize,  // SetEncodings
            3 => 10,                                                             // FramebufferUpdateRequest
            4 => 8,                                                              // KeyEvent
            5 => 6,                                                              // PointerEvent
            6 => 8 + u32::from_be_bytes(p.get(4..8)?.try_into().ok()?) as usize, // ClientCutText
            _ => return None,
        };
        let msg = p.get(..len)?;
        if msg[0] == 4 && msg[1] != 0 {
            downs += 1;
        }
        p = &p[len..];
    }
    Some(downs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_key_downs_only() {
        let down = [4, 1, 0, 0, 0, 0, 0, 0x61];
        let up = [4, 0, 0, 0, 0, 0, 0, 0x61];
        let mut both = down.to_vec();
        both.extend(up);
        both.extend([3, 1, 0, 0, 0, 0, 4, 0, 3, 0]);
        assert_eq!(key_downs(&both), Some(1));
        assert_eq!(key_downs(&up), Some(0));
        assert_eq!(key_downs(b"RFB 003.003\n"), None);
        assert_eq!(key_downs(&[4, 1, 0]), None);
    }
}
