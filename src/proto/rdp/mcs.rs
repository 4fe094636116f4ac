//! The MCS Connect Initial (T.125, BER) a client sends under Standard RDP
//! Security, with the GCC Conference Create Request (T.124, PER) around
//! the client data blocks (MS-RDPBCGR 2.2.1.3): only the client core data's
//! `version` and `clientBuild` are read, nothing personal (not the name).
//!
//! TPKT (4 bytes), X.224 data TPDU (3 bytes: 02 F0 80), then the BER
//! Connect-Initial (application tag 101: 7F 65) whose last field, the
//! `userData` octet string, holds the GCC request; in it the client data
//! blocks follow the H.221 key "Duca" and a PER length.

use super::x224::{DATA, tpdu_code, tpkt_len};

/// TS_UD_CS_CORE's header type.
const CS_CORE: u16 = 0xC001;

/// What the client core data tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCore {
    /// RDP version (0x00080004: RDP 5.0 to 8.1; 0x00080005 and up: RDP 10).
    pub version: u32,
    pub build: u32,
}

/// A BER length at `p` (short or long form, up to 2 bytes): (length, bytes read).
fn ber_len(p: &[u8]) -> Option<(usize, usize)> {
    let b = *p.first()?;
    match b {
        0..=0x7F => Some((b as usize, 1)),
        0x81 => Some((*p.get(1)? as usize, 2)),
        0x82 => Some((u16::from_be_bytes([*p.get(1)?, *p.get(2)?]) as usize, 3)),
        _ => None,
    }
}

/// Read the client core data of an MCS Connect Initial (a whole TPKT).
pub fn connect_initial(p: &[u8]) -> Option<ClientCore> {
    let end = tpkt_len(p)?.min(p.len());
    if tpdu_code(p)? != DATA || p.get(4..7)? != [2, 0xF0, 0x80] {
        return None;
    }
    let ber = p.get(7..end)?;
    if ber.get(..2)? != [0x7F, 0x65] {
        return None;
    }
    let (len, n) = ber_len(ber.get(2..)?)?;
    let mut body = ber.get(2 + n..(2 + n + len).min(ber.len()))?;
    // Its fields in turn; the user data is the octet string after the
    // domain parameters (three sequences).
    let mut sequences = 0;
    while !body.is_empty() {
        let tag = body[0];
        let (len, n) = ber_len(body.get(1..)?)?;
        let value = body.get(1 + n..1 + n + len)?;
        if tag == 0x30 {
            sequences += 1;
        } else if tag == 0x04 && sequences == 3 {
            return client_core(value);
        }
        body = &body[1 + n + len..];
    }
    None
}

/// The client core data in a GCC Conference Create Request.
fn client_core(gcc: &[u8]) -> Option<ClientCore> {
    let key = gcc.windows(4).position(|w| w == b"Duca")?;
    let rest = gcc.get(key + 4..)?;
    // PER length: one byte, or two with the high bit set.
    let skip = if *rest.first()? & 0x80 != 0 { 2 } else { 1 };
    let mut blocks = rest.get(skip..)?;
    while blocks.len() >= 4 {
        let kind = u16::from_le_bytes([blocks[0], blocks[1]]);
        let len = u16::from_le_bytes([blocks[2], blocks[3]]) as usize;
        if len < 4 {
            return None;
        }
        if kind == CS_CORE {
            let b = blocks.get(..len)?;
            let u32_at = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
            return Some(ClientCore { version: u32_at(4)?, build: u32_at(20)? });
        }
        blocks = blocks.get(len..)?;
    }
    None
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An MCS Connect Initial as a Windows XP client (RDP 5.x, build 2600)
    /// sends it, shortened to the core data block; the client name is
    /// "NAME" here.
    pub(crate) fn connect_initial_bytes(version: u32, build: u32) -> Vec<u8> {
        let mut core = Vec::new();
        core.extend_from_slice(&CS_CORE.to_le_bytes());
        core.extend_from_slice(&0u16.to_le_bytes()); // length, set below
        core.extend_from_slice(&version.to_le_bytes());
        core.extend_from_slice(&[0x00, 0x04, 0x00, 0x03, 0x01, 0xCA, 0x03, 0xAA]); // 1024x768, 8 bpp, SAS
        core.extend_from_slice(&0x0409u32.to_le_bytes()); // keyboard layout
        core.extend_from_slice(&build.to_le_bytes());
        let mut name = [0u8; 32];
        name[..8].copy_from_slice(b"N\0A\0M\0E\0");
        core.extend_from_slice(&name);
        let len = core.len() as u16;
        core[2..4].copy_from_slice(&len.to_le_bytes());
        // GCC Conference Create Request: T.124 key, lengths, "Duca", PER length, blocks.
        let mut gcc = vec![0x00, 0x05, 0x00, 0x14, 0x7c, 0x00, 0x01, 0x81, 0x2a, 0x00, 0x08, 0x00, 0x10, 0x00];
        gcc.extend_from_slice(&[0x01, 0xc0, 0x00]);
        gcc.extend_from_slice(b"Duca");
        gcc.extend_from_slice(&[0x81, core.len() as u8]);
        gcc.extend_from_slice(&core);
        let params = [0x02, 0x01, 0x22, 0x02, 0x01, 0x02];
        let mut body = vec![0x04, 0x01, 0x01, 0x04, 0x01, 0x01, 0x01, 0x01, 0xFF];
        for _ in 0..3 {
            body.push(0x30);
            body.push(params.len() as u8);
            body.extend_from_slice(&params);
        }
        body.extend_from_slice(&[0x04, 0x82]);
        body.extend_from_slice(&(gcc.len() as u16).to_be_bytes());
        body.extend_from_slice(&gcc);
        let mut p = vec![3, 0, 0, 0, 2, 0xF0, 0x80, 0x7F, 0x65, 0x82];
        p.extend_from_slice(&(body.len() as u16).to_be_bytes());
        p.extend_from_slice(&body);
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p
    }

    #[test]
    fn reads_version_and_build() {
        let p = connect_initial_bytes(0x0008_0004, 2600);
        assert_eq!(connect_initial(&p), Some(ClientCore { version: 0x0008_0004, build: 2600 }));
    }

    #[test]
    fn truncated_or_garbage_yields_nothing() {
        let p = connect_initial_bytes(0x0008_000C, 22621);
        for cut in 0..p.len() - 40 {
            assert_eq!(connect_initial(&p[..cut]), None, "cut {cut}");
        }
        assert_eq!(connect_initial(b"\x03\x00\x00\x0b\x06\xe0\x00\x00\x00\x00\x00"), None);
        assert_eq!(connect_initial(&[3, 0, 0, 12, 2, 0xF0, 0x80, 0x7F, 0x65, 0x85, 0, 0]), None);
        let mut bad = p.clone();
        let duca = bad.windows(4).position(|w| w == b"Duca").unwrap();
        bad[duca] = b'X';
        assert_eq!(connect_initial(&bad), None);
        let noise: Vec<u8> = (0..600u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        assert_eq!(connect_initial(&noise), None);
    }
}
