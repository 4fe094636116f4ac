//! The /metrics endpoint with the exporter web-config file, checked with curl
//! over real TLS connections: basic auth, client certificates (every
//! client_auth_type, client_allowed_sans), TLS versions, cipher suites,
//! curves, response headers, HTTP/2; and every key echoloc does not serve
//! refused at start. Certificates are made with openssl at test time.

mod common;

use common::netns::{Kill, free_port, serve_replay};
use std::path::{Path, PathBuf};
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

fn sshguess() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/public/zeek/sshguess.pcap")
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl (Debian package openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// A CA (`NAME.pem`, `NAME.key`) in `dir`.
fn ca(dir: &Path, name: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let subj = format!("/CN={name}");
    let mut args = vec!["req", "-x509"];
    args.extend(EC);
    args.extend(["-nodes", "-days", "2", "-subj", &subj, "-keyout", &key, "-out", &pem]);
    args.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
    openssl(dir, &args);
}

/// A certificate `NAME.pem` (key `NAME.key`) signed by the CA `ca`, with these extensions.
fn leaf(dir: &Path, name: &str, ca: &str, serial: u32, ext: &str) {
    let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
    let ext_file = format!("{name}.ext");
    std::fs::write(dir.join(&ext_file), format!("basicConstraints=CA:FALSE\n{ext}\n")).unwrap();
    let subj = format!("/CN={name}");
    let mut args = vec!["req", "-new"];
    args.extend(EC);
    args.extend(["-nodes", "-subj", &subj, "-keyout", &key, "-out", &csr]);
    openssl(dir, &args);
    let (ca_pem, ca_key, serial) = (format!("{ca}.pem"), format!("{ca}.key"), serial.to_string());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-set_serial",
            &serial,
            "-days",
            "2",
            "-extfile",
            &ext_file,
            "-out",
            &pem,
        ],
    );
}

/// In a temporary folder: CA `ca` with the server's certificate `server`
/// (localhost, 127.0.0.1) and clients `client` (SAN scraper.example) and
/// `intruder` (SAN intruder.example); another CA `other-ca` with client `rogue`
/// (SAN scraper.example).
fn pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ca(d, "ca");
    ca(d, "other-ca");
    leaf(d, "server", "ca", 1, "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1");
    leaf(d, "client", "ca", 2, "extendedKeyUsage=clientAuth\nsubjectAltName=DNS:scraper.example");
    leaf(d, "intruder", "ca", 3, "extendedKeyUsage=clientAuth\nsubjectAltName=DNS:intruder.example");
    leaf(d, "rogue", "other-ca", 4, "extendedKeyUsage=clientAuth\nsubjectAltName=DNS:scraper.example");
    dir
}

/// echoloc replaying a capture with `--serve` and the web config `yaml`
/// (written into `dir`), listening on a free loopback port.
struct Server {
    port: u16,
    dir: PathBuf,
    _echoloc: Kill,
}

impl Server {
    fn start(dir: &Path, yaml: &str) -> Server {
        let web = dir.join(format!("web-{}.yml", free_port()));
        std::fs::write(&web, yaml).unwrap();
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let echoloc = serve_replay([
            "--listen".as_ref(),
            listen.as_ref(),
            "--web.config.file".as_ref(),
            web.as_os_str(),
            sshguess().as_os_str(),
        ]);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Server { port, dir: dir.to_path_buf(), _echoloc: echoloc };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("echoloc did not listen on {port} with web config:\n{yaml}");
    }

    /// curl arguments for https://localhost:PORT/metrics, the server verified against `ca.pem`.
    fn https(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "--cacert".to_string(),
            self.file("ca.pem"),
            "--resolve".to_string(),
            format!("localhost:{}:127.0.0.1", self.port),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(format!("https://localhost:{}/metrics", self.port));
        args
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    /// HTTP status of GET /metrics over TLS (0: the connection or handshake failed).
    fn status(&self, extra: &[&str]) -> u32 {
        let args = self.https(extra);
        curl(&args.iter().map(String::as_str).collect::<Vec<_>>()).0
    }

    /// GET /metrics presenting the client certificate `name` (`name.pem`, `name.key`).
    fn status_as(&self, name: &str, extra: &[&str]) -> u32 {
        let (cert, key) = (self.file(&format!("{name}.pem")), self.file(&format!("{name}.key")));
        let mut args = vec!["--cert", &cert, "--key", &key];
        args.extend(extra);
        self.status(&args)
    }

    /// curl's `-w` variable (`http_version`…) for GET /metrics.
    fn write_out(&self, var: &str, extra: &[&str]) -> String {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--max-time", "5", "-w", &format!("%{{{var}}}")])
            .args(self.https(extra))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

/// `tls_server_config` with the test server's certificate and these lines.
fn tls(lines: &str) -> String {
    format!("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n{lines}")
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
    let capture = sshguess();
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
    let (code, _, stderr) = start_refused(&web);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("bcrypt"), "{stderr}");
}

#[test]
fn require_and_verify_client_cert() {
    let pki = pki();
    let s =
        Server::start(pki.path(), &tls("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n"));
    assert_eq!(s.status_as("client", &[]), 200, "certificate signed by client_ca_file");
    assert_eq!(s.status(&[]), 0, "no client certificate");
    assert_eq!(s.status(&["--tls-max", "1.2"]), 0, "no client certificate, TLS 1.2");
    assert_eq!(s.status_as("rogue", &[]), 0, "certificate signed by another CA");
    assert_eq!(s.status_as("rogue", &["--tls-max", "1.2"]), 0, "another CA, TLS 1.2");
    assert_eq!(s.status_as("client", &["--tls-max", "1.2"]), 200);
}

#[test]
fn verify_client_cert_if_given() {
    let pki = pki();
    let s = Server::start(pki.path(), &tls("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n"));
    assert_eq!(s.status(&[]), 200, "no certificate is allowed");
    assert_eq!(s.status_as("client", &[]), 200, "a good certificate");
    assert_eq!(s.status_as("rogue", &[]), 0, "a certificate given must verify");
}

#[test]
fn request_and_require_any_client_cert() {
    // As in Go: a certificate is asked for (required by RequireAnyClientCert) but not verified.
    let pki = pki();
    let any = Server::start(pki.path(), &tls("  client_auth_type: RequireAnyClientCert\n"));
    assert_eq!(any.status(&[]), 0, "RequireAnyClientCert: no certificate");
    assert_eq!(any.status_as("rogue", &[]), 200, "RequireAnyClientCert: any certificate");
    let request = Server::start(pki.path(), &tls("  client_auth_type: RequestClientCert\n"));
    assert_eq!(request.status(&[]), 200, "RequestClientCert: no certificate");
    assert_eq!(request.status_as("rogue", &[]), 200, "RequestClientCert: any certificate");
}

#[test]
fn client_allowed_sans() {
    let pki = pki();
    let s = Server::start(
        pki.path(),
        &tls(
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  client_allowed_sans:\n    - scraper.example\n    - 192.0.2.1\n",
        ),
    );
    assert_eq!(s.status_as("client", &[]), 200, "SAN scraper.example is allowed");
    assert_eq!(s.status_as("intruder", &[]), 0, "SAN intruder.example is not");
    assert_eq!(s.status_as("intruder", &["--tls-max", "1.2"]), 0, "SAN intruder.example, TLS 1.2");
    assert_eq!(s.status_as("rogue", &[]), 0, "allowed SAN but another CA");
    assert_eq!(s.status(&[]), 0, "no certificate");
}

#[test]
fn tls_versions() {
    let pki = pki();
    let tls13 = Server::start(pki.path(), &tls("  min_version: TLS13\n"));
    assert_eq!(tls13.status(&["--tlsv1.3"]), 200);
    assert_eq!(tls13.status(&["--tls-max", "1.2"]), 0, "min_version TLS13 refuses TLS 1.2");
    assert_eq!(tls13.write_out("http_version", &[]), "2", "HTTP/2 by default");
    let tls12 = Server::start(pki.path(), &tls("  max_version: TLS12\n"));
    assert_eq!(tls12.status(&["--tls-max", "1.2"]), 200);
    assert_eq!(tls12.status(&["--tlsv1.3"]), 0, "max_version TLS12 refuses TLS 1.3");
    // TLS10 as a minimum is served from TLS 1.2 (rustls has no older versions).
    let tls10 = Server::start(pki.path(), &tls("  min_version: TLS10\n"));
    assert_eq!(tls10.status(&["--tls-max", "1.2"]), 200);
    assert_eq!(tls10.status(&["--tlsv1", "--tls-max", "1.1"]), 0);
}

#[test]
fn cipher_suites_and_curves() {
    let pki = pki();
    let s = Server::start(pki.path(), &tls("  cipher_suites:\n    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n"));
    assert_eq!(s.status(&["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"]), 200);
    assert_eq!(s.status(&["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"]), 0, "a suite not listed");
    assert_eq!(
        s.status(&["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-CHACHA20-POLY1305"]),
        0,
        "another suite not listed"
    );
    assert_eq!(s.status(&["--tlsv1.3"]), 200, "cipher_suites apply to TLS 1.2 only");
    let c = Server::start(pki.path(), &tls("  curve_preferences:\n    - CurveP384\n"));
    assert_eq!(c.status(&["--curves", "P-384"]), 200);
    assert_eq!(c.status(&["--curves", "X25519"]), 0, "a curve not listed, TLS 1.3");
    assert_eq!(c.status(&["--curves", "X25519", "--tls-max", "1.2"]), 0, "a curve not listed, TLS 1.2");
}

#[test]
fn headers_and_http2() {
    let pki = pki();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let yaml = tls(&format!(
        "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Content-Security-Policy: default-src 'none'\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n  prometheus: {hash}\n"
    ));
    let s = Server::start(pki.path(), &yaml);
    for (auth, status) in [(&["-u", "prometheus:s3cret"][..], "200"), (&[][..], "401")] {
        let mut args = vec!["-s", "-o", "/dev/null", "-D", "-", "--max-time", "5"];
        args.extend(auth);
        let https = s.https(&[]);
        let out = Command::new("curl").args(&args).args(&https).output().unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(head.starts_with("http/1.1 ") && head.contains(status), "{head}");
        assert!(head.contains("\r\nx-frame-options: deny\r\n"), "{head}");
        assert!(head.contains("\r\ncontent-security-policy: default-src 'none'\r\n"), "{head}");
        assert!(head.contains("\r\nstrict-transport-security: max-age=31536000\r\n"), "{head}");
    }
    assert_eq!(s.write_out("http_version", &["--http2", "-u", "prometheus:s3cret"]), "1.1", "http2: false");
    // Plain HTTP: headers too, and http2: false refuses even HTTP/2 with prior knowledge.
    let plain = Server::start(
        pki.path(),
        "http_server_config:\n  http2: false\n  headers:\n    X-Content-Type-Options: nosniff\n",
    );
    let url = format!("http://127.0.0.1:{}/metrics", plain.port);
    let out =
        Command::new("curl").args(["-s", "-o", "/dev/null", "-D", "-", "--max-time", "5", &url]).output().unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 200") && head.contains("\r\nx-content-type-options: nosniff\r\n"), "{head}");
    assert_eq!(curl(&["--http2-prior-knowledge", &url]).0, 0, "http2: false, HTTP/2 with prior knowledge");
    let missing = format!("http://127.0.0.1:{}/nothing-here", plain.port);
    let out =
        Command::new("curl").args(["-s", "-o", "/dev/null", "-D", "-", "--max-time", "5", &missing]).output().unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 404") && head.contains("\r\nx-content-type-options: nosniff\r\n"), "{head}");
    let h2c = Server::start(pki.path(), "");
    let url = format!("http://127.0.0.1:{}/metrics", h2c.port);
    assert_eq!(curl(&["--http2-prior-knowledge", &url]).0, 200, "HTTP/2 by default");
}

/// Run echoloc with the web config `web`; (exit code, stdout, stderr).
fn start_refused(web: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_echoloc"))
        .args(["replay", "--format", "json", "--listen", "127.0.0.1:0", "--web.config.file"])
        .arg(web)
        .arg(sshguess())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn refuses_what_it_does_not_serve() {
    let pki = pki();
    let d = pki.path();
    let cases: &[(&str, String, &str)] = &[
        ("unknown key", "bogus_key: 1\n".into(), "unsupported key `bogus_key`"),
        ("unknown TLS key", tls("  bogus_key: 1\n"), "unsupported key `bogus_key` in tls_server_config"),
        ("unknown HTTP key", "http_server_config:\n  bogus_key: 1\n".into(), "unsupported key `bogus_key`"),
        ("rate limit", "rate_limit:\n  interval: 1s\n  burst: 5\n".into(), "unsupported key `rate_limit`"),
        ("header", "http_server_config:\n  headers:\n    Server: x\n".into(), "\"Server\" can not be configured"),
        ("header value", "http_server_config:\n  headers:\n    X-Frame-Options: allow\n".into(), "must be one of"),
        (
            "CBC suite",
            tls("  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n"),
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        ),
        ("TLS 1.3 suite", tls("  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"), "TLS 1.3 suite"),
        (
            "suites, no TLS 1.2",
            tls("  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n"),
            "turns TLS 1.2 off",
        ),
        ("P-521", tls("  curve_preferences: [CurveP521]\n"), "CurveP521 is not offered"),
        ("unknown curve", tls("  curve_preferences: [P256]\n"), "unknown curve"),
        ("max TLS11", tls("  max_version: TLS11\n"), "max_version TLS11"),
        ("min above max", tls("  min_version: TLS13\n  max_version: TLS12\n"), "above max_version"),
        ("bad version", tls("  min_version: TLS1.2\n"), "not one of TLS10"),
        ("bad auth type", tls("  client_auth_type: Always\n"), "client_auth_type \"Always\""),
        ("verify, no CA", tls("  client_auth_type: RequireAndVerifyClientCert\n"), "needs client_ca_file"),
        ("CA, no auth", tls("  client_ca_file: ca.pem\n"), "NoClientCert"),
        (
            "SANs, cert optional",
            tls("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n  client_allowed_sans: [a]\n"),
            "client_allowed_sans needs",
        ),
        ("TLS without cert", "tls_server_config:\n  min_version: TLS13\n".into(), "no cert_file"),
        (
            "missing CA file",
            tls("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: nope.pem\n"),
            "nope.pem",
        ),
    ];
    for (what, yaml, expect) in cases {
        let web = d.join("refused.yml");
        std::fs::write(&web, yaml).unwrap();
        let (code, stdout, stderr) = start_refused(&web);
        assert_eq!(code, Some(2), "{what}: {stderr}");
        assert!(stderr.contains(expect), "{what}: expected {expect:?} in {stderr}");
        assert!(stderr.contains("refused.yml"), "{what}: the file is named: {stderr}");
        assert!(stdout.is_empty(), "{what}: refused before capture, but records were written: {stdout}");
    }
}
