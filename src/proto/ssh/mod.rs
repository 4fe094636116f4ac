//! SSH: what is in clear (identification strings, KEXINIT, NEWKEYS), then
//! the sizes and times of encrypted packets. Content is never kept: after
//! NEWKEYS only lengths are looked at.

mod kex;
mod stream;

pub use kex::{KexInit, Negotiated, keystroke_size};
pub use stream::{SshEvent, SshStream};

use serde::Serialize;

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
}
