//! Linked flows, whatever found them (docs/sessions.md, section 5): the
//! session a link names, kept alive by its flows' packets, and an ended
//! flow folded into it (totals, and an entry in its record's list).

use super::Engine;
use crate::analysis::Quantiles;
use crate::flow::{EndReason, FlowKey, Lane, Session};
use crate::proto::linked::{Link, LinkedFlow, Tuple};
use crate::time::Ts;

impl Engine {
    /// The table slot of the open session `link` names (not a later one on
    /// the same tuple).
    pub(super) fn linked_session(&self, link: &Link) -> Option<u32> {
        let id = self.table.find(&Self::linked_key(link))?;
        (self.table.get(id).start == link.start).then_some(id)
    }

    /// The table key of the session `link` names.
    pub(super) fn linked_key(link: &Link) -> FlowKey {
        FlowKey::new(link.client.ip(), link.client.port(), link.server.ip(), link.server.port(), link.transport).0
    }

    /// A packet of a linked flow at `ts`: its session stays alive.
    pub(super) fn keep_linked_alive(&mut self, link: &Link, ts: Ts) {
        if let Some(pid) = self.linked_session(link) {
            self.table.touch(pid, ts);
            let ps = self.table.get_mut(pid);
            ps.last = ps.last.max(ts);
        }
    }

    /// A linked flow `s` ended while its session is open: its packets, bytes
    /// and end go to the session's totals; returns the session's slot and
    /// the flow's entry for its list (sides as the session's; `legs` the
    /// flow's own round trips, by the flow's sides). None: the session is
    /// gone (the flow is recorded alone).
    pub(super) fn fold_linked(
        &mut self,
        link: &Link,
        s: &Session,
        reason: EndReason,
        legs: [Option<Quantiles>; 2],
    ) -> Option<(u32, LinkedFlow)> {
        let pid = self.linked_session(link)?;
        let tuple = Tuple { legs, ..s.tuple(reason) };
        let tuple = if link.same_sides { tuple } else { tuple.swapped() };
        let ps = self.table.get_mut(pid);
        for i in 0..2 {
            ps.packets[i] += tuple.packets[i];
            ps.bytes[i] += tuple.bytes[i];
        }
        ps.last = ps.last.max(s.last);
        let flow = LinkedFlow { tuple, link: link.how };
        Some((pid, flow))
    }

    /// A linked flow of session `pid` ended and was folded in: a session
    /// closed while it ran waited for it, and lingers now unless it waits
    /// for another.
    pub(super) fn linked_flow_ended(&mut self, pid: u32) {
        if self.table.get(pid).closed.is_some() && !waits_for_flows(self.table.get(pid)) {
            self.table.set_lane(pid, Lane::Closing);
        }
    }
}

/// Whether a closed session still waits for its linked flows before it
/// lingers: an RDP connection for its UDP flows, an AnyConnect control
/// connection for its data channel (as a first subflow waits for its joins).
pub(super) fn waits_for_flows(s: &Session) -> bool {
    let rdp = s.app.as_deref().and_then(|a| a.rdp_stream()).is_some_and(|r| r.linked.live > 0);
    rdp || s.tunnel.as_ref().is_some_and(|t| t.link.is_none() && t.linked.live > 0)
}
