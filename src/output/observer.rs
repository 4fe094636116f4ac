//! The outputs' side of the engine's interfaces: the Prometheus exporter
//! observes the engine ([`Observer`]), and any function taking a
//! [`SessionRecord`] is a [`RecordSink`] (the record is made, and its alerts
//! logged, here).

use super::Metrics;
use super::record::{SessionRecord, round};
use crate::analysis::{RttSample, SampleKind};
use crate::engine::{Observer, RecordSink};
use crate::flow::{Counters, EndReason, FlowKey, Session};
use crate::proto::Proto;
use crate::time::Ts;
use crate::verdict::{Judge, Verdict};

impl Observer for Metrics {
    fn rtt_samples(&self, proto: Proto, samples: &[Option<RttSample>]) {
        for smp in samples.iter().flatten() {
            let secs = smp.ns as f64 / 1e9;
            match smp.kind {
                SampleKind::Handshake => {
                    self.handshake_rtt.get(proto, Some(smp.leg)).observe(secs);
                    self.rtt.get(proto, Some(smp.leg)).observe(secs);
                }
                SampleKind::Ack => self.rtt.get(proto, Some(smp.leg)).observe(secs),
                SampleKind::Piggyback => {}
            }
        }
    }

    fn echo(&self, proto: Proto, ms: f64) {
        self.echo_delay.get(proto, None).observe(ms / 1e3);
    }

    fn session_update(&self, key: &FlowKey, s: &Session, now: Ts, judge: &Judge) {
        self.sessions.publish(key, s, now, judge);
    }

    fn session_end(&self, key: &FlowKey, s: &Session, v: &Verdict) {
        for alert in &v.alerts {
            self.alerts.with_label_values(&[alert]).inc();
        }
        let proto = s.proto();
        for (i, leg) in ["client", "server"].into_iter().enumerate() {
            if let Some(app) = v.assessment.app_rtt[i] {
                // The floor as the record shows it (ms, 4 decimals), in seconds.
                self.app_turnaround.with_label_values(&[proto.as_str(), leg]).observe(round(app.floor, 4) / 1e3);
            }
        }
        // Interactive sessions get series even if they never published.
        self.sessions.publish_end(key, s, v, s.app.is_some());
        self.sessions.end(key, s);
    }

    fn counters(&self, now: &Counters, before: &Counters) {
        self.add_counters(now, before);
    }
}

impl<F: FnMut(SessionRecord)> RecordSink for F {
    fn record(&mut self, s: &Session, reason: EndReason, v: &Verdict) {
        let rec = SessionRecord::new(s, reason, v);
        for alert in &v.alerts {
            tracing::warn!(alert = %alert, uid = %rec.uid, proto = rec.proto, client = %rec.client, server = %rec.server,
                typist_rtt_ms = ?rec.typist_rtt_ms, client_hidden_ms = ?rec.client_hidden_ms, server_hidden_ms = ?rec.server_hidden_ms,
                "session alert");
        }
        self(rec)
    }
}
