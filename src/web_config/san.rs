//! The subject alternative names of an X.509 certificate, read from its DER
//! bytes: what `client_allowed_sans` is matched against.
//!
//! Only what the match needs is read (RFC 5280: tbsCertificate → extensions →
//! subjectAltName), with every length checked; anything malformed gives `None`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One DER element: (tag, contents, what follows it).
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags: none in the structures read here
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(n)?;
        rest = after;
        bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let (contents, after) = rest.split_at_checked(len)?;
    Some((tag, contents, after))
}

/// The contents of an element that must have this tag.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match element(input)? {
        (t, contents, rest) if t == tag => Some((contents, rest)),
        _ => None,
    }
}

const SEQUENCE: u8 = 0x30;
const EXTENSIONS: u8 = 0xa3; // [3] EXPLICIT in tbsCertificate
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17
const RFC822_NAME: u8 = 0x81;
const DNS_NAME: u8 = 0x82;
const URI: u8 = 0x86;
const IP_ADDRESS: u8 = 0x87;

/// The DNS names, e-mail addresses, IP addresses and URIs of a certificate's
/// subjectAltName extension, as text (IP addresses as Go prints them: dotted
/// IPv4, IPv4-mapped IPv6 as IPv4, other IPv6 in RFC 5952 form). Empty when
/// the certificate has no such extension; `None` when the DER is malformed.
pub fn subject_alt_names(cert: &[u8]) -> Option<Vec<String>> {
    let (certificate, _) = expect(cert, SEQUENCE)?;
    let (mut tbs, _) = expect(certificate, SEQUENCE)?;
    let mut extensions = None;
    while !tbs.is_empty() {
        let (tag, contents, rest) = element(tbs)?;
        if tag == EXTENSIONS {
            extensions = Some(expect(contents, SEQUENCE)?.0);
        }
        tbs = rest;
    }
    let mut names = Vec::new();
    let Some(mut exts) = extensions else { return Some(names) };
    while !exts.is_empty() {
        let (ext, rest) = expect(exts, SEQUENCE)?;
        exts = rest;
        let (oid, mut ext) = expect(ext, OID)?;
        if let Some((BOOLEAN, _, rest)) = element(ext) {
            ext = rest; // critical
        }
        let (value, _) = expect(ext, OCTET_STRING)?;
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        let (mut general_names, _) = expect(value, SEQUENCE)?;
        while !general_names.is_empty() {
            let (tag, contents, rest) = element(general_names)?;
            general_names = rest;
            match tag {
                RFC822_NAME | DNS_NAME | URI => names.push(String::from_utf8_lossy(contents).into_owned()),
                IP_ADDRESS => names.push(ip_text(contents)?),
                _ => {} // otherName, directoryName…: Go does not match them either
            }
        }
    }
    Some(names)
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => {
            let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    /// openssl req -x509 … -addext "subjectAltName=DNS:scraper.example,email:ops@example.org,
    /// IP:192.0.2.7,IP:2001:db8::1,IP:::ffff:198.51.100.1,URI:spiffe://example.org/prometheus"
    /// -addext "keyUsage=critical,digitalSignature" (a critical extension after the names).
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIICBzCCAa2gAwIBAgIUB84j0Rl+d80FFflu/L/ghisDDEkwCgYIKoZIzj0EAwIw
EzERMA8GA1UEAwwIc2FuLXRlc3QwIBcNMjYxMjAzMDg0NTQzWhgPMjEyNjExMDkw
ODQ1NDNaMBMxETAPBgNVBAMMCHNhbi10ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAED5/C1Eqb5SmAY0aKOIFz1+rNiu3Wsq20/L9uGMnzhfX40dlxVQ2YkQz1
4UgOJ/8t5LZ92YmVgsUMvMmckjp2n6OB3DCB2TAdBgNVHQ4EFgQUS5PWufHQIMYy
cyGRCMQZwsje2sAwHwYDVR0jBBgwFoAUS5PWufHQIMYycyGRCMQZwsje2sAwDwYD
VR0TAQH/BAUwAwEB/zB2BgNVHREEbzBtgg9zY3JhcGVyLmV4YW1wbGWBD29wc0Bl
eGFtcGxlLm9yZ4cEwAACB4cQIAENuAAAAAAAAAAAAAAAAYcQAAAAAAAAAAAAAP//
xjNkAYYfc3BpZmZlOi8vZXhhbXBsZS5vcmcvcHJvbWV0aGV1czAOBgNVHQ8BAf8E
BAMCB4AwCgYIKoZIzj0EAwIDSAAwRQIhANNWlUwQd+2JJqatbcpzgr7rie7jfhbJ
0WdXl7y7nxeeAiA67xZN/A4DkVMRpI+Sa/MQUiL0BcXjFqyMwMgIV9Im3w==
-----END CERTIFICATE-----
";

    #[test]
    fn reads_every_kind_of_name() {
        let der = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
        assert_eq!(
            subject_alt_names(&der).unwrap(),
            [
                "scraper.example",
                "ops@example.org",
                "192.0.2.7",
                "2001:db8::1",
                "198.51.100.1",
                "spiffe://example.org/prometheus"
            ]
        );
    }

    #[test]
    fn malformed_or_truncated_der_is_none() {
        let der = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
        for cut in [0, 1, 2, 10, 100, der.len() / 2, der.len() - 1] {
            assert_eq!(subject_alt_names(&der[..cut]), None, "cut at {cut}");
        }
        assert_eq!(subject_alt_names(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(subject_alt_names(b"not a certificate"), None);
    }
}
