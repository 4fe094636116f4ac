//! The README's set-up and commands, run as a reader would run them.
//!
//! - `scripts/setup.sh --check-toolchain` with fake `cargo` programs on PATH:
//!   too old, new enough, missing, broken.
//! - The example record (the ```json block) against a real record of the
//!   capture it names: the same keys at every depth.

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
