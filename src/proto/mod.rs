//! Which application protocol a session carries: by content first, by port
//! second (SSH on 2222 or 443 is still SSH).

mod detect;
pub mod handshake;
pub mod ssh;
pub mod vnc;

pub use detect::{Classifier, detect_payload};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Ssh,
    Rdp,
    Vnc,
    Wireguard,
    Openvpn,
    Ike,
    Esp,
    Tls,
    Tcp,
    Udp,
    Ip,
}

impl Proto {
    pub const ALL: [Proto; 11] = [
        Proto::Ssh,
        Proto::Rdp,
        Proto::Vnc,
        Proto::Wireguard,
        Proto::Openvpn,
        Proto::Ike,
        Proto::Esp,
        Proto::Tls,
        Proto::Tcp,
        Proto::Udp,
        Proto::Ip,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Ssh => "ssh",
            Proto::Rdp => "rdp",
            Proto::Vnc => "vnc",
            Proto::Wireguard => "wireguard",
            Proto::Openvpn => "openvpn",
            Proto::Ike => "ike",
            Proto::Esp => "esp",
            Proto::Tls => "tls",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Ip => "ip",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The protocol a well-known server port suggests, if any.
    pub fn from_port(transport: u8, port: u16) -> Option<Proto> {
        Some(match (transport, port) {
            (6, 22) => Proto::Ssh,
            (6 | 17, 3389) => Proto::Rdp,
            (6, 5900..=5910) => Proto::Vnc,
            (17, 51820) => Proto::Wireguard,
            (6 | 17, 1194) => Proto::Openvpn,
            (17, 500 | 4500) => Proto::Ike,
            (6, 443) => Proto::Tls,
            _ => return None,
        })
    }

    /// The protocol of a session whose content proved nothing: the server
    /// port's, else the transport's.
    pub fn by_port(transport: u8, server_port: u16) -> Proto {
        Proto::from_port(transport, server_port).unwrap_or(match transport {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            50 => Proto::Esp,
            _ => Proto::Ip,
        })
    }

    /// A protocol a person works through for hours (shells, desktops, TCP
    /// VPNs): its established sessions keep the long idle limit.
    pub fn is_remote_access(self) -> bool {
        matches!(self, Proto::Ssh | Proto::Rdp | Proto::Vnc | Proto::Openvpn)
    }

    /// Is `port` a well-known server port of a protocol echoloc watches?
    pub fn is_server_port(transport: u8, port: u16) -> bool {
        Proto::from_port(transport, port).is_some() || (port < 1024 && port != 0)
    }
}
