//! SSH: what is in clear (identification strings, KEXINIT, NEWKEYS), then
//! the sizes and times of encrypted packets. Content is never kept: after
//! NEWKEYS only lengths are looked at.

mod kex;
mod stream;

pub(crate) use kex::hassh;
pub use kex::{KexInit, Negotiated, keystroke_size};
pub use stream::{SshEvent, SshStream};

use super::{App, Data, Proto, Spec, Stream};
use crate::analysis::interactive::{Interactive, Pos};
use crate::ip_proto::IpProto;
use serde::Serialize;

pub const SPEC: Spec = Spec {
    proto: Proto::Ssh,
    ports: &[(IpProto::TCP, 22, 22)],
    probe: |transport, _, p, _| transport == IpProto::TCP && banner(p),
    message: None,
    app: Some(|| App { stream: Stream::Ssh(SshStream::default()), inter: Interactive::new(None) }),
    remote_access: true,
};

/// A data segment: the stream follows it, its clear text tells the
/// keystroke size and whether chaff can be sent, and each encrypted packet
/// goes to the keystroke analysis by its length.
#[inline(always)]
pub(super) fn on_data(stream: &mut SshStream, inter: &mut Interactive, d: &Data<'_>) -> Option<f64> {
    let ev = stream.on_segment(d.from, d.seq, d.len, d.payload)?;
    // What the clear text tells is looked at only when some was read.
    if ev.clear {
        if inter.keystroke_size().is_none() {
            inter.set_keystroke_size(stream.info.keystroke_size);
        }
        inter.set_chaff_capability(stream.info.chaff_capable(), stream.info.key_with_ping());
    }
    if !ev.encrypted {
        return None;
    }
    // The authentication exchange times each side only if the session was
    // seen from its start: its version lines, or (headers only) its handshake.
    if stream.start_seen().unwrap_or(d.syn_seen) {
        inter.set_start_seen();
    }
    let pos = Pos { end: d.seq.wrapping_add(d.len), ack: d.ack };
    inter.on_data(d.ts, d.from, ev.len, Some(pos))
}

/// An identification string: at the start, or within the first bytes of a
/// thin tunnel framing (WebSocket, proxies).
fn banner(p: &[u8]) -> bool {
    p.starts_with(b"SSH-")
        || (p.len() > 8 && p[..p.len().min(16)].windows(8).any(|w| w == b"SSH-2.0-" || w == b"SSH-1.99"))
}

/// What the clear-text start of an SSH connection told.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SshInfo {
    /// Identification strings ("SSH-2.0-OpenSSH_9.2p1 Debian-2"), client and server.
    pub client_version: Option<String>,
    pub server_version: Option<String>,
    /// Negotiated algorithms, when both KEXINITs were seen.
    pub kex: Option<String>,
    pub cipher: Option<String>,
    pub mac: Option<String>,
    /// Whether the server supports `ping@openssh.com` (OpenSSH ≥ 9.5, inferred from its version).
    pub ping_supported: Option<bool>,
    /// Payload size of a one-character keystroke packet for this session.
    pub keystroke_size: Option<u32>,
    /// HASSH of the client's KEXINIT and HASSH-server of the server's (MD5
    /// hex of `kex;encryption;mac;compression` as sent); null when it was not seen.
    pub hassh: Option<String>,
    pub hassh_server: Option<String>,
}

impl SshInfo {
    /// Whether both ends can send keystroke-timing chaff: the client must be
    /// OpenSSH ≥ 9.5 and the server must answer `ping@openssh.com` (OpenSSH
    /// ≥ 9.5). `Some(false)` as soon as one banner rules it out, `Some(true)`
    /// when both allow it, `None` while a banner is missing.
    pub fn chaff_capable(&self) -> Option<bool> {
        let able = |id: &Option<String>| id.as_deref().map(|id| openssh_version(id).is_some_and(|v| v >= (9, 5)));
        match (able(&self.client_version), able(&self.server_version)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        }
    }

    /// The client is OpenSSH 9.5–9.9, which sends a key typed inside a chaff
    /// train in one segment with a PING (10.0 sends them apart).
    pub fn key_with_ping(&self) -> bool {
        self.client_version.as_deref().and_then(openssh_version).is_some_and(|v| ((9, 5)..(10, 0)).contains(&v))
    }
}

/// OpenSSH version (major, minor) from an identification string.
pub fn openssh_version(id: &str) -> Option<(u32, u32)> {
    let v = id.split("OpenSSH_").nth(1)?;
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssh_versions() {
        assert_eq!(openssh_version("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"), Some((9, 2)));
        assert_eq!(openssh_version("SSH-2.0-OpenSSH_10.0"), Some((10, 0)));
        assert_eq!(openssh_version("SSH-1.99-Cisco-1.25"), None);
    }

    #[test]
    fn chaff_needs_both_ends_at_openssh_9_5() {
        let info = |c: Option<&str>, s: Option<&str>| SshInfo {
            client_version: c.map(String::from),
            server_version: s.map(String::from),
            ..SshInfo::default()
        };
        let new = Some("SSH-2.0-OpenSSH_10.0");
        let old = Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3");
        let putty = Some("SSH-2.0-PuTTY_Release_0.78");
        assert_eq!(info(new, new).chaff_capable(), Some(true));
        assert_eq!(info(new, old).chaff_capable(), Some(false));
        assert_eq!(info(putty, new).chaff_capable(), Some(false));
        assert_eq!(info(None, new).chaff_capable(), None);
        assert_eq!(info(None, old).chaff_capable(), Some(false));
        assert!(info(Some("SSH-2.0-OpenSSH_9.7"), new).key_with_ping());
        assert!(!info(new, new).key_with_ping());
    }
}
