//! The /metrics endpoint with the exporter web-config file: TLS and bcrypt
//! basic auth, checked with curl over a real TLS connection.

mod common;

use common::netns::{free_port, serve_replay};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// HTTP status of a curl request (0 when the connection failed).
fn curl(args: &[&str]) -> (u32, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl (Debian package curl)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn tls_and_basic_auth_protect_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success());
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = d.join("web-config.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/public/zeek/sshguess.pcap");
    let listen = format!("127.0.0.1:{port}");
    let _echoloc = serve_replay([
        "--listen".as_ref(),
        listen.as_ref(),
        "--web.config.file".as_ref(),
        web.as_os_str(),
        capture.as_os_str(),
    ]);
    let https = format!("https://127.0.0.1:{port}/metrics");
    let mut code = 0;
    for _ in 0..50 {
        code = curl(&["-k", &https]).0;
        if code != 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(code, 401, "no credentials");
    assert_eq!(curl(&["-k", "-u", "prometheus:wrong", &https]).0, 401, "wrong password");
    assert_eq!(curl(&["-k", "-u", "nobody:s3cret", &https]).0, 401, "unknown user");
    let (code, body) = curl(&["-k", "-u", "prometheus:s3cret", &https]);
    assert_eq!(code, 200);
    assert!(body.contains("echoloc_sessions_opened_total{proto=\"ssh\"} 11"), "{body}");
    // The certificate is the configured one, and plain HTTP is not served.
    let (code, _) = curl(&[
        "--cacert",
        d.join("cert.pem").to_str().unwrap(),
        "--resolve",
        &format!("localhost:{port}:127.0.0.1"),
        "-u",
        "prometheus:s3cret",
        &format!("https://localhost:{port}/metrics"),
    ]);
    assert_eq!(code, 200, "verified against the configured certificate");
    assert_ne!(curl(&["-u", "prometheus:s3cret", &format!("http://127.0.0.1:{port}/metrics")]).0, 200);
}

#[test]
fn rejects_a_web_config_without_bcrypt_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  prometheus: plaintext-password\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_echoloc"))
        .args(["replay", "--listen", "127.0.0.1:0", "--web.config.file"])
        .arg(&web)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/public/zeek/sshguess.pcap"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bcrypt"), "{}", String::from_utf8_lossy(&out.stderr));
}
