//! Live capture on an interface through libpcap. A capture that fails (the
//! interface went down or away) is logged and reopened, not a crash.

use crate::decode::LinkType;
use crate::engine::{Engine, RecordSink};
use crate::output::Metrics;
use pcap::{Active, Capture, Precision};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub interface: String,
    pub bpf: Option<String>,
    pub promiscuous: bool,
    pub buffer_bytes: i32,
    pub immediate: bool,
    pub snaplen: i32,
}

/// Open the interface; the error says what to do about it.
pub fn open(o: &LiveOptions) -> anyhow::Result<Capture<Active>> {
    let inactive = Capture::from_device(o.interface.as_str())
        .map_err(|e| anyhow::anyhow!("interface {}: {e}", o.interface))?
        .promisc(o.promiscuous)
        .snaplen(o.snaplen)
        .buffer_size(o.buffer_bytes)
        .immediate_mode(o.immediate)
        .precision(Precision::Nano)
        .timeout(100);
    let mut cap = inactive.open().map_err(|e| {
        let msg = e.to_string();
        if msg.contains("ermission") || msg.contains("not permitted") {
            anyhow::anyhow!(
                "cannot capture on {}: {msg}. Run as root or grant the capability: sudo setcap cap_net_raw,cap_net_admin=eip $(command -v echoloc)",
                o.interface
            )
        } else if msg.contains("No such device") || msg.contains("doesn't exist") {
            anyhow::anyhow!("cannot capture on {}: no such interface (see `ip link`)", o.interface)
        } else {
            anyhow::anyhow!("cannot capture on {}: {msg}", o.interface)
        }
    })?;
    if let Some(f) = &o.bpf {
        cap.filter(f, true).map_err(|e| anyhow::anyhow!("BPF filter {f:?}: {e}"))?;
    }
    // Non-blocking, and `run` waits on the descriptor itself, at most
    // `WAIT_MS`: a blocking read of Linux's packet ring waited until more
    // packets passed the filter, however long, so the last packets of a
    // burst waited for the next burst and a stop request went unseen.
    cap.setnonblock().map_err(|e| anyhow::anyhow!("cannot capture on {}: {e}", o.interface))
}

/// Longest wait for packets before the stop flag and idle sessions are
/// looked at again.
const WAIT_MS: i32 = 100;

unsafe extern "C" {
    /// libpcap: the descriptor to wait on for packets, -1 when there is none.
    fn pcap_get_selectable_fd(p: *mut std::ffi::c_void) -> std::ffi::c_int;
}

fn selectable_fd(cap: &Capture<Active>) -> Option<std::os::fd::RawFd> {
    // SAFETY: the handle is open for as long as `cap` lives.
    let fd = unsafe { pcap_get_selectable_fd(cap.as_ptr().cast()) };
    (fd >= 0).then_some(fd)
}

/// Wait until `fd` has packets to read, at most `WAIT_MS`; false when none
/// came (or a signal cut the wait short).
fn wait_readable(fd: std::os::fd::RawFd) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: `p` is one valid pollfd that lives across the call; poll only
    // writes its `revents`.
    unsafe { libc::poll(&mut p, 1, WAIT_MS) > 0 }
}

/// Capture until `stop` is set. The first open must succeed; later failures retry.
pub fn run(
    o: &LiveOptions,
    mut cap: Capture<Active>,
    engine: &mut Engine,
    out: &mut dyn RecordSink,
    metrics: Option<Arc<Metrics>>,
    stop: &AtomicBool,
) {
    let mut last_stats = (0u64, 0u64, 0u64);
    let mut last_tick = std::time::Instant::now();
    'outer: while !stop.load(Ordering::Relaxed) {
        let dl = cap.get_datalink().0;
        let link = LinkType::from_pcap(dl);
        let fd = selectable_fd(&cap);
        loop {
            if stop.load(Ordering::Relaxed) {
                break 'outer;
            }
            match cap.next_packet() {
                Ok(pkt) => super::feed(engine, link, &pkt, out),
                Err(pcap::Error::TimeoutExpired) => {
                    // Nothing to read. After a quiet spell the packet clock
                    // follows the wall clock, so idle sessions still end.
                    let came = match fd {
                        Some(fd) => wait_readable(fd),
                        None => {
                            std::thread::sleep(Duration::from_millis(WAIT_MS as u64));
                            false
                        }
                    };
                    if !came {
                        engine.advance(wall_ns(), out);
                    }
                }
                Err(e) => {
                    tracing::warn!(interface = %o.interface, error = %e, "capture failed; reopening in 1 s");
                    break;
                }
            }
            if last_tick.elapsed() >= Duration::from_secs(1) {
                last_tick = std::time::Instant::now();
                engine.flush_metrics();
                if let (Some(m), Ok(st)) = (&metrics, cap.stats()) {
                    export_stats(m, &o.interface, &mut last_stats, st);
                }
            }
        }
        // Reopen until it works or we are told to stop.
        loop {
            if stop.load(Ordering::Relaxed) {
                break 'outer;
            }
            std::thread::sleep(Duration::from_secs(1));
            match open(o) {
                Ok(c) => {
                    tracing::info!(interface = %o.interface, "capture reopened");
                    cap = c;
                    last_stats = (0, 0, 0);
                    continue 'outer;
                }
                Err(e) => tracing::warn!(interface = %o.interface, error = %e, "still cannot capture; retrying"),
            }
        }
    }
    if let (Some(m), Ok(st)) = (&metrics, cap.stats()) {
        export_stats(m, &o.interface, &mut last_stats, st);
    }
}

fn export_stats(m: &Metrics, iface: &str, last: &mut (u64, u64, u64), st: pcap::Stat) {
    let now = (st.received as u64, st.dropped as u64, st.if_dropped as u64);
    // libpcap's counters are 32-bit and wrap; add the forward difference.
    let d = |a: u64, b: u64| (a.wrapping_sub(b)) & 0xFFFF_FFFF;
    m.capture_received.with_label_values(&[iface]).inc_by(d(now.0, last.0));
    m.capture_dropped.with_label_values(&[iface, "kernel"]).inc_by(d(now.1, last.1));
    m.capture_dropped.with_label_values(&[iface, "interface"]).inc_by(d(now.2, last.2));
    *last = now;
}

fn wall_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}
