//! The exporter web-config file (Prometheus exporter-toolkit format): TLS
//! (server certificate, client certificates, versions, cipher suites, curves),
//! HTTP response headers and HTTP/2, and basic-auth users for /metrics.
//!
//! Every key of the format is either honoured or refused when the file is
//! loaded (before capture starts): a security setting is never accepted and
//! then ignored. Unknown keys are refused too, naming the key.

mod san;
mod tls;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A loaded and checked web-config file.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// TLS for the endpoint (`tls_server_config`); `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `basic_auth_users`: user → bcrypt hash.
    pub users: BTreeMap<String, String>,
    /// `http_server_config.headers`, set on every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `http_server_config.http2` (default true; HTTP/2 is offered over TLS only, by ALPN).
    pub http2: bool,
    /// What the server says once when it starts (settings served differently
    /// from how Go would, client-auth modes that authenticate nobody).
    pub notes: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig { tls: None, users: BTreeMap::new(), headers: Vec::new(), http2: true, notes: Vec::new() }
    }
}

/// The keys of the format, by section. Anything else is refused.
const TOP_KEYS: &[&str] = &["tls_server_config", "http_server_config", "basic_auth_users"];
const TLS_KEYS: &[&str] = &[
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
];
const HTTP_KEYS: &[&str] = &["http2", "headers"];

/// The response headers exporter-toolkit lets a web config set, with the
/// values allowed where it restricts them (any value otherwise).
const HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    tls_server_config: Option<tls::TlsFile>,
    http_server_config: Option<HttpFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

impl WebConfig {
    pub fn load(path: &Path) -> anyhow::Result<WebConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read web config {}: {e}", path.display()))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| anyhow::anyhow!("web config {}: {e}", path.display()))
    }

    /// The config in `text`; relative file names are under `base`.
    fn parse(text: &str, base: &Path) -> anyhow::Result<WebConfig> {
        let value: Value = serde_yaml_ng::from_str(text)?;
        check_keys(&value, TOP_KEYS, None)?;
        if let Value::Mapping(m) = &value {
            check_keys(m.get("tls_server_config").unwrap_or(&Value::Null), TLS_KEYS, Some("tls_server_config"))?;
            check_keys(m.get("http_server_config").unwrap_or(&Value::Null), HTTP_KEYS, Some("http_server_config"))?;
        }
        let f: FileConfig = match value {
            Value::Null => FileConfig::default(),
            v => serde_yaml_ng::from_value(v)?,
        };
        let http = f.http_server_config.unwrap_or_default();
        let http2 = http.http2.unwrap_or(true);
        let mut notes = Vec::new();
        let tls = match f.tls_server_config {
            Some(t) => t.server_config(base, http2, &mut notes)?.map(Arc::new),
            None => None,
        };
        let headers = headers(http.headers.unwrap_or_default())?;
        let users = f.basic_auth_users.unwrap_or_default();
        for (user, hash) in &users {
            if !hash.starts_with("$2") {
                anyhow::bail!("the password of {user:?} must be a bcrypt hash");
            }
        }
        Ok(WebConfig { tls, users, headers, http2, notes })
    }

    /// Whether a request with this Authorization header may read metrics.
    pub fn authorized(&self, header: Option<&str>) -> bool {
        use base64::Engine;
        if self.users.is_empty() {
            return true;
        }
        let Some(b64) = header.and_then(|h| h.strip_prefix("Basic ")) else { return false };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else { return false };
        let Ok(text) = String::from_utf8(raw) else { return false };
        let Some((user, pass)) = text.split_once(':') else { return false };
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(pass, hash).unwrap_or(false),
            None => false,
        }
    }
}

/// Refuse a key the format (as implemented here) does not have.
fn check_keys(v: &Value, known: &[&str], section: Option<&str>) -> anyhow::Result<()> {
    let m = match v {
        Value::Null => return Ok(()),
        Value::Mapping(m) => m,
        _ => anyhow::bail!("{} must be a mapping of keys to values", section.unwrap_or("the file")),
    };
    for k in m.keys() {
        let name = match k {
            Value::String(s) => s.clone(),
            other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
        };
        if !known.contains(&name.as_str()) {
            let hint = match name.as_str() {
                "rate_limit" => " (rate limiting is not implemented)",
                _ => "",
            };
            match section {
                None => anyhow::bail!("unsupported key `{name}`{hint}"),
                Some(s) => anyhow::bail!("unsupported key `{name}` in {s}"),
            }
        }
    }
    Ok(())
}

/// `http_server_config.headers`, checked as exporter-toolkit checks them:
/// only its headers, and for the enumerated ones only their values.
fn headers(configured: BTreeMap<String, String>) -> anyhow::Result<Vec<(HeaderName, HeaderValue)>> {
    let mut out = Vec::new();
    for (name, value) in configured {
        let Some((_, allowed)) = HEADERS.iter().find(|(h, _)| *h == name) else {
            let names: Vec<&str> = HEADERS.iter().map(|(h, _)| *h).collect();
            anyhow::bail!(
                "http_server_config.headers: HTTP header {name:?} can not be configured (allowed: {})",
                names.join(", ")
            );
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            anyhow::bail!("http_server_config.headers: {name} must be one of {allowed:?}, not {value:?}");
        }
        if value.is_empty() {
            continue; // "unset if blank"
        }
        let v = HeaderValue::from_str(&value).map_err(|_| {
            anyhow::anyhow!("http_server_config.headers: {name}: {value:?} is not a valid header value")
        })?;
        out.push((HeaderName::from_bytes(name.as_bytes())?, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<WebConfig> {
        WebConfig::parse(text, Path::new("/nonexistent"))
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse(text).expect_err(text))
    }

    #[test]
    fn basic_auth_checks_bcrypt() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let mut w = WebConfig::default();
        assert!(w.authorized(None));
        w.users.insert("prom".into(), hash);
        use base64::Engine;
        let ok = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("prom:secret"));
        let bad = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("prom:nope"));
        assert!(w.authorized(Some(&ok)));
        assert!(!w.authorized(Some(&bad)));
        assert!(!w.authorized(None));
    }

    #[test]
    fn empty_file_is_plain_http_with_http2() {
        let w = parse("").unwrap();
        assert!(w.tls.is_none() && w.users.is_empty() && w.headers.is_empty() && w.http2);
        assert!(parse("tls_server_config:\nhttp_server_config:\n").unwrap().tls.is_none());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        assert!(err("bogus_key: 1\n").contains("unsupported key `bogus_key`"));
        assert!(err("rate_limit:\n  interval: 1s\n  burst: 2\n").contains("unsupported key `rate_limit`"));
        assert!(
            err("tls_server_config:\n  cert_file: a\n  key_file: b\n  bogus: 1\n")
                .contains("unsupported key `bogus` in tls_server_config")
        );
        assert!(err("http_server_config:\n  http3: true\n").contains("unsupported key `http3` in http_server_config"));
        assert!(err("tls_server_config: 3\n").contains("must be a mapping"));
    }

    #[test]
    fn headers_are_the_exporter_toolkit_ones() {
        let w = parse(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Content-Security-Policy: default-src 'self'\n    X-XSS-Protection: ''\n",
        )
        .unwrap();
        let got: Vec<(String, String)> =
            w.headers.iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string())).collect();
        assert_eq!(
            got,
            [
                ("content-security-policy".to_string(), "default-src 'self'".to_string()),
                ("x-frame-options".to_string(), "deny".to_string())
            ]
        );
        assert!(
            err("http_server_config:\n  headers:\n    Server: echoloc\n").contains("\"Server\" can not be configured")
        );
        assert!(err("http_server_config:\n  headers:\n    X-Frame-Options: allow\n").contains("must be one of"));
        assert!(err("http_server_config:\n  headers:\n    x-frame-options: deny\n").contains("can not be configured"));
    }

    #[test]
    fn tls_keys_without_a_certificate_are_refused() {
        // Go would serve plain HTTP here and ignore min_version: refused instead.
        assert!(err("tls_server_config:\n  min_version: TLS13\n").contains("cert_file"));
        assert!(err("tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n").contains("cert_file"));
    }
}
