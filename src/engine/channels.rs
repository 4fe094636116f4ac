//! TCP connections that UDP flows join by addresses (docs/sessions.md,
//! section 5): RDP's multitransport flows join its TCP connection, an
//! AnyConnect tunnel's DTLS data channel joins its TLS control connection.
//! A UDP flow from a connection's client address to its server's address
//! and port, opened while the connection is in the table and not closed,
//! is a linked flow of it. One entry per connection at most (the latest
//! from a client to a server): it goes when the connection ends.

use super::Engine;
use crate::flow::{FlowKey, Session};
use crate::ip_proto::IpProto;
use crate::proto::Proto;
use crate::proto::linked::Link;
use crate::time::Ts;
use std::net::{IpAddr, SocketAddr};

/// The open connections by (client address, server address and port):
/// their key and start.
pub(super) type Channels = std::collections::HashMap<(IpAddr, SocketAddr), (FlowKey, Ts)>;

/// Whether a TCP connection of `proto` takes UDP flows (RDP; TLS, which
/// an AnyConnect data channel turns into `anyconnect`).
pub(super) fn takes_channels(proto: Proto) -> bool {
    matches!(proto, Proto::Rdp | Proto::Tls | Proto::Anyconnect)
}

impl Engine {
    /// TCP connection `id` takes UDP flows from its client to its server's
    /// address and port from now on.
    pub(super) fn open_channels(&mut self, id: u32, key: &FlowKey) {
        let s = self.table.get(id);
        self.channels.insert((s.client.ip(), s.server), (*key, s.start));
    }

    /// The open, unclosed connection of a protocol `accepts` that UDP flow
    /// `id` joins: its slot and the flow's link to it (by addresses, sides
    /// alike).
    pub(super) fn channel_host(&self, id: u32, accepts: fn(Proto) -> bool) -> Option<(u32, Link)> {
        let s = self.table.get(id);
        let &(key, start) = self.channels.get(&(s.client.ip(), s.server))?;
        // A connection already closed (waiting for its flows) takes no new one.
        let pid = self.table.find(&key)?;
        let ps = self.table.get(pid);
        if pid == id || ps.start != start || ps.closed.is_some() || !accepts(ps.proto()) {
            return None;
        }
        let link = Link {
            transport: IpProto::TCP,
            client: ps.client,
            server: ps.server,
            start: ps.start,
            how: "addresses",
            same_sides: true,
        };
        Some((pid, link))
    }

    /// A TCP connection ends: its entry goes (not a later connection's).
    pub(super) fn close_channels(&mut self, key: &FlowKey, s: &Session) {
        let k = (s.client.ip(), s.server);
        if self.channels.get(&k).is_some_and(|&(kk, start)| kk == *key && start == s.start) {
            self.channels.remove(&k);
        }
    }
}
