//! The engine: decode → flow table → protocol → analysis, one packet at a
//! time. Replay and live capture are two thin front ends over it.

use crate::analysis::{RttSample, Segment};
use crate::decode::{self, DropReason, L4, LinkType, Packet};
use crate::flow::{Counters, DATA_FROM, EndReason, FIN_FROM, FlowKey, FlowTable, LONG_IDLE, Lane, Session, Tier};
use crate::ip_proto::IpProto;
use crate::proto::rdp::udp::Source;
use crate::proto::tunnel::Kind;
use crate::proto::{Data, Proto, message};
use crate::side::Side;
use crate::time::{NS_PER_SEC, Ts};
use crate::verdict::{Verdict, alert_bit};
use std::collections::HashMap;
use std::sync::Arc;

mod channels;
mod clock;
mod config;
mod linked;
mod mptcp;
mod outputs;
mod rdp;
mod tunnel;

pub use clock::{Clock, EXPIRY_TICK, TIMELINE_SLACK};
pub use config::EngineConfig;
use mptcp::TokenOwner;
pub use outputs::{Observer, RecordSink};

/// How often (packet time) at most a running session is judged.
const JUDGE_EVERY: Ts = NS_PER_SEC;

pub struct Engine {
    cfg: EngineConfig,
    table: FlowTable<Session>,
    /// Multipath TCP tokens of the open connections' keys, to find the
    /// connection an MP_JOIN names. At most two per session in the table:
    /// an entry goes when its session ends.
    tokens: HashMap<u32, TokenOwner>,
    /// The open TCP connections that UDP flows join (RDP, TLS: AnyConnect's
    /// data channel) by client address and server endpoint (at most one
    /// entry per session in the table).
    channels: channels::Channels,
    /// The join identifiers of the open tunnel sessions (receiver indices,
    /// IKE SPIs, IKE peers' addresses), to link their further flows.
    tunnel_ids: tunnel::TunnelIds,
    clock: Clock,
    pub counters: Counters,
    flushed: Counters,
    observer: Option<Arc<dyn Observer>>,
    /// The input new sessions are opened from ([`Engine::set_input`]).
    input: u32,
}

impl Engine {
    pub fn new(mut cfg: EngineConfig, observer: Option<Arc<dyn Observer>>) -> Engine {
        cfg.live_verdicts |= observer.is_some();
        Engine {
            table: FlowTable::new(cfg.max_sessions),
            tokens: HashMap::new(),
            channels: HashMap::new(),
            tunnel_ids: HashMap::new(),
            cfg,
            clock: Clock::default(),
            counters: Counters::default(),
            flushed: Counters::default(),
            observer,
            input: 0,
        }
    }

    /// Sessions opened from now on came from input `i` (a replay's file, by
    /// its place in the run): an index the runtime names, kept in each
    /// session ([`Session::input`]) and its record.
    pub fn set_input(&mut self, i: u32) {
        self.input = i;
    }

    /// Process one captured frame (its length on the wire unknown).
    pub fn frame(&mut self, link: LinkType, ts: Ts, frame: &[u8], out: &mut dyn RecordSink) {
        self.frame_wire(link, ts, frame, None, out)
    }

    /// Process one captured frame that was `wire_len` bytes on the wire.
    pub fn frame_wire(
        &mut self,
        link: LinkType,
        ts: Ts,
        frame: &[u8],
        wire_len: Option<u32>,
        out: &mut dyn RecordSink,
    ) {
        self.counters.packets += 1;
        // Matched by reference: the decoded packet stays where it was built.
        match &decode::decode_wire(link, ts, frame, wire_len) {
            Ok(p) => {
                self.counters.bytes += u64::from(p.ip_len);
                self.packet(p, out);
            }
            Err(r) => self.counters.decode_errors[r.index()] += 1,
        }
        if self.counters.packets & 0xFFFF == 0 {
            self.flush_metrics();
        }
    }

    /// Count a frame of a link type echoloc cannot read.
    pub fn unknown_link(&mut self) {
        self.counters.packets += 1;
        self.counters.decode_errors[DropReason::UnknownLink.index()] += 1;
    }

    /// Process one decoded packet.
    pub fn packet(&mut self, p: &Packet<'_>, out: &mut dyn RecordSink) {
        self.advance(p.ts, out);
        let ip_proto = p.ip_proto();
        if !ip_proto.is_session() {
            return; // ICMP and the like are not sessions
        }
        let (sport, dport) = p.ports();
        let (key, src_is_lo) = FlowKey::new(p.src, sport, p.dst, dport, ip_proto);
        let tcp = match &p.l4 {
            L4::Tcp(t) => Some(t),
            _ => None,
        };
        let Some(id) = self.session_of(p, &key, src_is_lo, tcp, out) else {
            return;
        };
        self.table.touch(id, p.ts);
        let s = self.table.get_mut(id);
        let from = if src_is_lo == s.client_is_lo { Side::Client } else { Side::Server };
        let payload = p.payload();
        s.count(p, from, payload);
        let proto = s.proto();
        let (mut samples, mut close, mut echo) = ([None, None], None, None);
        if let Some(t) = tcp {
            let opt;
            (samples, close, opt) = self.segment(id, &key, p.ts, from, t);
            echo = if self.table.get(id).multipath().is_some() {
                self.multipath_segment(id, p.ts, from, t, opt)
            } else if t.payload_len > 0 {
                let pos = (t.seq, t.flags.ack().then_some(t.ack));
                let fresh = proto == Proto::Rdp && self.table.get(id).app.is_none();
                let echo = interactive(self.table.get_mut(id), proto, p.ts, from, pos, t, self.cfg.rdp_record_cookie);
                if fresh && self.table.get(id).app.is_some() {
                    self.open_channels(id, &key);
                }
                echo
            } else {
                None
            };
        } else if !payload.is_empty() && ip_proto == IpProto::UDP && proto == Proto::Rdp {
            let first = self.table.get(id).app.is_none();
            let wire = (payload, p.payload_len() as usize);
            let source;
            (samples, source) = datagram(self.table.get_mut(id), proto, p.ts, from, wire, self.cfg.rdp_record_cookie);
            self.rdp_datagram(id, p.ts, first);
            if let Some(src) = source {
                echo = self.rdp_source(id, p.ts, from, src, out).map(|d| d as f32);
            }
        }
        let s = self.table.get_mut(id);
        if !payload.is_empty() && (s.tunnel.is_some() || Kind::of(proto).is_some() || s.classifier.openvpn_candidate())
        {
            // A tunnel's control plane, its own pairs, counts and links, and its inner traffic.
            let (sample, typed_echo) =
                self.tunnel_payload(id, &key, p.ts, from, tcp, (payload, p.payload_len() as usize));
            if sample.is_some() {
                samples[0] = sample;
            }
            echo = echo.or(typed_echo.map(|d| d as f32));
        } else if !payload.is_empty()
            && let Some(msg) = message(proto, ip_proto, payload)
        {
            // Handshake turnarounds beside any interactive analysis (only
            // protocols with a clear handshake have messages, never empty).
            s.turns.get_or_insert_with(Box::default).on_message(p.ts, from, msg);
        }
        self.report(id, &key, p.ts, samples, echo, out);
        self.earn_tier(id, p, close.is_some());
        if let Some(reason) = close {
            let s = self.table.get_mut(id);
            s.closed = Some(reason);
            // A first subflow whose joins still run waits for them, an RDP
            // connection for its UDP flows, an AnyConnect one for its data channel.
            if s.multipath().is_none_or(|m| m.live_joins == 0) && !linked::waits_for_flows(s) {
                self.table.set_lane(id, Lane::Closing);
            }
        } else if tcp.is_some_and(|t| t.payload_len > 0) && self.table.get(id).wants_long_idle() {
            self.table.get_mut(id).stage |= LONG_IDLE;
            self.table.set_lane(id, Lane::LongIdle);
        }
    }

    /// The table slot of a packet's session: the open one, or a new one
    /// (a SYN on a closed 4-tuple ends the old connection; a full table
    /// gives way). None for a lone RST, which opens nothing.
    #[inline(always)]
    fn session_of(
        &mut self,
        p: &Packet<'_>,
        key: &FlowKey,
        src_is_lo: bool,
        tcp: Option<&crate::decode::Tcp<'_>>,
        out: &mut dyn RecordSink,
    ) -> Option<u32> {
        let syn_only = tcp.is_some_and(|t| t.flags.syn() && !t.flags.ack());
        match self.table.find(key) {
            Some(i) if !(syn_only && self.table.get(i).closed.is_some()) => return Some(i),
            Some(i) => self.finish(i, None, out),
            None => {}
        }
        if tcp.is_some_and(|t| t.flags.rst()) {
            return None;
        }
        if self.table.is_full()
            && let Some((k, s)) = self.table.evict_lru()
        {
            self.counters.evicted += 1;
            self.emit(&k, s, EndReason::Evicted, out);
        }
        let mut s = Session::new(key, client_is_lo(p, src_is_lo), p.ts);
        s.input = self.input;
        let lane = if tcp.is_some() { Lane::Tcp } else { Lane::Other };
        let id = self.table.insert(*key, s, lane, p.ts);
        if let Some(t) = tcp
            && syn_only
        {
            self.open_mptcp(id, t);
        }
        Some(id)
    }

    /// A session's packet may have earned it a higher [`Tier`] (answered,
    /// established, known as remote access or a tunnel): looked at only when
    /// it can have (a byte or two read on most packets, a flood's included). A
    /// connection closing (`closes`) without having carried data both ways
    /// can become nothing more: it falls back to the lowest tier, so a scan
    /// answered by resets does not outlast handshakes under way.
    #[inline(always)]
    fn earn_tier(&mut self, id: u32, p: &Packet<'_>, closes: bool) {
        let tier = self.table.tier(id);
        let may_rise = match tier {
            // Answered: both sides have sent.
            Tier::OneWay => self.table.get(id).packets.iter().all(|&n| n > 0),
            // Payload on the wire (a header-only capture's counts too).
            Tier::Handshake => p.payload_len() > 0,
            // Only a protocol found later, by content, can still raise it.
            Tier::Established => !p.payload().is_empty() && !self.table.get(id).classifier.settled(),
            Tier::Interactive => false,
        };
        if may_rise || (closes && tier < Tier::Established) {
            self.retier(id, tier, may_rise, closes);
        }
    }

    #[inline(never)]
    fn retier(&mut self, id: u32, tier: Tier, may_rise: bool, closes: bool) {
        let mut want = if may_rise { self.table.get(id).earned_tier().max(tier) } else { tier };
        if closes && want < Tier::Established {
            want = Tier::OneWay;
        }
        if want == tier {
            return;
        }
        self.table.set_tier(id, want);
        // A session is worth as much as its flows: a Multipath TCP
        // connection whose data runs on a join.
        if want > tier
            && let Some(pid) = self.linked_to(id)
        {
            self.link_tier(pid, id);
        }
    }

    /// Flow `id` joins session `pid` as a linked flow (RDP's UDP flows,
    /// tunnels' further tuples): not a session of its own (unless recorded
    /// alone, when it is counted after all), and kept as long as `pid`.
    fn mark_linked(&mut self, id: u32, pid: u32) {
        self.table.get_mut(id).counted = true;
        self.link_tier(id, pid);
    }

    /// Flow `id` is linked to session `pid` (or the other way round): it
    /// is worth as much as the session (an interactive session's further
    /// tuples are kept with it when the table is full).
    fn link_tier(&mut self, id: u32, pid: u32) {
        let tier = self.table.tier(pid);
        if tier > self.table.tier(id) {
            self.table.set_tier(id, tier);
        }
    }

    /// The open session a linked flow belongs to.
    fn linked_to(&self, id: u32) -> Option<u32> {
        let s = self.table.get(id);
        if let Some(p) = s.multipath().and_then(|m| m.parent()) {
            return self.parent_id(p);
        }
        let link = rdp::rdp_link(s).or_else(|| s.tunnel.as_ref().and_then(|t| t.link))?;
        self.linked_session(&link)
    }

    /// A TCP segment's transport part: round-trip samples, a Multipath TCP
    /// subflow's option and tokens, the stage bits, and whether the
    /// connection closes with it.
    #[inline(always)]
    fn segment(
        &mut self,
        id: u32,
        key: &FlowKey,
        ts: Ts,
        from: Side,
        t: &crate::decode::Tcp<'_>,
    ) -> ([Option<RttSample>; 2], Option<EndReason>, Option<decode::Mptcp>) {
        let s = self.table.get_mut(id);
        let i = from as usize;
        let mut samples = [None, None];
        if let Some(rtt) = s.rtt_mut() {
            let seg = Segment {
                ts,
                from,
                seq: t.seq,
                ack: t.ack,
                syn: t.flags.syn(),
                ack_flag: t.flags.ack(),
                fin: t.flags.fin(),
                rst: t.flags.rst(),
                payload_len: t.payload_len,
                timestamps: t.options.timestamps,
                sack: t.options.sack_blocks(),
            };
            samples = rtt.on_segment(&seg);
        }
        // A Multipath TCP subflow's option: read only for those.
        let mut opt = None;
        let start = s.start;
        if let Some(m) = s.multipath_mut() {
            opt = t.mptcp();
            if m.on_segment(ts, from, t, opt) {
                for (token, side) in m.tokens() {
                    self.tokens.insert(token, TokenOwner { key: *key, start, side });
                }
            }
        }
        if t.flags.fin() {
            s.stage |= FIN_FROM[i];
        }
        if t.payload_len > 0 {
            s.stage |= DATA_FROM[i];
        }
        let mut close = None;
        if s.closed.is_none() {
            if t.flags.rst() {
                close = Some(EndReason::Rst);
            } else if s.stage & (FIN_FROM[0] | FIN_FROM[1]) == FIN_FROM[0] | FIN_FROM[1] {
                close = Some(EndReason::Fin);
            }
        }
        (samples, close, opt)
    }

    /// Count a session once its protocol is settled, and tell the observer
    /// of its new figures: round-trip samples (held back while the protocol
    /// was unknown, so they carry the right label) and an echo delay.
    #[inline(always)]
    fn report(
        &mut self,
        id: u32,
        key: &FlowKey,
        ts: Ts,
        samples: [Option<RttSample>; 2],
        echo: Option<f32>,
        out: &mut dyn RecordSink,
    ) {
        let s = self.table.get_mut(id);
        let proto = s.proto();
        let settled = s.classifier.settled();
        let newly_settled = settled && !s.counted;
        if newly_settled {
            s.counted = true;
            self.counters.opened[proto.index()] += 1;
            // A TLS connection may be an AnyConnect tunnel's control connection.
            if proto == Proto::Tls && s.transport == IpProto::TCP {
                self.open_channels(id, key);
            }
        }
        if samples.iter().any(Option::is_some) || echo.is_some() {
            self.judge_live(id, key, ts, out);
        }
        let s = self.table.get_mut(id);
        let Some(o) = &self.observer else { return };
        if settled {
            // Samples held back until the protocol was known: once.
            if newly_settled {
                o.rtt_samples(proto, &s.early);
                s.early = [None; 4];
            }
            if samples.iter().any(Option::is_some) {
                o.rtt_samples(proto, &samples);
            }
        } else {
            for smp in samples.into_iter().flatten() {
                if let Some(slot) = s.early.iter_mut().find(|x| x.is_none()) {
                    *slot = Some(smp);
                } else {
                    o.rtt_samples(proto, &[Some(smp)]);
                }
            }
        }
        if let Some(e) = echo {
            o.echo(proto, s.client.ip(), f64::from(e));
        }
    }

    /// A running session with new figures: judged at most once a second
    /// (its gauges updated, alerts raised the first time its verdict reaches
    /// them). A join's figures are its connection's; a Multipath TCP
    /// connection is judged once no join runs (a join's paths join its
    /// verdict only when it ends).
    fn judge_live(&mut self, id: u32, key: &FlowKey, ts: Ts, out: &mut dyn RecordSink) {
        let s = self.table.get_mut(id);
        if self.cfg.live_verdicts
            && ts.saturating_sub(s.judged) >= JUDGE_EVERY
            && s.multipath().is_none_or(|m| m.parent().is_none() && m.live_joins == 0)
        {
            s.judged = ts;
            let v = self.cfg.judge.verdict(s);
            raise(s, &v, self.observer.as_deref(), Some((out, ts)));
            if let Some(o) = &self.observer {
                o.session_update(key, s, &v);
            }
        }
    }

    /// Move the packet clock to `ts` and end sessions idle for too long.
    pub fn advance(&mut self, ts: Ts, out: &mut dyn RecordSink) {
        if self.clock.advance(ts) {
            self.expire(ts, out);
        }
    }

    /// End sessions idle for too long at `ts`.
    fn expire(&mut self, ts: Ts, out: &mut dyn RecordSink) {
        for (lane, timeout) in [
            (Lane::Tcp, self.cfg.tcp_idle),
            (Lane::Other, self.cfg.udp_idle),
            (Lane::Closing, self.cfg.close_linger),
            (Lane::LongIdle, self.cfg.long_idle),
        ] {
            let cutoff = ts.saturating_sub(timeout);
            while let Some((k, s)) = self.table.pop_idle(lane, cutoff) {
                let reason = s.closed.unwrap_or(EndReason::Idle);
                self.emit(&k, s, reason, out);
            }
        }
    }

    /// A capture file begins with a packet at `ts`. It continues the
    /// timeline (sessions join across the files) when it starts at or after
    /// the packet clock, within [`TIMELINE_SLACK`], and before the longest
    /// idle limit has run out ([`Clock::continues`]). Otherwise it starts a
    /// new timeline ([`Engine::new_timeline`]), so a file replayed after
    /// others gives the records it gives alone. Returns whether a new
    /// timeline began.
    pub fn start_file(&mut self, ts: Ts, out: &mut dyn RecordSink) -> bool {
        if self.clock.continues(ts, self.cfg.longest_idle()) {
            return false;
        }
        self.new_timeline(out);
        true
    }

    /// Start a new timeline: every open session is written (`end_of_input`)
    /// and the clock starts again.
    pub fn new_timeline(&mut self, out: &mut dyn RecordSink) {
        self.finish_all(EndReason::EndOfInput, out);
        self.clock.reset();
    }

    /// End every open session (end of a replay, or shutdown).
    pub fn finish_all(&mut self, reason: EndReason, out: &mut dyn RecordSink) {
        // Sorted as small tuples, each session then taken out in turn: the
        // sessions themselves (over half a kilobyte each) are not moved about.
        // Ties go to the lower slot, so the order is the same on every run.
        // Join subflows whose connection is open go first, into its record.
        let t = &self.table;
        let mut order: Vec<_> = t
            .ids()
            .map(|id| {
                let s = t.get(id);
                let folds = s.multipath().and_then(|m| m.parent()).is_some_and(|p| self.parent_id(p).is_some())
                    || self.rdp_folds(s)
                    || self.tunnel_folds(s);
                (!folds, s.start, s.client, s.server, id)
            })
            .collect();
        order.sort_unstable();
        for (.., id) in order {
            let (k, s) = self.table.remove(id);
            let r = s.closed.unwrap_or(reason);
            self.emit(&k, s, r, out);
        }
        self.flush_metrics();
    }

    fn finish(&mut self, id: u32, reason: Option<EndReason>, out: &mut dyn RecordSink) {
        let (k, s) = self.table.remove(id);
        let r = reason.or(s.closed).unwrap_or(EndReason::Idle);
        self.emit(&k, s, r, out);
    }

    fn emit(&mut self, key: &FlowKey, s: Session, reason: EndReason, out: &mut dyn RecordSink) {
        let mut s = s;
        if s.multipath().is_some() && self.end_subflow(key, &mut s, reason) {
            return;
        }
        let proto = s.proto();
        if s.transport == IpProto::TCP && channels::takes_channels(proto) {
            self.close_channels(key, &s);
        }
        if proto == Proto::Rdp && self.end_rdp(&mut s, reason) {
            return;
        }
        if s.tunnel.is_some() && self.end_tunnel(key, &mut s, reason) {
            return;
        }
        self.counters.ended[proto.index()][reason as usize] += 1;
        if s.handshake_only() {
            self.counters.handshake_only[proto.index()] += 1;
        }
        if !s.counted {
            self.counters.opened[proto.index()] += 1;
        }
        // Judged once: the observer's figures and the record render this
        // verdict; alerts it reaches first are raised now.
        let verdict = self.cfg.judge.verdict(&s);
        raise(&mut s, &verdict, self.observer.as_deref(), None);
        if let Some(o) = &self.observer {
            o.rtt_samples(proto, &s.early);
            o.session_end(key, &s, &verdict);
        }
        out.record(&s, reason, &verdict);
    }

    /// Push counters accumulated since the last flush to Prometheus.
    pub fn flush_metrics(&mut self) {
        if let Some(o) = &self.observer {
            self.counters.active = self.table.len() as u64;
            o.counters(&self.counters, &self.flushed);
            self.flushed = self.counters.clone();
        }
    }
}

/// Raise the alerts a verdict reaches that the session has not raised yet:
/// to the observer, and for a running session (`live`: where, and the
/// packet time) to its record sink.
fn raise(s: &mut Session, v: &Verdict, observer: Option<&dyn Observer>, mut live: Option<(&mut dyn RecordSink, Ts)>) {
    for &alert in &v.alerts {
        let bit = alert_bit(alert);
        if s.raised & bit != 0 {
            continue;
        }
        s.raised |= bit;
        if let Some(o) = observer {
            o.alert_raised(s, alert);
        }
        if let Some((out, now)) = live.as_mut() {
            out.alert(s, alert, v, *now);
        }
    }
}

/// Feed a data segment of an interactive protocol to its dissector and the
/// keystroke analysis (made by its protocol module on its first data);
/// returns a new echo delay (ms), if one was paired. `(seq, ack)`: where the
/// segment starts in its byte stream and what it acknowledges of the other's
/// (TCP's numbers, or a Multipath TCP connection's data sequence).
#[inline(always)]
fn interactive(
    s: &mut Session,
    proto: Proto,
    ts: crate::time::Ts,
    from: Side,
    (seq, ack): (u32, Option<u32>),
    t: &crate::decode::Tcp<'_>,
    keep_rdp_cookie: bool,
) -> Option<f32> {
    let syn_seen = s.rtt().is_some_and(|r| r.syn_seen());
    let app = app_of(s, proto, keep_rdp_cookie)?;
    let d = Data { ts, from, seq, ack, len: t.payload_len, payload: t.payload, syn_seen };
    app.on_data(&d).map(|e| e as f32)
}

/// A session's dissector, made by its protocol module on its first data.
#[inline(always)]
fn app_of(s: &mut Session, proto: Proto, keep_rdp_cookie: bool) -> Option<&mut crate::proto::App> {
    Some(match &mut s.app {
        Some(app) => app,
        slot => {
            let mut app = Box::new((proto.spec()?.app?)());
            app.configure(keep_rdp_cookie);
            slot.insert(app)
        }
    })
}

/// A UDP datagram of a protocol whose own numbering times its legs (RDP
/// over UDP): its dissector's round-trip samples, added to the session's
/// legs (which a UDP session has only from the first sample on).
#[inline(never)]
fn datagram(
    s: &mut Session,
    proto: Proto,
    ts: crate::time::Ts,
    from: Side,
    (payload, wire_len): (&[u8], usize),
    keep_rdp_cookie: bool,
) -> ([Option<RttSample>; 2], Option<Source>) {
    if proto != Proto::Rdp {
        return ([None, None], None);
    }
    let Some(app) = app_of(s, proto, keep_rdp_cookie) else { return ([None, None], None) };
    let (samples, source) = app.on_datagram(ts, from, payload, wire_len);
    for smp in samples.iter().flatten() {
        s.timed_rtt_mut().add(smp);
    }
    (samples, source)
}

/// Decide which end of a new session is the client.
/// TCP: the SYN sender. Otherwise the well-known server port decides, else
/// the first sender is the client.
fn client_is_lo(p: &Packet<'_>, src_is_lo: bool) -> bool {
    if let L4::Tcp(t) = &p.l4
        && t.flags.syn()
    {
        return if t.flags.ack() { !src_is_lo } else { src_is_lo };
    }
    let (sport, dport) = p.ports();
    let proto = p.ip_proto();
    let known = |port| Proto::from_port(proto, port).is_some();
    let src_is_client = match (known(sport), known(dport)) {
        (false, true) => true,
        (true, false) => false,
        _ => match (Proto::is_server_port(proto, sport), Proto::is_server_port(proto, dport)) {
            (true, false) => false,
            (false, true) => true,
            _ => true,
        },
    };
    if src_is_client { src_is_lo } else { !src_is_lo }
}

#[cfg(test)]
mod tests;
