//! Live capture: one engine per interface, each on its own thread, until
//! SIGINT or SIGTERM; then open sessions are written and the run ends.

use super::pool::Pool;
use super::{Feed, Inline, Sink, metrics_for, sensor_name, start_server};
use crate::capture::{Frame, Receiver, live};
use crate::config::Config;
use crate::engine::{Engine, EngineConfig, Observer};
use crate::flow::EndReason;
use crate::output::{Metrics, Records, SessionRecord};
use crate::time::Ts;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Capture the configured interfaces; returns the exit status.
pub fn live_capture(cfg: &Config) -> anyhow::Result<i32> {
    if cfg.capture.interfaces.is_empty() {
        anyhow::bail!("no interface: give --interface IF (see `ip link`) or capture.interfaces in the config");
    }
    let metrics = metrics_for(cfg)?;
    let opts: Vec<live::LiveOptions> = cfg
        .capture
        .interfaces
        .iter()
        .map(|i| live::LiveOptions {
            interface: i.clone(),
            bpf: cfg.capture.bpf.clone(),
            promiscuous: cfg.capture.promiscuous,
            buffer_bytes: (cfg.capture.buffer_mib.min(2047) * 1024 * 1024) as i32,
            immediate: cfg.capture.immediate,
            snaplen: cfg.capture.snaplen.min(i32::MAX as u32) as i32,
        })
        .collect();
    // Open every interface before anything else: a bad one is an error now.
    let mut caps = Vec::new();
    for o in &opts {
        caps.push(live::open(o)?);
    }
    if let Some(m) = &metrics {
        start_server(cfg, m)?;
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        register_signal(sig)?;
    }
    // Appended to: a restart loses no records; SIGHUP reopens it (logrotate).
    let sink = Sink::open(cfg, true)?;
    let sink = Arc::new(std::sync::Mutex::new(sink));
    let sensor = sensor_name(cfg);
    let mut threads = Vec::new();
    let inputs = cfg.capture.interfaces.len();
    let workers = super::workers(cfg, |cores| (cores / inputs).max(1));
    // One config for every interface's engines: the memory limit read, and
    // a lowered bound logged, once.
    let ecfg = EngineConfig { live_verdicts: true, ..super::engine_config(cfg, inputs, workers, metrics.as_deref()) };
    let skip_handshake_only = cfg.output.skip_handshake_only;
    for (o, cap) in opts.into_iter().zip(caps) {
        let (metrics, sink, ecfg) = (metrics.clone(), sink.clone(), ecfg.clone());
        let (sensor, source) = (sensor.clone(), Some(format!("interface:{}", o.interface)));
        threads.push(std::thread::spawn(move || {
            tracing::info!(interface = %o.interface, workers, "capturing");
            let observer = metrics.clone().map(|m| m as Arc<dyn Observer>);
            // Records are written (and the file flushed) as sessions end.
            let write = |records: &mut dyn Iterator<Item = SessionRecord>| {
                if let Ok(mut s) = sink.lock() {
                    for mut r in records {
                        r.sensor.clone_from(&sensor);
                        r.source.clone_from(&source);
                        s.write(r);
                    }
                    let _ = s.flush();
                }
            };
            let live = |feed: &mut dyn Feed| {
                let mut to = Live { feed, metrics: metrics.clone(), interface: &o.interface, last: None };
                live::run(&o, cap, &mut to, &STOP);
            };
            if workers <= 1 {
                let mut engine = Engine::new(ecfg, observer);
                let mut out = Records { write: |r| write(&mut std::iter::once(r)), skip_handshake_only };
                let mut inline = Inline { engine: &mut engine, out: &mut out };
                live(&mut inline);
                inline.finish(EndReason::Shutdown);
            } else {
                std::thread::scope(|scope| {
                    let mut pool = Pool::start(scope, workers, &ecfg, observer, skip_handshake_only, |records| {
                        write(&mut records.into_iter())
                    });
                    live(&mut pool);
                    pool.finish(EndReason::Shutdown);
                });
            }
            tracing::info!(interface = %o.interface, "capture stopped; open sessions written");
        }));
    }
    // Until every capture has stopped: reopen the output when asked.
    while threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        if REOPEN.swap(false, Ordering::SeqCst)
            && let Ok(mut s) = sink.lock()
        {
            s.reopen();
        }
    }
    for t in threads {
        let _ = t.join();
    }
    if let Ok(mut s) = sink.lock() {
        let _ = s.flush();
    }
    Ok(0)
}

/// The engine(s) behind one interface's capture, and the interface's counters.
struct Live<'a> {
    feed: &'a mut dyn Feed,
    metrics: Option<Arc<Metrics>>,
    interface: &'a str,
    /// The counters last exported.
    last: Option<live::Stats>,
}

impl Receiver for Live<'_> {
    fn frame(&mut self, f: &Frame<'_>) {
        self.feed.frame(f);
    }

    fn drained(&mut self) {
        self.feed.drained();
    }

    fn quiet(&mut self, wall: Ts) {
        self.feed.advance(wall);
    }

    fn tick(&mut self, stats: Option<live::Stats>) {
        self.feed.flush_metrics();
        let (Some(m), Some(now)) = (&self.metrics, stats) else { return };
        // libpcap's counters are 32-bit and wrap: add the forward difference,
        // from 0 after the capture was reopened.
        let last = self.last.filter(|l| l.opening == now.opening);
        let d = |a: u32, b: Option<u32>| u64::from(a.wrapping_sub(b.unwrap_or(0)));
        let iface = self.interface;
        m.capture_received.with_label_values(&[iface]).inc_by(d(now.received, last.map(|l| l.received)));
        m.capture_dropped.with_label_values(&[iface, "kernel"]).inc_by(d(now.dropped, last.map(|l| l.dropped)));
        m.capture_dropped
            .with_label_values(&[iface, "interface"])
            .inc_by(d(now.if_dropped, last.map(|l| l.if_dropped)));
        self.last = Some(now);
    }
}

/// Set by SIGINT or SIGTERM: stop capturing, write open sessions, exit.
static STOP: AtomicBool = AtomicBool::new(false);
/// Set by SIGHUP: reopen the output file.
static REOPEN: AtomicBool = AtomicBool::new(false);

/// On `sig`, set [`STOP`] (SIGHUP: [`REOPEN`]); async-signal-safe: one atomic store.
fn register_signal(sig: i32) -> anyhow::Result<()> {
    extern "C" fn handler(sig: i32) {
        let flag = if sig == libc::SIGHUP { &REOPEN } else { &STOP };
        flag.store(true, Ordering::SeqCst);
    }
    // SAFETY: the handler only performs an atomic store.
    let r = unsafe { libc::signal(sig, handler as *const () as libc::sighandler_t) };
    if r == libc::SIG_ERR {
        anyhow::bail!("cannot install handler for signal {sig}");
    }
    Ok(())
}
