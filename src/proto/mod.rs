//! Which application protocol a session carries: by content first, by port
//! second (SSH on 2222 or 443 is still SSH).
//!
//! Each protocol is one module that owns its well-known ports, its content
//! probe, its handshake messages (request → answer pairs) and, where it has
//! one, its interactive dissector; it describes itself with a [`Spec`], and
//! [`PROTOCOLS`] lists them. Adding a protocol: a module with its `SPEC`, a
//! [`Proto`] variant, and one line in [`PROTOCOLS`].

pub mod anyconnect;
mod data;
mod detect;
pub mod ike;
pub mod linked;
pub mod openvpn;
pub mod rdp;
pub mod ssh;
mod tls;
pub mod tunnel;
pub mod vnc;
pub mod wireguard;

pub use data::Data;
pub use detect::{Classifier, detect_payload};

use crate::analysis::RttSample;
use crate::analysis::interactive::Interactive;
use crate::analysis::turns::Msg;
use crate::ip_proto::IpProto;
use crate::labels::label_enum;
use crate::side::Side;
use crate::time::Ts;
use rdp::RdpStream;
use ssh::SshStream;
use vnc::VncStream;

use serde::Serialize;

label_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Proto {
        Ssh = "ssh",
        Rdp = "rdp",
        Vnc = "vnc",
        Wireguard = "wireguard",
        Openvpn = "openvpn",
        Ike = "ike",
        Esp = "esp",
        Anyconnect = "anyconnect",
        Tls = "tls",
        Tcp = "tcp",
        Udp = "udp",
        Ip = "ip",
    }
}

impl Proto {
    /// The protocol a well-known server port suggests, if any.
    pub fn from_port(transport: IpProto, port: u16) -> Option<Proto> {
        PROTOCOLS
            .iter()
            .find(|s| s.ports.iter().any(|&(t, lo, hi)| t == transport && (lo..=hi).contains(&port)))
            .map(|s| s.proto)
    }

    /// The protocol of a session whose content proved nothing: the server
    /// port's, else the transport's.
    pub fn by_port(transport: IpProto, server_port: u16) -> Proto {
        Proto::from_port(transport, server_port).unwrap_or(match transport {
            IpProto::TCP => Proto::Tcp,
            IpProto::UDP => Proto::Udp,
            IpProto::ESP => Proto::Esp,
            _ => Proto::Ip,
        })
    }

    /// A protocol a person works through for hours (shells, desktops, TCP
    /// VPNs): its established sessions keep the long idle limit.
    pub fn is_remote_access(self) -> bool {
        self.spec().is_some_and(|s| s.remote_access)
    }

    /// The module of a protocol echoloc dissects (none for the transports).
    pub fn spec(self) -> Option<&'static Spec> {
        BY_PROTO[self.index()]
    }

    /// Is `port` a well-known server port of a protocol echoloc watches?
    pub fn is_server_port(transport: IpProto, port: u16) -> bool {
        Proto::from_port(transport, port).is_some() || (port < 1024 && port != 0)
    }
}

/// An interactive protocol's dissector with its keystroke and echo analysis:
/// what a protocol module's [`Spec::app`] makes for a session.
///
/// The dissector and the analysis, in that order (`repr(C)`): a data segment
/// reads the dissector's directions, then the analysis' first fields.
#[derive(Debug)]
#[repr(C)]
pub struct App {
    pub stream: Stream,
    pub inter: Interactive,
}

/// The dissector of each interactive protocol. Held in place, not boxed:
/// every data segment reads it, and the `App` around it is boxed already.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Stream {
    Ssh(SshStream),
    Vnc(VncStream),
    Rdp(RdpStream),
    /// A VPN tunnel: its inner traffic's analysis is the tunnel's own
    /// ([`tunnel::Tunnel::typing`]), fed by its control plane's reading of each packet.
    Tunnel,
}

impl App {
    /// Feed a data segment to the dissector and the keystroke analysis;
    /// returns a new echo delay (ms), if one was paired.
    #[inline(always)]
    pub fn on_data(&mut self, d: &Data<'_>) -> Option<f64> {
        match &mut self.stream {
            Stream::Ssh(stream) => ssh::on_data(stream, &mut self.inter, d),
            Stream::Vnc(stream) => vnc::on_data(stream, &mut self.inter, d),
            Stream::Rdp(stream) => rdp::on_data(stream, &mut self.inter, d),
            Stream::Tunnel => None,
        }
    }

    /// Feed a UDP datagram (`wire_len` bytes of payload on the wire) to a
    /// dissector that times its protocol's own numbering (RDP over UDP);
    /// returns the round-trip samples it gives, and the data of a datagram
    /// the desktop analysis reads ([`RdpStream::on_source`]).
    pub fn on_datagram(
        &mut self,
        ts: Ts,
        from: Side,
        payload: &[u8],
        wire_len: usize,
    ) -> ([Option<RttSample>; 2], Option<rdp::udp::Source>) {
        match &mut self.stream {
            Stream::Rdp(stream) => rdp::on_datagram(stream, ts, from, payload, wire_len),
            _ => ([None, None], None),
        }
    }

    /// A UDP flow's desktop news in this session (RDP); returns the echo.
    pub fn take_udp_news(&mut self, news: rdp::UdpNews) -> Option<f64> {
        match &mut self.stream {
            Stream::Rdp(stream) => stream.take_udp_news(&mut self.inter, news),
            _ => None,
        }
    }

    pub fn ssh_stream(&self) -> Option<&SshStream> {
        match &self.stream {
            Stream::Ssh(s) => Some(s),
            _ => None,
        }
    }

    pub fn rdp_stream(&self) -> Option<&RdpStream> {
        match &self.stream {
            Stream::Rdp(s) => Some(s),
            _ => None,
        }
    }

    pub fn rdp_stream_mut(&mut self) -> Option<&mut RdpStream> {
        match &mut self.stream {
            Stream::Rdp(s) => Some(s),
            _ => None,
        }
    }

    /// Settings of a new session's dissector: whether RDP's cookie (a user
    /// name) is kept.
    pub fn configure(&mut self, keep_rdp_cookie: bool) {
        if let Stream::Rdp(s) = &mut self.stream {
            s.keep_cookie = keep_rdp_cookie;
        }
    }
}

/// Reads the handshake message a payload starts with (IP protocol, payload).
pub type MessageFn = fn(IpProto, &[u8]) -> Option<Msg>;

/// What a protocol module tells the rest of echoloc.
pub struct Spec {
    pub proto: Proto,
    /// Well-known server ports: (IP protocol, first port, last port).
    pub ports: &'static [(IpProto, u16, u16)],
    /// Whether one payload proves the protocol (IP protocol, the session's
    /// server port, the payload as captured, its length on the wire: a short
    /// snap length captures less).
    pub probe: fn(IpProto, u16, &[u8], usize) -> bool,
    /// The handshake message a payload starts with (IP protocol, payload), for
    /// protocols whose clear handshake pairs a request with the real peer's
    /// answer (a tunnel's control plane pairs its own: `tunnel.rs`).
    pub message: Option<MessageFn>,
    /// The interactive dissector and keystroke analysis of a new session,
    /// for protocols a person types through.
    pub app: Option<fn() -> App>,
    /// A protocol a person works through for hours (shells, desktops, TCP
    /// VPNs): its established sessions keep the long idle limit.
    pub remote_access: bool,
}

/// Every protocol echoloc dissects, in the order payloads are probed.
pub const PROTOCOLS: [&Spec; 8] =
    [&ssh::SPEC, &vnc::SPEC, &rdp::SPEC, &tls::SPEC, &wireguard::SPEC, &ike::SPEC, &openvpn::SPEC, &anyconnect::SPEC];

/// [`PROTOCOLS`] by [`Proto::index`].
const BY_PROTO: [Option<&Spec>; Proto::ALL.len()] = {
    let mut by = [None; Proto::ALL.len()];
    let mut i = 0;
    while i < PROTOCOLS.len() {
        by[PROTOCOLS[i].proto as usize] = Some(PROTOCOLS[i]);
        i += 1;
    }
    by
};

/// The handshake message a payload of a `proto` session starts with, if
/// any: the answer is computed by the real protocol peer, so request →
/// answer is an application turnaround that reaches past any relay in
/// between (a SOCKS proxy, a port forwarder). `transport` is the IP
/// protocol (OpenVPN frames its packets over TCP, not over UDP).
#[inline]
pub fn message(proto: Proto, transport: IpProto, p: &[u8]) -> Option<Msg> {
    proto.spec()?.message?(transport, p)
}

#[cfg(test)]
mod tests;
