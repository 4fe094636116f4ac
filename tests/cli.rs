//! The command line: bad inputs among good ones, compressed captures, the
//! terminal table, help text, flags and their aliases, `check-config`.
//! Each test runs the real binary.

mod common;

use common::pcap::{Capture, Format, Link, pcap_record_offsets};
use common::{replay_with, scenarios, write_capture};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A bundled capture.
fn bundled(rel: &str) -> PathBuf {
    root().join("pcaps").join(rel)
}

/// The lines of `stderr` that are not logs (`… INFO …` on a new timeline).
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| !l.trim().is_empty() && !l.contains(" INFO ")).collect()
}

/// Records of `files` replayed alone (exit status as expected), without
/// `source` (the input as given differs between these runs by design; it is
/// tested in tests/fields.rs).
fn records_of(files: &[&Path], want_code: i32) -> Vec<Value> {
    let r = replay_with(&[], files);
    assert_eq!(r.code, Some(want_code), "{files:?}: stderr {}", r.stderr);
    sans_source(r.records)
}

fn sans_source(mut records: Vec<Value>) -> Vec<Value> {
    for r in &mut records {
        if let Some(o) = r.as_object_mut() {
            o.remove("source");
        }
    }
    records
}

// ---------------------------------------------------------------------------
// Issue 18, item 7: replay errors.

/// A directory whose middle file (in the order of first packets) is cut
/// short mid-record: every file is read, the bad one reported on one line
/// (`echoloc: FILE: cause`), exit 2; the records are those of each file
/// alone (the cut one's up to the fault), the good files' exactly those
/// they give without the bad one.
#[test]
fn replay_goes_on_past_a_bad_file_in_a_directory() {
    let (a, b, c) = (
        bundled("public/zeek/sshguess.pcap"),                            // 2015
        bundled("public/suricata-verify/bug-4663-03_icmp_and_ssh.pcap"), // 2021
        bundled("lab/direct-tr30-rs7.5/server-edge.pcap"),               // 2026
    );
    let good = tmp();
    let bad = tmp();
    for (dir, name, from) in [(&good, "a.pcap", &a), (&good, "c.pcap", &c), (&bad, "a.pcap", &a), (&bad, "c.pcap", &c)]
    {
        std::fs::copy(from, dir.path().join(name)).unwrap();
    }
    let full = std::fs::read(&b).unwrap();
    let offs = pcap_record_offsets(&full);
    let cut = bad.path().join("b.pcap");
    std::fs::write(&cut, &full[..offs[offs.len() / 2] + 20]).unwrap();

    let (ra, rb, rc) = (records_of(&[&a], 0), records_of(&[&cut], 2), records_of(&[&c], 0));
    assert!(!ra.is_empty() && !rb.is_empty() && !rc.is_empty());
    let r = replay_with(&[], &[bad.path()]);
    assert_eq!(r.code, Some(2), "stderr: {}", r.stderr);
    let lines = error_lines(&r.stderr);
    assert_eq!(lines.len(), 1, "one error line: {}", r.stderr);
    assert!(lines[0].starts_with(&format!("echoloc: {}: ", cut.display())), "{}", lines[0]);
    let want: Vec<Value> = ra.iter().chain(&rb).chain(&rc).cloned().collect();
    let records = sans_source(r.records);
    assert_eq!(records, want, "the records of each file, in the order of first packets");
    let without_bad = records_of(&[good.path()], 0);
    let from_good: Vec<Value> = records.iter().filter(|x| !rb.contains(x)).cloned().collect();
    assert_eq!(from_good, without_bad, "the good files' records as without the bad one");
}

/// Files on the command line: one that is not a capture and one that does
/// not exist, between the two halves of one session split over two files.
/// Both are reported (one line each), the session is still one record,
/// identical to the one the two halves give alone, and the exit status is 2.
#[test]
fn replay_skips_unreadable_files_without_breaking_the_timeline() {
    let sc = scenarios::handshake();
    let dir = tmp();
    let (first, second) = sc.packets.split_at(4);
    let p1 = write_capture(dir.path(), "part1.pcap", &Capture::default(), first);
    let p2 = write_capture(dir.path(), "part2.pcap", &Capture::default(), second);
    let junk = dir.path().join("notes.pcap");
    std::fs::write(&junk, "not a capture\n").unwrap();
    let missing = dir.path().join("missing.pcap");
    let alone = records_of(&[&p1, &p2], 0);
    assert_eq!(alone.len(), 1);
    let r = replay_with(&[], &[&p1, &junk, &missing, &p2]);
    assert_eq!(r.code, Some(2), "stderr: {}", r.stderr);
    let lines = error_lines(&r.stderr);
    assert_eq!(lines.len(), 2, "{}", r.stderr);
    assert!(lines[0].starts_with(&format!("echoloc: {}: ", junk.display())), "{}", lines[0]);
    assert_eq!(lines[1], format!("echoloc: {}: No such file or directory", missing.display()));
    assert_eq!(sans_source(r.records), alone);
}

/// A directory without capture files (empty, only other files, only a
/// subdirectory, even one holding a capture: directories are not searched
/// recursively) says so and exits 2; other inputs are still read.
#[test]
fn replay_of_a_directory_without_captures_is_an_error() {
    let empty = tmp();
    let other = tmp();
    std::fs::write(other.path().join("notes.txt"), "not a capture\n").unwrap();
    let nested = tmp();
    let sub = nested.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(bundled("lab/direct-tr30-rs7.5/server-edge.pcap"), sub.join("x.pcap")).unwrap();
    for d in [empty.path(), other.path(), nested.path()] {
        let r = replay_with(&[], &[d]);
        assert_eq!(r.code, Some(2), "{}: {}", d.display(), r.stderr);
        assert_eq!(error_lines(&r.stderr), [format!("echoloc: no capture files in {}", d.display())]);
        assert!(r.records.is_empty());
    }
    let good = bundled("lab/direct-tr30-rs7.5/server-edge.pcap");
    let r = replay_with(&[], &[empty.path(), &good]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(sans_source(r.records), records_of(&[&good], 0));
}

/// `FILE` gzip-compressed, written to `to`.
fn gzip(from: &[u8], to: &Path) {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(from).unwrap();
    std::fs::write(to, enc.finish().unwrap()).unwrap();
}

/// Gzip-compressed captures (`.pcap.gz`, `.pcapng.gz`) give the records of
/// the plain file: named on the command line, found in a directory, and on
/// standard input.
#[test]
fn replay_reads_gzip_compressed_captures() {
    let dir = tmp();
    let sc = scenarios::handshake();
    let ng = write_capture(dir.path(), "ng.pcapng", &Capture::new(Link::ethernet(), Format::PcapNg), &sc.packets);
    for plain in [bundled("public/zeek/ssh.pcap"), bundled("lab/jump-tr30-rs7.5/server-edge.pcap"), ng] {
        let want = records_of(&[&plain], 0);
        assert!(!want.is_empty());
        let gz_dir = tmp();
        let name = format!("{}.gz", plain.file_name().unwrap().to_str().unwrap());
        let gz = gz_dir.path().join(&name);
        gzip(&std::fs::read(&plain).unwrap(), &gz);
        assert_eq!(records_of(&[&gz], 0), want, "{name}");
        assert_eq!(records_of(&[gz_dir.path()], 0), want, "{name} in a directory");
        let out = std::process::Command::new(common::bin())
            .args(["replay", "--format", "json", "-"])
            .stdin(std::fs::File::open(&gz).unwrap())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let stdin = sans_source(common::parse_jsonl(&String::from_utf8_lossy(&out.stdout)));
        assert_eq!(stdin, want, "{name} on standard input");
    }
}

/// A compressed capture cut short, or corrupt: exit 2, one line naming the
/// file and saying it is the compression that failed; the sessions read
/// before the fault are written, as for a plain file cut short.
#[test]
fn replay_of_a_damaged_gzip_capture_names_the_file() {
    let dir = tmp();
    let plain = std::fs::read(bundled("public/zeek/ssh.pcap")).unwrap();
    let whole = dir.path().join("whole.gz");
    gzip(&plain, &whole);
    let z = std::fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.pcap.gz");
    std::fs::write(&cut, &z[..z.len() / 2]).unwrap();
    let mut bad = z.clone();
    for b in &mut bad[z.len() / 2..z.len() / 2 + 64] {
        *b ^= 0x5a;
    }
    let corrupt = dir.path().join("corrupt.pcap.gz");
    std::fs::write(&corrupt, &bad).unwrap();
    let not_capture = dir.path().join("notes.pcap.gz");
    gzip(b"not a capture\n", &not_capture);
    for (path, want) in
        [(&cut, "gzip: compressed data cut short"), (&corrupt, "gzip: "), (&not_capture, "unknown file format")]
    {
        let r = replay_with(&[], &[path]);
        assert_eq!(r.code, Some(2), "{}: {}", path.display(), r.stderr);
        let lines = error_lines(&r.stderr);
        assert_eq!(lines.len(), 1, "{}", r.stderr);
        assert!(lines[0].starts_with(&format!("echoloc: {}: {want}", path.display())), "{}", lines[0]);
        if path != &not_capture {
            assert!(!r.records.is_empty(), "{}: the sessions read before the fault", path.display());
        }
    }
}

// ---------------------------------------------------------------------------
// Issue 18, item 8: terminal and command line.

/// Every directory under `pcaps/` that holds capture files, in name order.
fn bundled_capture_dirs() -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        if entries.iter().any(|p| p.is_file() && p.extension().is_some_and(|x| x == "pcap" || x == "pcapng")) {
            out.push(d.to_path_buf());
        }
        for p in entries.iter().filter(|p| p.is_dir()) {
            walk(p, out);
        }
    }
    let mut out = Vec::new();
    walk(&root().join("pcaps"), &mut out);
    out
}

/// `--format table` over every bundled capture: no line is wider than 120
/// characters, and there is a row per record, starting with the first 8
/// characters of its uid.
#[test]
fn table_rows_fit_120_columns() {
    let dirs = bundled_capture_dirs();
    assert!(dirs.len() > 40, "{dirs:?}");
    let dirs: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
    let json = records_of(&dirs, 0);
    let mut args = vec!["replay".to_string(), "--format".into(), "table".into()];
    args.extend(dirs.iter().map(|d| d.display().to_string()));
    let out = std::process::Command::new(common::bin()).args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines {
        assert!(l.chars().count() <= 120, "{} characters:\n{l}", l.chars().count());
    }
    assert_eq!(lines[0].split_whitespace().take(4).collect::<Vec<_>>(), ["UID", "PROTO", "CLIENT", "SERVER"]);
    assert_eq!(lines.len(), json.len() + 1);
    for (l, r) in lines[1..].iter().zip(&json) {
        assert_eq!(l.split_whitespace().next(), Some(&r["uid"].as_str().unwrap()[..8]), "{l}");
    }
}

/// `--help` shows the defaults (the config's, which a flag not given leaves
/// as the config file sets them).
#[test]
fn help_shows_the_defaults() {
    let (code, live, _) = run_text(&["live", "--help"]);
    assert_eq!(code, Some(0));
    for want in [
        "Idle timeout of TCP sessions, seconds [default: 300]",
        "Idle timeout of UDP and other sessions, seconds [default: 60]",
        "[default: 14400]",
        "[default: 1000000]",
        "Most sessions with their own Prometheus series at once [default: 500]",
        "Seconds a session's series stay after it ends [default: 60]",
        "Kernel capture buffer, MiB [default: 64]",
        "[default: 65535]",
        "[default: 127.0.0.1:9617 for live; none for replay]",
        "Log format [default: text]",
        "--immediate",
        "--no-immediate",
    ] {
        assert!(live.contains(want), "live --help lacks {want:?}:\n{live}");
    }
    let (_, replay, _) = run_text(&["replay", "--help"]);
    assert!(replay.contains("[default: 300]") && replay.contains("--no-progress"), "{replay}");
    // A default in the help text is not a value: the config file's stays.
    let dir = tmp();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[sessions]\ntcp_idle_s = 5.0\n").unwrap();
    let mut cv = scenarios::conv();
    cv.handshake(common::pcap::at(0.0));
    cv.data(common::conv::Dir::C2S, common::pcap::at(10_000.0), 100);
    let cap = write_capture(dir.path(), "idle.pcap", &Capture::default(), &cv.packets());
    let r = replay_with(&["--config", cfg.to_str().unwrap()], &[&cap]);
    assert_eq!(r.records.len(), 2, "tcp_idle_s = 5 from the file splits the session: {}", r.stdout);
}

/// Run the binary with `args`; (exit code, stdout, stderr) as text.
fn run_text(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(common::bin()).args(args).output().expect("spawning echoloc");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// `--immediate` and `--no-immediate` (as the README writes them) and
/// `--promiscuous` / `--no-promiscuous` are switches, the last one given
/// winning: the command line is accepted, and the run gets as far as opening
/// the (missing) interface.
#[test]
fn immediate_and_promiscuous_are_switches() {
    for opts in [
        &["--immediate"][..],
        &["--no-immediate"],
        &["--no-immediate", "--immediate"],
        &["--promiscuous"],
        &["--no-promiscuous", "--promiscuous", "--no-immediate"],
    ] {
        let mut args = vec!["live", "-i", "nosuch0"];
        args.extend(opts);
        let (code, _, err) = run_text(&args);
        assert_eq!(code, Some(2), "{opts:?}: {err}");
        assert!(err.starts_with("echoloc: cannot capture on nosuch0"), "{opts:?}: {err}");
    }
    let (_, _, err) = run_text(&["live", "-i", "nosuch0", "--immediate", "false"]);
    assert!(err.contains("unexpected argument 'false'"), "{err}");
}

/// `GET /metrics` from `addr`: the body, or `None` while nothing answers.
fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    (text.starts_with("HTTP/1.") && text.lines().next()?.contains(" 200 ")).then_some(text)
}

/// `--listen :PORT` serves on every interface, IPv4 and IPv6 (as Prometheus
/// exporters take it); `localhost:PORT` on loopback; `--web.listen-address`
/// is `--listen` under the exporters' name.
#[test]
fn listen_addresses_as_exporters_take_them() {
    let cap = bundled("lab/direct-tr30-rs7.5/server-edge.pcap");
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    for flag in ["--listen", "--web.listen-address"] {
        for (form, from) in [(":{}", &["127.0.0.1", "::1"][..]), ("localhost:{}", &["127.0.0.1"])] {
            let port = common::netns::free_port();
            let addr = form.replace("{}", &port.to_string());
            let mut args = vec![flag.to_string(), addr.clone(), "--no-progress".into()];
            args.push(cap.display().to_string());
            let mut server = common::netns::serve_replay(&args);
            for ip in from.iter().filter(|ip| ipv6 || !ip.contains(':')) {
                let at = std::net::SocketAddr::new(ip.parse().unwrap(), port);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                let body = loop {
                    if let Some(b) = scrape(at) {
                        break b;
                    }
                    if let Ok(Some(st)) = server.0.try_wait() {
                        panic!("{flag} {addr}: echoloc exited {st}");
                    }
                    assert!(std::time::Instant::now() < deadline, "{flag} {addr}: nothing serves on {at}");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                };
                assert!(body.contains("echoloc_packets_total"), "{flag} {addr} from {at}: {body}");
            }
        }
    }
    for bad in ["9617", "localhost", ":http", "::1:9617"] {
        let (code, _, err) = run_text(&["replay", "--listen", bad, cap.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{bad}");
        assert!(err.contains("is not like 127.0.0.1:9617, [::1]:9617, localhost:9617 or :9617"), "{bad}: {err}");
    }
}

/// `check-config` compiles the BPF filter with libpcap and knows the log
/// levels: a bad value is an error (exit 2) naming its key.
#[test]
fn check_config_compiles_the_filter_and_checks_the_log_level() {
    let dir = tmp();
    for (text, want) in [
        ("[capture]\nbpf = \"tcp port foo\"\n", "capture.bpf (--bpf): \"tcp port foo\" is not a capture filter: "),
        ("[log]\nlevel = \"verbose\"\n", "log.level: \"verbose\" is not one of error, warn, info, debug, trace, off"),
        ("[capture]\ninterfaces = [\"eth1\", \"eth1\"]\n", "capture.interfaces (--interface): eth1 is given twice"),
    ] {
        let f = dir.path().join("bad.toml");
        std::fs::write(&f, text).unwrap();
        let (code, out, err) = run_text(&["check-config", f.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{text}: {out}{err}");
        assert!(err.starts_with(&format!("echoloc: {}: {want}", f.display())), "{text}: {err}");
    }
    let f = dir.path().join("good.toml");
    std::fs::write(&f, "[capture]\nbpf = \"tcp port 22 or udp port 51820\"\n[log]\nlevel = \"debug\"\n").unwrap();
    let (code, out, err) = run_text(&["check-config", f.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("valid"));
    // A bad filter on the command line is refused before anything is opened.
    let (code, _, err) = run_text(&["live", "-i", "nosuch0", "--bpf", "tcp port foo"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("echoloc: capture.bpf (--bpf): "), "{err}");
}

/// A TOML error says where: `FILE:LINE:COLUMN: message`.
#[test]
fn toml_errors_give_line_and_column() {
    let dir = tmp();
    for (text, at, msg) in [
        ("[capture]\npromiscuous = true\n\n[sessions]\ntcp_idle = 5\n", "5:1", "unknown field `tcp_idle`"),
        ("[capture]\nbpf = \"tcp\n", "2:11", "invalid basic string"),
        ("[sessions]\ntcp_idle_s = \"five\"\n", "2:14", "invalid type: string \"five\", expected f64"),
    ] {
        let f = dir.path().join("c.toml");
        std::fs::write(&f, text).unwrap();
        let (code, _, err) = run_text(&["check-config", f.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{text}");
        assert!(err.starts_with(&format!("echoloc: {}:{at}: {msg}", f.display())), "{text}: {err}");
        // The same file given to replay or live.
        let (code, _, err2) = run_text(&["replay", "--config", f.to_str().unwrap(), "-"]);
        assert_eq!((code, err2), (Some(2), err));
    }
}

/// An interface given twice is refused with a clear message (it was
/// captured twice, every packet counted twice).
#[test]
fn an_interface_given_twice_is_refused() {
    let args: Vec<String> = ["live", "-i", "lo", "-i", "lo", "--listen", "127.0.0.1:0"].map(String::from).to_vec();
    let r = common::run_with_timeout(&args, std::time::Duration::from_secs(20));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(r.stderr.trim_end(), "echoloc: capture.interfaces (--interface): lo is given twice");
}
