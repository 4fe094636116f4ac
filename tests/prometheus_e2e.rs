//! A real Prometheus server (Debian package `prometheus`) scrapes echoloc;
//! the series are checked through Prometheus' HTTP query API: aggregate
//! histograms, per-session series and their values, their removal after the
//! session ends, and the cap on per-session series.

mod common;

use common::netns::{Kill, free_port, serve_replay, wait_for};
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

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn prometheus_scrapes_histograms_and_bounded_per_session_series() {
    let prom_bin = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].into_iter().find(|p| Path::new(p).exists());
    let Some(prom_bin) = prom_bin else {
        assert!(std::env::var_os("CI").is_none(), "CI must install the Debian package prometheus");
        eprintln!("SKIP: prometheus not installed");
        return;
    };
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
