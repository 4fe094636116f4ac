//! The session table's bound, fitted to the memory the process may use: a
//! flood of flows (a port scan on the span port) must meet the table's
//! eviction, not the cgroup's OOM killer.
//!
//! Memory per session, measured (`echoloc replay` of one-SYN flows, peak
//! RSS): 1.0 KiB each for 100,000 and for 400,000 flows. Sessions with
//! payload hold more (an interactive session's keystroke analysis: a few KiB,
//! bounded at about 100 KiB for hours of typing), but a table filled to its
//! bound is a table of scans or floods: a lone datagram to a port of a
//! protocol echoloc dissects builds that protocol's state (measured, peak
//! RSS at 100,000 one-datagram flows: 2.0 KiB to WireGuard's port, 2.3 to
//! OpenVPN's, 2.5 to RDP's, 3.7 to IPsec NAT-T's 4500). [`PER_SESSION`]
//! plans 4 KiB each, the worst of these, and the table may take [`SHARE`]
//! of the limit.

use std::path::{Path, PathBuf};

/// Bytes planned per session in the table.
pub const PER_SESSION: u64 = 4096;
/// Share of the memory limit the tables may take (the rest: the process,
/// buffers, the exporter's series, interactive sessions' analysis).
pub const SHARE: f64 = 0.75;

/// The bound on each of `engines` tables: the configured one, lowered so
/// that all of them fit [`SHARE`] of `limit` bytes (at least 1,000 each).
pub fn fit(configured: usize, engines: usize, limit: Option<u64>) -> usize {
    let Some(limit) = limit else { return configured };
    let fits = (limit as f64 * SHARE / PER_SESSION as f64) as usize / engines.max(1);
    configured.min(fits.max(1000))
}

/// The memory limit of this process's cgroup (v2 `memory.max`, v1
/// `memory.limit_in_bytes`; the lowest along its ancestors), if it has one.
pub fn cgroup_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    limit_in(&cgroups, &mounts, Path::new("/"))
}

/// [`cgroup_limit`] from the text of `/proc/self/cgroup` and
/// `/proc/self/mountinfo`, the file system under `root`.
fn limit_in(cgroups: &str, mountinfo: &str, root: &Path) -> Option<u64> {
    let mut best: Option<u64> = None;
    for line in cgroups.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let (v2, file) = match controllers {
            "" => (true, "memory.max"),
            c if c.split(',').any(|c| c == "memory") => (false, "memory.limit_in_bytes"),
            _ => continue,
        };
        let Some((mount_root, mount_point)) = mount_of(mountinfo, v2) else { continue };
        // Inside a container the mount's root may be the cgroup itself.
        let rel = Path::new(path).strip_prefix(&mount_root).unwrap_or(Path::new(path));
        let mut dir =
            root.join(mount_point.strip_prefix("/").unwrap_or(&mount_point)).join(rel.strip_prefix("/").unwrap_or(rel));
        let top = root.join(mount_point.strip_prefix("/").unwrap_or(&mount_point));
        loop {
            if let Some(v) = read_limit(&dir.join(file)) {
                best = Some(best.map_or(v, |b| b.min(v)));
            }
            if dir == top || !dir.pop() {
                break;
            }
        }
    }
    best
}

/// The root and mount point of the cgroup v2 file system, or of the v1
/// hierarchy with the memory controller.
fn mount_of(mountinfo: &str, v2: bool) -> Option<(PathBuf, PathBuf)> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (fstype, opts) = (*right.first()?, *right.get(2)?);
        let ok = if v2 { fstype == "cgroup2" } else { fstype == "cgroup" && opts.split(',').any(|o| o == "memory") };
        if !ok {
            return None;
        }
        Some((PathBuf::from(left.get(3)?), PathBuf::from(left.get(4)?)))
    })
}

/// A limit file's value; `max` and v1's "no limit" (near 2^63) are none.
fn read_limit(p: &Path) -> Option<u64> {
    let v: u64 = std::fs::read_to_string(p).ok()?.trim().parse().ok()?;
    (v < 1 << 60).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_fits_the_limit() {
        assert_eq!(fit(1_000_000, 1, None), 1_000_000);
        // systemd's MemoryMax=1G: 196,608 sessions; the DaemonSet's 512Mi: 98,304.
        assert_eq!(fit(1_000_000, 1, Some(1 << 30)), 196_608);
        assert_eq!(fit(1_000_000, 1, Some(512 << 20)), 98_304);
        assert_eq!(fit(1_000_000, 2, Some(512 << 20)), 49_152);
        assert_eq!(fit(100_000, 1, Some(1 << 30)), 100_000);
        assert_eq!(fit(1_000_000, 1, Some(1 << 20)), 1000);
    }

    #[test]
    fn limits_are_read_from_v1_and_v2_hierarchies() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let put = |rel: &str, v: &str| {
            let p = r.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, v).unwrap();
        };
        // v1: the process in memory:/svc/echoloc, limited at /svc (ancestor).
        put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
        put("sys/fs/cgroup/memory/svc/memory.limit_in_bytes", "1073741824\n");
        put("sys/fs/cgroup/memory/svc/echoloc/memory.limit_in_bytes", "9223372036854771712\n");
        let mounts_v1 = "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n";
        assert_eq!(limit_in("4:memory:/svc/echoloc\n0::/\n", mounts_v1, r), Some(1 << 30));
        // v2: memory.max "max" at the top, 512 MiB on the service.
        put("sys/fs/cgroup/memory.max", "max\n");
        put("sys/fs/cgroup/system.slice/echoloc.service/memory.max", "536870912\n");
        let mounts_v2 = "35 25 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(limit_in("0::/system.slice/echoloc.service\n", mounts_v2, r), Some(512 << 20));
        // A container: the mount's root is the cgroup itself.
        let mounts_ct = "35 25 0:30 /system.slice/echoloc.service /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        put("sys/fs/cgroup/memory.max", "536870912\n");
        assert_eq!(limit_in("0::/system.slice/echoloc.service\n", mounts_ct, r), Some(512 << 20));
        assert_eq!(limit_in("0::/\n", "", r), None);
    }
}
