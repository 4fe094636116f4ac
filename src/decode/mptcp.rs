//! The Multipath TCP option (TCP option kind 30, RFC 8684; RFC 6824 for
//! version 0): what joins subflows into one connection (MP_CAPABLE keys,
//! MP_JOIN tokens) and what maps each subflow's bytes onto the connection's
//! data sequence (DSS).

use super::tcp::{be32, options};

/// One Multipath TCP option, as far as echoloc reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mptcp {
    /// MP_CAPABLE: the first subflow's handshake. The sender's key (on a
    /// version 1 SYN/ACK, on a version 0 SYN or SYN/ACK, first on the third
    /// ACK) and the receiver's (second on the third ACK). With data (version
    /// 1, the first data the client sends), `data_len` maps the segment's
    /// bytes to the start of the client's data sequence.
    Capable { version: u8, sender_key: Option<u64>, receiver_key: Option<u64>, data_len: Option<u16> },
    /// MP_JOIN on a SYN: a new subflow of the connection whose receiver
    /// holds `token`.
    Join { token: u32 },
    /// MP_JOIN on a SYN/ACK or ACK (HMACs, nothing echoloc needs).
    JoinAck,
    /// Data sequence signal.
    Dss(Dss),
    /// ADD_ADDR, REMOVE_ADDR, MP_PRIO, MP_FAIL, MP_FASTCLOSE, MP_TCPRST…: the subtype.
    Other(u8),
}

/// A DSS option: the data-level ACK and the mapping of this subflow's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dss {
    /// Data ACK (4 or 8 bytes on the wire).
    pub data_ack: Option<u64>,
    pub map: Option<DssMap>,
    pub data_fin: bool,
}

/// `len` bytes of the subflow from relative sequence number `ssn` (1 is the
/// first byte after the SYN) carry the connection's bytes from `dsn`.
/// A 4-byte DSN on the wire is kept as its low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DssMap {
    pub dsn: u64,
    pub ssn: u32,
    pub len: u16,
}

const CAPABLE: u8 = 0;
const JOIN: u8 = 1;
const DSS: u8 = 2;

impl Mptcp {
    /// Parse the option's body (after kind and length). None if too short
    /// for its subtype.
    pub fn parse(body: &[u8]) -> Option<Mptcp> {
        let subtype = body.first()? >> 4;
        let version = body[0] & 0x0f;
        let rest = body.get(2..)?; // subtype/version, flags
        let flags = body[1];
        Some(match subtype {
            CAPABLE => {
                let key = |at: usize| rest.get(at..at + 8).map(be64);
                let (sender_key, receiver_key) = (key(0), key(8));
                // Version 1 third ACK with data: keys, then the data-level length.
                let data_len = (version >= 1 && rest.len() >= 18).then(|| u16::from_be_bytes([rest[16], rest[17]]));
                Mptcp::Capable { version, sender_key, receiver_key, data_len }
            }
            JOIN => match rest.len() {
                // SYN: receiver's token, then the sender's nonce.
                8 => Mptcp::Join { token: be32(&rest[..4]) },
                _ => Mptcp::JoinAck,
            },
            DSS => Mptcp::Dss(dss(flags, rest)?),
            other => Mptcp::Other(other),
        })
    }

    /// The Multipath TCP option of an options area that says most about the
    /// connection, if any: MP_CAPABLE or MP_JOIN, then DSS, then the others.
    pub fn find(options_area: &[u8]) -> Option<Mptcp> {
        options(options_area)
            .filter(|&(kind, _)| kind == 30)
            .filter_map(|(_, body)| Mptcp::parse(body))
            .max_by_key(|m| m.rank())
    }

    /// Which option a segment keeps when it carries several.
    fn rank(self) -> u8 {
        match self {
            Mptcp::Capable { .. } | Mptcp::Join { .. } => 3,
            Mptcp::Dss(_) => 2,
            Mptcp::JoinAck => 1,
            Mptcp::Other(_) => 0,
        }
    }
}

/// Flags: F DATA_FIN 0x10, m 8-byte DSN 0x08, M DSN present 0x04,
/// a 8-byte DATA_ACK 0x02, A DATA_ACK present 0x01. Then DATA_ACK, DSN,
/// subflow sequence number (4), data-level length (2), checksum (2, optional).
fn dss(flags: u8, mut rest: &[u8]) -> Option<Dss> {
    let mut take = |n: usize| -> Option<u64> {
        let (v, tail) = (rest.get(..n)?, rest.get(n..)?);
        rest = tail;
        Some(v.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
    };
    let mut d = Dss { data_fin: flags & 0x10 != 0, ..Dss::default() };
    if flags & 0x01 != 0 {
        d.data_ack = Some(take(if flags & 0x02 != 0 { 8 } else { 4 })?);
    }
    if flags & 0x04 != 0 {
        let dsn = take(if flags & 0x08 != 0 { 8 } else { 4 })?;
        let ssn = take(4)? as u32;
        let len = take(2)? as u16;
        d.map = Some(DssMap { dsn, ssn, len });
    }
    Some(d)
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpOptions;

    const KEY_C: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
    const KEY_S: [u8; 8] = [0xf2, 0xe5, 0x18, 0x56, 0xbb, 0x89, 0xb8, 0x8f];

    fn opt(body: &[u8]) -> Vec<u8> {
        [&[30, body.len() as u8 + 2][..], body].concat()
    }

    #[test]
    fn capable_carries_the_keys_where_each_version_puts_them() {
        // Version 1: no key on the SYN, the server's on the SYN/ACK, both on the third ACK.
        assert_eq!(
            Mptcp::parse(&[0x01, 0x01]),
            Some(Mptcp::Capable { version: 1, sender_key: None, receiver_key: None, data_len: None })
        );
        let synack = Mptcp::parse(&[&[0x01, 0x01][..], &KEY_S].concat()).unwrap();
        assert_eq!(
            synack,
            Mptcp::Capable { version: 1, sender_key: Some(0xf2e51856bb89b88f), receiver_key: None, data_len: None }
        );
        let ack = Mptcp::parse(&[&[0x01, 0x01][..], &KEY_C, &KEY_S].concat()).unwrap();
        assert_eq!(
            ack,
            Mptcp::Capable {
                version: 1,
                sender_key: Some(0x1122334455667788),
                receiver_key: Some(0xf2e51856bb89b88f),
                data_len: None
            }
        );
        let with_data = Mptcp::parse(&[&[0x01, 0x01][..], &KEY_C, &KEY_S, &[0, 21]].concat()).unwrap();
        assert!(matches!(with_data, Mptcp::Capable { data_len: Some(21), .. }));
        // Version 0 sends the client's key on the SYN.
        let syn0 = Mptcp::parse(&[&[0x00, 0x81][..], &KEY_C].concat()).unwrap();
        assert!(matches!(syn0, Mptcp::Capable { version: 0, sender_key: Some(0x1122334455667788), .. }));
    }

    #[test]
    fn join_syn_names_the_receivers_token() {
        let syn = [0x10, 0x02, 0x41, 0x85, 0xb5, 0xd1, 9, 9, 9, 9];
        assert_eq!(Mptcp::parse(&syn), Some(Mptcp::Join { token: 0x4185b5d1 }));
        assert_eq!(Mptcp::parse(&[0x10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), Some(Mptcp::JoinAck));
    }

    #[test]
    fn dss_reads_every_width() {
        // Linux: 8-byte DATA_ACK and DSN, mapping of 36 bytes.
        let body = [
            &[0x20, 0x0f][..],
            &[0, 0, 0, 0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 0, 0, 2, 0],
            &[0, 0, 0, 7],
            &[0, 36],
            &[0xab, 0xcd],
        ]
        .concat();
        let d = Dss { data_ack: Some(256), map: Some(DssMap { dsn: 512, ssn: 7, len: 36 }), data_fin: false };
        assert_eq!(Mptcp::parse(&body), Some(Mptcp::Dss(d)));
        // 4-byte ACK only; 4-byte DSN with DATA_FIN.
        assert_eq!(
            Mptcp::parse(&[0x20, 0x01, 0, 0, 1, 0]),
            Some(Mptcp::Dss(Dss { data_ack: Some(256), map: None, data_fin: false }))
        );
        let fin = Mptcp::parse(&[0x20, 0x14, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0]).unwrap();
        assert_eq!(
            fin,
            Mptcp::Dss(Dss { data_ack: None, map: Some(DssMap { dsn: 9, ssn: 1, len: 0 }), data_fin: true })
        );
        // Cut short: not a DSS at all.
        assert_eq!(Mptcp::parse(&[0x20, 0x0f, 0, 0, 0]), None);
    }

    #[test]
    fn options_after_an_mptcp_option_are_still_read() {
        let bytes = [
            &[1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9][..],
            &opt(&[0x20, 0x01, 0, 0, 1, 0]),
            &[1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2],
        ]
        .concat();
        let o = TcpOptions::parse(&bytes);
        assert_eq!(o.timestamps, Some((7, 9)));
        assert_eq!(o.sack_blocks(), &[(1, 2)]);
        assert!(matches!(Mptcp::find(&bytes), Some(Mptcp::Dss(Dss { data_ack: Some(256), .. }))));
        // ADD_ADDR does not hide a DSS in the same segment, before or after it.
        let (dss, add) = (opt(&[0x20, 0x01, 0, 0, 1, 0]), opt(&[0x30, 0x00, 192, 0, 2, 21]));
        assert!(matches!(Mptcp::find(&[&dss[..], &add].concat()), Some(Mptcp::Dss(_))));
        assert!(matches!(Mptcp::find(&[&add[..], &dss].concat()), Some(Mptcp::Dss(_))));
        assert_eq!(Mptcp::find(&[1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]), None);
        // A length past the options area ends parsing; what came before stays.
        let cut = [&[2, 4, 5, 0xb4][..], &[30, 20, 0x20]].concat();
        assert_eq!(TcpOptions::parse(&cut), TcpOptions { mss: Some(1460), ..TcpOptions::default() });
    }
}
