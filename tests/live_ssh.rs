//! Live capture of a real SSH session: OpenSSH's sshd in one network
//! namespace, its client in another, echoloc capturing on the server's veth.

mod common;

use common::netns::{NetnsPair, require_root, signal, wait_for};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn live_ssh_session_is_dissected() {
    if !require_root("live_ssh_session_is_dissected") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (key, kind) in [("hostkey", "ed25519"), ("userkey", "ed25519")] {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-f"])
            .arg(d.join(key))
            .stdout(Stdio::null())
            .status()
            .expect("ssh-keygen (openssh-client)");
        assert!(st.success());
    }
    std::fs::copy(d.join("userkey.pub"), d.join("authorized_keys")).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let cfg = d.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "ListenAddress 192.0.2.2\nPort 22\nHostKey {0}/hostkey\nPidFile {0}/sshd.pid\nAuthorizedKeysFile {0}/authorized_keys\n\
             UsePAM no\nStrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
            d.display()
        ),
    )
    .unwrap();
    let net = NetnsPair::new("ssh");
    let mut sshd = net
        .b
        .command(&["/usr/sbin/sshd", "-D", "-e", "-f", cfg.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .expect("sshd (openssh-server)");
    let out = d.join("records.jsonl");
    let mut echoloc = net
        .b
        .command(&[env!("CARGO_BIN_EXE_echoloc"), "live", "-i", "b0", "--format", "json", "--output"])
        .arg(&out)
        .args(["--listen", "127.0.0.1:9619"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let key = d.join("userkey");
    let ssh = net
        .a
        .command(&[
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            key.to_str().unwrap(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "root@192.0.2.2",
            "echo echoloc-live-ok",
        ])
        .output()
        .expect("ssh");
    assert!(
        String::from_utf8_lossy(&ssh.stdout).contains("echoloc-live-ok"),
        "ssh failed: {}",
        String::from_utf8_lossy(&ssh.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    signal(&echoloc, libc::SIGINT);
    let st = wait_for(&mut echoloc, Duration::from_secs(20)).expect("echoloc stops on SIGINT");
    let _ = sshd.kill();
    let _ = sshd.wait();
    assert!(st.success());
    let recs: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let r = recs.iter().find(|r| r["server"] == "192.0.2.2:22").unwrap_or_else(|| panic!("no ssh session: {recs:?}"));
    assert_eq!(r["proto"], "ssh");
    assert!(r["client"].as_str().unwrap().starts_with("192.0.2.1:"));
    assert!(r["ssh"]["client_version"].as_str().unwrap().starts_with("SSH-2.0-OpenSSH_"), "{r}");
    assert!(r["ssh"]["server_version"].as_str().unwrap().starts_with("SSH-2.0-OpenSSH_"), "{r}");
    assert_eq!(r["ssh"]["cipher"], "chacha20-poly1305@openssh.com");
    assert_eq!(r["ssh"]["keystroke_size"], 36);
    // Captured at the server's edge: the server leg is the host itself, the client leg the veth.
    let c = r["client_rtt_ms"]["handshake"].as_f64().unwrap();
    let s = r["server_rtt_ms"]["handshake"].as_f64().unwrap();
    assert!(c > 0.0 && c < 50.0 && (0.0..50.0).contains(&s), "{r}");
    assert_eq!(r["keystrokes"], 0, "a command, not typing: {r}");
    assert!(r["server_app_rtt_ms"].is_object() || r["client_app_rtt_ms"].is_object(), "{r}");
}
