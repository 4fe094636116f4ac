//! The engine's RDP part: a UDP flow of an RDP session (MS-RDPEMT
//! multitransport) is a linked flow of its TCP connection, found by
//! addresses (`channels.rs`): the same client address, the server's address
//! and port, while the connection is in the table. It keeps the connection
//! alive (a connection closed by FIN or RST waits for its open flows, then
//! lingers), and when it ends its figures are folded into the connection's
//! record (`rdp.linked_flows`); a flow whose connection was never seen, or
//! was written first (evicted), is recorded alone.

use super::Engine;
use super::outputs::RecordSink;
use crate::analysis::desktop::Event;
use crate::flow::{EndReason, Session};
use crate::ip_proto::IpProto;
use crate::proto::Proto;
use crate::proto::linked::Link;
use crate::proto::rdp::udp::Source;
use crate::side::Side;
use crate::time::Ts;

impl Engine {
    /// A datagram of an RDP flow over UDP (after its dissector read it):
    /// on the flow's first, link it to its TCP connection if one is open;
    /// on every one of a linked flow, keep the connection alive.
    pub(super) fn rdp_datagram(&mut self, id: u32, ts: Ts, first: bool) {
        if first {
            let Some((pid, link)) = self.channel_host(id, |p| p == Proto::Rdp) else { return };
            let ps = self.table.get_mut(pid);
            if let Some(r) = ps.app.as_deref_mut().and_then(|a| a.rdp_stream_mut()) {
                r.info.udp = true;
                r.linked.live += 1;
            }
            let s = self.table.get_mut(id);
            if let Some(r) = s.app.as_deref_mut().and_then(|a| a.rdp_stream_mut()) {
                r.link = Some(link);
            }
            self.mark_linked(id, pid);
        }
        if let Some(link) = rdp_link(self.table.get(id)) {
            self.keep_linked_alive(&link, ts);
        }
    }

    /// A source datagram of an RDP flow over UDP: read by the flow's
    /// desktop analysis, its keys, echoes and frame acknowledgements go to
    /// the session it belongs to (the TCP connection it is linked to, sides
    /// alike, which is judged on them as on its own; else the flow's own).
    /// Returns the echo.
    pub(super) fn rdp_source(
        &mut self,
        id: u32,
        ts: Ts,
        from: Side,
        src: Source,
        out: &mut dyn RecordSink,
    ) -> Option<f64> {
        let link = rdp_link(self.table.get(id)).filter(|l| l.same_sides);
        let root = link.and_then(|l| self.linked_session(&l)).unwrap_or(id);
        let news = self.table.get_mut(id).app.as_deref_mut()?.rdp_stream_mut()?.on_source(ts, from, src, root)?;
        let echo = self.table.get_mut(root).app.as_deref_mut()?.take_udp_news(news);
        if let Some(l) = link.filter(|_| root != id && matches!(news.event, Event::Echo(_) | Event::FrameAck(_))) {
            self.judge_live(root, &Self::linked_key(&l), ts, out);
        }
        echo
    }

    /// An RDP flow over UDP ends: linked to an open connection, it is
    /// folded into it (true: no record of its own), else it is recorded
    /// alone (and counted as a session).
    pub(super) fn end_rdp(&mut self, s: &mut Session, reason: EndReason) -> bool {
        let Some(link) = rdp_link(s) else { return false };
        let Some((pid, flow)) = self.fold_linked(&link, s, reason, s.leg_quantiles()) else {
            s.counted = false;
            return false;
        };
        let ps = self.table.get_mut(pid);
        if let Some(r) = ps.app.as_deref_mut().and_then(|a| a.rdp_stream_mut()) {
            r.add_linked(flow);
        }
        self.linked_flow_ended(pid);
        true
    }

    /// Whether an ended session would be folded into an open connection
    /// (its record then goes first at the end of input).
    pub(super) fn rdp_folds(&self, s: &Session) -> bool {
        rdp_link(s).is_some_and(|l| self.linked_session(&l).is_some())
    }
}

/// The TCP connection a UDP flow of RDP was linked to.
pub(super) fn rdp_link(s: &Session) -> Option<Link> {
    if s.transport != IpProto::UDP || s.proto() != Proto::Rdp {
        return None;
    }
    s.app.as_deref()?.rdp_stream()?.link
}
