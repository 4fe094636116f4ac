//! RDP: TPKT + X.224; the connection request and its confirm are the
//! handshake pair (the server's turnaround).

use super::{App, Data, Proto, Spec, Stream};
use crate::analysis::desktop::{Desktop, Event};
use crate::analysis::interactive::Interactive;
use crate::analysis::seq::{self, Continuity};
use crate::analysis::turns::Msg;
use crate::ip_proto::IpProto;
use crate::side::Side;

pub const SPEC: Spec = Spec {
    proto: Proto::Rdp,
    ports: &[(IpProto::TCP, 3389, 3389), (IpProto::UDP, 3389, 3389)],
    probe: |transport, _, p| transport == IpProto::TCP && x224_connection(p).is_some(),
    message: Some(|_, p| match x224_connection(p)? {
        0xE0 => Some(Msg::Request(0)),
        _ => Some(Msg::Answer(0)),
    }),
    app: Some(app),
    remote_access: true,
};

/// A TPKT (version 3) packet carrying an X.224 connection request or
/// confirm: its TPDU code, 0xE0 (request) or 0xD0 (confirm).
fn x224_connection(p: &[u8]) -> Option<u8> {
    let code = p.get(5)? & 0xF0;
    (p.len() >= 7 && p[0] == 3 && p[1] == 0 && matches!(code, 0xE0 | 0xD0)).then_some(code)
}

fn app() -> App {
    App { stream: Stream::Rdp(RdpStream::default()), inter: Interactive::desktop() }
}

/// RDP's byte streams, and its desktop analysis.
#[derive(Debug, Default)]
pub struct RdpStream {
    next: [Option<u32>; 2],
    desktop: Desktop,
}

/// A data segment: keystrokes, echoes and frame acknowledgements by size,
/// time and TCP position (see [`crate::analysis::desktop`]).
#[inline(always)]
pub(super) fn on_data(stream: &mut RdpStream, inter: &mut Interactive, d: &Data<'_>) -> Option<f64> {
    if d.len == 0 || seq::follow(&mut stream.next[d.from as usize], d.seq, d.len) == Continuity::Old {
        return None;
    }
    let event = stream.desktop.on_data(d.ts, d.from, d.len, d.seq.wrapping_add(d.len), d.ack);
    if d.from == Side::Client {
        inter.set_keys(stream.desktop.keystrokes(), stream.desktop.echoed);
    }
    match event {
        // Echoes count once the session shows typing (see `Desktop::keystrokes`).
        Event::Echo(ms) if stream.desktop.keystrokes() > 0 => {
            inter.add_echo(ms);
            Some(ms)
        }
        Event::FrameAck(ms) => {
            inter.add_turnaround(Side::Client, ms);
            None
        }
        Event::Echo(_) | Event::Press | Event::Other => None,
    }
}
