//! TPKT (RFC 1006) and X.224 connection request / confirm, with RDP's
//! negotiation structures (MS-RDPBCGR 2.2.1.1 and 2.2.1.2).
//!
//! TPKT: version 3, reserved 0, length (16 bits, big-endian, the whole
//! packet). X.224 connection TPDU: length indicator, code (0xE0 request,
//! 0xD0 confirm), destination and source references, class: 7 bytes, so
//! RDP's own data starts at offset 11.

/// X.224 TPDU codes (high nibble).
pub const CONNECTION_REQUEST: u8 = 0xE0;
pub const CONNECTION_CONFIRM: u8 = 0xD0;
pub const DATA: u8 = 0xF0;

/// Where RDP's data starts in a connection request or confirm.
const VARIABLE: usize = 11;
/// Longest cookie kept (the `Cookie: ` line's value).
const MAX_COOKIE: usize = 64;

/// A TPKT (version 3) packet carrying an X.224 connection request or
/// confirm: its TPDU code, 0xE0 (request) or 0xD0 (confirm).
pub fn connection(p: &[u8]) -> Option<u8> {
    let code = p.get(5)? & 0xF0;
    (p.len() >= 7 && p[0] == 3 && p[1] == 0 && matches!(code, CONNECTION_REQUEST | CONNECTION_CONFIRM)).then_some(code)
}

/// The length a TPKT header announces (the whole packet), if `p` starts with one.
pub fn tpkt_len(p: &[u8]) -> Option<usize> {
    let (v, r) = (*p.first()?, *p.get(1)?);
    let len = u16::from_be_bytes([*p.get(2)?, *p.get(3)?]) as usize;
    (v == 3 && r == 0 && len >= 7).then_some(len)
}

/// The X.224 TPDU code of a TPKT packet (high nibble of its second byte).
pub fn tpdu_code(p: &[u8]) -> Option<u8> {
    tpkt_len(p)?;
    Some(p.get(5)? & 0xF0)
}

/// What a connection request carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The `Cookie: ` line's value: `mstshash=NAME` (a user name) or a
    /// load balancer's routing token `msts=...`; printable ASCII only.
    pub cookie: Option<String>,
    /// RDP_NEG_REQ's requestedProtocols, when the request has one.
    pub requested: Option<u32>,
}

/// The answer a connection confirm carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// RDP_NEG_RSP: the selected protocol.
    Selected(u32),
    /// RDP_NEG_FAILURE: the failure code.
    Failure(u32),
    /// No negotiation data: a legacy server, Standard RDP Security.
    Legacy,
}

/// The RDP part of a TPKT + X.224 packet (up to what the TPKT length says,
/// as far as it was captured).
fn rdp_part(p: &[u8], code: u8) -> Option<&[u8]> {
    let len = tpkt_len(p)?;
    if tpdu_code(p)? != code {
        return None;
    }
    p.get(VARIABLE..len.min(p.len()))
}

/// An RDP negotiation structure: type, flags, length 8, a 32-bit value.
fn negotiation(p: &[u8], kind: u8) -> Option<u32> {
    let b = p.get(..8)?;
    (b[0] == kind && u16::from_le_bytes([b[2], b[3]]) == 8).then(|| u32::from_le_bytes([b[4], b[5], b[6], b[7]]))
}

/// Read a connection request: its cookie line and its RDP_NEG_REQ.
pub fn request(p: &[u8]) -> Option<Request> {
    let mut rest = rdp_part(p, CONNECTION_REQUEST)?;
    let mut req = Request::default();
    if let Some(line) = rest.strip_prefix(b"Cookie: ".as_slice()) {
        // The line ends with CR LF; a cut-off line is not read.
        let end = line.windows(2).position(|w| w == b"\r\n")?;
        let value = &line[..end];
        if value.len() <= MAX_COOKIE && value.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            req.cookie = Some(String::from_utf8_lossy(value).into_owned());
        }
        rest = &line[end + 2..];
    }
    req.requested = negotiation(rest, 0x01);
    Some(req)
}

/// Read a connection confirm: RDP_NEG_RSP, RDP_NEG_FAILURE, or neither.
pub fn confirm(p: &[u8]) -> Option<Confirm> {
    let rest = rdp_part(p, CONNECTION_CONFIRM)?;
    if rest.is_empty() {
        return Some(Confirm::Legacy);
    }
    if let Some(v) = negotiation(rest, 0x02) {
        return Some(Confirm::Selected(v));
    }
    negotiation(rest, 0x03).map(Confirm::Failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection request of pcaps/public/suricata-verify/RDP-003.pcap (frame 4).
    const RDP003_CR: &[u8] = b"\x03\x00\x00\x24\x1f\xe0\x00\x00\x00\x00\x00Cookie: mstshash=A70067\r\n";

    fn cr(cookie: &[u8], neg: Option<u32>) -> Vec<u8> {
        let mut v = vec![3, 0, 0, 0, 0, 0xE0, 0, 0, 0, 0, 0];
        v.extend_from_slice(cookie);
        if let Some(n) = neg {
            v.extend_from_slice(&[1, 0, 8, 0]);
            v.extend_from_slice(&n.to_le_bytes());
        }
        let len = v.len() as u16;
        v[2..4].copy_from_slice(&len.to_be_bytes());
        v[4] = (len - 5) as u8;
        v
    }

    #[test]
    fn reads_a_request_with_a_cookie_only() {
        let r = request(RDP003_CR).unwrap();
        assert_eq!(r.cookie.as_deref(), Some("mstshash=A70067"));
        assert_eq!(r.requested, None);
        assert_eq!(connection(RDP003_CR), Some(0xE0));
    }

    #[test]
    fn reads_a_request_with_cookie_and_negotiation() {
        let p = cr(b"Cookie: mstshash=AWAKECODI\r\n", Some(3));
        let r = request(&p).unwrap();
        assert_eq!(r.cookie.as_deref(), Some("mstshash=AWAKECODI"));
        assert_eq!(r.requested, Some(3));
        // A routing token, and no cookie at all.
        let r = request(&cr(b"Cookie: msts=3640205228.15629.0000\r\n", Some(0x0B))).unwrap();
        assert_eq!((r.cookie.as_deref(), r.requested), (Some("msts=3640205228.15629.0000"), Some(0x0B)));
        assert_eq!(request(&cr(b"", Some(8))).unwrap(), Request { cookie: None, requested: Some(8) });
        assert_eq!(request(&cr(b"", None)).unwrap(), Request::default());
    }

    #[test]
    fn truncated_or_garbage_requests_yield_nothing_wrong() {
        let p = cr(b"Cookie: mstshash=bob\r\n", Some(3));
        for cut in 0..p.len() {
            let r = request(&p[..cut]);
            // Cut before the end of the cookie line: no cookie (never a part of it).
            if let Some(r) = r {
                assert!(r.cookie.is_none() || r.cookie.as_deref() == Some("mstshash=bob"), "cut {cut}");
                assert!(r.requested.is_none() || cut == p.len(), "cut {cut}");
            }
        }
        assert_eq!(request(b"\x16\x03\x01\x00\xc8\x01"), None);
        assert_eq!(request(&[3, 0, 0, 3]), None);
        assert_eq!(request(&[]), None);
        // A confirm is no request.
        assert_eq!(request(&[3, 0, 0, 11, 6, 0xD0, 0, 0, 0x12, 0x34, 0]), None);
        // A cookie with control characters is not kept.
        assert_eq!(request(&cr(b"Cookie: mstshash=a\x01b\r\n", None)).unwrap().cookie, None);
    }

    #[test]
    fn reads_confirms() {
        // pcaps/public/suricata-verify/RDP-003.pcap frame 6: no negotiation.
        assert_eq!(confirm(&[3, 0, 0, 11, 6, 0xD0, 0, 0, 0x12, 0x34, 0]), Some(Confirm::Legacy));
        let rsp = [3, 0, 0, 19, 14, 0xD0, 0, 0, 0x12, 0x34, 0, 2, 0x1f, 8, 0, 2, 0, 0, 0];
        assert_eq!(confirm(&rsp), Some(Confirm::Selected(2)));
        let fail = [3, 0, 0, 19, 14, 0xD0, 0, 0, 0x12, 0x34, 0, 3, 0, 8, 0, 5, 0, 0, 0];
        assert_eq!(confirm(&fail), Some(Confirm::Failure(5)));
        // Truncated negotiation data, a bad length, garbage.
        assert_eq!(confirm(&rsp[..15]), None);
        let mut bad = rsp;
        bad[13] = 9;
        assert_eq!(confirm(&bad), None);
        assert_eq!(confirm(b"garbage garbage"), None);
        assert_eq!(confirm(&[3, 0]), None);
    }
}
