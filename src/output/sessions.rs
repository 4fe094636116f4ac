//! Per-session series, bounded: at most `max` sessions are exported at once;
//! a session's series show each verdict the engine hands over (at most once
//! a second of packet time), and are removed `linger` after it ends.
//! Sessions left out because of the cap are counted. What is exported is
//! kept here, not in the session.

use crate::analysis::relay::max_distance_km;
use crate::flow::{FlowKey, Session};
use crate::output::record::uid;
use crate::time::Ts;
use crate::verdict::Verdict;
use dashmap::{DashMap, DashSet};
use prometheus::{GaugeVec, IntCounter, IntGauge, Opts, Registry};
use std::time::{Duration, Instant};

struct Entry {
    /// The session's start: a later session on the same key is another.
    start: Ts,
    labels: [String; 4],
    ended: Option<Instant>,
}

pub struct SessionExport {
    /// The session table as the exporter sees it, shared with the scrape handler.
    entries: DashMap<FlowKey, Entry>,
    /// Open sessions left out because the cap was reached (key and start):
    /// never exported, even when room is made. An entry goes when its session ends.
    skipped_open: DashSet<(FlowKey, Ts)>,
    max: usize,
    linger: Duration,
    rtt: GaugeVec,
    typist: GaugeVec,
    hidden: GaugeVec,
    relay: GaugeVec,
    keystrokes: GaugeVec,
    over_policy: GaugeVec,
    distance: GaugeVec,
    distance_m: GaugeVec,
    exported: IntGauge,
    skipped: IntCounter,
}

const LABELS: [&str; 4] = ["session", "proto", "client", "server"];

impl SessionExport {
    pub fn new(registry: &Registry, max: usize, linger: Duration) -> prometheus::Result<SessionExport> {
        let mut labels = LABELS.to_vec();
        labels.extend(["leg", "stat"]);
        let rtt = GaugeVec::new(
            Opts::new(
                "echoloc_session_rtt_seconds",
                "Transport round trip of one session by leg (client: sensor to client; server: sensor to server) and stat (min, p50, p90, max).",
            ),
            &labels,
        )?;
        let exported = IntGauge::new("echoloc_exported_sessions", "Sessions whose own series are currently exported.")?;
        let limit = IntGauge::new(
            "echoloc_exported_sessions_limit",
            "Most sessions whose own series are exported at once (--max-exported-sessions).",
        )?;
        limit.set(max as i64);
        let skipped = IntCounter::new(
            "echoloc_exported_sessions_skipped_total",
            "Sessions whose own series were not exported because the cap was reached.",
        )?;
        registry.register(Box::new(rtt.clone()))?;
        let gauge = |name: &str, help: &str, leg: bool| -> prometheus::Result<GaugeVec> {
            let mut l = LABELS.to_vec();
            if leg {
                l.push("leg");
            }
            let g = GaugeVec::new(Opts::new(name, help), &l)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let typist = gauge(
            "echoloc_session_typist_rtt_seconds",
            "Best estimate of the round trip from the sensor to the person typing.",
            false,
        )?;
        let hidden = gauge(
            "echoloc_session_hidden_latency_seconds",
            "Latency hidden behind the nearest TCP endpoint of a side (deepest responder minus transport floor).",
            true,
        )?;
        let relay =
            gauge("echoloc_session_relay_suspected", "1 when a relay is suspected on that side, else 0.", true)?;
        let keystrokes = gauge("echoloc_session_keystrokes", "Keystrokes seen in the session.", false)?;
        let over_policy = gauge(
            "echoloc_session_over_policy",
            "1 when the typist round trip exceeds the policy for the client's subnet, else 0.",
            false,
        )?;
        let distance = gauge(
            "echoloc_session_max_distance_km",
            "Upper bound on the typist's distance from the sensor (light in fibre).",
            false,
        )?;
        let distance_m = gauge(
            "echoloc_session_max_distance_meters",
            "Upper bound on the typist's distance from the sensor (light in fibre), in meters: echoloc_session_max_distance_km in base units.",
            false,
        )?;
        registry.register(Box::new(exported.clone()))?;
        registry.register(Box::new(limit))?;
        registry.register(Box::new(skipped.clone()))?;
        Ok(SessionExport {
            entries: DashMap::new(),
            skipped_open: DashSet::new(),
            max,
            linger,
            rtt,
            typist,
            hidden,
            relay,
            keystrokes,
            over_policy,
            distance,
            distance_m,
            exported,
            skipped,
        })
    }

    /// A session's verdict: its series show it if they are exported, or if
    /// `admit` and there is room to create them (a running session always
    /// asks; an ended one only if it is interactive).
    pub fn publish(&self, key: &FlowKey, s: &Session, v: &Verdict, admit: bool) {
        if self.is_exported(key, s) || (admit && self.admit(key, s)) {
            self.render(key, s, v);
        }
    }

    fn is_exported(&self, key: &FlowKey, s: &Session) -> bool {
        self.entries.get(key).is_some_and(|e| e.start == s.start && e.ended.is_none())
    }

    /// Create a session's series if there is room; false if it was left out
    /// (now or before).
    fn admit(&self, key: &FlowKey, s: &Session) -> bool {
        if self.skipped_open.contains(&(*key, s.start)) {
            return false;
        }
        if self.entries.len() >= self.max {
            self.sweep();
        }
        if self.entries.len() >= self.max {
            self.skipped_open.insert((*key, s.start));
            self.skipped.inc();
            return false;
        }
        if let Some((_, old)) = self.entries.remove(key) {
            self.remove_series(&old.labels);
        }
        let labels = [
            uid(s.transport, s.client, s.server, s.start),
            s.proto().as_str().to_string(),
            s.client.to_string(),
            s.server.to_string(),
        ];
        self.entries.insert(*key, Entry { start: s.start, labels, ended: None });
        self.exported.set(self.entries.len() as i64);
        true
    }

    /// Set a session's series from its figures and verdict.
    fn render(&self, key: &FlowKey, s: &Session, v: &Verdict) {
        let Some(mut e) = self.entries.get_mut(key) else { return };
        // The protocol can be learnt after the first publish: relabel.
        let proto = s.proto().as_str();
        if e.labels[1] != proto {
            self.remove_series(&e.labels);
            e.labels[1] = proto.to_string();
        }
        let legs = v.legs;
        for (i, leg) in ["client", "server"].into_iter().enumerate() {
            if let Some(q) = legs[i] {
                for (stat, v) in [("min", q.min), ("p50", q.p50), ("p90", q.p90), ("max", q.max)] {
                    let l = &e.labels;
                    self.rtt.with_label_values(&[&l[0], &l[1], &l[2], &l[3], leg, stat]).set(v / 1e3);
                }
            }
        }
        let l = &e.labels;
        let base = [l[0].as_str(), l[1].as_str(), l[2].as_str(), l[3].as_str()];
        let a = &v.assessment;
        if let Some(t) = a.typist_rtt_ms {
            self.typist.with_label_values(&base).set(t / 1e3);
            self.distance.with_label_values(&base).set(max_distance_km(t));
            self.distance_m.with_label_values(&base).set(max_distance_km(t) * 1e3);
        }
        if let Some(over) = v.over_policy {
            self.over_policy.with_label_values(&base).set(if over { 1.0 } else { 0.0 });
        }
        for (i, leg) in ["client", "server"].into_iter().enumerate() {
            let with_leg = [base[0], base[1], base[2], base[3], leg];
            if let Some(h) = a.hidden_ms[i] {
                self.hidden.with_label_values(&with_leg).set(h / 1e3);
            }
            if let Some(r) = &a.relay[i] {
                self.relay.with_label_values(&with_leg).set(if r.suspected { 1.0 } else { 0.0 });
            }
        }
        if let Some(inter) = s.interactive() {
            self.keystrokes.with_label_values(&base).set(inter.keystroke_count() as f64);
        }
    }

    /// A session ended: its series stay for `linger`, then go.
    pub fn end(&self, key: &FlowKey, s: &Session) {
        self.skipped_open.remove(&(*key, s.start));
        if let Some(mut e) = self.entries.get_mut(key)
            && e.start == s.start
        {
            e.ended = Some(Instant::now());
        }
    }

    /// Remove the series of sessions that ended more than `linger` ago.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.entries.retain(|_, e| match e.ended {
            Some(t) if now.duration_since(t) >= self.linger => {
                self.remove_series(&e.labels);
                false
            }
            _ => true,
        });
        self.exported.set(self.entries.len() as i64);
    }

    fn remove_series(&self, l: &[String; 4]) {
        let base = [l[0].as_str(), l[1].as_str(), l[2].as_str(), l[3].as_str()];
        for g in [&self.typist, &self.keystrokes, &self.over_policy, &self.distance, &self.distance_m] {
            let _ = g.remove_label_values(&base);
        }
        for leg in ["client", "server"] {
            for g in [&self.hidden, &self.relay] {
                let _ = g.remove_label_values(&[base[0], base[1], base[2], base[3], leg]);
            }
            for stat in ["min", "p50", "p90", "max"] {
                let _ = self.rtt.remove_label_values(&[&l[0], &l[1], &l[2], &l[3], leg, stat]);
            }
        }
    }
}
