//! AnyConnect-style TLS VPNs (Cisco AnyConnect / Secure Client,
//! OpenConnect and ocserv): the control connection is TLS on TCP 443
//! (CSTP: authentication, then the tunnel's configuration and, when UDP is
//! blocked, its data), the data channel DTLS on UDP to the same address and
//! port. Everything after the handshakes is encrypted; what stays in clear
//! is the DTLS record header (RFC 6347: content type, version, epoch,
//! sequence number, length) and the handshake's message types.
//!
//! The DTLS flow proves the protocol (a ClientHello to UDP 443: QUIC, the
//! other tenant of that port, has no such header); the engine links it to
//! the open TLS connection from the same client to the same server address
//! and port, which then becomes the tunnel's session (docs/sessions.md,
//! section 5). A TLS connection alone stays `tls`: CSTP without DTLS looks
//! like any HTTPS connection.

use super::{Proto, Spec};
use crate::analysis::turns::Msg;
use crate::ip_proto::IpProto;

/// The data channel's port: the control connection's (443 unless the
/// gateway listens elsewhere).
pub const PORT: u16 = 443;

pub const SPEC: Spec = Spec {
    proto: Proto::Anyconnect,
    // No port hint: TCP 443 is HTTPS's, UDP 443 QUIC's; content decides.
    ports: &[],
    probe: |transport, server_port, p, _| transport == IpProto::UDP && server_port == PORT && client_hello(p),
    // Its control plane pairs its own messages (`tunnel.rs`).
    message: None,
    app: None,
    remote_access: true,
};

/// DTLS record header: type, version, epoch, sequence number, length.
const HEADER: usize = 13;

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const HELLO_VERIFY_REQUEST: u8 = 3;

/// An application-data record body shorter than this cannot hold an inner
/// TCP segment (40 bytes of headers at least) under any cipher suite these
/// VPNs use, and is the size of their one-byte dead-peer-detection and
/// keepalive packets under each of them (AES-GCM 25, ChaCha20-Poly1305 17,
/// AES-CBC with SHA-1 48).
const MIN_DATA_BODY: usize = 52;

/// A DTLS record header: its content type, when the version is one of
/// DTLS 1.0 (0xfeff), 1.2 (0xfefd) or Cisco's pre-standard DTLS (0x0100).
fn record_type(p: &[u8]) -> Option<u8> {
    if p.len() < HEADER || !matches!((p[1], p[2]), (0xfe, 0xff) | (0xfe, 0xfd) | (0x01, 0x00)) {
        return None;
    }
    matches!(p[0], CHANGE_CIPHER_SPEC..=APPLICATION_DATA).then_some(p[0])
}

/// The first record's body length, from its header.
fn body_len(p: &[u8]) -> usize {
    u16::from_be_bytes([p[11], p[12]]) as usize
}

/// A datagram that starts with an unencrypted DTLS handshake record (epoch
/// 0): its first message's type.
fn handshake_type(p: &[u8]) -> Option<u8> {
    (record_type(p)? == HANDSHAKE && p[3..5] == [0, 0]).then(|| p.get(HEADER).copied())?
}

/// The datagram opens a DTLS handshake: a ClientHello in epoch 0.
pub fn client_hello(p: &[u8]) -> bool {
    handshake_type(p) == Some(CLIENT_HELLO)
}

/// The handshake's request → answer: the client's ClientHello, answered by
/// the gateway's ServerHello or HelloVerifyRequest (its cookie exchange),
/// which time the gateway's leg.
pub fn message(p: &[u8]) -> Option<Msg> {
    match handshake_type(p)? {
        CLIENT_HELLO => Some(Msg::Request(0)),
        SERVER_HELLO | HELLO_VERIFY_REQUEST => Some(Msg::Answer(0)),
        _ => None,
    }
}

/// The gateway's ServerHello: a DTLS key exchange done (a later one is a re-key).
pub fn server_hello(p: &[u8]) -> bool {
    handshake_type(p) == Some(SERVER_HELLO)
}

/// What a DTLS datagram of the data channel is (`len` its length on the
/// wire, `p` its captured start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram {
    /// An inner IP packet, encrypted.
    Data,
    /// A dead-peer detection or keepalive packet (one byte, encrypted).
    Keepalive,
    /// The handshake, a cipher change, an alert.
    Control,
    Other,
}

pub fn datagram(p: &[u8]) -> Datagram {
    match record_type(p) {
        Some(APPLICATION_DATA) if body_len(p) >= MIN_DATA_BODY => Datagram::Data,
        Some(APPLICATION_DATA) => Datagram::Keepalive,
        Some(CHANGE_CIPHER_SPEC | ALERT | HANDSHAKE) => Datagram::Control,
        _ => Datagram::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::detect_payload;

    /// A record header of `kind` and version, with a body of `body` bytes
    /// (its first byte `first`).
    fn record(kind: u8, version: [u8; 2], epoch: u8, body: usize, first: u8) -> Vec<u8> {
        let mut p = vec![kind, version[0], version[1], 0, epoch, 0, 0, 0, 0, 0, 1];
        p.extend((body as u16).to_be_bytes());
        p.push(first);
        p.resize(HEADER + body, 0xAA);
        p
    }

    #[test]
    fn a_client_hello_to_udp_443_proves_it() {
        // openconnect's: DTLS 1.0 record layer, ClientHello.
        let hello = record(HANDSHAKE, [0xfe, 0xff], 0, 155, CLIENT_HELLO);
        assert_eq!(detect_payload(IpProto::UDP, 443, &hello, hello.len()), Some(Proto::Anyconnect));
        assert_eq!(message(&hello), Some(Msg::Request(0)));
        // Another port (WebRTC, RD Gateway's 3391), TCP, or a later epoch: not this.
        assert_eq!(detect_payload(IpProto::UDP, 3391, &hello, hello.len()), None);
        assert_ne!(detect_payload(IpProto::TCP, 443, &hello, hello.len()), Some(Proto::Anyconnect));
        assert!(!client_hello(&record(HANDSHAKE, [0xfe, 0xfd], 1, 40, CLIENT_HELLO)));
        // QUIC's long header (0xc0 | type, version 1) and a truncated header.
        let quic = [0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0x44, 0xd0];
        assert_eq!(detect_payload(IpProto::UDP, 443, &quic, 1200), None);
        assert!(!client_hello(&hello[..12]));
    }

    #[test]
    fn the_gateways_answers() {
        let server = record(HANDSHAKE, [0xfe, 0xfd], 0, 95, SERVER_HELLO);
        assert_eq!(message(&server), Some(Msg::Answer(0)));
        assert!(server_hello(&server));
        let verify = record(HANDSHAKE, [0xfe, 0xff], 0, 35, HELLO_VERIFY_REQUEST);
        assert_eq!(message(&verify), Some(Msg::Answer(0)));
        assert!(!server_hello(&verify));
        // Cisco's pre-standard DTLS (0x0100) has the same header.
        assert_eq!(message(&record(HANDSHAKE, [1, 0], 0, 60, CLIENT_HELLO)), Some(Msg::Request(0)));
    }

    #[test]
    fn data_keepalives_and_control_by_size() {
        // Measured (ocserv + openconnect, DTLS 1.2 AES-GCM): a one-byte DPD
        // is a 38-byte datagram, an inner pure ACK 90, a keystroke 126.
        assert_eq!(datagram(&record(APPLICATION_DATA, [0xfe, 0xfd], 1, 25, 0)), Datagram::Keepalive);
        assert_eq!(datagram(&record(APPLICATION_DATA, [0xfe, 0xfd], 1, 77, 0)), Datagram::Data);
        assert_eq!(datagram(&record(APPLICATION_DATA, [0xfe, 0xfd], 1, 113, 0)), Datagram::Data);
        // AES-CBC with SHA-1: the DPD is 48 bytes of body, an inner ACK 80.
        assert_eq!(datagram(&record(APPLICATION_DATA, [1, 0], 1, 48, 0)), Datagram::Keepalive);
        assert_eq!(datagram(&record(APPLICATION_DATA, [1, 0], 1, 80, 0)), Datagram::Data);
        assert_eq!(datagram(&record(CHANGE_CIPHER_SPEC, [0xfe, 0xfd], 0, 1, 1)), Datagram::Control);
        assert_eq!(datagram(&record(ALERT, [0xfe, 0xfd], 1, 26, 0)), Datagram::Control);
        // Not DTLS: another version, another type, cut short.
        assert_eq!(datagram(&record(APPLICATION_DATA, [3, 3], 1, 80, 0)), Datagram::Other);
        assert_eq!(datagram(&record(24, [0xfe, 0xfd], 1, 80, 0)), Datagram::Other);
        assert_eq!(datagram(&[APPLICATION_DATA, 0xfe, 0xfd, 0]), Datagram::Other);
    }
}
