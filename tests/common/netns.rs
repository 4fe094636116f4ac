//! Test support for tests that need real network plumbing: network
//! namespaces and veth pairs between them (removed on drop, even after a
//! panic), free loopback ports, and reading an echoloc's `/metrics` there.

use std::process::{Command, Stdio};

/// Tests that replay traffic in real time hold this, so they do not run at
/// the same time as each other and disturb each other's timing.
pub fn realtime_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Is this run able to build namespaces and capture (root)?
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Fail loudly in CI (which runs as root); skip with a reason elsewhere.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{test}: CI must run as root");
    eprintln!("SKIP {test}: needs root (network namespaces, live capture)");
    false
}

pub fn sh(args: &[&str]) {
    let st = Command::new(args[0]).args(&args[1..]).stdout(Stdio::null()).status().expect(args[0]);
    assert!(st.success(), "{args:?} failed");
}

/// A network namespace holding a veth pair `inj0` (send side) ↔ `cap0` (capture side).
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A namespace with only loopback (up).
    pub fn bare(tag: &str) -> Netns {
        let name = format!("elc-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn new(tag: &str) -> Netns {
        let ns = Netns::bare(tag);
        veth(&ns, "inj0", &ns, "cap0");
        for i in ["inj0", "cap0"] {
            ns.exec(&["ip", "link", "set", i, "up"]);
            ns.no_offload(i);
        }
        ns
    }

    /// Frames on `iface` as on a wire: no segmentation or checksum offload
    /// (settings a veth does not have are left alone).
    pub fn no_offload(&self, iface: &str) {
        let _ = self
            .command(&["ethtool", "-K", iface, "tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// A command to run inside the namespace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    pub fn exec(&self, args: &[&str]) {
        let st = self.command(args).stdout(Stdio::null()).status().expect("ip netns exec");
        assert!(st.success(), "{args:?} in {} failed", self.name);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).stderr(Stdio::null()).status();
    }
}

/// Two namespaces joined by a veth pair: `a0` (192.0.2.1/24) in the first,
/// `b0` (192.0.2.2/24) in the second. Both are removed on drop.
pub struct NetnsPair {
    pub a: Netns,
    pub b: Netns,
}

impl NetnsPair {
    pub fn new(tag: &str) -> NetnsPair {
        let a = Netns::bare(&format!("{tag}a"));
        let b = Netns::bare(&format!("{tag}b"));
        veth(&a, "a0", &b, "b0");
        for (ns, i, addr) in [(&a, "a0", "192.0.2.1/24"), (&b, "b0", "192.0.2.2/24")] {
            ns.exec(&["ip", "addr", "add", addr, "dev", i]);
            ns.exec(&["ip", "link", "set", i, "up"]);
        }
        NetnsPair { a, b }
    }
}

/// A veth pair: `a_if` in namespace `a` ↔ `b_if` in `b` (which may be `a`).
/// The namespaces' removal removes it.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    sh(&["ip", "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns", &b.name]);
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Send a signal to a child process.
pub fn signal(child: &std::process::Child, sig: i32) {
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// A child process killed when dropped (a server a test started).
pub struct Kill(pub std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `echoloc replay --format json --serve ARGS...`, quiet, killed on drop.
pub fn serve_replay<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_echoloc"))
            .args(["replay", "--format", "json", "--serve"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start echoloc replay --serve"),
    )
}

/// Wait for a child until `timeout`; kill it if it overstays (then `None`).
pub fn wait_for(child: &mut std::process::Child, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// `GET /metrics` from an echoloc on a loopback port: the body, or `None`
/// while nothing answers there yet.
pub fn scrape_loopback(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

/// Scrape an echoloc on a loopback port until its metrics satisfy `done`
/// (e.g. every session of a replay ended); panics after `secs` seconds.
pub fn scrape_until(port: u16, secs: u64, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(t) = scrape_loopback(port).filter(|t| done(t)) {
            return t;
        }
        assert!(std::time::Instant::now() < deadline, "metrics on port {port} not as awaited within {secs} s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The sum of a metric's series (all label values), from exposition text.
pub fn metric_sum(text: &str, name: &str) -> u64 {
    metric_series(text, name).values().sum()
}

/// A metric's non-zero series, by their labels text (`reason="fragment"`;
/// empty for a series without labels).
pub fn metric_series(text: &str, name: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => r.rsplit_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            Some((labels.to_string(), value.trim().parse::<f64>().ok()? as u64))
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}
