//! Per-session series, bounded: at most `max` sessions are exported at once;
//! a session's series are removed `linger` after it ends. Sessions left out
//! because of the cap are counted.

use crate::flow::{ExportState, FlowKey, Session};
use crate::output::record::uid;
use dashmap::DashMap;
use prometheus::{GaugeVec, IntCounter, IntGauge, Opts, Registry};
use std::time::{Duration, Instant};

struct Entry {
    labels: [String; 4],
    ended: Option<Instant>,
}

pub struct SessionExport {
    /// The session table as the exporter sees it, shared with the scrape handler.
    entries: DashMap<FlowKey, Entry>,
    max: usize,
    linger: Duration,
    rtt: GaugeVec,
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
        registry.register(Box::new(exported.clone()))?;
        registry.register(Box::new(limit))?;
        registry.register(Box::new(skipped.clone()))?;
        Ok(SessionExport { entries: DashMap::new(), max, linger, rtt, exported, skipped })
    }

    /// Publish a session's current figures (creating its series if there is room).
    pub fn publish(&self, key: &FlowKey, s: &mut Session) {
        match s.export {
            ExportState::Skipped => return,
            ExportState::Pending => {
                if self.entries.len() >= self.max {
                    self.sweep();
                }
                if self.entries.len() >= self.max {
                    s.export = ExportState::Skipped;
                    self.skipped.inc();
                    return;
                }
                if let Some((_, old)) = self.entries.remove(key) {
                    self.remove_series(&old.labels);
                }
                let labels =
                    [uid(key, s.start), s.proto().as_str().to_string(), s.client.to_string(), s.server.to_string()];
                self.entries.insert(*key, Entry { labels, ended: None });
                self.exported.set(self.entries.len() as i64);
                s.export = ExportState::Exported;
            }
            ExportState::Exported => {}
        }
        let Some(mut e) = self.entries.get_mut(key) else { return };
        // The protocol can be learnt after the first publish: relabel.
        let proto = s.proto().as_str();
        if e.labels[1] != proto {
            self.remove_series(&e.labels);
            e.labels[1] = proto.to_string();
        }
        if let Some(rtt) = s.rtt.as_deref() {
            for (i, leg) in ["client", "server"].into_iter().enumerate() {
                if let Some(q) = rtt.legs[i].quantiles() {
                    for (stat, v) in [("min", q.min), ("p50", q.p50), ("p90", q.p90), ("max", q.max)] {
                        let l = &e.labels;
                        self.rtt.with_label_values(&[&l[0], &l[1], &l[2], &l[3], leg, stat]).set(v / 1e3);
                    }
                }
            }
        }
    }

    /// A session ended: its series stay for `linger`, then go.
    pub fn end(&self, key: &FlowKey, s: &Session) {
        if s.export != ExportState::Exported {
            return;
        }
        if let Some(mut e) = self.entries.get_mut(key) {
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
        for leg in ["client", "server"] {
            for stat in ["min", "p50", "p90", "max"] {
                let _ = self.rtt.remove_label_values(&[&l[0], &l[1], &l[2], &l[3], leg, stat]);
            }
        }
    }
}
