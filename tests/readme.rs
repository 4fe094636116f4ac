//! The README's set-up and commands, run as a reader would run them (< 10 s).
//!
//! - `scripts/setup.sh --check-toolchain` with fake `cargo` programs on PATH:
//!   too old, new enough, missing, broken.
//! - The example record (the ```json block) against a real record of the
//!   capture it names: the same keys at every depth.
//! - Every command of the README's code blocks (and the commands it gives in
//!   running text, listed in `INLINE`) is in `COMMANDS`, `OTHER_BLOCKS` or
//!   `INLINE` with how it is exercised: run here as written in a sandbox
//!   standing for the reader's host (`/etc`, `/usr/local/bin` and port 9617
//!   moved into a temporary folder, `sudo` dropped, `eth1` → `lo`), run by
//!   another test, or not run and why (`readme_commands_are_run_or_listed`
//!   prints the list). A README command added without an entry fails.
//!
//! Needs (scripts/setup.sh installs them): promtool, jq, editcap, openssl,
//! curl, htpasswd (apache2-utils); root for live capture on lo.

mod common;

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo.toml's `rust-version`.
fn rust_version() -> String {
    let toml = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    toml.lines()
        .find_map(|l| l.strip_prefix("rust-version = \"").and_then(|r| r.strip_suffix('"')))
        .expect("Cargo.toml has rust-version = \"X.Y\" in [package]")
        .to_string()
}

/// A folder for PATH holding the tools setup.sh's toolchain check uses (and no
/// cargo), plus `cargo` printing `cargo_says` (exit status `status`) unless None.
fn fake_path(cargo: Option<(&str, i32)>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for tool in ["dirname", "sed", "head", "cat"] {
        let real = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{tool} in /usr/bin or /bin"));
        std::os::unix::fs::symlink(real, dir.path().join(tool)).unwrap();
    }
    if let Some((says, status)) = cargo {
        let script = format!("#!/bin/bash\nprintf '%s\\n' '{says}'\nexit {status}\n");
        let path = dir.path().join("cargo");
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// `bash scripts/setup.sh --check-toolchain` with PATH = `path` alone: (success, stderr).
fn check_toolchain(path: &Path) -> (bool, String) {
    let out = Command::new("/bin/bash")
        .arg(root().join("scripts/setup.sh"))
        .arg("--check-toolchain")
        .env("PATH", path)
        .output()
        .expect("bash");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The message that tells how to get a current toolchain.
fn assert_install_message(what: &str, stderr: &str, found: &str) {
    let want = rust_version();
    for needle in [
        format!("echoloc needs Rust {want} or newer"),
        found.to_string(),
        "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh".to_string(),
        "sudo apt-get install cargo-web".to_string(),
    ] {
        assert!(stderr.contains(&needle), "{what}: the message lacks {needle:?}:\n{stderr}");
    }
}

#[test]
fn setup_checks_the_rust_toolchain() {
    let want = rust_version();
    let (major, minor) = want.split_once('.').expect("rust-version X.Y");
    let (major, minor): (u32, u32) = (major.parse().unwrap(), minor.parse().unwrap());
    assert!((major, minor) >= (1, 85), "edition 2024 needs Rust 1.85, rust-version is {want}");
    let older = format!("cargo {major}.{}.0 (a1b2c3d4e 2025-01-01)", minor - 1);
    let exact = format!("cargo {major}.{minor}.0 (a1b2c3d4e 2025-05-13)");
    let cases: [(&str, &str, i32, bool); 8] = [
        ("Debian 12's cargo", "cargo 1.63.0", 0, false),
        ("one minor version too old", &older, 0, false),
        ("exactly rust-version", &exact, 0, true),
        ("a later release", "cargo 1.100.2 (0123456789 2030-01-01)", 0, true),
        ("a nightly", "cargo 1.99.0-nightly (0123456789 2029-01-01)", 0, true),
        ("Rust 2", "cargo 2.0.0", 0, true),
        ("rustup without a default toolchain", "error: rustup could not choose a version of cargo to run", 1, false),
        ("not cargo at all", "hello", 0, false),
    ];
    for (what, says, status, ok) in cases {
        let path = fake_path(Some((says, status)));
        let (success, stderr) = check_toolchain(path.path());
        assert_eq!(success, ok, "{what} ({says:?}): setup.sh --check-toolchain said:\n{stderr}");
        if ok {
            assert!(stderr.contains(&format!("ok, echoloc needs Rust >= {want}")), "{what}: {stderr}");
        } else {
            assert_install_message(what, &stderr, says);
        }
    }
    let path = fake_path(None);
    let (success, stderr) = check_toolchain(path.path());
    assert!(!success, "no cargo on PATH: setup.sh --check-toolchain succeeded:\n{stderr}");
    assert_install_message("no cargo", &stderr, "no cargo on PATH");
}

#[test]
fn setup_checks_the_toolchain_before_building() {
    let setup = std::fs::read_to_string(root().join("scripts/setup.sh")).unwrap();
    let check = setup.rfind("\ncheck_toolchain\n").expect("setup.sh calls check_toolchain");
    let build = setup.find("\ncargo build").expect("setup.sh builds");
    assert!(check < build, "setup.sh must check the toolchain before cargo build");
    let test = std::fs::read_to_string(root().join("scripts/test.sh")).unwrap();
    assert!(test.contains("scripts/setup.sh --check-toolchain"), "scripts/test.sh checks the toolchain");
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The command in backticks of the README line `Example (`...`):` before its
/// ```json block, the block's text, and the block's first line number.
fn json_example(readme: &str) -> (String, String, usize) {
    let lines: Vec<&str> = readme.lines().collect();
    let open = lines.iter().position(|l| l.trim() == "```json").expect("README has a ```json block");
    let close = open + 1 + lines[open + 1..].iter().position(|l| l.trim() == "```").expect("```json block closed");
    // The paragraph before the block (blank lines between them skipped).
    let before: Vec<&str> = lines[..open].iter().rev().skip_while(|l| l.trim().is_empty()).copied().collect();
    let mut para: Vec<&str> = before.iter().take_while(|l| !l.trim().is_empty()).copied().collect();
    para.reverse();
    let intro = para.join(" ");
    let command = intro
        .split_once("Example (`")
        .and_then(|(_, r)| r.split_once("`)"))
        .map(|(c, _)| c.to_string())
        .unwrap_or_else(|| {
            panic!("the paragraph before the ```json block names its command, Example (`echoloc ...`): {intro}")
        });
    (command, lines[open + 1..close].join("\n"), open + 2)
}

/// Every key path of a JSON value: `a`, `a.b`, `list[].c`.
fn key_paths(v: &serde_json::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                out.insert(path.clone());
                key_paths(v, &path, out);
            }
        }
        serde_json::Value::Array(a) => {
            for v in a {
                key_paths(v, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// A record line as the README shows it: one top-level field a line, in the
/// order echoloc writes them.
fn readme_block(line: &str) -> String {
    let body = line.trim().strip_prefix('{').and_then(|b| b.strip_suffix('}')).expect("a JSON object");
    let (mut fields, mut depth, mut in_str, mut esc, mut start) = (Vec::new(), 0, false, false, 0);
    for (i, c) in body.char_indices() {
        match c {
            _ if esc => esc = false,
            '\\' if in_str => esc = true,
            '"' => in_str = !in_str,
            '{' | '[' if !in_str => depth += 1,
            '}' | ']' if !in_str => depth -= 1,
            ',' if !in_str && depth == 0 => {
                fields.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&body[start..]);
    let fields: Vec<String> = fields
        .iter()
        .map(|f| match f.split_once("\":") {
            Some((k, v)) => format!("  {k}\": {v}"),
            None => format!("  {f}"),
        })
        .collect();
    format!("{{\n{}\n}}", fields.join(",\n"))
}

/// Run a README command line (`echoloc ...`, whitespace-separated words) in the
/// repository's root: its stdout.
fn run_echoloc_line(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"echoloc"), "{line}");
    let out = Command::new(env!("CARGO_BIN_EXE_echoloc")).args(&words[1..]).current_dir(root()).output().unwrap();
    assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The README's example record has the keys, at every depth, of the record
/// that the command it names really writes. When fields are added, the
/// failure lists them and prints the block to paste.
#[test]
fn readme_example_record_has_the_real_keys() {
    let readme = readme();
    let (command, block, line) = json_example(&readme);
    let shown: serde_json::Value = serde_json::from_str(&block)
        .unwrap_or_else(|e| panic!("README.md line {line}: the ```json block is not one JSON record ({e})"));
    let output = run_echoloc_line(&command);
    let records: Vec<(&str, serde_json::Value)> =
        output.lines().map(|l| (l, serde_json::from_str(l).unwrap())).collect();
    let (real_line, real) = records.iter().find(|(_, r)| r["uid"] == shown["uid"]).unwrap_or_else(|| {
        panic!(
            "README.md line {line}: `{command}` writes no record with uid {}. Replace the ```json block with:\n{}",
            shown["uid"],
            records.iter().map(|(l, _)| readme_block(l)).collect::<Vec<_>>().join("\n")
        )
    });
    for field in ["client", "server", "start", "proto"] {
        assert_eq!(shown[field], real[field], "README.md line {line}: {field} is not the real record's");
    }
    let (mut want, mut have) = (Default::default(), Default::default());
    key_paths(real, "", &mut want);
    key_paths(&shown, "", &mut have);
    let missing: Vec<&String> = want.difference(&have).collect();
    let extra: Vec<&String> = have.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README.md line {line}: the example record's keys differ from a real record of `{command}`:\n  \
         written, not in the README: {missing:?}\n  in the README, not written: {extra:?}\n\
         Replace the ```json block with (and describe new fields in the table above it):\n{}",
        readme_block(real_line)
    );
}

// ------------------------------------------------------------------ README commands

/// A code block of the README (indented by four spaces): its first line's
/// number and its lines, indentation removed.
struct Block {
    line: usize,
    lines: Vec<String>,
}

/// The README's indented code blocks (the one fenced block is the example
/// record, checked above).
fn code_blocks(readme: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    let (mut fenced, mut open, mut prev_blank) = (false, false, true);
    for (i, l) in readme.lines().enumerate() {
        if l.starts_with("```") {
            fenced = !fenced;
            open = false;
        } else if fenced {
        } else if let Some(code) = l.strip_prefix("    ").filter(|_| open || prev_blank) {
            if !open {
                blocks.push(Block { line: i + 1, lines: Vec::new() });
                open = true;
            }
            blocks.last_mut().unwrap().lines.push(code.trim_end().to_string());
        } else if l.trim().is_empty() {
            if open {
                blocks.last_mut().unwrap().lines.push(String::new());
            }
        } else {
            open = false;
        }
        prev_blank = l.trim().is_empty();
    }
    for b in &mut blocks {
        while b.lines.last().is_some_and(|l| l.is_empty()) {
            b.lines.pop();
        }
    }
    blocks
}

/// How a README command is exercised.
#[derive(Clone, Copy)]
enum How {
    /// Run as written in a sandbox ([`Sandbox::shell`]), in README order, by
    /// `readme_commands_run`; it must succeed, then this check holds.
    Run(fn(&Sandbox, &Outcome)),
    /// Run by this test of this file (it needs more than one line, a server, root...).
    By(&'static str),
    /// Run by another test.
    Elsewhere(&'static str),
    /// Not run by any test, and why.
    No(&'static str),
}

/// Every command line of the README's shell blocks (the start of the line)
/// and how a test runs it. A README command missing here fails
/// `readme_commands_are_run_or_listed`, and so does an entry here that no
/// README line matches.
const COMMANDS: &[(&str, How)] = &[
    // Top of the README.
    ("scripts/setup.sh && ./target/release/echoloc replay ", How::By("readme_quick_start")),
    ("scripts/test.sh", How::Elsewhere("CI: .ci/run runs it (and so this file); a test cannot run the suite it is in")),
    // Usage.
    ("echoloc replay FILE|DIR... ", How::By("readme_usage_names_real_flags")),
    ("echoloc live --interface IF ", How::By("readme_usage_names_real_flags")),
    ("echoloc check-config /etc/echoloc/echoloc.toml", How::Run(config_valid)),
    // How far away is the typist: policy.
    ("echoloc replay --config examples/policy.toml ", How::Run(over_policy)),
    // Deploy on a span port or tap.
    (
        "sudo ip link set eth1 up promisc on",
        How::No(
            "changes a real interface of this host; live capture is run on lo here and on veth pairs in namespaces by tests/live_capture.rs",
        ),
    ),
    ("sudo install -m 0755 target/release/echoloc /usr/local/bin/", How::Run(installed_binary)),
    ("sudo install -D -m 0644 deploy/config/echoloc.toml /etc/echoloc/echoloc.toml", How::Run(installed_config)),
    ("sudo echoloc check-config /etc/echoloc/echoloc.toml", How::Run(config_valid)),
    ("sudo install -m 0644 deploy/systemd/echoloc.service /etc/systemd/system/", How::Run(installed_unit)),
    (
        "sudo systemctl daemon-reload && sudo systemctl enable --now echoloc",
        How::No(
            "installs and starts a service on the host running the tests (whose systemd may not even run); deploy/check.sh checks the unit: systemd-analyze verify and security",
        ),
    ),
    ("journalctl -u echoloc -f", How::No("follows the journal of a running service, forever")),
    ("echoloc live -i eth1 --bpf ", How::By("readme_live_commands_capture")),
    // Scrape and alert.
    ("sudo install -d /etc/prometheus/rules", How::By("readme_prometheus_install")),
    ("sudo install -m 0644 deploy/prometheus/rules/*.yml /etc/prometheus/rules/", How::By("readme_prometheus_install")),
    ("[ -e /etc/prometheus/prometheus.yml ] || ", How::By("readme_prometheus_install")),
    ("promtool check config /etc/prometheus/prometheus.yml", How::By("readme_prometheus_install")),
    // Forensics.
    ("echoloc replay --format json --output sessions.jsonl evidence/*.pcapng", How::Run(sessions_written)),
    ("jq 'select(.alerts | length > 0)' sessions.jsonl", How::Run(alerts_selected)),
    ("echoloc replay evidence/ --listen 127.0.0.1:9617 --serve", How::By("readme_forensics_serve")),
    // The lab.
    (
        "sudo python3 lab/run-lab.py --out pcaps/lab",
        How::No(
            "root, network namespaces and real OpenSSH for minutes, and it rewrites the committed captures; tests/lab_truth.rs checks what it made",
        ),
    ),
    (
        "sudo python3 lab/rdp-lab.py --out pcaps/rdp",
        How::No(
            "root, network namespaces, xrdp and xfreerdp for minutes, and it rewrites the committed captures; tests/rdp_lab.rs checks what it made",
        ),
    ),
    (
        "sudo scripts/live-rate.py ",
        How::No(
            "root, network namespaces and minutes of traffic at up to the generator's ceiling, which a shared CI core cannot give; tests/live_capture.rs captures on veth pairs",
        ),
    ),
    // Tests: fuzzing.
    (
        "scripts/fuzz.sh 5400",
        How::No("an hour and a half; scripts/test.sh runs scripts/fuzz.sh for a minute (build included: minutes)"),
    ),
    (
        "RUSTC_BOOTSTRAP=1 cargo fuzz run engine ",
        How::Elsewhere("scripts/test.sh runs scripts/fuzz.sh, which runs every target so for a minute in all"),
    ),
];

/// README code blocks that are not shell commands, by their first line; the
/// test named runs the whole block.
const OTHER_BLOCKS: &[(&str, &str)] = &[
    ("# /etc/echoloc/web-config.yml", "readme_web_config_serves_with_an_htpasswd_hash"),
    ("# sessions whose typist is more than 100 ms away", "readme_promql_examples_parse"),
];

/// Commands the README gives in running text (a reader could type them), and
/// how each is exercised. Tools merely named (valgrind, perf, tcptrace) are not listed.
const INLINE: &[(&str, How)] = &[
    (
        "tcpdump -w - | echoloc replay -",
        How::Elsewhere(
            "tests/crafted.rs replays a capture from standard input (`-`); tcpdump -w - needs a capture interface",
        ),
    ),
    (
        "postrotate kill -HUP $(pidof echoloc)",
        How::Elsewhere("tests/live_capture.rs sends SIGHUP every 250 ms under traffic; logrotate runs on a real host"),
    ),
    (
        "systemctl reload echoloc",
        How::No(
            "a systemd service on a real host; deploy/check.sh checks the unit (systemd-analyze verify), tests/live_capture.rs what SIGHUP does",
        ),
    ),
    ("sudo systemctl reload prometheus", How::No("a Prometheus service on a real host")),
    (
        "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh",
        How::No(
            "downloads rustup, and these machines reach no such host; setup_checks_the_rust_toolchain tests the check that asks for it",
        ),
    ),
    ("sudo apt-get install cargo-web", How::No("would replace this machine's Rust toolchain")),
    ("sudo scripts/test.sh", How::Elsewhere("CI: .ci/run")),
    (
        "cargo test --test readme -- --nocapture readme_commands_are_run_or_listed",
        How::Elsewhere("scripts/test.sh's cargo test runs this file (without --nocapture)"),
    ),
    ("bash deploy/check.sh", How::Elsewhere("scripts/test.sh runs it")),
    (
        "cargo bench --bench replay",
        How::No(
            "minutes: a fat-LTO build and 2,000,000 packets five times; scripts/test.sh's clippy --all-targets compiles the bench",
        ),
    ),
    ("ECHOLOC_BENCH_FLOWS=500 cargo bench --bench replay", How::No("as cargo bench above")),
    (
        "python3 lab/run-lab.py exec",
        How::No(
            "root, network namespaces and real OpenSSH; tests/lab_truth.rs checks the captures it made (pcaps/exec)",
        ),
    ),
    (
        "sudo setcap cap_net_raw,cap_net_admin=eip $(command -v echoloc)",
        How::No("changes the installed binary's file capabilities; quoted from echoloc's error message"),
    ),
];

/// The entry of `table` that the line starts with (exactly one).
fn how<'a>(table: &'a [(&'static str, How)], line: &str) -> Option<&'a (&'static str, How)> {
    let found: Vec<_> = table.iter().filter(|(p, _)| line.starts_with(p)).collect();
    assert!(
        found.len() <= 1,
        "README line {line:?} matches several entries: {:?}",
        found.iter().map(|f| f.0).collect::<Vec<_>>()
    );
    found.first().copied()
}

/// Every README command line: (README line number, text, how it is exercised).
fn readme_commands() -> Vec<(usize, String, How)> {
    let readme = readme();
    let this = include_str!("readme.rs");
    let (mut out, mut unknown, mut used) = (Vec::new(), Vec::new(), std::collections::BTreeSet::new());
    for b in code_blocks(&readme) {
        if let Some((first, test)) = OTHER_BLOCKS.iter().find(|(f, _)| b.lines[0].starts_with(f)) {
            used.insert(*first);
            out.push((b.line, b.lines.join("\n"), How::By(test)));
            continue;
        }
        for (i, l) in b.lines.iter().enumerate() {
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            match how(COMMANDS, l) {
                Some((prefix, how)) => {
                    used.insert(*prefix);
                    out.push((b.line + i, l.clone(), *how));
                }
                None => unknown.push(format!("README.md line {}: {l}", b.line + i)),
            }
        }
    }
    for (text, how) in INLINE {
        match readme.lines().position(|l| l.contains(text)) {
            Some(n) => out.push((n + 1, text.to_string(), *how)),
            None => unknown.push(format!("INLINE lists {text:?}, which the README no longer has")),
        }
    }
    for prefix in COMMANDS.iter().map(|c| c.0).chain(OTHER_BLOCKS.iter().map(|b| b.0)) {
        if !used.contains(prefix) {
            unknown.push(format!("tests/readme.rs lists {prefix:?}, which starts no README command (stale?)"));
        }
    }
    for (_, _, how) in &out {
        if let How::By(test) = how {
            assert!(this.contains(&format!("fn {test}()")), "tests/readme.rs has no test {test}");
        }
    }
    assert!(
        unknown.is_empty(),
        "README commands and tests/readme.rs disagree: say in COMMANDS, OTHER_BLOCKS or INLINE how each is run:\n  {}",
        unknown.join("\n  ")
    );
    out
}

#[test]
fn readme_commands_are_run_or_listed() {
    let cmds = readme_commands();
    let mut counts = [0usize; 4];
    for (line, text, how) in &cmds {
        let (i, what) = match how {
            How::Run(_) => (0, "run, readme_commands_run".to_string()),
            How::By(t) => (1, format!("run, {t}")),
            How::Elsewhere(w) => (2, format!("elsewhere: {w}")),
            How::No(why) => (3, format!("NOT RUN: {why}")),
        };
        counts[i] += 1;
        println!("README.md:{line}: {}\n    {what}", text.lines().next().unwrap_or(""));
    }
    println!(
        "{} README commands: {} run in a sandbox, {} by their own tests here, {} elsewhere, {} not run",
        cmds.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    );
    assert!(counts[0] + counts[1] >= 15, "fewer README commands run than expected: {counts:?}");
}

/// The outcome of a README command run in a sandbox.
struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// JSON values in a text (JSON Lines, or jq's pretty-printed stream).
fn json_values(text: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("not a stream of JSON values ({e}):\n{text}"))
}

fn has_alert(rec: &serde_json::Value, alert: &str) -> bool {
    rec["alerts"].as_array().is_some_and(|a| a.iter().any(|x| x == alert))
}

/// A directory standing for the host a reader types the README's commands
/// on: `work/` (the current directory: the repository's pcaps, deploy and
/// examples linked in, `target/release/echoloc` the binary
/// under test, `evidence/` the lab's jump-host captures as pcapng), `etc/`
/// and `usr/local/bin/` for /etc and /usr/local/bin, `bin/echoloc` on PATH
/// (after usr/local/bin), and a free loopback port for 9617.
struct Sandbox {
    dir: tempfile::TempDir,
    port: u16,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        let work = t.join("work");
        for d in ["work/target/release", "work/evidence", "bin", "etc/echoloc", "etc/systemd/system", "usr/local/bin"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        for d in ["pcaps", "deploy", "examples"] {
            std::os::unix::fs::symlink(root().join(d), work.join(d)).unwrap();
        }
        let bin = env!("CARGO_BIN_EXE_echoloc");
        std::os::unix::fs::symlink(bin, work.join("target/release/echoloc")).unwrap();
        std::os::unix::fs::symlink(bin, t.join("bin/echoloc")).unwrap();
        // The usage section's check-config names the installed config.
        std::fs::copy(root().join("deploy/config/echoloc.toml"), t.join("etc/echoloc/echoloc.toml")).unwrap();
        for name in ["relay-outer", "server-edge", "typist-edge"] {
            let src = root().join(format!("pcaps/lab/jump-tr30-rs7.5/{name}.pcap"));
            let dst = work.join(format!("evidence/{name}.pcapng"));
            let st = Command::new("editcap")
                .args(["-F", "pcapng"])
                .arg(&src)
                .arg(&dst)
                .status()
                .expect("editcap (Debian package wireshark-common, with tshark)");
            assert!(st.success(), "editcap -F pcapng {}", src.display());
        }
        Sandbox { dir, port: common::netns::free_port() }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn work(&self) -> std::path::PathBuf {
        self.root().join("work")
    }

    /// The README line as it runs here: without sudo, /etc and /usr/local/bin
    /// in the sandbox, port 9617 the sandbox's, interface eth1 lo.
    fn subst(&self, line: &str) -> String {
        let t = self.root().display();
        line.replace("sudo ", "")
            .replace("/etc/", &format!("{t}/etc/"))
            .replace("/usr/local/bin", &format!("{t}/usr/local/bin"))
            .replace("0.0.0.0:9617", &format!("127.0.0.1:{}", self.port))
            .replace("127.0.0.1:9617", &format!("127.0.0.1:{}", self.port))
            .replace("-i eth1 ", "-i lo ")
    }

    /// `bash -euo pipefail -c SCRIPT` in work/, PATH = usr/local/bin, bin, then the test's PATH.
    fn bash(&self, script: &str) -> Command {
        let path = std::env::var("PATH").unwrap_or_default();
        let mut c = Command::new("bash");
        c.args(["-euo", "pipefail", "-c", script]).current_dir(self.work()).env(
            "PATH",
            format!("{}:{}:{path}", self.root().join("usr/local/bin").display(), self.root().join("bin").display()),
        );
        c
    }

    /// Run README lines (substituted, one script) to the end, within 60 s.
    fn shell(&self, lines: &str) -> Outcome {
        let script = self.subst(lines);
        let out_path = self.root().join("shell.out");
        let err_path = self.root().join("shell.err");
        let mut child = self
            .bash(&script)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        let status = common::netns::wait_for(&mut child, std::time::Duration::from_secs(60))
            .unwrap_or_else(|| panic!("did not finish within 60 s: {script}"));
        Outcome {
            ok: status.success(),
            stdout: std::fs::read_to_string(out_path).unwrap(),
            stderr: std::fs::read_to_string(err_path).unwrap(),
        }
    }

    /// Start a README line that runs until stopped (`exec`ed, so the child is
    /// the command itself); its output goes to NAME.out and NAME.err.
    fn spawn(&self, line: &str, name: &str) -> common::netns::Kill {
        let script = format!("exec {}", self.subst(line));
        common::netns::Kill(
            self.bash(&script)
                .stdin(std::process::Stdio::null())
                .stdout(std::fs::File::create(self.root().join(format!("{name}.out"))).unwrap())
                .stderr(std::fs::File::create(self.root().join(format!("{name}.err"))).unwrap())
                .spawn()
                .unwrap(),
        )
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.root().join(name)).unwrap_or_default()
    }
}

/// The README command line that starts with `prefix`.
fn readme_line(prefix: &str) -> String {
    readme()
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("README has no command starting {prefix:?}"))
        .trim_end()
        .to_string()
}

// Checks of the lines run by readme_commands_run.

fn config_valid(_: &Sandbox, o: &Outcome) {
    assert!(o.stdout.contains(": valid"), "check-config did not say valid:\n{}{}", o.stdout, o.stderr);
}

fn over_policy(_: &Sandbox, o: &Outcome) {
    let recs = json_values(&o.stdout);
    assert!(
        recs.iter().any(|r| has_alert(r, "rtt_over_policy") && r["policy"].is_object()),
        "no session over policy: {}",
        o.stdout
    );
}

fn installed_binary(s: &Sandbox, _: &Outcome) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(s.root().join("usr/local/bin/echoloc")).expect("echoloc installed");
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);
}

fn installed_config(s: &Sandbox, _: &Outcome) {
    let installed = std::fs::read(s.root().join("etc/echoloc/echoloc.toml")).unwrap();
    assert_eq!(installed, std::fs::read(root().join("deploy/config/echoloc.toml")).unwrap());
}

fn installed_unit(s: &Sandbox, _: &Outcome) {
    let installed = std::fs::read(s.root().join("etc/systemd/system/echoloc.service")).unwrap();
    assert_eq!(installed, std::fs::read(root().join("deploy/systemd/echoloc.service")).unwrap());
}

fn sessions_written(s: &Sandbox, _: &Outcome) {
    let recs = json_values(&std::fs::read_to_string(s.work().join("sessions.jsonl")).unwrap());
    assert_eq!(recs.len(), 3, "one session at each of the three vantages");
}

fn alerts_selected(_: &Sandbox, o: &Outcome) {
    let recs = json_values(&o.stdout);
    assert!(!recs.is_empty(), "jq selected nothing: the jump-host sessions have relay_suspected");
    assert!(recs.iter().all(|r| has_alert(r, "relay_suspected")), "{}", o.stdout);
}

/// Every README command marked `How::Run`, in README order, in one sandbox.
#[test]
fn readme_commands_run() {
    let s = Sandbox::new();
    let mut n = 0;
    for (line, text, how) in readme_commands() {
        if let How::Run(check) = how {
            let o = s.shell(&text);
            assert!(o.ok, "README.md line {line} failed: {}\n{}{}", s.subst(&text), o.stdout, o.stderr);
            check(&s, &o);
            n += 1;
        }
    }
    println!("{n} README commands ran");
}

/// `scripts/setup.sh && ./target/release/echoloc replay pcaps/lab/jump-tr30-rs7.5/`:
/// the replay (setup.sh's toolchain check is tested above; its apt-get and
/// release build are not run here).
#[test]
fn readme_quick_start() {
    let line = readme_line("scripts/setup.sh && ");
    let (_, replay) = line.split_once("&& ").unwrap();
    let s = Sandbox::new();
    let o = s.shell(replay);
    assert!(o.ok, "{replay}: {}", o.stderr);
    let recs = json_values(&o.stdout);
    assert_eq!(recs.len(), 3, "{}", o.stdout);
    assert!(recs.iter().all(|r| r["proto"] == "ssh" && has_alert(r, "relay_suspected")), "{}", o.stdout);
}

/// The flags the usage synopsis and the usage section name exist.
#[test]
fn readme_usage_names_real_flags() {
    let help = |sub: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_echoloc")).args([sub, "--help"]).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let flags = |text: &str| -> Vec<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(|w| w.trim_end_matches('.').to_string())
            .collect()
    };
    let (replay, live) = (help("replay"), help("live"));
    for line in [readme_line("echoloc replay FILE|DIR... "), readme_line("echoloc live --interface IF ")] {
        let h = if line.starts_with("echoloc replay") { &replay } else { &live };
        for f in flags(&line) {
            assert!(h.contains(&f), "README synopsis {line:?}: {f} is not in --help");
        }
    }
    let readme = readme();
    let usage = &readme[readme.find("## Usage").unwrap()..];
    let usage = &usage[..usage[3..].find("\n## ").unwrap()];
    let mut n = 0;
    for (i, span) in usage.split('`').enumerate() {
        if i % 2 == 1 {
            for f in flags(span) {
                assert!(
                    replay.contains(&f) || live.contains(&f),
                    "README usage names {f}, which neither replay nor live has"
                );
                n += 1;
            }
        }
    }
    assert!(n >= 15, "only {n} flags found in the usage section");
}

/// The live examples on lo (root): the BPF filter compiles and passes a TCP
/// handshake; SIGTERM writes the session and exits 0.
#[test]
fn readme_live_commands_capture() {
    if !common::netns::require_root("readme_live_commands_capture") {
        return;
    }
    let s = Sandbox::new();
    let line = readme_line("echoloc live -i eth1 --bpf ");
    // The line has no --listen: its default 9617 may be taken on this machine.
    let run = format!("{line} --listen 127.0.0.1:9617");
    let child = s.spawn(&run, "live");
    let metrics = common::netns::scrape_until(s.port, 20, |t| t.contains("echoloc_build_info"));
    assert!(metrics.contains("echoloc_packets_total"));
    // Capture is open once /metrics answers; one more handshake on lo to be sure.
    std::thread::sleep(std::time::Duration::from_millis(300));
    common::netns::scrape_loopback(s.port);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut child = child;
    common::netns::signal(&child.0, libc::SIGTERM);
    let st = common::netns::wait_for(&mut child.0, std::time::Duration::from_secs(10)).expect("exit after SIGTERM");
    assert!(st.success(), "{}: {st}\n{}", s.subst(&run), s.read("live.err"));
    let server = format!("127.0.0.1:{}", s.port);
    let recs = json_values(&s.read("live.out"));
    assert!(recs.iter().any(|r| r["server"] == server.as_str()), "no record of the scrapes to {server}: {recs:?}");
}

/// The README's lines that install the Prometheus configuration, as one script.
fn prometheus_block() -> String {
    let blocks = code_blocks(&readme());
    let b = blocks
        .iter()
        .find(|b| b.lines.iter().any(|l| l.starts_with("sudo install -d /etc/prometheus/rules")))
        .expect("README installs the Prometheus rules");
    b.lines.join("\n")
}

/// A configuration as Debian's prometheus package ships it (comments left out).
const DEBIAN_PROMETHEUS_YML: &str = "global:
  scrape_interval: 15s
  evaluation_interval: 15s
  external_labels:
    monitor: 'example'

alerting:
  alertmanagers:
  - static_configs:
    - targets: ['localhost:9093']

rule_files:

scrape_configs:
  - job_name: 'prometheus'
    static_configs:
      - targets: ['localhost:9090']
";

/// The README's Prometheus steps against a folder standing for /etc/prometheus:
/// empty (the example configuration is installed and finds both rule files),
/// and with a configuration already there (kept as it was; with the two parts
/// the README says to add, both rule files are found).
#[test]
fn readme_prometheus_install() {
    let script = prometheus_block();
    let rules = ["echoloc-alerts.yml", "echoloc-recording.yml"];
    let same = |a: &Path, b: &Path| std::fs::read(a).unwrap() == std::fs::read(b).unwrap();

    let fresh = Sandbox::new();
    let o = fresh.shell(&script);
    assert!(o.ok, "{}\n{}{}", fresh.subst(&script), o.stdout, o.stderr);
    assert!(o.stdout.contains("SUCCESS: 2 rule files found"), "{}", o.stdout);
    let etc = fresh.root().join("etc/prometheus");
    assert!(same(&etc.join("prometheus.yml"), &root().join("deploy/prometheus/prometheus.yml")));
    for r in rules {
        assert!(same(&etc.join("rules").join(r), &root().join("deploy/prometheus/rules").join(r)), "{r}");
        assert!(o.stdout.contains(&format!("rules/{r}")), "promtool did not check {r}: {}", o.stdout);
    }

    let existing = Sandbox::new();
    let etc = existing.root().join("etc/prometheus");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("prometheus.yml"), DEBIAN_PROMETHEUS_YML).unwrap();
    let o = existing.shell(&script);
    assert!(o.ok, "{}\n{}{}", existing.subst(&script), o.stdout, o.stderr);
    assert_eq!(std::fs::read_to_string(etc.join("prometheus.yml")).unwrap(), DEBIAN_PROMETHEUS_YML, "overwritten");
    for r in rules {
        assert!(same(&etc.join("rules").join(r), &root().join("deploy/prometheus/rules").join(r)), "{r}");
    }
    // The merge by hand: the README's rule_files entry and the shipped echoloc job.
    let readme = readme();
    let entry = "- rules/echoloc-*.yml";
    assert!(readme.contains(&format!("`{entry}` under `rule_files:`")), "README names {entry}");
    let shipped = std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml")).unwrap();
    let job = &shipped[shipped.find("  - job_name: echoloc").expect("the shipped echoloc job")..];
    let merged = DEBIAN_PROMETHEUS_YML.replace("rule_files:\n", &format!("rule_files:\n  {entry}\n")) + job;
    std::fs::write(etc.join("prometheus.yml"), merged).unwrap();
    let o = existing.shell(&readme_line("promtool check config "));
    assert!(o.ok && o.stdout.contains("SUCCESS: 2 rule files found"), "{}{}", o.stdout, o.stderr);
}

/// `echoloc replay evidence/ --listen 127.0.0.1:9617 --serve`: /metrics
/// answers with the three sessions and the relay alert, and keeps serving.
#[test]
fn readme_forensics_serve() {
    let s = Sandbox::new();
    let line = readme_line("echoloc replay evidence/ --listen ");
    let mut child = s.spawn(&line, "serve");
    let t =
        common::netns::scrape_until(s.port, 30, |t| common::netns::metric_sum(t, "echoloc_sessions_ended_total") >= 3);
    assert_eq!(common::netns::metric_sum(&t, "echoloc_sessions_opened_total"), 3, "{t}");
    assert!(common::netns::metric_sum(&t, "echoloc_alerts_raised_total") >= 1, "no alert raised: {t}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(child.0.try_wait().unwrap().is_none(), "--serve stopped serving: {}", s.read("serve.err"));
    assert!(common::netns::scrape_loopback(s.port).is_some());
}

/// `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl (Debian package openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Test programs a CI run must have; elsewhere a test without them is skipped.
fn require_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&&str> = tools.iter().filter(|t| !common::have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{test}: missing {missing:?} (scripts/setup.sh --deps installs them)");
    eprintln!("SKIP {test}: missing {missing:?} (scripts/setup.sh --deps installs them)");
    false
}

/// The README's web-config block as written: the hash made by its htpasswd
/// command (asked twice for the password, as on a terminal), certificates
/// by the names it gives, then its `echoloc live` line (on lo; not root:
/// the same flags on `replay --serve`). curl: 200 with the client
/// certificate and the password, with the HSTS header; 401 without the
/// password or with another; no TLS session without a client certificate.
#[test]
fn readme_web_config_serves_with_an_htpasswd_hash() {
    if !require_tools("readme_web_config_serves_with_an_htpasswd_hash", &["htpasswd", "openssl", "curl", "setsid"]) {
        return;
    }
    let blocks = code_blocks(&readme());
    let b = blocks.iter().find(|b| b.lines[0] == "# /etc/echoloc/web-config.yml").expect("the web-config block");
    let end = b.lines.iter().position(|l| l.is_empty()).expect("a blank line after the YAML");
    let (yaml, rest) = (&b.lines[1..end], &b.lines[end..]);
    let run = rest.iter().find(|l| l.starts_with("echoloc live ")).expect("the command that uses the file");

    // htpasswd as the YAML's comment gives it, the password typed twice.
    let hash_line = yaml.iter().find(|l| l.contains("$2y$10$...")).expect("a hash placeholder");
    let htpasswd = hash_line.split_once("# ").unwrap().1;
    let s = Sandbox::new();
    let mut child = s
        .bash(&format!("setsid bash -c {}", shell_quote(htpasswd)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"s3cret\ns3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success() && hash.starts_with("$2y$10$") && hash.len() == 60,
        "{htpasswd} gave {hash:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The file where the README puts it, certificates beside it.
    let file = s.subst(b.lines[0].trim_start_matches("# "));
    let dir = Path::new(&file).parent().unwrap();
    let yaml = yaml.join("\n").replace("$2y$10$...", &hash) + "\n";
    std::fs::write(&file, &yaml).unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"];
    let sans = "subjectAltName=DNS:localhost,IP:127.0.0.1";
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend(["-subj", "/CN=localhost", "-addext", sans, "-keyout", "echoloc.key", "-out", "echoloc.crt"]);
    openssl(dir, &args);
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend(["-subj", "/CN=scrapers-ca", "-keyout", "scrapers-ca.key", "-out", "scrapers-ca.crt"]);
    openssl(dir, &args);
    let mut args = vec!["req", "-new"];
    args.extend(ec);
    args.extend(["-subj", "/CN=prometheus", "-keyout", "scraper.key", "-out", "scraper.csr"]);
    openssl(dir, &args);
    std::fs::write(dir.join("scraper.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(
        dir,
        &["x509", "-req", "-in", "scraper.csr", "-CA", "scrapers-ca.crt", "-CAkey", "scrapers-ca.key"]
            .into_iter()
            .chain(["-set_serial", "2", "-days", "2", "-extfile", "scraper.ext", "-out", "scraper.crt"])
            .collect::<Vec<_>>(),
    );

    let run = if common::netns::is_root() {
        run.clone()
    } else {
        eprintln!("not root: the web config is served by replay --serve, not live on lo");
        run.replacen("live -i eth1", "replay --format json --serve pcaps/public/zeek/ssh.pcap", 1)
    };
    let mut server = s.spawn(&run, "web");
    let port = s.port.to_string();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/metrics");
    let d = |f: &str| dir.join(f).display().to_string();
    let curl = |extra: &[&str]| -> (String, String) {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-D", "-", "-w", "%{http_code}", "--max-time", "5"])
            .args(["--cacert", &d("echoloc.crt"), "--resolve", &resolve])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text[text.len().saturating_sub(3)..].to_string(), text)
    };
    let (cert, key) = (d("scraper.crt"), d("scraper.key"));
    let client = ["--cert", &cert, "--key", &key];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (code, headers) = loop {
        let got = curl(&[&client[..], &["-u", "prometheus:s3cret"]].concat());
        if got.0 != "000" || std::time::Instant::now() > deadline {
            break got;
        }
        if let Some(st) = server.0.try_wait().unwrap() {
            panic!("{} exited ({st}) with this web config:\n{yaml}\n{}", s.subst(&run), s.read("web.err"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(code, "200", "{}\n{headers}\n{}", s.subst(&run), s.read("web.err"));
    assert!(headers.to_ascii_lowercase().contains("strict-transport-security: max-age=31536000"), "{headers}");
    assert_eq!(curl(&client).0, "401", "no password");
    assert_eq!(curl(&[&client[..], &["-u", "prometheus:wrong"]].concat()).0, "401", "wrong password");
    assert_eq!(curl(&["-u", "prometheus:s3cret"]).0, "000", "no client certificate: no TLS session");
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The example PromQL queries parse (promtool, as recording rules) and name
/// only metrics of the contract (deploy/ci/metrics-contract.txt).
#[test]
fn readme_promql_examples_parse() {
    if !require_tools("readme_promql_examples_parse", &["promtool"]) {
        return;
    }
    let blocks = code_blocks(&readme());
    let b = blocks.iter().find(|b| b.lines[0] == "# sessions whose typist is more than 100 ms away").unwrap();
    let exprs: Vec<&String> = b.lines.iter().filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let contract = std::fs::read_to_string(root().join("deploy/ci/metrics-contract.txt")).unwrap();
    let names: std::collections::BTreeSet<&str> =
        contract.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split_whitespace().next()).collect();
    let mut rules = String::from("groups:\n  - name: readme\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        rules += &format!("      - record: readme:example_{i}\n        expr: >-\n          {e}\n");
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("echoloc_")) {
            let name = ["_bucket", "_sum", "_count"].iter().fold(word, |w, s| w.strip_suffix(s).unwrap_or(w));
            assert!(names.contains(name), "README query {e:?}: {name} is not in the metrics contract");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("readme-queries.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = Command::new("promtool").args(["check", "rules"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{rules}\n{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("SUCCESS: {} rules found", exprs.len())), "{text}");
}
