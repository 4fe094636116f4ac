//! Live capture: one engine per interface, each on its own thread, until
//! SIGINT or SIGTERM; then open sessions are written and the run ends.

use super::{Sink, metrics_for, start_server};
use crate::capture::live;
use crate::config::Config;
use crate::engine::{Engine, EngineConfig, Observer};
use crate::flow::EndReason;
use crate::output::SessionRecord;
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
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook_consts::SIGINT, signal_hook_consts::SIGTERM] {
        let s = stop.clone();
        register_signal(sig, s)?;
    }
    let (sink, _) = Sink::open(cfg)?;
    let sink = Arc::new(std::sync::Mutex::new(sink));
    let mut threads = Vec::new();
    for (o, cap) in opts.into_iter().zip(caps) {
        let (stop, metrics, sink, ecfg) = (stop.clone(), metrics.clone(), sink.clone(), EngineConfig::from_config(cfg));
        threads.push(std::thread::spawn(move || {
            tracing::info!(interface = %o.interface, "capturing");
            let mut engine = Engine::new(ecfg, metrics.clone().map(|m| m as Arc<dyn Observer>));
            let mut out = |r: SessionRecord| {
                if let Ok(mut s) = sink.lock() {
                    s.write(r);
                    let _ = s.flush();
                }
            };
            live::run(&o, cap, &mut engine, &mut out, metrics, &stop);
            engine.finish_all(EndReason::Shutdown, &mut out);
            tracing::info!(interface = %o.interface, "capture stopped; open sessions written");
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    if let Ok(mut s) = sink.lock() {
        let _ = s.flush();
    }
    Ok(0)
}

mod signal_hook_consts {
    pub const SIGINT: i32 = libc::SIGINT;
    pub const SIGTERM: i32 = libc::SIGTERM;
}

/// Set `flag` when the signal arrives (async-signal-safe: one atomic store).
fn register_signal(sig: i32, flag: Arc<AtomicBool>) -> anyhow::Result<()> {
    static FLAGS: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    let _ = FLAGS.set(flag);
    extern "C" fn handler(_: i32) {
        if let Some(f) = FLAGS.get() {
            f.store(true, Ordering::SeqCst);
        }
    }
    // SAFETY: the handler only performs an atomic store.
    let r = unsafe { libc::signal(sig, handler as *const () as libc::sighandler_t) };
    if r == libc::SIG_ERR {
        anyhow::bail!("cannot install handler for signal {sig}");
    }
    Ok(())
}
