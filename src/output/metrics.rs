//! Prometheus metrics: names prefixed `echoloc_`, base units (seconds).
//! Metric names are a contract: dashboards and alerts are built on them.

use super::SessionExport;
use crate::decode::DropReason;
use crate::flow::{Counters, EndReason};
use crate::policy::Policy;
use crate::proto::Proto;
use crate::side::Side;
use crate::verdict::ALERTS;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Round-trip buckets: 0.1 ms to 2 s.
const RTT_BUCKETS: &[f64] =
    &[0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0];

pub struct Metrics {
    pub registry: Registry,
    pub packets: IntCounter,
    pub bytes: IntCounter,
    pub decode_errors: IntCounterVec,
    pub sessions_opened: IntCounterVec,
    pub sessions_ended: IntCounterVec,
    pub sessions_evicted: IntCounter,
    pub sessions_active: IntGauge,
    pub capture_received: IntCounterVec,
    pub capture_dropped: IntCounterVec,
    pub rtt: ByProtoLeg,
    pub handshake_rtt: ByProtoLeg,
    pub echo_delay: ByProtoLeg,
    pub app_turnaround: HistogramVec,
    /// By site: the policy's client subnets (bounded by the policy file).
    pub sites: Sites,
    /// Counted when sessions end (one per session record and alert).
    pub alerts: IntCounterVec,
    pub alerts_raised: IntCounterVec,
    pub sessions_handshake_only: IntCounterVec,
    /// The bound on each engine's session table (after fitting the memory limit).
    pub sessions_limit: IntGauge,
    pub sessions: SessionExport,
}

impl Metrics {
    pub fn new(max_exported: usize, linger: std::time::Duration, policy: Policy) -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<HistogramVec> {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(RTT_BUCKETS.to_vec()), labels)?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let m = Metrics {
            packets: counter("echoloc_packets_total", "Packets read from the capture.")?,
            bytes: counter("echoloc_bytes_total", "IP bytes of the decoded packets (lengths from the IP headers).")?,
            decode_errors: counter_vec(
                "echoloc_decode_errors_total",
                "Packets skipped because they could not be decoded, by reason.",
                &["reason"],
            )?,
            sessions_opened: counter_vec("echoloc_sessions_opened_total", "Sessions opened, by protocol.", &["proto"])?,
            sessions_ended: counter_vec(
                "echoloc_sessions_ended_total",
                "Sessions ended, by protocol and reason (fin, rst, idle, evicted, end_of_input, shutdown).",
                &["proto", "reason"],
            )?,
            sessions_evicted: counter(
                "echoloc_sessions_evicted_total",
                "Sessions evicted because the session table was full (--max-sessions).",
            )?,
            sessions_active: {
                let g = IntGauge::new(
                    "echoloc_sessions_active",
                    "Sessions currently in the session tables (one table per captured interface).",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            capture_received: counter_vec(
                "echoloc_capture_received_packets_total",
                "Packets received by libpcap on the interface.",
                &["interface"],
            )?,
            capture_dropped: counter_vec(
                "echoloc_capture_dropped_packets_total",
                "Packets dropped before echoloc saw them: where=kernel (buffer full) or interface (driver).",
                &["interface", "where"],
            )?,
            rtt: ByProtoLeg::new(histogram(
                "echoloc_rtt_seconds",
                "Transport round-trip samples (handshake and pure ACKs), by protocol and leg (client: sensor to client; server: sensor to server).",
                &["proto", "leg"],
            )?),
            handshake_rtt: ByProtoLeg::new(histogram(
                "echoloc_handshake_rtt_seconds",
                "TCP handshake round trips, by protocol and leg.",
                &["proto", "leg"],
            )?),
            echo_delay: ByProtoLeg::new(histogram(
                "echoloc_echo_delay_seconds",
                "Keystroke to echo delay at the sensor, by protocol.",
                &["proto"],
            )?),
            app_turnaround: histogram(
                "echoloc_app_turnaround_seconds",
                "Application turnaround: request to the answering data packet of the protocol peer, by protocol and side.",
                &["proto", "leg"],
            )?,
            alerts: counter_vec("echoloc_alerts_total", "Session alerts raised, by alert.", &["alert"])?,
            alerts_raised: counter_vec(
                "echoloc_alerts_raised_total",
                "Alerts raised, by alert and protocol: once per session and alert, as soon as the session's verdict first reaches it (while the session runs, or when it ends), whatever the per-session export cap. Alert on increase() of this.",
                &["alert", "proto"],
            )?,
            sites: Sites {
                labels: policy.sites().chain(["other".to_string()]).collect(),
                policy,
                typist_rtt: histogram(
                    "echoloc_site_typist_rtt_seconds",
                    "Typist round trip of each session by site (the policy subnet of its client, or \"other\") and protocol, observed when the session ends.",
                    &["site", "proto"],
                )?,
                hidden: histogram(
                    "echoloc_site_hidden_latency_seconds",
                    "Latency hidden behind the nearest TCP endpoint of a side (leg: client, server) of each session by site and protocol, observed when the session ends.",
                    &["site", "proto", "leg"],
                )?,
                echo: histogram(
                    "echoloc_site_echo_delay_seconds",
                    "Keystroke to echo delay by site (the policy subnet of the client, or \"other\") and protocol.",
                    &["site", "proto"],
                )?,
            },
            sessions_handshake_only: counter_vec(
                "echoloc_sessions_handshake_only_total",
                "Ended TCP sessions that carried no payload either way (a lone SYN, a handshake only: scans), by protocol; also in echoloc_sessions_ended_total. Their records are left out with --skip-handshake-only.",
                &["proto"],
            )?,
            sessions_limit: {
                let g = IntGauge::new(
                    "echoloc_sessions_limit",
                    "Most sessions one capture's table holds (--max-sessions, lowered to fit the cgroup memory limit); the least recently active give way beyond it.",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            sessions: SessionExport::new(&registry, max_exported, linger)?,
            registry,
        };
        let info = IntGaugeVec::new(Opts::new("echoloc_build_info", "Build information; always 1."), &["version"])?;
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m.registry.register(Box::new(info))?;
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds…
        m.registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        // Make every label value visible from the start, so rates work from the first scrape.
        for r in DropReason::ALL {
            m.decode_errors.with_label_values(&[r.as_str()]);
        }
        // At 0 from the start: increase() sees a session's first alert of a kind.
        for alert in ALERTS {
            for p in Proto::ALL {
                m.alerts_raised.with_label_values(&[alert, p.as_str()]);
            }
        }
        Ok(m)
    }

    /// Add what the engine counted since `before`.
    pub fn add_counters(&self, now: &Counters, before: &Counters) {
        self.packets.inc_by(now.packets - before.packets);
        self.bytes.inc_by(now.bytes - before.bytes);
        for r in DropReason::ALL {
            let d = now.decode_errors[r.index()] - before.decode_errors[r.index()];
            if d > 0 {
                self.decode_errors.with_label_values(&[r.as_str()]).inc_by(d);
            }
        }
        for p in Proto::ALL {
            let d = now.opened[p.index()] - before.opened[p.index()];
            if d > 0 {
                self.sessions_opened.with_label_values(&[p.as_str()]).inc_by(d);
            }
            for r in EndReason::ALL {
                let d = now.ended[p.index()][r as usize] - before.ended[p.index()][r as usize];
                if d > 0 {
                    self.sessions_ended.with_label_values(&[p.as_str(), r.as_str()]).inc_by(d);
                }
            }
        }
        for p in Proto::ALL {
            let d = now.handshake_only[p.index()] - before.handshake_only[p.index()];
            if d > 0 {
                self.sessions_handshake_only.with_label_values(&[p.as_str()]).inc_by(d);
            }
        }
        self.sessions_evicted.inc_by(now.evicted - before.evicted);
        self.sessions_active.add(now.active as i64 - before.active as i64);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        self.sessions.sweep();
        let mut buf = Vec::new();
        let enc = TextEncoder::new();
        if let Err(e) = enc.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// A histogram labelled by protocol (and leg), observed once per sample:
/// each child is looked up by its labels once, on first use, then kept.
/// (A child appears in the exposition only once something was observed.)
pub struct ByProtoLeg {
    vec: HistogramVec,
    /// Index: proto × 3 + (0 client, 1 server, 2 no leg).
    children: Box<[std::sync::OnceLock<Histogram>]>,
}

impl ByProtoLeg {
    fn new(vec: HistogramVec) -> ByProtoLeg {
        ByProtoLeg { vec, children: (0..Proto::ALL.len() * 3).map(|_| std::sync::OnceLock::new()).collect() }
    }

    /// The child for `proto` and `leg` (`None` for a histogram labelled by protocol only).
    pub fn get(&self, proto: Proto, leg: Option<Side>) -> &Histogram {
        let i = proto.index() * 3 + leg.map_or(2, |l| l as usize);
        self.children[i].get_or_init(|| match leg {
            Some(l) => self.vec.with_label_values(&[proto.as_str(), l.as_str()]),
            None => self.vec.with_label_values(&[proto.as_str()]),
        })
    }
}

/// Histograms by site: a session's site is the policy subnet of its client
/// (most specific), else "other"; so the label has at most as many values as
/// the policy file has subnets, plus one.
pub struct Sites {
    policy: Policy,
    /// The label of each site: the policy's subnets in order, then "other".
    labels: Vec<String>,
    pub typist_rtt: HistogramVec,
    pub hidden: HistogramVec,
    pub echo: HistogramVec,
}

impl Sites {
    /// The site label of a client.
    pub fn of(&self, ip: std::net::IpAddr) -> &str {
        let i = self.policy.site_of(ip).unwrap_or(self.labels.len() - 1);
        &self.labels[i]
    }
}
