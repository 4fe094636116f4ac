//! The /metrics endpoint. Scrapes render from atomics and a concurrent map,
//! so a flood of requests cannot stall capture (which runs on its own thread).

use super::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

use crate::web_config::WebConfig;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    web: Arc<WebConfig>,
}

/// Serve /metrics on `listener` until the process ends.
pub async fn serve(listener: std::net::TcpListener, metrics: Arc<Metrics>, web: WebConfig) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    for note in &web.notes {
        tracing::warn!("web config: {note}");
    }
    let tls = web.tls.clone();
    let http2 = web.http2;
    let headers = Arc::new(web.headers.clone());
    let state = AppState { metrics, web: Arc::new(web) };
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/", get(index))
        .with_state(state)
        .layer(middleware::map_response_with_state(headers, add_headers));
    match tls {
        Some(tls) => {
            let cfg = axum_server::tls_rustls::RustlsConfig::from_config(tls);
            let mut server = axum_server::from_tcp_rustls(listener, cfg)?;
            if !http2 {
                server = server.http1_only();
            }
            tracing::info!(%addr, http2, "serving metrics over TLS");
            server.serve(app.into_make_service()).await?;
        }
        None => {
            let mut server = axum_server::from_tcp(listener)?;
            if !http2 {
                server = server.http1_only();
            }
            tracing::info!(%addr, "serving metrics");
            server.serve(app.into_make_service()).await?;
        }
    }
    Ok(())
}

/// `http_server_config.headers` on every response (401 and 404 included).
async fn add_headers(State(headers): State<Arc<Vec<(HeaderName, HeaderValue)>>>, mut res: Response) -> Response {
    for (name, value) in headers.iter() {
        res.headers_mut().insert(name.clone(), value.clone());
    }
    res
}

async fn index() -> &'static str {
    "echoloc: metrics at /metrics\n"
}

async fn metrics_handler(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if !st.web.authorized(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())) {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"echoloc\"")], "unauthorized\n")
            .into_response();
    }
    let m = st.metrics.clone();
    let header_has = |name: header::HeaderName, what: fn(&str) -> bool| {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).any(what)
    };
    let open = header_has(header::ACCEPT, super::openmetrics::wanted);
    let gzip = header_has(header::ACCEPT_ENCODING, accepts_gzip);
    let (body, content_type) = tokio::task::spawn_blocking(move || {
        let text = m.render();
        let (text, ct) = if open {
            (super::openmetrics::from_text(&text), super::openmetrics::CONTENT_TYPE)
        } else {
            (text, "text/plain; version=0.0.4; charset=utf-8")
        };
        (if gzip { gzipped(text.as_bytes()) } else { text.into_bytes() }, ct)
    })
    .await
    .unwrap_or_default();
    let mut res = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    if gzip {
        res.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    res.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    res
}

/// Whether an `Accept-Encoding` header takes gzip (not with q=0).
fn accepts_gzip(v: &str) -> bool {
    v.split(',').any(|p| {
        let mut it = p.split(';').map(str::trim);
        it.next() == Some("gzip") && !it.any(|q| q.replace(' ', "") == "q=0")
    })
}

fn gzipped(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::fast());
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}
