//! The replay's progress bar on stderr, and what keeps other output clear
//! of it: log lines, error lines and records on the same terminal are
//! written with the bar taken off the screen (it is drawn again after).

use std::cell::Cell;
use std::io::Write;
use std::sync::Mutex;

/// Whether a replay shows a progress bar: whenever stderr is a terminal,
/// unless `--no-progress` (whatever the records' format or destination).
pub fn wanted(no_progress: bool, stderr_is_terminal: bool) -> bool {
    !no_progress && stderr_is_terminal
}

/// The bar on screen, for the log writer (logs may come from any thread).
static SHOWN: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

thread_local! {
    /// Inside [`suspend`] on this thread: the bar is off the screen, and
    /// suspending it again would wait for itself.
    static SUSPENDED: Cell<bool> = const { Cell::new(false) };
}

/// A progress bar over `total` bytes, on stderr; shown until dropped.
pub struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    /// `total` 0: unknown (standard input), bytes read alone are shown.
    pub fn start(total: u64) -> Progress {
        let bar = indicatif::ProgressBar::new(total);
        let template =
            if total > 0 { "{spinner} {bytes}/{total_bytes} {wide_bar} {eta}" } else { "{spinner} {bytes} {elapsed}" };
        bar.set_style(
            indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        if let Ok(mut s) = SHOWN.lock() {
            *s = Some(bar.clone());
        }
        Progress { bar }
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Ok(mut s) = SHOWN.lock() {
            *s = None;
        }
        self.bar.finish_and_clear();
    }
}

/// Run `f` (which writes to the terminal) with the bar, if one is shown,
/// off the screen.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    if SUSPENDED.get() {
        return f();
    }
    let bar = SHOWN.lock().ok().and_then(|s| s.clone());
    match bar {
        Some(bar) => {
            struct Reset;
            impl Drop for Reset {
                fn drop(&mut self) {
                    SUSPENDED.set(false);
                }
            }
            SUSPENDED.set(true);
            let _reset = Reset;
            bar.suspend(f)
        }
        None => f(),
    }
}

/// Where log lines go: stderr, each line written with the bar off the screen
/// (the log formatter writes a whole line at once). Give `|| LogWriter` to
/// `tracing_subscriber`'s `with_writer`.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_whenever_stderr_is_a_terminal_unless_no_progress() {
        assert!(wanted(false, true));
        assert!(!wanted(true, true));
        assert!(!wanted(false, false));
        assert!(!wanted(true, false));
    }

    #[test]
    fn suspend_inside_suspend_does_not_wait_for_itself() {
        let p = Progress::start(10);
        p.inc(1);
        let n = suspend(|| suspend(|| 7));
        assert_eq!(n, 7);
        assert!(!SUSPENDED.get());
        drop(p);
        assert!(SHOWN.lock().unwrap().is_none());
        assert_eq!(suspend(|| 3), 3);
    }
}
