//! OpenVPN has no magic: a client hard reset answered by a server hard
//! reset proves it (see `detect::Classifier`), and that pair is its
//! handshake turnaround.

use super::{Proto, Spec};
use crate::analysis::turns::Msg;
use crate::ip_proto::IpProto;

pub const SPEC: Spec = Spec {
    proto: Proto::Openvpn,
    ports: &[(IpProto::TCP, 1194, 1194), (IpProto::UDP, 1194, 1194)],
    probe: |_, _, _, _| false,
    // Its control plane pairs its own messages (`tunnel.rs`).
    message: None,
    app: None,
    remote_access: true,
};

/// An OpenVPN hard reset with key id 0 (over TCP behind its 16-bit length):
/// the client's (opcodes 1, 7, 10) asks, the server's (2, 8) answers.
pub fn hard_reset(transport: IpProto, p: &[u8]) -> Option<Msg> {
    let b = match transport {
        IpProto::UDP if p.len() >= 14 => p[0],
        IpProto::TCP if p.len() >= 16 && u16::from_be_bytes([p[0], p[1]]) as usize == p.len() - 2 => p[2],
        _ => return None,
    };
    match (b >> 3, b & 7) {
        (1 | 7 | 10, 0) => Some(Msg::Request(0)),
        (2 | 8, 0) => Some(Msg::Answer(0)),
        _ => None,
    }
}

/// The control channel's protection, from the packets' layout: none, an
/// HMAC of `hmac` bytes (tls-auth: 20 for SHA1, 32 SHA256, 64 SHA512), or
/// tls-crypt (v1 or v2: everything after the session id, packet id and tag
/// encrypted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    TlsAuth { hmac: u8 },
    TlsCrypt,
}

impl Mode {
    /// The record's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::TlsAuth { .. } => "tls-auth",
            Mode::TlsCrypt => "tls-crypt",
        }
    }
}

/// Opcodes (the high five bits of a packet's first byte).
pub const P_CONTROL_HARD_RESET_CLIENT_V1: u8 = 1;
pub const P_CONTROL_HARD_RESET_SERVER_V1: u8 = 2;
pub const P_CONTROL_SOFT_RESET_V1: u8 = 3;
pub const P_ACK_V1: u8 = 5;
pub const P_DATA_V1: u8 = 6;
pub const P_CONTROL_HARD_RESET_CLIENT_V2: u8 = 7;
pub const P_CONTROL_HARD_RESET_SERVER_V2: u8 = 8;
pub const P_DATA_V2: u8 = 9;
pub const P_CONTROL_HARD_RESET_CLIENT_V3: u8 = 10;
pub const P_CONTROL_WKC_V1: u8 = 11;

/// A packet of the control channel (not data)?
pub fn is_control(opcode: u8) -> bool {
    matches!(opcode, 1..=5 | 7 | 8 | 10 | 11)
}

/// A packet of the data channel (the tunnel's traffic)?
pub fn is_data(opcode: u8) -> bool {
    matches!(opcode, P_DATA_V1 | P_DATA_V2)
}

/// Acknowledgements in one packet at most (OpenVPN's RELIABLE_ACK_SIZE).
pub const MAX_ACKS: usize = 8;

/// What the reliability layer of one control packet shows in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    pub opcode: u8,
    pub key_id: u8,
    pub session_id: u64,
    /// The message packet-ids of the peer this packet acknowledges.
    pub acks: [u32; MAX_ACKS],
    pub n_acks: usize,
    /// This packet's own message packet-id (none in P_ACK_V1, nor under tls-crypt).
    pub packet_id: Option<u32>,
}

/// Seconds since 1970 a sender's clock can plausibly show (2005–2100): the
/// time field of tls-auth's and tls-crypt's replay packet-id.
fn plausible_time(t: u32) -> bool {
    (1_100_000_000..4_100_000_000).contains(&t)
}

/// A replay packet-id (tls-auth, tls-crypt) at `at`: counts from 1, and its
/// time follows.
fn replay_id_at(p: &[u8], at: usize) -> bool {
    match (be32(p, at), be32(p, at + 4)) {
        (Some(id), Some(t)) => (1..1 << 24).contains(&id) && plausible_time(t),
        _ => false,
    }
}

fn be32(p: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(p.get(at..at + 4)?.try_into().ok()?))
}

/// The reliability layer at `off` (the ack array): acks, the remote session
/// id when there are acks, the message packet-id (not in P_ACK_V1).
fn reliability(p: &[u8], off: usize, opcode: u8) -> Option<([u32; MAX_ACKS], usize, Option<u32>)> {
    let n = *p.get(off)? as usize;
    if n > MAX_ACKS {
        return None;
    }
    let mut acks = [0; MAX_ACKS];
    for (i, a) in acks.iter_mut().take(n).enumerate() {
        *a = be32(p, off + 1 + 4 * i)?;
    }
    let mut at = off + 1 + 4 * n;
    if n > 0 {
        at += 8;
    }
    let id = if opcode == P_ACK_V1 { None } else { Some(be32(p, at)?) };
    if p.len() < at + if id.is_some() { 4 } else { 0 } {
        return None;
    }
    Some((acks, n, id))
}

/// Where the ack array starts under `mode` (None under tls-crypt: encrypted).
fn ack_offset(mode: Mode) -> Option<usize> {
    match mode {
        Mode::Plain => Some(9),
        Mode::TlsAuth { hmac } => Some(9 + hmac as usize + 8),
        Mode::TlsCrypt => None,
    }
}

/// A hard reset's layout under `mode` holds: the client's carries no ack,
/// the server's acknowledges the client's; both are message 0.
fn reset_fits(p: &[u8], mode: Mode, opcode: u8) -> bool {
    let Some(off) = ack_offset(mode) else { return false };
    let client = matches!(opcode, P_CONTROL_HARD_RESET_CLIENT_V1 | P_CONTROL_HARD_RESET_CLIENT_V2);
    match reliability(p, off, opcode) {
        Some((_, n, Some(0))) => (n == 0) == client,
        _ => false,
    }
}

const TLS_AUTH: [Mode; 3] = [Mode::TlsAuth { hmac: 20 }, Mode::TlsAuth { hmac: 32 }, Mode::TlsAuth { hmac: 64 }];

/// The mode one control packet (without TCP's length) shows. A hard reset
/// proves it (its packet-ids are known: message 0, no ack from the client);
/// another control packet is read by where a replay packet-id stands.
pub fn detect_mode(p: &[u8]) -> Option<Mode> {
    let opcode = *p.first()? >> 3;
    if !is_control(opcode) || p.len() < 14 {
        return None;
    }
    if matches!(opcode, P_CONTROL_HARD_RESET_CLIENT_V3 | P_CONTROL_WKC_V1) {
        return Some(Mode::TlsCrypt);
    }
    let reset = matches!(opcode, 1 | 2 | 7 | 8);
    if reset {
        if reset_fits(p, Mode::Plain, opcode) {
            return Some(Mode::Plain);
        }
        if let Some(m) = TLS_AUTH.into_iter().find(|&m| {
            let Mode::TlsAuth { hmac } = m else { return false };
            replay_id_at(p, 9 + hmac as usize) && reset_fits(p, m, opcode)
        }) {
            return Some(m);
        }
        return (replay_id_at(p, 9) && p.len() >= 9 + 8 + 32 + 5).then_some(Mode::TlsCrypt);
    }
    if let Some(m) = TLS_AUTH.into_iter().find(|&m| {
        let Mode::TlsAuth { hmac } = m else { return false };
        replay_id_at(p, 9 + hmac as usize) && reliability(p, 9 + hmac as usize + 8, opcode).is_some()
    }) {
        return Some(m);
    }
    if replay_id_at(p, 9) && p.len() >= 9 + 8 + 32 {
        return Some(Mode::TlsCrypt);
    }
    reliability(p, 9, opcode).map(|_| Mode::Plain)
}

/// The clear reliability layer of one control packet under `mode`.
pub fn control(mode: Mode, p: &[u8]) -> Option<Control> {
    let opcode = *p.first()? >> 3;
    if !is_control(opcode) || p.len() < 9 {
        return None;
    }
    let session_id = u64::from_be_bytes(p[1..9].try_into().ok()?);
    let (acks, n_acks, packet_id) = match ack_offset(mode) {
        Some(off) => reliability(p, off, opcode)?,
        None => ([0; MAX_ACKS], 0, None),
    };
    Some(Control { opcode, key_id: p[0] & 7, session_id, acks, n_acks, packet_id })
}

/// OpenVPN over TCP: each packet behind its 16-bit length. Follows one
/// direction's byte stream and hands out each whole packet's first bytes
/// ([`HEAD`] at most) and length; after a gap (a segment not captured, a
/// payload cut by the snap length) it finds its way again at a segment that
/// starts with a plausible packet.
#[derive(Debug, Default)]
pub struct Framer {
    next: Option<u32>,
    /// Length bytes of the next packet gathered so far (a split prefix).
    len_bytes: Vec<u8>,
    /// The packet under way: its length, bytes seen, its first bytes.
    len: usize,
    got: usize,
    head: Vec<u8>,
    lost: bool,
}

/// First bytes of a packet kept for its header (tls-auth with SHA512 and a
/// full ack array: 1 + 8 + 64 + 8 + 1 + 32 + 8 + 4 = 126).
pub const HEAD: usize = 128;

impl Framer {
    /// One TCP segment with data (`len` bytes, `payload` the captured part);
    /// `out` gets each packet it completes: its first bytes and length.
    pub fn feed(&mut self, seq: u32, len: u32, payload: &[u8], mut out: impl FnMut(&[u8], usize)) {
        use crate::analysis::seq::{Continuity, follow};
        match follow(&mut self.next, seq, len) {
            Continuity::Old => return,
            Continuity::Gap => self.lose(),
            Continuity::InOrder => {}
        }
        if self.lost {
            if !plausible_frame(payload) {
                return;
            }
            self.lost = false;
        }
        let mut p = payload;
        while !p.is_empty() {
            if self.len == 0 {
                self.len_bytes.push(p[0]);
                p = &p[1..];
                if self.len_bytes.len() == 2 {
                    self.len = u16::from_be_bytes([self.len_bytes[0], self.len_bytes[1]]) as usize;
                    self.len_bytes.clear();
                    self.got = 0;
                    self.head.clear();
                }
                continue;
            }
            let take = p.len().min(self.len - self.got);
            let keep = take.min(HEAD.saturating_sub(self.head.len()));
            self.head.extend_from_slice(&p[..keep]);
            self.got += take;
            p = &p[take..];
            if self.got == self.len {
                out(&self.head, self.len);
                self.len = 0;
            }
        }
        // A short snap length: the bytes not captured finish the packet under
        // way (one packet per segment, as interactive traffic sends), else
        // the next packet's length is lost with them.
        let missing = (len as usize).saturating_sub(payload.len());
        if missing > 0 {
            if self.len > 0 && self.len - self.got == missing {
                out(&self.head, self.len);
                self.len = 0;
            } else {
                self.lose();
            }
        }
    }

    fn lose(&mut self) {
        self.lost = true;
        self.len = 0;
        self.len_bytes.clear();
    }
}

/// A segment that starts with a packet: a length a packet can have and a
/// known opcode.
fn plausible_frame(p: &[u8]) -> bool {
    p.len() >= 3
        && (9..=1 << 14).contains(&(u16::from_be_bytes([p[0], p[1]]) as usize))
        && (1..=11).contains(&(p[2] >> 3))
}
