//! The engine's tunnel part (docs/sessions.md, section 5): a tunnel's
//! further tuples are linked flows of its session, found by the join
//! identifiers its control plane shows ([`JoinId`]): a WireGuard peer that
//! roamed by the receiver index its data carries, IKE moving from 500 to
//! 4500 by its initiator SPI, ESP (and ESP in UDP seen before any IKE on
//! its port pair) by the addresses of an open IKE session's peers. The map
//! holds at most [`MAX_IDS`] identifiers and one address pair per session
//! in the table: they go when it ends.

use super::Engine;
use crate::analysis::interactive::Interactive;
use crate::analysis::tunnel::Step;
use crate::analysis::{RttSample, SampleKind};
use crate::decode::Tcp;
use crate::flow::{EndReason, FlowKey, Session};
use crate::ip_proto::IpProto;
use crate::proto::Proto;
use crate::proto::linked::Link;
use crate::proto::tunnel::{JoinId, Kind, MAX_IDS, Seen, Tunnel};
use crate::proto::{App, Stream};
use crate::side::Side;
use crate::time::Ts;
use std::collections::HashMap;

/// Who owns a join identifier: a session (its key and start), and which
/// of its sides chose it (WireGuard: the side whose messages carry it as
/// receiver index; IKE: the initiator; addresses: the client).
#[derive(Debug, Clone, Copy)]
pub(super) struct Owner {
    pub key: FlowKey,
    pub start: Ts,
    pub side: Side,
}

pub(super) type TunnelIds = HashMap<JoinId, Owner>;

impl Engine {
    /// A payload of a session that is (or may be) a tunnel: its control
    /// plane read, its flows linked, its inner traffic analysed (`len`: the
    /// payload's length on the wire, `payload` its captured part).
    pub(super) fn tunnel_payload(
        &mut self,
        id: u32,
        key: &FlowKey,
        ts: Ts,
        from: Side,
        tcp: Option<&Tcp<'_>>,
        (payload, len): (&[u8], usize),
    ) -> (Option<RttSample>, Option<f64>) {
        let s = self.table.get_mut(id);
        let Some(kind) = Kind::of(s.proto()).or(s.classifier.openvpn_candidate().then_some(Kind::Openvpn)) else {
            s.tunnel = None; // a candidate that proved something else
            return (None, None);
        };
        if s.tunnel.as_ref().is_some_and(|t| t.kind != kind) {
            s.tunnel = None;
        }
        let t = s
            .tunnel
            .get_or_insert_with(|| Box::new(Tunnel::new(kind, s.transport, (s.client.port(), s.server.port()))));
        if kind == Kind::Anyconnect && s.transport == IpProto::UDP && !t.link_tried {
            // Linked first: its handshake pairs in the session's turns.
            self.join_control_connection(id);
        }
        let s = self.table.get(id);
        // IKE moved to 4500 is the session's exchange going on (NAT
        // traversal), not another path: paired in the session's turns, sides
        // alike; so is AnyConnect's DTLS handshake beside its TLS. A roamed
        // WireGuard peer's path keeps its own figures.
        let root = s
            .tunnel
            .as_ref()
            .filter(|t| matches!(t.kind, Kind::Ipsec | Kind::Anyconnect))
            .and_then(|t| t.link)
            .filter(|l| l.same_sides)
            .and_then(|l| self.linked_session(&l));
        let mut turns = match root {
            Some(r) => self.table.get_mut(r).turns.take(),
            None => self.table.get_mut(id).turns.take(),
        }
        .unwrap_or_default();
        let s = self.table.get_mut(id);
        let t = s.tunnel.as_deref_mut().expect("made above");
        let seen = t.on_payload(ts, from, tcp.map(|t| (t.seq, t.payload_len)), payload, len, &mut turns);
        self.table.get_mut(root.unwrap_or(id)).turns = Some(turns);
        self.tunnel_seen(id, key, from, seen);
        let link = self.table.get(id).tunnel.as_ref().and_then(|t| t.link);
        if let Some(link) = link {
            self.keep_linked_alive(&link, ts);
        }
        // The inner traffic belongs to the session: a linked flow's (a roamed
        // peer, ESP beside its IKE) goes to the session it is linked to.
        let inner = match self.table.get_mut(id).tunnel.as_deref_mut() {
            Some(t) if !t.inner.is_empty() => std::mem::take(&mut t.inner),
            _ => return (None, None),
        };
        let (root, same) = match link {
            Some(l) => match self.linked_session(&l) {
                Some(r) => (r, l.same_sides),
                None => (id, true),
            },
            None => (id, true),
        };
        let typed = inner_traffic(self.table.get_mut(root), ts, &inner, same);
        if let Some(t) = self.table.get_mut(id).tunnel.as_deref_mut() {
            t.inner = inner; // its allocation, for the next payload
        }
        typed
    }

    /// What a payload showed: identifiers to own, or to link by.
    fn tunnel_seen(&mut self, id: u32, key: &FlowKey, from: Side, seen: Seen) {
        let s = self.table.get(id);
        let Some(t) = s.tunnel.as_deref() else { return };
        let (linked, tried, ike) = (t.link, t.link_tried, s.proto() == Proto::Ike);
        if t.kind == Kind::Anyconnect {
            return; // linked by addresses, at its first datagram
        }
        // The session identifiers belong to: this one, or the one it is linked to.
        let root = match linked {
            Some(l) => self.linked_session(&l),
            None => Some(id),
        };
        if let Some((initiator, responder)) = seen.handshake {
            // The responder sent this: its index is its own, the initiator's the other side's.
            if let Some(r) = root {
                let same = linked.is_none_or(|l| l.same_sides);
                let side = |x: Side| if same { x } else { x.other() };
                self.own(r, JoinId::Index(responder), side(from));
                self.own(r, JoinId::Index(initiator), side(from.other()));
            }
        }
        if seen.esp && ike {
            self.becomes_esp(id);
        }
        let peers = JoinId::Addresses(key.lo().ip(), key.hi().ip());
        if linked.is_none() && !tried {
            let esp = self.table.get(id).transport == IpProto::ESP || seen.esp;
            let join = match (seen.index, seen.spi) {
                (Some(i), _) => Some(JoinId::Index(i)),
                (_, Some(spi)) => Some(JoinId::Spi(spi)),
                // ESP, or ESP in UDP before any IKE on its port pair.
                _ if esp => Some(peers),
                _ => None,
            };
            if let Some(join) = join {
                if let Some(t) = self.table.get_mut(id).tunnel.as_deref_mut() {
                    t.link_tried = true;
                }
                self.link_by(id, join, from);
            }
        }
        // An IKE session of its own names its SAs and its peers for the
        // flows to come (4500, ESP).
        if let Some(spi) = seen.spi
            && self.table.get(id).tunnel.as_ref().is_some_and(|t| t.link.is_none())
        {
            self.own(id, JoinId::Spi(spi), Side::Client);
            self.own(id, peers, Side::Client);
        }
    }

    /// Link session `id` to the open session that owns `join`, if another
    /// does; `sender` sent the payload that showed it. True if linked.
    fn link_by(&mut self, id: u32, join: JoinId, sender: Side) -> bool {
        let Some(&o) = self.tunnel_ids.get(&join) else { return false };
        let Some(pid) = self.table.find(&o.key).filter(|&p| p != id && self.table.get(p).start == o.start) else {
            return false;
        };
        let (ps, s) = (self.table.get(pid), self.table.get(id));
        let same_sides = match join {
            // The message's receiver is the owner: its sender the owner's peer.
            JoinId::Index(_) => (sender == Side::Client) == (o.side == Side::Server),
            // By addresses: the client is the same host, or the server is.
            _ => s.client.ip() == ps.client.ip() || s.server.ip() == ps.server.ip(),
        };
        let link = Link {
            transport: ps.transport,
            client: ps.client,
            server: ps.server,
            start: ps.start,
            how: join.how(),
            same_sides,
        };
        if let Some(pt) = self.table.get_mut(pid).tunnel.as_deref_mut() {
            pt.linked.live += 1;
        }
        let s = self.table.get_mut(id);
        if let Some(t) = s.tunnel.as_deref_mut() {
            t.link = Some(link);
            t.link_tried = true;
        }
        self.mark_linked(id, pid);
        true
    }

    /// Session `root` owns `join` (seen on it or on a flow linked to it): the map names it,
    /// and its oldest identifier goes beyond [`MAX_IDS`].
    fn own(&mut self, root: u32, join: JoinId, side: Side) {
        let r = self.table.get(root);
        let (key, start) =
            (FlowKey::new(r.client.ip(), r.client.port(), r.server.ip(), r.server.port(), r.transport).0, r.start);
        let Some(t) = self.table.get_mut(root).tunnel.as_deref_mut() else { return };
        if t.ids.contains(&join) {
            return;
        }
        let mut gone = None;
        if !matches!(join, JoinId::Addresses(..))
            && t.ids.iter().filter(|j| !matches!(j, JoinId::Addresses(..))).count() >= MAX_IDS
        {
            let i = t.ids.iter().position(|j| !matches!(j, JoinId::Addresses(..))).unwrap_or(0);
            gone = Some(t.ids.remove(i));
        }
        t.ids.push(join);
        if let Some(g) = gone {
            self.disown(g, &key, start);
        }
        self.tunnel_ids.insert(join, Owner { key, start, side });
    }

    fn disown(&mut self, join: JoinId, key: &FlowKey, start: Ts) {
        if self.tunnel_ids.get(&join).is_some_and(|o| o.key == *key && o.start == start) {
            self.tunnel_ids.remove(&join);
        }
    }

    /// An AnyConnect data channel's first datagram: it joins the open TLS
    /// connection from its client to its gateway's address and port, which
    /// becomes the tunnel's session; without one it is a session of its own.
    fn join_control_connection(&mut self, id: u32) {
        if let Some(t) = self.table.get_mut(id).tunnel.as_deref_mut() {
            t.link_tried = true;
        }
        let Some((pid, link)) = self.channel_host(id, |p| matches!(p, Proto::Tls | Proto::Anyconnect)) else {
            return;
        };
        if self.table.get(pid).proto() == Proto::Tls {
            self.relabel(pid, Proto::Anyconnect);
        }
        let ps = self.table.get_mut(pid);
        let tunnel = ps.tunnel.get_or_insert_with(|| {
            Box::new(Tunnel::new(Kind::Anyconnect, IpProto::TCP, (ps.client.port(), ps.server.port())))
        });
        tunnel.linked.live += 1;
        let s = self.table.get_mut(id);
        if let Some(t) = s.tunnel.as_deref_mut() {
            t.link = Some(link);
        }
        self.mark_linked(id, pid);
    }

    /// A UDP flow of IKE carried ESP (NAT traversal on 4500): its record is
    /// ESP's from now on, its IKE messages the tunnel's control exchanges.
    fn becomes_esp(&mut self, id: u32) {
        self.relabel(id, Proto::Esp);
    }

    /// Session `id`, whose protocol was settled, proved to be `to` (and
    /// worth as much as a tunnel in the table).
    fn relabel(&mut self, id: u32, to: Proto) {
        let s = self.table.get_mut(id);
        let from = s.proto();
        s.classifier.found = Some(to);
        // Counted as `from` and not yet told to the metrics: counted as `to` instead.
        let (a, b) = (from.index(), to.index());
        if s.counted
            && s.tunnel.as_ref().is_none_or(|t| t.link.is_none())
            && self.counters.opened[a] > self.flushed.opened[a]
        {
            self.counters.opened[a] -= 1;
            self.counters.opened[b] += 1;
        }
        // Its packets earned that already: the table learns it now.
        let tier = self.table.tier(id);
        self.retier(id, tier, true, false);
    }

    /// A tunnel session ends: its identifiers go; a linked flow whose
    /// session is open is folded into it (true: no record of its own), else
    /// it is recorded alone (and counted as a session).
    pub(super) fn end_tunnel(&mut self, key: &FlowKey, s: &mut Session, reason: EndReason) -> bool {
        let Some(t) = s.tunnel.as_deref() else { return false };
        for &join in &t.ids {
            self.disown(join, key, s.start);
        }
        let Some(link) = t.link else { return false };
        let legs = s.turns.as_deref().map_or([None, None], |x| [x.answers[0].quantiles(), x.answers[1].quantiles()]);
        let Some((pid, flow)) = self.fold_linked(&link, s, reason, legs) else {
            s.counted = false;
            return false;
        };
        let ps = self.table.get_mut(pid);
        if let Some(pt) = ps.tunnel.as_deref_mut() {
            pt.absorb(t, link.same_sides);
            pt.linked.add(flow);
        }
        self.linked_flow_ended(pid);
        true
    }

    /// Whether an ended session would be folded into an open session (its
    /// record then goes first at the end of input).
    pub(super) fn tunnel_folds(&self, s: &Session) -> bool {
        s.tunnel.as_ref().and_then(|t| t.link).is_some_and(|l| self.linked_session(&l).is_some())
    }
}

/// What a tunnel's inner traffic gave with its last payload, reported into
/// the session: its keys and echoes into the session's interactive figures
/// (made at the tunnel's first payload, so a tunnel nobody typed through
/// has no typist), the client's answers to server messages as the client
/// side's turnarounds (the far end of the inner protocol: a relay beyond
/// the laptop), and its round trip through the tunnel as the client leg's
/// (a UDP or ESP tunnel has no other; over TCP the tunnel's own TCP times
/// the same path). Returns the round-trip sample and the echo, for the metrics.
fn inner_traffic(s: &mut Session, ts: Ts, inner: &[(Side, u32)], same_sides: bool) -> (Option<RttSample>, Option<f64>) {
    let Some(t) = s.tunnel.as_deref_mut() else { return (None, None) };
    let mut step = Step::default();
    for &(from, len) in inner {
        let from = if same_sides { from } else { from.other() };
        let st = t.typing.on_packet(ts, from, len);
        step.echo = st.echo.or(step.echo);
        step.rtt = st.rtt.or(step.rtt);
    }
    let early = if step.echo.is_some() { t.typing.take_early_echoes() } else { Vec::new() };
    let answers = t.typing.take_answers();
    let (keys, echoed) = (t.typing.keystrokes(), t.typing.echoed);
    let app = s.app.get_or_insert_with(|| Box::new(App { stream: Stream::Tunnel, inter: Interactive::tunnel() }));
    for d in early.into_iter().chain(step.echo) {
        app.inter.add_echo(d);
    }
    // The client's answers inside the tunnel: its far end's round trips.
    for d in answers {
        app.inter.add_turnaround(Side::Client, d);
    }
    app.inter.set_keys(keys, echoed);
    let sample = step.rtt.filter(|_| s.transport != IpProto::TCP).map(|d| RttSample {
        leg: Side::Client,
        kind: SampleKind::Ack,
        ns: (d * 1e6) as i64,
    });
    if let Some(smp) = &sample {
        s.timed_rtt_mut().add(smp);
    }
    (sample, step.echo)
}
