//! TCP flags and options (MSS, window scale, SACK, timestamps).

/// TCP flag bits as on the wire (FIN = 0x01 … CWR = 0x80).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// The TCP options echoloc uses. SACK blocks beyond four are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// SACK blocks (left edge, right edge), `sack_len` of them valid.
    pub sack: [(u32, u32); 4],
    pub sack_len: u8,
    /// (TSval, TSecr)
    pub timestamps: Option<(u32, u32)>,
}

impl TcpOptions {
    /// Parse the options area. A malformed option ends parsing; the options
    /// read before it are kept.
    #[inline]
    pub fn parse(bytes: &[u8]) -> TcpOptions {
        // Fast path, in line: the layout Linux and most stacks put on every
        // segment after the handshake, NOP NOP TIMESTAMP; or no options.
        if let Ok(b) = <&[u8; 12]>::try_from(bytes)
            && b[..4] == [1, 1, 8, 10]
        {
            let val = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            let ecr = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
            return TcpOptions { timestamps: Some((val, ecr)), ..TcpOptions::default() };
        }
        if bytes.is_empty() {
            return TcpOptions::default();
        }
        Self::parse_any(bytes)
    }

    /// Every option, read by kind and length: an unknown kind is skipped,
    /// a length that runs past the area (or below 2) ends parsing.
    #[inline(never)]
    fn parse_any(bytes: &[u8]) -> TcpOptions {
        let mut o = TcpOptions::default();
        for (kind, body) in options(bytes) {
            match (kind, body.len()) {
                (2, 2) => o.mss = Some(u16::from_be_bytes([body[0], body[1]])),
                (3, 1) => o.window_scale = Some(body[0]),
                (4, 0) => o.sack_permitted = true,
                (5, n) if n % 8 == 0 => {
                    for b in body.chunks_exact(8).take(4) {
                        o.sack[o.sack_len as usize] = (be32(&b[..4]), be32(&b[4..]));
                        o.sack_len += 1;
                    }
                }
                (8, 8) => o.timestamps = Some((be32(&body[..4]), be32(&body[4..]))),
                _ => {} // other kinds (Multipath TCP: `Tcp::mptcp`) and odd lengths: skipped
            }
        }
        o
    }

    pub fn sack_blocks(&self) -> &[(u32, u32)] {
        &self.sack[..self.sack_len as usize]
    }
}

pub(super) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The options of an options area as (kind, body): NOPs skipped; ends at
/// END or at a length that runs past the area (or is below 2).
pub(super) fn options(bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        loop {
            let (&kind, tail) = rest.split_first()?;
            match kind {
                0 => return None,
                1 => rest = tail,
                _ => {
                    let len = usize::from(*tail.first()?);
                    if len < 2 || len > rest.len() {
                        return None;
                    }
                    let (opt, next) = rest.split_at(len);
                    rest = next;
                    return Some((kind, &opt[2..]));
                }
            }
        }
    })
}
