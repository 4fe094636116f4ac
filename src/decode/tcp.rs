//! TCP flags and options (MSS, window scale, SACK, timestamps).

use etherparse::{TcpOptionElement, TcpOptionsIterator};

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

    #[inline(never)]
    fn parse_any(bytes: &[u8]) -> TcpOptions {
        let mut o = TcpOptions::default();
        for el in TcpOptionsIterator::from_slice(bytes) {
            match el {
                Ok(TcpOptionElement::MaximumSegmentSize(m)) => o.mss = Some(m),
                Ok(TcpOptionElement::WindowScale(w)) => o.window_scale = Some(w),
                Ok(TcpOptionElement::SelectiveAcknowledgementPermitted) => o.sack_permitted = true,
                Ok(TcpOptionElement::SelectiveAcknowledgement(first, rest)) => {
                    o.sack[0] = first;
                    o.sack_len = 1;
                    for b in rest.into_iter().flatten() {
                        o.sack[o.sack_len as usize] = b;
                        o.sack_len += 1;
                    }
                }
                Ok(TcpOptionElement::Timestamp(val, ecr)) => o.timestamps = Some((val, ecr)),
                Ok(TcpOptionElement::Noop) => {}
                Err(_) => break,
            }
        }
        o
    }

    pub fn sack_blocks(&self) -> &[(u32, u32)] {
        &self.sack[..self.sack_len as usize]
    }
}
