//! The verdict on a session, worked out in one place and once per session
//! state: the transport figures of each leg, the assessment (application
//! turnarounds, hidden latency, relays, the typist's round trip), the policy
//! rule that applies and the alerts. The JSON record, the per-session gauges
//! and the logs render a [`Verdict`]; none of them judges.

use crate::analysis::Quantiles;
use crate::analysis::assess::{Assessment, assess};
use crate::analysis::relay::{Thresholds, Transport};
use crate::flow::Session;
use crate::flow::mptcp::Role;
use crate::ip_proto::IpProto;
use crate::policy::{Limit, Policy};
use crate::side::Side;

/// What turns measurements into verdicts and alerts.
#[derive(Debug, Clone, Default)]
pub struct Judge {
    pub thresholds: Thresholds,
    pub policy: Policy,
}

/// An alert a session raises.
pub const RELAY_SUSPECTED: &str = "relay_suspected";
pub const RTT_OVER_POLICY: &str = "rtt_over_policy";

/// Every alert, in the order a verdict lists them; an alert's bit in
/// [`Session::raised`] is `1 << its index here`.
pub const ALERTS: [&str; 2] = [RELAY_SUSPECTED, RTT_OVER_POLICY];

/// The bit of an alert in [`Session::raised`].
pub fn alert_bit(alert: &str) -> u8 {
    ALERTS.iter().position(|a| *a == alert).map_or(0, |i| 1 << i)
}

/// The verdict on one session as it stands.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Transport round-trip quantiles of each leg (client, server).
    pub legs: [Option<Quantiles>; 2],
    pub assessment: Assessment,
    /// The policy rule that applies to the client, if any.
    pub limit: Option<Limit>,
    /// Whether the typist's round trip exceeds that rule: null without a
    /// rule or without a typist figure.
    pub over_policy: Option<bool>,
    /// [`RELAY_SUSPECTED`], [`RTT_OVER_POLICY`], in that order.
    pub alerts: Vec<&'static str>,
}

impl Judge {
    /// Judge session `s` as it stands.
    pub fn verdict(&self, s: &Session) -> Verdict {
        let legs = s.leg_quantiles();
        let assessment = assessment(s, &legs, self);
        let limit = self.policy.limit_for(s.client.ip());
        let over_policy = limit.zip(assessment.typist_rtt_ms).map(|(l, t)| l.exceeded_by(t));
        let mut alerts = Vec::new();
        if assessment.relay.iter().flatten().any(|r| r.suspected) {
            alerts.push(RELAY_SUSPECTED);
        }
        if over_policy == Some(true) {
            alerts.push(RTT_OVER_POLICY);
        }
        Verdict { legs, assessment, limit, over_policy, alerts }
    }
}

/// Everything derived from a session's measurements; `legs` from [`Session::leg_quantiles`].
fn assessment(s: &Session, legs: &[Option<Quantiles>; 2], judge: &Judge) -> Assessment {
    let rtt = s.rtt();
    // A UDP flow timed by its protocol (RDP over UDP) carries none of its
    // session's exchange (that is on the TCP connection): no verdict, unless
    // the desktop itself ran over it (keys or frame acknowledgements of its
    // own: a flow recorded alone; a linked flow's went to its connection).
    // A tunnel's inner round trips time its own client leg: it is judged.
    let desktop =
        || s.interactive().is_some_and(|i| i.keystroke_count() > 0 || i.app_floor(Side::Client, None, false).is_some());
    if rtt.is_some() && s.transport != IpProto::TCP && s.tunnel.is_none() && !desktop() {
        return Assessment::default();
    }
    // A tunnel's linked flow: its session's exchange ran on its first tuple.
    if s.tunnel.as_ref().is_some_and(|t| t.link.is_some()) {
        return Assessment::default();
    }
    let legs = [0, 1].map(|i| {
        let measured = rtt.map_or((false, 0), |r| (r.handshake[i].is_some(), r.legs[i].clean));
        legs[i].as_ref().map(|q| Transport::of(q, measured.0, measured.1))
    });
    let subflows = match s.multipath().map(|m| (&m.role, &m.subflows)) {
        Some((Role::First, subs)) => subs.as_slice(),
        // A join subflow alone carries none of its connection's exchange.
        Some((Role::Join(_), _)) => return Assessment::default(),
        None => &[],
    };
    let mut a = assess(legs, s.interactive(), s.turns.as_deref(), &judge.thresholds);
    if s.tunnel.is_some() {
        // A tunnel's control round trips are answered by its own ends: no
        // relay sits inside a tunnel, so they alone suspect none (a slow
        // control plane is a busy gateway, a user-space daemon, its crypto).
        // The client's answers inside the tunnel are no control round trips:
        // they come from the far end of the inner protocol, past the laptop
        // (analysis/tunnel/answers.rs), and a level of them stands.
        let floor = legs[0].map(|l| l.floor);
        let inner = s.interactive().is_some_and(|i| i.app_floor(Side::Client, floor, false).is_some());
        let skip = if inner { 1 } else { 0 };
        for r in a.relay.iter_mut().skip(skip).flatten().filter(|r| r.suspected) {
            r.suspected = false;
            r.hops_est = 0;
            r.evidence.push("a tunnel's own control round trips: no relay verdict from them alone".to_string());
        }
    }
    // Keystrokes, echoes and replies travel on every subflow of a Multipath
    // TCP connection: a side is suspected of a relay only if it still is
    // against the slowest path, so a slower subflow is no relay. The typist's
    // round trip stays the first subflow's: as near as its nearest path.
    let mut slowest = legs;
    for sub in subflows {
        for (i, leg) in slowest.iter_mut().enumerate() {
            let j = sub.side(i);
            if let Some(q) = &sub.tuple.legs[j] {
                let t = Transport::of(q, sub.tuple.handshake[j].is_some(), sub.clean[j]);
                if leg.is_none_or(|l| t.floor > l.floor) {
                    *leg = Some(t);
                }
            }
        }
    }
    if slowest != legs && a.relay.iter().flatten().any(|r| r.suspected) {
        let judged = assess(slowest, s.interactive(), s.turns.as_deref(), &judge.thresholds);
        for (i, slow) in slowest.iter().enumerate() {
            let still = judged.relay[i].as_ref().is_some_and(|r| r.suspected);
            if let Some(r) = a.relay[i].as_mut().filter(|r| r.suspected && !still) {
                r.suspected = false;
                r.hops_est = 0;
                r.evidence.push(format!("a slower subflow: transport {:.1} ms", slow.map_or(0.0, |l| l.floor)));
                a.hidden_ms[i] = judged.hidden_ms[i];
            }
        }
    }
    a
}
