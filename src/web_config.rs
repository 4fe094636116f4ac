//! The exporter web-config file (Prometheus exporter-toolkit format):
//! TLS and basic-auth users for /metrics.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The exporter web-config file (Prometheus exporter-toolkit format):
/// `tls_server_config: {cert_file, key_file}` and `basic_auth_users: {user: bcrypt hash}`.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    pub tls: Option<TlsConfig>,
    pub users: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Deserialize)]
struct WebConfigFile {
    tls_server_config: Option<TlsConfig>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

impl WebConfig {
    pub fn load(path: &Path) -> anyhow::Result<WebConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read web config {}: {e}", path.display()))?;
        let f: WebConfigFile =
            serde_yaml_ng::from_str(&text).map_err(|e| anyhow::anyhow!("web config {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = f
            .tls_server_config
            .map(|t| TlsConfig { cert_file: base.join(t.cert_file), key_file: base.join(t.key_file) });
        for (user, hash) in &f.basic_auth_users {
            if !hash.starts_with("$2") {
                anyhow::bail!("web config {}: the password of {user:?} must be a bcrypt hash", path.display());
            }
        }
        Ok(WebConfig { tls, users: f.basic_auth_users })
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
