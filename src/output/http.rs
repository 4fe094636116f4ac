//! The /metrics endpoint. Scrapes render from atomics and a concurrent map,
//! so a flood of requests cannot stall capture (which runs on its own thread).

use super::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
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
    let tls = web.tls.clone();
    let state = AppState { metrics, web: Arc::new(web) };
    let app = Router::new().route("/metrics", get(metrics_handler)).route("/", get(index)).with_state(state);
    match tls {
        Some(tls) => {
            let cfg = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert_file, &tls.key_file)
                .await
                .map_err(|e| anyhow::anyhow!("cannot load TLS certificate or key: {e}"))?;
            tracing::info!(%addr, "serving metrics over TLS");
            axum_server::from_tcp_rustls(listener, cfg)?.serve(app.into_make_service()).await?;
        }
        None => {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tracing::info!(%addr, "serving metrics");
            axum::serve(listener, app).await?;
        }
    }
    Ok(())
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
    let body = tokio::task::spawn_blocking(move || m.render()).await.unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}
