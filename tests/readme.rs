//! The README's set-up and commands, run as a reader would run them.
//!
//! - `scripts/setup.sh --check-toolchain` with fake `cargo` programs on PATH:
//!   too old, new enough, missing, broken.

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
