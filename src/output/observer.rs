//! The outputs' side of the engine's interfaces: the Prometheus exporter
//! observes the engine ([`Observer`]), and any function taking a
//! [`SessionRecord`] is a [`RecordSink`] (the record is made, and its alerts
//! logged, here).

use super::Metrics;
use super::record::{SessionRecord, round, uid};
use crate::analysis::{RttSample, SampleKind};
use crate::engine::{Observer, RecordSink};
use crate::flow::{Counters, EndReason, FlowKey, Session};
use crate::proto::Proto;
use crate::time::Ts;
use crate::time::rfc3339;
use crate::verdict::Verdict;

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

    fn echo(&self, proto: Proto, client: std::net::IpAddr, ms: f64) {
        self.echo_delay.get(proto, None).observe(ms / 1e3);
        self.sites.echo.with_label_values(&[self.sites.of(client), proto.as_str()]).observe(ms / 1e3);
    }

    fn session_update(&self, key: &FlowKey, s: &Session, v: &Verdict) {
        self.sessions.publish(key, s, v, true);
    }

    fn alert_raised(&self, s: &Session, alert: &'static str) {
        self.alerts_raised.with_label_values(&[alert, s.proto().as_str()]).inc();
    }

    fn session_end(&self, key: &FlowKey, s: &Session, v: &Verdict) {
        for alert in &v.alerts {
            self.alerts.with_label_values(&[alert]).inc();
        }
        let proto = s.proto();
        let site = self.sites.of(s.client.ip());
        let a = &v.assessment;
        if let Some(t) = a.typist_rtt_ms {
            self.sites.typist_rtt.with_label_values(&[site, proto.as_str()]).observe(t / 1e3);
        }
        for (i, leg) in ["client", "server"].into_iter().enumerate() {
            if let Some(h) = a.hidden_ms[i] {
                self.sites.hidden.with_label_values(&[site, proto.as_str(), leg]).observe(h / 1e3);
            }
            if let Some(app) = v.assessment.app_rtt[i] {
                // The floor as the record shows it (ms, 4 decimals), in seconds.
                self.app_turnaround.with_label_values(&[proto.as_str(), leg]).observe(round(app.floor, 4) / 1e3);
            }
        }
        // Interactive sessions get series even if they never published.
        self.sessions.publish(key, s, v, s.interactive().is_some());
        self.sessions.end(key, s);
    }

    fn counters(&self, now: &Counters, before: &Counters) {
        self.add_counters(now, before);
    }
}

/// Records to a writer, those of handshake-only sessions left out if asked.
pub struct Records<F: FnMut(SessionRecord)> {
    pub write: F,
    pub skip_handshake_only: bool,
}

impl<F: FnMut(SessionRecord)> RecordSink for Records<F> {
    fn record(&mut self, s: &Session, reason: EndReason, v: &Verdict) {
        if !(self.skip_handshake_only && s.handshake_only()) {
            self.write.record(s, reason, v);
        }
    }

    fn alert(&mut self, s: &Session, alert: &'static str, v: &Verdict, now: Ts) {
        self.write.alert(s, alert, v, now);
    }
}

impl<F: FnMut(SessionRecord)> RecordSink for F {
    fn record(&mut self, s: &Session, reason: EndReason, v: &Verdict) {
        let rec = SessionRecord::new(s, reason, v);
        for alert in &v.alerts {
            tracing::warn!(alert = %alert, uid = %rec.uid, proto = rec.proto, client = %rec.client, server = %rec.server,
                typist_rtt_ms = %num(rec.typist_rtt_ms), client_hidden_ms = %num(rec.client_hidden_ms),
                server_hidden_ms = %num(rec.server_hidden_ms), "session alert");
        }
        self(rec)
    }

    fn alert(&mut self, s: &Session, alert: &'static str, v: &Verdict, now: Ts) {
        let a = &v.assessment;
        tracing::warn!(alert = %alert, uid = %uid(s.transport, s.client, s.server, s.start), proto = s.proto().as_str(),
            client = %s.client, server = %s.server, at = %rfc3339(now),
            typist_rtt_ms = %num(a.typist_rtt_ms.map(|x| round(x, 4))),
            client_hidden_ms = %num(a.hidden_ms[0].map(|x| round(x, 4))),
            server_hidden_ms = %num(a.hidden_ms[1].map(|x| round(x, 4))), "alert raised (session still open)");
    }
}

/// A figure in a log line: the number, or `null` when not measured.
fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "null".to_string(), |v| v.to_string())
}
