//! Live capture on an interface through libpcap. A capture that fails (the
//! interface went down or away) is logged and reopened, not a crash.

use super::Receiver;
use crate::decode::LinkType;
use crate::time::Ts;
use pcap::{Active, Capture, Precision};
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

/// An interface's libpcap counters since its capture was opened (32 bits:
/// they wrap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Packets that passed the filter.
    pub received: u32,
    /// Dropped by the kernel (buffer full).
    pub dropped: u32,
    /// Dropped by the interface or its driver.
    pub if_dropped: u32,
    /// Which opening of the capture these count from (each reopen starts at 0).
    pub opening: u32,
}

/// Capture until `stop` is set, frames to `to`. The first open must
/// succeed; later failures retry.
pub fn run<R: Receiver>(o: &LiveOptions, mut cap: Capture<Active>, to: &mut R, stop: &AtomicBool) {
    let mut opening = 0;
    let stats = |cap: &mut Capture<Active>, opening| {
        cap.stats().ok().map(|st| Stats {
            received: st.received,
            dropped: st.dropped,
            if_dropped: st.if_dropped,
            opening,
        })
    };
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
                Ok(pkt) => to.frame(&super::frame(link, &pkt)),
                Err(pcap::Error::TimeoutExpired) => {
                    to.drained();
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
                        to.quiet(wall_ns());
                    }
                }
                Err(e) => {
                    tracing::warn!(interface = %o.interface, error = %e, "capture failed; reopening in 1 s");
                    break;
                }
            }
            if last_tick.elapsed() >= Duration::from_secs(1) {
                last_tick = std::time::Instant::now();
                to.tick(stats(&mut cap, opening));
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
                    opening += 1;
                    continue 'outer;
                }
                Err(e) => tracing::warn!(interface = %o.interface, error = %e, "still cannot capture; retrying"),
            }
        }
    }
    to.tick(stats(&mut cap, opening));
}

fn wall_ns() -> Ts {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}
