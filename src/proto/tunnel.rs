//! A tunnel's own control plane (WireGuard, OpenVPN, IPsec, AnyConnect): what each
//! packet carries ([`Carried`]: the tunnel's data, its keepalives, its
//! control messages), the control messages' request → answer pairs (which
//! time the leg of the side that answered, whoever asked: a gateway's
//! re-key or dead-peer check times the client's leg), handshakes and
//! re-keys, and the join identifiers that link a session's further tuples
//! (docs/sessions.md, section 5).
//!
//! [`Tunnel::on_payload`] is called for every payload of a tunnel session,
//! and [`Tunnel::on_packet`] for each tunnel packet in it (one per UDP
//! datagram or ESP packet, each OpenVPN packet of a TCP segment): the one
//! place an analysis of the inner traffic attaches.

use super::linked::{Link, LinkedFlows};
use super::{Proto, anyconnect, ike, openvpn, wireguard};
use crate::analysis::tunnel::TunnelTyping;
use crate::analysis::turns::{Msg, Turns};
use crate::ip_proto::IpProto;
use crate::side::Side;
use crate::time::Ts;
use std::net::IpAddr;

/// What one tunnel packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// An inner IP packet, encrypted: `len` the outer payload's length
    /// (WireGuard transport data beyond 32 bytes, OpenVPN P_DATA_V1/V2,
    /// ESP in UDP, ESP).
    Data {
        len: usize,
    },
    /// A keepalive (WireGuard's empty transport data, a NAT-T keepalive).
    Keepalive,
    /// A message of the tunnel's control plane (handshake, re-key, IKE,
    /// OpenVPN's control channel and its acknowledgements).
    Control,
    Other,
}

/// Which tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Wireguard,
    Openvpn,
    Ipsec,
    /// A TLS VPN: its TLS control connection, its DTLS data channel.
    Anyconnect,
}

impl Kind {
    /// The tunnel a session's protocol is, if any.
    pub fn of(proto: Proto) -> Option<Kind> {
        match proto {
            Proto::Wireguard => Some(Kind::Wireguard),
            Proto::Openvpn => Some(Kind::Openvpn),
            Proto::Ike | Proto::Esp => Some(Kind::Ipsec),
            Proto::Anyconnect => Some(Kind::Anyconnect),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Wireguard => "wireguard",
            Kind::Openvpn => "openvpn",
            Kind::Ipsec => "ipsec",
            Kind::Anyconnect => "anyconnect",
        }
    }
}

/// An identifier a tunnel puts on the wire that names its session on
/// another tuple: WireGuard's receiver index, IKE's initiator SPI, or (for
/// ESP, whose SPIs are agreed encrypted) the two peers' addresses, lower
/// first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinId {
    Index(u32),
    Spi(u64),
    Addresses(IpAddr, IpAddr),
}

impl JoinId {
    /// The record's `link` for a flow found by this identifier.
    pub fn how(self) -> &'static str {
        match self {
            JoinId::Index(_) => "index",
            JoinId::Spi(_) => "spi",
            JoinId::Addresses(..) => "addresses",
        }
    }
}

/// What a payload showed that the engine links flows by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// WireGuard transport data (or keepalive): its receiver index.
    pub index: Option<u32>,
    /// WireGuard handshake response: (the initiator's index, the
    /// responder's index); its sender is the responder.
    pub handshake: Option<(u32, u32)>,
    /// IKE: the message's initiator SPI.
    pub spi: Option<u64>,
    /// ESP in UDP (NAT traversal on 4500).
    pub esp: bool,
}

/// Data packets one payload may carry (OpenVPN over TCP: one segment, several packets).
const MAX_INNER: usize = 64;

/// Join identifiers a session keeps in the engine's map at most (a
/// WireGuard handshake's two indices, and the previous handshake's).
pub const MAX_IDS: usize = 4;

/// A tunnel session's control-plane state and counts.
#[derive(Debug)]
pub struct Tunnel {
    pub kind: Kind,
    /// UDP on 4500 (IKE behind a marker, ESP in UDP).
    natt: bool,
    transport: IpProto,
    /// OpenVPN: the control channel's protection, once seen.
    pub mode: Option<openvpn::Mode>,
    /// Per side (client, server): control messages, data packets, keepalives.
    pub control: [u64; 2],
    pub data: [u64; 2],
    pub keepalives: [u64; 2],
    /// Key exchanges completed (WireGuard handshakes, IKE SA setups,
    /// OpenVPN server hard resets).
    pub handshakes: u64,
    /// Re-keys: WireGuard handshakes after the first, IKEv2 CREATE_CHILD_SA
    /// exchanges, IKEv1 quick modes, OpenVPN soft resets (new key ids).
    pub rekeys: u64,
    /// A linked flow: the session it belongs to.
    pub link: Option<Link>,
    /// Whether linking was tried on this flow already (its first packets).
    pub link_tried: bool,
    /// The session's linked flows.
    pub linked: LinkedFlows,
    /// Join identifiers this session owns in the engine's map.
    pub ids: Vec<JoinId>,
    /// OpenVPN: state of the reliability layer.
    ovpn: Option<Box<Ovpn>>,
    /// IKE: the last exchanges counted (a retransmitted answer counts once).
    ike_counted: Option<(u64, u32)>,
    ike_v1_sa: Option<u64>,
    ike_v1_quick: Option<u32>,
    /// The inner traffic: keys, echoes and the round trip through the tunnel
    /// (a linked flow's packets go to its session's).
    pub typing: TunnelTyping,
    /// The last payload's data packets (sender, outer length), in order.
    pub inner: Vec<(Side, u32)>,
}

#[derive(Debug, Default)]
struct Ovpn {
    /// Over TCP, each direction's framing.
    framers: [openvpn::Framer; 2],
    /// Per side and key id: the next message packet-id not seen yet (a
    /// lower one is a retransmission, no sample).
    next_id: [[u32; 8]; 2],
    /// The server's session id of the last hard reset counted.
    server_session: Option<u64>,
    /// The key id of the last soft reset counted.
    soft_key: Option<u8>,
}

impl Tunnel {
    pub fn new(kind: Kind, transport: IpProto, ports: (u16, u16)) -> Tunnel {
        Tunnel {
            kind,
            natt: transport == IpProto::UDP && (ports.0 == 4500 || ports.1 == 4500),
            transport,
            mode: None,
            control: [0; 2],
            data: [0; 2],
            keepalives: [0; 2],
            handshakes: 0,
            rekeys: 0,
            link: None,
            link_tried: false,
            linked: LinkedFlows::default(),
            ids: Vec::new(),
            ovpn: (kind == Kind::Openvpn).then(Box::default),
            ike_counted: None,
            ike_v1_sa: None,
            ike_v1_quick: None,
            typing: TunnelTyping::default(),
            inner: Vec::new(),
        }
    }

    /// Whether keepalives can be told apart (WireGuard's and NAT-T's are,
    /// AnyConnect's by their size; OpenVPN's ping travels encrypted as data).
    pub fn keepalives_seen(&self) -> bool {
        self.kind != Kind::Openvpn
    }

    /// Every payload of the session: `tcp` its segment's sequence number
    /// and length (OpenVPN over TCP: the packets in it, by their framing).
    pub fn on_payload(
        &mut self,
        ts: Ts,
        from: Side,
        tcp: Option<(u32, u32)>,
        payload: &[u8],
        len: usize,
        turns: &mut Turns,
    ) -> Seen {
        let mut seen = Seen::default();
        self.inner.clear();
        match (tcp, self.ovpn.as_deref_mut()) {
            (Some((seq, len)), Some(o)) => {
                // The framer stands aside while its packets are read.
                let mut framer = std::mem::take(&mut o.framers[from as usize]);
                framer.feed(seq, len, payload, |head, n| self.on_packet(ts, from, head, n, turns, &mut seen));
                if let Some(o) = self.ovpn.as_deref_mut() {
                    o.framers[from as usize] = framer;
                }
            }
            (Some(_), None) => {}
            (None, _) => self.on_packet(ts, from, payload, len, turns, &mut seen),
        }
        seen
    }

    /// One tunnel packet (`p` its captured start, `len` its length): what
    /// it carries, counted; its control messages paired.
    pub fn on_packet(&mut self, ts: Ts, from: Side, p: &[u8], len: usize, turns: &mut Turns, seen: &mut Seen) {
        let c = carried(self.kind, self.transport, self.natt, p, len);
        let i = from as usize;
        match c {
            Carried::Data { .. } => self.data[i] += 1,
            Carried::Keepalive => self.keepalives[i] += 1,
            Carried::Control => {
                self.control[i] += 1;
                self.control_message(ts, from, p, len, turns, seen);
            }
            Carried::Other => {}
        }
        match self.kind {
            // Its receiver index (none in what is not WireGuard's transport
            // message: ESP, whatever the session was taken for, is data).
            Kind::Wireguard if matches!(c, Carried::Data { .. } | Carried::Keepalive) => {
                seen.index = p.get(4..8).map(|b| wireguard::le32(b) as u32);
            }
            Kind::Ipsec if self.transport == IpProto::UDP && matches!(c, Carried::Data { .. }) => seen.esp = true,
            _ => {}
        }
        // The inner traffic's packets, for the analysis of the session they belong to.
        if let Carried::Data { len } = c
            && self.inner.len() < MAX_INNER
        {
            self.inner.push((from, len.min(u32::MAX as usize) as u32));
        }
    }

    fn control_message(&mut self, ts: Ts, from: Side, p: &[u8], len: usize, turns: &mut Turns, seen: &mut Seen) {
        match self.kind {
            Kind::Wireguard => {
                if let Some(msg) = wireguard::message(p, len) {
                    turns.on_message(ts, from, msg);
                }
                if p[0] == 2 {
                    let (sender, receiver) = (wireguard::le32(&p[4..8]) as u32, wireguard::le32(&p[8..12]) as u32);
                    seen.handshake = Some((receiver, sender));
                    if self.handshakes > 0 {
                        self.rekeys += 1;
                    }
                    self.handshakes += 1;
                }
            }
            Kind::Ipsec => {
                if let ike::Payload::Ike(h) = ike::payload(self.natt, p) {
                    seen.spi = Some(h.initiator_spi);
                    self.ike_message(ts, from, &h, turns);
                }
            }
            Kind::Openvpn => self.openvpn_control(ts, from, p, turns),
            Kind::Anyconnect => {
                if let Some(msg) = anyconnect::message(p) {
                    turns.on_message(ts, from, msg);
                }
                if from == Side::Server && anyconnect::server_hello(p) {
                    if self.handshakes > 0 {
                        self.rekeys += 1;
                    }
                    self.handshakes += 1;
                }
            }
        }
    }

    /// An IKE message: IKEv2 pairs by its response flag; IKEv1, which has
    /// none, pairs each message with the peer's last one of the same
    /// exchange (message id).
    fn ike_message(&mut self, ts: Ts, from: Side, h: &ike::Header, turns: &mut Turns) {
        let id = ike::pair_id(h);
        if h.version == 2 {
            turns.on_message(ts, from, if h.response { Msg::Answer(id) } else { Msg::Request(id) });
            if h.response && self.ike_counted != Some((h.initiator_spi, h.message_id)) {
                self.ike_counted = Some((h.initiator_spi, h.message_id));
                match h.exchange {
                    ike::IKE_SA_INIT => self.handshakes += 1,
                    ike::CREATE_CHILD_SA => self.rekeys += 1,
                    _ => {}
                }
            }
            return;
        }
        turns.on_message(ts, from, Msg::Answer(id));
        turns.on_message(ts, from, Msg::Request(id));
        match h.exchange {
            ike::MAIN_MODE | ike::AGGRESSIVE if h.responder_spi != 0 && self.ike_v1_sa != Some(h.initiator_spi) => {
                self.ike_v1_sa = Some(h.initiator_spi);
                self.handshakes += 1;
            }
            ike::QUICK_MODE if self.ike_v1_quick != Some(h.message_id) => {
                self.ike_v1_quick = Some(h.message_id);
                self.rekeys += 1;
            }
            _ => {}
        }
    }

    /// An OpenVPN control packet: each message packet-id a side sends asks
    /// for the peer's acknowledgement; an ack covering several pairs with
    /// the newest. Under tls-crypt only the hard resets are in clear.
    fn openvpn_control(&mut self, ts: Ts, from: Side, p: &[u8], turns: &mut Turns) {
        let Some(o) = self.ovpn.as_deref_mut() else { return };
        if self.mode.is_none() {
            self.mode = openvpn::detect_mode(p);
        }
        let Some(mode) = self.mode else { return };
        let Some(c) = openvpn::control(mode, p) else { return };
        let key = (c.key_id as u64) << 32;
        match c.opcode {
            openvpn::P_CONTROL_HARD_RESET_SERVER_V1 | openvpn::P_CONTROL_HARD_RESET_SERVER_V2
                if o.server_session != Some(c.session_id) =>
            {
                o.server_session = Some(c.session_id);
                self.handshakes += 1;
            }
            openvpn::P_CONTROL_SOFT_RESET_V1 if c.key_id != 0 && o.soft_key != Some(c.key_id) => {
                o.soft_key = Some(c.key_id);
                self.rekeys += 1;
            }
            _ => {}
        }
        if mode == openvpn::Mode::TlsCrypt {
            // The acks travel encrypted: the hard resets' own pair only.
            if let Some(msg) = openvpn::hard_reset(IpProto::UDP, p) {
                turns.on_message(ts, from, msg);
            }
            return;
        }
        let acks = &c.acks[..c.n_acks];
        if let Some(&newest) = acks.iter().max() {
            for &a in acks.iter().filter(|&&a| a != newest) {
                turns.settle(from, key | a as u64);
            }
            turns.on_message(ts, from, Msg::Answer(key | newest as u64));
        }
        if let Some(id) = c.packet_id {
            let next = &mut o.next_id[from as usize][c.key_id as usize];
            if id < *next {
                // Sent before: not a sample (Karn's rule), whether or not it was acknowledged.
                turns.repeat(from, key | id as u64);
            } else {
                *next = id.saturating_add(1);
                turns.on_message(ts, from, Msg::Request(key | id as u64));
            }
        }
    }

    /// A linked flow's counts, added to its session's (`same_sides`: the
    /// flow's client is the session's).
    pub fn absorb(&mut self, f: &Tunnel, same_sides: bool) {
        let side = |i: usize| if same_sides { i } else { 1 - i };
        for i in 0..2 {
            self.control[i] += f.control[side(i)];
            self.data[i] += f.data[side(i)];
            self.keepalives[i] += f.keepalives[side(i)];
        }
        self.handshakes += f.handshakes;
        self.rekeys += f.rekeys;
        if matches!(self.kind, Kind::Wireguard | Kind::Anyconnect) {
            // Every handshake after the session's first is a re-key, on
            // whichever path (a roamed WireGuard peer, a new DTLS channel).
            self.rekeys = self.handshakes.saturating_sub(1);
        }
        if self.mode.is_none() {
            self.mode = f.mode;
        }
    }
}

/// What one tunnel packet carries: `p` its captured start (one UDP
/// payload, one ESP packet, one OpenVPN packet without TCP's length), `len`
/// its length.
pub fn carried(kind: Kind, transport: IpProto, natt: bool, p: &[u8], len: usize) -> Carried {
    if transport == IpProto::ESP {
        return Carried::Data { len };
    }
    match kind {
        Kind::Wireguard => match p.first() {
            Some(1..=3) if wireguard::is_wireguard(p, len) => Carried::Control,
            Some(4) if p.len() >= 16 && len == 32 => Carried::Keepalive,
            // Padded to 16 bytes, but never beyond the MTU: any size over 32.
            Some(4) if p.len() >= 16 && len > 32 => Carried::Data { len },
            _ => Carried::Other,
        },
        Kind::Openvpn => match p.first().map(|b| b >> 3) {
            Some(op) if openvpn::is_data(op) => Carried::Data { len },
            Some(op) if openvpn::is_control(op) && p.len() >= 9 => Carried::Control,
            _ => Carried::Other,
        },
        Kind::Ipsec => match ike::payload(natt, p) {
            ike::Payload::Ike(_) => Carried::Control,
            ike::Payload::Esp => Carried::Data { len },
            ike::Payload::Keepalive => Carried::Keepalive,
            ike::Payload::Other => Carried::Other,
        },
        // The DTLS data channel (its TLS control connection carries nothing read here).
        Kind::Anyconnect if transport == IpProto::UDP => match anyconnect::datagram(p) {
            anyconnect::Datagram::Data => Carried::Data { len },
            anyconnect::Datagram::Keepalive => Carried::Keepalive,
            anyconnect::Datagram::Control => Carried::Control,
            anyconnect::Datagram::Other => Carried::Other,
        },
        Kind::Anyconnect => Carried::Other,
    }
}

#[cfg(test)]
mod tests;
