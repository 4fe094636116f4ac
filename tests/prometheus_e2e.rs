//! A real Prometheus server (Debian package `prometheus`) scrapes echoloc;
//! the series are checked through Prometheus' HTTP query API: aggregate
//! histograms, per-session series and their values, their removal after the
//! session ends, and the cap on per-session series.

mod common;

use common::netns::{Kill, free_port, serve_replay, wait_for};
use common::wait_until;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn query(prom: u16, q: &str) -> Vec<Value> {
    let url = format!("http://127.0.0.1:{prom}/api/v1/query");
    let body = ureq::get(&url).query("query", q).call().expect("query prometheus").body_mut().read_to_string().unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"].as_array().unwrap().clone()
}

fn scalar(prom: u16, q: &str) -> Option<f64> {
    let r = query(prom, q);
    r.first().and_then(|s| s["value"][1].as_str()).and_then(|v| v.parse().ok())
}

#[test]
fn prometheus_scrapes_histograms_and_bounded_per_session_series() {
    let Some(prom_bin) = common::prometheus_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (pe, pp) = (free_port(), free_port());
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: echoloc\n    static_configs:\n      - targets: ['127.0.0.1:{pe}']\n"
        ),
    )
    .unwrap();
    let _prom = Kill(
        Command::new(prom_bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{pp}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    wait_until("prometheus ready", 30, || {
        ureq::get(&format!("http://127.0.0.1:{pp}/-/ready")).call().is_ok_and(|r| r.status() == 200)
    });

    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/public/zeek/ssh.pcap");
    let out = dir.path().join("records.jsonl");
    let listen = format!("127.0.0.1:{pe}");
    let mut echoloc = serve_replay([
        "--linger".as_ref(),
        "8".as_ref(),
        "--max-exported-sessions".as_ref(),
        "3".as_ref(),
        "--listen".as_ref(),
        listen.as_ref(),
        "--output".as_ref(),
        out.as_os_str(),
        capture.as_os_str(),
    ]);
    let started = Instant::now();
    wait_until("a scrape of echoloc", 20, || scalar(pp, "up{job=\"echoloc\"}") == Some(1.0));
    wait_until("per-session series", 10, || !query(pp, "echoloc_session_rtt_seconds").is_empty());

    let recs: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Aggregate histogram: every RTT sample of the SSH sessions was observed.
    let samples: u64 = recs
        .iter()
        .filter(|r| r["proto"] == "ssh")
        .flat_map(|r| [&r["client_rtt_ms"]["samples"], &r["server_rtt_ms"]["samples"]])
        .filter_map(Value::as_u64)
        .sum();
    let hist = scalar(pp, "sum(echoloc_rtt_seconds_count{job=\"echoloc\",proto=\"ssh\"})").unwrap();
    assert_eq!(hist as u64, samples, "histogram count vs JSON sample counts");
    assert!(scalar(pp, "sum(echoloc_handshake_rtt_seconds_count)").unwrap() > 0.0);
    assert_eq!(scalar(pp, "echoloc_sessions_opened_total{proto=\"ssh\"}"), Some(22.0));

    // Per-session series: at most 3 sessions, values equal to the JSON records.
    let sessions = query(pp, "count by (session) (echoloc_session_rtt_seconds)");
    assert_eq!(sessions.len(), 3, "cap on per-session series: {sessions:?}");
    assert!(scalar(pp, "echoloc_exported_sessions_skipped_total").unwrap() >= 1.0);
    assert_eq!(scalar(pp, "echoloc_exported_sessions_limit"), Some(3.0));
    for s in &sessions {
        let uid = s["metric"]["session"].as_str().unwrap();
        let rec = recs.iter().find(|r| r["uid"] == uid).expect("exported session has a record");
        for (leg, key) in [("client", "client_rtt_ms"), ("server", "server_rtt_ms")] {
            let Some(want) = rec[key]["min"].as_f64() else { continue };
            let q = format!("echoloc_session_rtt_seconds{{session=\"{uid}\",leg=\"{leg}\",stat=\"min\"}}");
            let got = scalar(pp, &q).expect("per-session min");
            assert!((got * 1e3 - want).abs() < 1e-3, "{uid} {leg}: prometheus {got} s, record {want} ms");
        }
    }

    // Removed after the session ends plus the linger time.
    let linger_end = started + Duration::from_secs(8);
    std::thread::sleep(linger_end.saturating_duration_since(Instant::now()) + Duration::from_secs(3));
    wait_until("per-session series removed", 10, || query(pp, "echoloc_session_rtt_seconds").is_empty());
    assert_eq!(scalar(pp, "echoloc_exported_sessions"), Some(0.0));
    assert!(echoloc.0.try_wait().unwrap().is_none(), "--serve keeps serving");
    let _ = wait_for(&mut echoloc.0, Duration::ZERO);
}

/// The exporter speaks what the scraper asks for: the Prometheus text
/// format by default; OpenMetrics (counter families without `_total`,
/// `# EOF` at the end) for `Accept: application/openmetrics-text`; gzip for
/// `Accept-Encoding: gzip`. (Prometheus asks for both: the scrapes above
/// read them.)
#[test]
fn openmetrics_and_gzip_when_the_scraper_asks() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/lab/direct-tr5-rs15/server-edge.pcap");
    let _echoloc = serve_replay(["--listen".as_ref(), listen.as_ref(), capture.as_os_str()]);
    common::netns::scrape_until(port, 20, |t| t.contains("echoloc_sessions_ended_total{"));
    // Raw HTTP/1.0: no client library adding or undoing an encoding.
    let get = |headers: &[(&str, &str)]| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n".to_string();
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        s.write_all(format!("{req}\r\n").as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response");
        let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
        let field = |name: &str| {
            head.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(String::from)).unwrap_or_default()
        };
        (field("content-type"), field("content-encoding"), raw[split + 4..].to_vec())
    };
    let (ct, ce, plain) = get(&[]);
    let plain = String::from_utf8(plain).unwrap();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert_eq!(ce, "");
    assert!(plain.contains("# TYPE echoloc_packets_total counter") && !plain.contains("# EOF"));
    let om = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let (ct, ce, open) = get(&[("Accept", om)]);
    let open = String::from_utf8(open).unwrap();
    assert!(ct.starts_with("application/openmetrics-text; version=1.0.0"), "{ct}");
    assert_eq!(ce, "");
    assert!(open.ends_with("# EOF\n"), "{}", &open[open.len().saturating_sub(200)..]);
    assert!(open.contains("# TYPE echoloc_packets counter\n"), "counter family named without _total");
    assert!(open.contains("\necholoc_packets_total "), "samples keep _total");
    let (_, ce, zipped) = get(&[("Accept-Encoding", "gzip")]);
    assert_eq!(ce, "gzip");
    assert!(zipped.len() * 3 < plain.len(), "gzip: {} of {} bytes", zipped.len(), plain.len());
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut unzipped).unwrap();
    assert!(unzipped.contains("# TYPE echoloc_packets_total counter"));
}

/// Fleet aggregates by site: typist round trip, hidden latency and echo
/// delay histograms labelled by the policy subnet of the client ("other"
/// outside every subnet), so the label is bounded by the policy file.
#[test]
fn site_histograms_follow_the_policy_subnets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("echoloc.toml");
    std::fs::write(&cfg, "[policy]\n\"198.51.100.0/24\" = 50\n\"10.0.0.0/8\" = 100\n").unwrap();
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/lab/jump-tr30-rs7.5/server-edge.pcap");
    let recs = common::replay_with_ok(&["--config", cfg.to_str().unwrap()], &[&capture]);
    let ssh: Vec<&Value> = recs.iter().filter(|r| r["proto"] == "ssh").collect();
    assert_eq!(ssh.len(), 1);
    assert!(ssh[0]["client"].as_str().unwrap().starts_with("198.51.100."));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _echoloc =
        serve_replay(["--config".as_ref(), cfg.as_os_str(), "--listen".as_ref(), listen.as_ref(), capture.as_os_str()]);
    let text = common::netns::scrape_until(port, 20, |t| t.contains("echoloc_site_typist_rtt_seconds_count{"));
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    let site = "site=\"198.51.100.0/24\"";
    assert_eq!(value(&format!("echoloc_site_typist_rtt_seconds_count{{proto=\"ssh\",{site}}}")), 1.0);
    let typist = ssh[0]["typist_rtt_ms"].as_f64().unwrap() / 1e3;
    assert!((value(&format!("echoloc_site_typist_rtt_seconds_sum{{proto=\"ssh\",{site}}}")) - typist).abs() < 1e-6);
    assert_eq!(
        value(&format!("echoloc_site_hidden_latency_seconds_count{{leg=\"client\",proto=\"ssh\",{site}}}")),
        1.0
    );
    let echoes = ssh[0]["echo_ms"]["samples"].as_f64().unwrap();
    assert!(echoes >= 10.0);
    assert_eq!(value(&format!("echoloc_site_echo_delay_seconds_count{{proto=\"ssh\",{site}}}")), echoes);
    assert!(!text.contains("site=\"10.0.0.0/8\"") && !text.contains("site=\"other\""), "only sites with samples");
    let meters = text.lines().find(|l| l.starts_with("echoloc_session_max_distance_meters{"));
    let km = text.lines().find(|l| l.starts_with("echoloc_session_max_distance_km{"));
    let num = |l: Option<&str>| l.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse::<f64>().ok());
    assert_eq!(num(meters).map(|m| (m / 1e3 * 1e6).round()), num(km).map(|k| (k * 1e6).round()));
}
