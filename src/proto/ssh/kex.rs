//! KEXINIT name-lists, HASSH fingerprints, and the packet-size arithmetic
//! of the negotiated cipher.

use crate::side::Side;

/// The name-lists of one KEXINIT (RFC 4253 §7.1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KexInit {
    pub kex: Vec<String>,
    pub hostkey: Vec<String>,
    pub enc_c2s: Vec<String>,
    pub enc_s2c: Vec<String>,
    pub mac_c2s: Vec<String>,
    pub mac_s2c: Vec<String>,
}

impl KexInit {
    /// Parse a KEXINIT payload (starting at the message number 20).
    pub fn parse(payload: &[u8]) -> Option<KexInit> {
        if payload.first() != Some(&20) || payload.len() < 17 {
            return None;
        }
        let mut at = 17;
        let mut lists: Vec<Vec<String>> = Vec::with_capacity(6);
        for _ in 0..6 {
            let len = u32::from_be_bytes(payload.get(at..at + 4)?.try_into().ok()?) as usize;
            at += 4;
            let raw = payload.get(at..at.checked_add(len)?)?;
            at += len;
            let text = std::str::from_utf8(raw).ok()?;
            lists.push(text.split(',').filter(|s| !s.is_empty()).map(String::from).collect());
        }
        let mut it = lists.into_iter();
        Some(KexInit {
            kex: it.next()?,
            hostkey: it.next()?,
            enc_c2s: it.next()?,
            enc_s2c: it.next()?,
            mac_c2s: it.next()?,
            mac_s2c: it.next()?,
        })
    }
}

/// The raw name-lists of a KEXINIT payload (starting at the message number
/// 20), in their order: kex, host key, encryption c→s and s→c, MAC c→s and
/// s→c, compression c→s and s→c. None if the payload holds fewer.
fn raw_lists(payload: &[u8]) -> Option<[&[u8]; 8]> {
    if payload.first() != Some(&20) {
        return None;
    }
    let mut at = 17usize;
    let mut lists: [&[u8]; 8] = [&[]; 8];
    for l in &mut lists {
        let len = u32::from_be_bytes(payload.get(at..at.checked_add(4)?)?.try_into().ok()?) as usize;
        at += 4;
        *l = payload.get(at..at.checked_add(len)?)?;
        at += len;
    }
    Some(lists)
}

/// HASSH (Salesforce) of a KEXINIT sent by `from`: the MD5, in lower-case
/// hex, of `kex;encryption;mac;compression`, the name-lists as sent, for
/// the direction that side sends in (client: client→server, the HASSH;
/// server: server→client, the HASSH-server). None if a list is missing.
pub fn hassh(payload: &[u8], from: Side) -> Option<String> {
    let l = raw_lists(payload)?;
    let (enc, mac, comp) = match from {
        Side::Client => (l[2], l[4], l[6]),
        Side::Server => (l[3], l[5], l[7]),
    };
    let mut text = Vec::with_capacity(l[0].len() + enc.len() + mac.len() + comp.len() + 3);
    for (i, part) in [l[0], enc, mac, comp].into_iter().enumerate() {
        if i > 0 {
            text.push(b';');
        }
        text.extend_from_slice(part);
    }
    Some(format!("{:x}", md5::compute(&text)))
}

/// Algorithms agreed by both sides (client→server direction).
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiated {
    pub kex: Option<String>,
    pub cipher: String,
    pub mac: Option<String>,
}

impl Negotiated {
    /// RFC 4253 §7.1: the first client algorithm the server also supports.
    pub fn from(client: &KexInit, server: &KexInit) -> Option<Negotiated> {
        let pick = |c: &[String], s: &[String]| c.iter().find(|a| s.contains(a)).cloned();
        let cipher = pick(&client.enc_c2s, &server.enc_c2s)?;
        let aead = cipher.contains("poly1305") || cipher.contains("gcm");
        let mac = if aead { None } else { pick(&client.mac_c2s, &server.mac_c2s) };
        Some(Negotiated { kex: pick(&client.kex, &server.kex), cipher, mac })
    }
}

/// Bytes of TCP payload that one SSH_MSG_CHANNEL_DATA carrying one byte
/// takes with this cipher and MAC: a keystroke, or its echo.
pub fn keystroke_size(n: &Negotiated) -> u32 {
    // payload: msg(1) + channel(4) + string length(4) + 1 byte = 10
    let payload = 10u32;
    let (block, mac_len, len_in_clear, etm) = cipher_shape(&n.cipher, n.mac.as_deref());
    // padding makes (padding_length byte + payload + padding [+ 4-byte length unless in clear]) a multiple of block, padding ≥ 4
    let covered = 1 + payload + if len_in_clear { 0 } else { 4 };
    let mut pad = (block - covered % block) % block;
    if pad < 4 {
        pad += block;
    }
    let _ = etm;
    4 + 1 + payload + pad + mac_len
}

/// (block size, MAC/tag length, length field outside the padded area, encrypt-then-MAC)
fn cipher_shape(cipher: &str, mac: Option<&str>) -> (u32, u32, bool, bool) {
    if cipher.starts_with("chacha20-poly1305") {
        return (8, 16, true, false);
    }
    if cipher.contains("gcm") {
        return (16, 16, true, false);
    }
    let block = if cipher.starts_with("3des") || cipher.starts_with("blowfish") { 8 } else { 16 };
    let mac = mac.unwrap_or("");
    let etm = mac.contains("-etm@");
    let mac_len = if mac.contains("sha2-512") {
        64
    } else if mac.contains("sha2-256") {
        32
    } else if mac.contains("umac-64") || mac.contains("-96") {
        if mac.contains("umac-64") { 8 } else { 12 }
    } else if mac.contains("umac-128") || mac.contains("md5") {
        16
    } else {
        20 // hmac-sha1
    };
    (block, mac_len, etm, etm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(c: &str, m: Option<&str>) -> Negotiated {
        Negotiated { kex: None, cipher: c.into(), mac: m.map(String::from) }
    }

    #[test]
    fn keystroke_sizes_by_cipher() {
        // Measured with OpenSSH: chacha20-poly1305 keystrokes are 36 bytes of TCP payload.
        assert_eq!(keystroke_size(&neg("chacha20-poly1305@openssh.com", None)), 36);
        assert_eq!(keystroke_size(&neg("aes256-gcm@openssh.com", None)), 36);
        assert_eq!(keystroke_size(&neg("aes128-ctr", Some("hmac-sha2-256-etm@openssh.com"))), 52);
        assert_eq!(keystroke_size(&neg("aes128-ctr", Some("hmac-sha2-256"))), 64);
        assert_eq!(keystroke_size(&neg("aes128-ctr", Some("hmac-sha1"))), 52);
    }

    #[test]
    fn parses_kexinit_and_negotiates() {
        let mut p = vec![20u8];
        p.extend([0u8; 16]);
        for list in [
            "curve25519-sha256,ext-info-c",
            "ssh-ed25519",
            "chacha20-poly1305@openssh.com,aes128-ctr",
            "aes128-ctr",
            "hmac-sha2-256",
            "hmac-sha2-256",
            "none",
            "none",
            "",
            "",
        ] {
            p.extend((list.len() as u32).to_be_bytes());
            p.extend(list.as_bytes());
        }
        p.extend([0, 0, 0, 0, 0]);
        let k = KexInit::parse(&p).unwrap();
        assert_eq!(k.kex, vec!["curve25519-sha256", "ext-info-c"]);
        let mut server = k.clone();
        server.enc_c2s = vec!["aes128-ctr".into()];
        let n = Negotiated::from(&k, &server).unwrap();
        assert_eq!(n.cipher, "aes128-ctr");
        assert_eq!(n.mac.as_deref(), Some("hmac-sha2-256"));
        assert!(KexInit::parse(&p[..30]).is_none());
    }

    /// HASSH and HASSH-server take each side's own direction's lists, as
    /// sent. Expected: `python3 -c "import hashlib; print(hashlib.md5(b'...').hexdigest())"`
    /// of the joined lists; tests/fields.rs compares the bundled captures with tshark.
    #[test]
    fn hassh_of_each_side() {
        let mut p = vec![20u8];
        p.extend([7u8; 16]);
        let lists = [
            "curve25519-sha256,ext-info-c",
            "ssh-ed25519",
            "chacha20-poly1305@openssh.com,aes128-ctr",
            "aes128-ctr",
            "hmac-sha2-256",
            "hmac-sha2-512",
            "none",
            "zlib@openssh.com",
            "",
            "",
        ];
        for list in lists {
            p.extend((list.len() as u32).to_be_bytes());
            p.extend(list.as_bytes());
        }
        p.extend([0, 0, 0, 0, 0]);
        // md5("curve25519-sha256,ext-info-c;chacha20-poly1305@openssh.com,aes128-ctr;hmac-sha2-256;none")
        assert_eq!(hassh(&p, Side::Client).as_deref(), Some("f3536a829bbbe7404730f4e8ceced46b"));
        // md5("curve25519-sha256,ext-info-c;aes128-ctr;hmac-sha2-512;zlib@openssh.com")
        assert_eq!(hassh(&p, Side::Server).as_deref(), Some("c385f81ca573ca867a6d505159f29b55"));
        // Cut inside the compression lists: no fingerprint.
        let cut = 17 + lists[..7].iter().map(|l| 4 + l.len()).sum::<usize>() + 2;
        assert_eq!(hassh(&p[..cut], Side::Client), None);
        assert_eq!(hassh(&p[1..], Side::Client), None, "not a KEXINIT");
    }
}
