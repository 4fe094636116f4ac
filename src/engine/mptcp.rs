//! The engine's Multipath TCP part: subflows found by token, a join's data
//! fed to its connection's stream at its data-sequence place, ended joins
//! folded into their connection.

use super::{Engine, interactive};
use crate::decode;
use crate::flow::mptcp::{Mptcp, Parent, Role, Subflow};
use crate::flow::{EndReason, FlowKey, Lane, Session};
use crate::side::Side;
use crate::time::Ts;

impl Engine {
    /// A Multipath TCP subflow ends: a first subflow's tokens go; a join
    /// whose connection is open is folded into it (true: no record of its
    /// own), else it is recorded alone.
    pub(super) fn end_subflow(&mut self, key: &FlowKey, s: &mut Session, reason: EndReason) -> bool {
        let Some(m) = s.multipath() else { return false };
        match m.role {
            Role::First => {
                for (token, _) in m.tokens() {
                    if self.tokens.get(&token).is_some_and(|o| o.key == *key && o.start == s.start) {
                        self.tokens.remove(&token);
                    }
                }
            }
            Role::Join(Some(p)) => {
                if self.fold(&p, s, reason) {
                    return true;
                }
                s.counted = false; // its connection's record is written: a record of its own
            }
            Role::Join(None) => {}
        }
        false
    }

    /// A new TCP connection's SYN: a Multipath TCP first subflow (MP_CAPABLE),
    /// or a subflow joining an open connection (MP_JOIN naming its token).
    pub(super) fn open_mptcp(&mut self, id: u32, t: &crate::decode::Tcp<'_>) {
        let role = match t.mptcp() {
            Some(decode::Mptcp::Capable { .. }) => Role::First,
            Some(decode::Mptcp::Join { token }) => {
                let found = self.tokens.get(&token).and_then(|o| Some((self.first_subflow(&o.key, o.start)?, *o)));
                if let Some((pid, _)) = found {
                    self.link_tier(id, pid);
                }
                let parent = found.map(|(pid, o)| {
                    let ps = self.table.get_mut(pid);
                    let (client, server) = (ps.client, ps.server);
                    if let Some(m) = ps.multipath_mut() {
                        m.live_joins += 1;
                    }
                    // The SYN goes to the token's owner.
                    Parent { key: o.key, start: o.start, client, server, same_sides: o.side == Side::Server }
                });
                Role::Join(parent)
            }
            _ => return,
        };
        let s = self.table.get_mut(id);
        // A subflow of a known connection is not a session of its own.
        s.counted |= matches!(role, Role::Join(Some(_)));
        s.set_multipath(Mptcp::new(role));
    }

    /// A segment of a Multipath TCP subflow: a join keeps its connection
    /// alive, and data goes to the connection's stream at its place in the
    /// data sequence. Returns a new echo delay (ms), if one was paired.
    #[inline(never)]
    pub(super) fn multipath_segment(
        &mut self,
        id: u32,
        ts: Ts,
        from: Side,
        t: &crate::decode::Tcp<'_>,
        opt: Option<decode::Mptcp>,
    ) -> Option<f32> {
        let m = self.table.get(id).multipath()?;
        let parent = m.parent().copied().and_then(|par| Some((par, self.parent_id(&par)?)));
        let plain = (t.seq, t.flags.ack().then_some(t.ack));
        let feed = match m.role {
            _ if t.payload_len == 0 => None,
            Role::Join(None) => Some((id, from, plain)),
            Role::First => m.data_position(from, t, opt).or((!m.mapped).then_some(plain)).map(|pos| (id, from, pos)),
            Role::Join(Some(_)) => {
                let (par, pid) = parent?;
                let side = if par.same_sides { from } else { from.other() };
                m.data_position(from, t, opt).map(|pos| (pid, side, pos))
            }
        };
        if let Some((_, pid)) = parent {
            self.table.touch(pid, ts);
            let ps = self.table.get_mut(pid);
            ps.last = ps.last.max(ts);
        }
        let (target, side, pos) = feed?;
        let s = self.table.get_mut(target);
        let proto = s.proto();
        interactive(s, proto, ts, side, pos, t, self.cfg.rdp_record_cookie)
    }

    /// The table slot of a join subflow's connection, if it is still open.
    pub(super) fn parent_id(&self, p: &Parent) -> Option<u32> {
        self.first_subflow(&p.key, p.start)
    }

    /// The table slot of the Multipath TCP first subflow with this key that
    /// started at `start` (not a later connection on the same tuple).
    fn first_subflow(&self, key: &FlowKey, start: Ts) -> Option<u32> {
        let id = self.table.find(key)?;
        let s = self.table.get(id);
        (s.start == start && s.multipath().is_some_and(|m| m.role == Role::First)).then_some(id)
    }

    /// Fold an ended join subflow into its connection: its figures go to the
    /// connection's list of subflows, its packets and bytes to its totals.
    /// False if the connection is no longer open.
    fn fold(&mut self, p: &Parent, s: &Session, reason: EndReason) -> bool {
        let Some(pid) = self.parent_id(p) else {
            return false;
        };
        let sub = Subflow::of(s, reason, p.same_sides);
        let ps = self.table.get_mut(pid);
        for i in 0..2 {
            ps.packets[i] += sub.tuple.packets[sub.side(i)];
            ps.bytes[i] += sub.tuple.bytes[sub.side(i)];
        }
        ps.last = ps.last.max(sub.tuple.last);
        let closed = ps.closed.is_some();
        let Some(m) = ps.multipath_mut() else {
            return false;
        };
        m.add_subflow(sub);
        if closed && m.live_joins == 0 {
            self.table.set_lane(pid, Lane::Closing);
        }
        true
    }
}

/// Who holds a Multipath TCP token: a connection's first subflow.
#[derive(Debug, Clone, Copy)]
pub(super) struct TokenOwner {
    pub key: FlowKey,
    pub start: Ts,
    pub side: Side,
}
