//! `tls_server_config`: the rustls server configuration it describes.
//!
//! Names and meanings follow exporter-toolkit (Go's crypto/tls). What rustls
//! cannot serve is refused, never approximated: TLS 1.0/1.1 as a maximum,
//! CBC cipher suites, the P-521 curve. A TLS 1.0/1.1 minimum is served as a
//! TLS 1.2 floor (stricter than asked) and said so when the server starts.

use super::san::subject_alt_names;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, SupportedKxGroup, WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoClientAuth, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedCipherSuite, SupportedProtocolVersion,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsFile {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

/// Go's `tls.ClientAuthType`, by its exporter-toolkit name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(s: &str) -> anyhow::Result<ClientAuth> {
        Ok(match s {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // "RequireClientCert": exporter-toolkit's old spelling, kept there for compatibility.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            other => anyhow::bail!(
                "client_auth_type {other:?} is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, \
                 VerifyClientCertIfGiven, RequireAndVerifyClientCert"
            ),
        })
    }

    fn verifies(self) -> bool {
        matches!(self, ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert)
    }
}

/// TLS versions by exporter-toolkit name, as (name, number) for ordering.
const VERSIONS: &[(&str, u8)] = &[("TLS10", 0), ("TLS11", 1), ("TLS12", 2), ("TLS13", 3)];

fn version(key: &str, s: &str) -> anyhow::Result<u8> {
    VERSIONS
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, v)| *v)
        .ok_or_else(|| anyhow::anyhow!("{key} {s:?} is not one of TLS10, TLS11, TLS12, TLS13"))
}

/// TLS 1.2 cipher suites by Go name, those rustls (aws-lc-rs) offers.
fn tls12_suite(name: &str) -> Option<SupportedCipherSuite> {
    use aws_lc_rs::cipher_suite::*;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        _ => return None,
    })
}

/// The TLS 1.3 suites Go names: not configurable (in Go either).
const TLS13_SUITES: &[&str] = &["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];

/// Curves by exporter-toolkit name: Some(group) when rustls offers it.
fn curve(name: &str) -> anyhow::Result<&'static dyn SupportedKxGroup> {
    use aws_lc_rs::kx_group::*;
    Ok(match name {
        "X25519" => X25519,
        "CurveP256" => SECP256R1,
        "CurveP384" => SECP384R1,
        "SecP256r1MLKEM768" => SECP256R1MLKEM768,
        "CurveP521" | "SecP384r1MLKEM1024" => {
            anyhow::bail!(
                "curve_preferences: {name} is not offered by rustls (X25519, CurveP256, CurveP384, SecP256r1MLKEM768 are)"
            )
        }
        _ => anyhow::bail!(
            "curve_preferences: unknown curve {name:?} (X25519, CurveP256, CurveP384, SecP256r1MLKEM768 are served)"
        ),
    })
}

/// Inline PEM text or a file (relative to the config's folder), one of the two.
fn pem(
    base: &Path,
    inline: &Option<String>,
    file: &Option<PathBuf>,
    inline_key: &str,
    file_key: &str,
) -> anyhow::Result<Option<(Vec<u8>, String)>> {
    let inline = inline.as_deref().filter(|s| !s.is_empty());
    let file = file.as_deref().filter(|p| !p.as_os_str().is_empty());
    match (inline, file) {
        (Some(_), Some(_)) => anyhow::bail!("tls_server_config: give {inline_key} or {file_key}, not both"),
        (Some(text), None) => Ok(Some((text.as_bytes().to_vec(), format!("tls_server_config.{inline_key}")))),
        (None, Some(p)) => {
            let path = base.join(p);
            let bytes =
                std::fs::read(&path).map_err(|e| anyhow::anyhow!("cannot read {file_key} {}: {e}", path.display()))?;
            Ok(Some((bytes, format!("{file_key} {}", path.display()))))
        }
        (None, None) => Ok(None),
    }
}

fn certificates(pem: &[u8], what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{what}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("{what}: no certificate in it");
    }
    Ok(certs)
}

impl TlsFile {
    fn is_empty(&self) -> bool {
        let TlsFile {
            cert,
            key,
            client_ca,
            cert_file,
            key_file,
            client_auth_type,
            client_ca_file,
            client_allowed_sans,
            min_version,
            max_version,
            cipher_suites,
            prefer_server_cipher_suites,
            curve_preferences,
        } = self;
        cert.is_none()
            && key.is_none()
            && client_ca.is_none()
            && cert_file.is_none()
            && key_file.is_none()
            && client_auth_type.is_none()
            && client_ca_file.is_none()
            && client_allowed_sans.is_none()
            && min_version.is_none()
            && max_version.is_none()
            && cipher_suites.is_none()
            && prefer_server_cipher_suites.is_none()
            && curve_preferences.is_none()
    }

    /// The server configuration, or `None` when the section is empty (plain HTTP).
    pub(super) fn server_config(
        &self,
        base: &Path,
        http2: bool,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<Option<ServerConfig>> {
        if self.is_empty() {
            return Ok(None);
        }
        let Some((cert_pem, cert_what)) = pem(base, &self.cert, &self.cert_file, "cert", "cert_file")? else {
            anyhow::bail!(
                "tls_server_config has settings but no cert_file (or cert): TLS would be off and them ignored"
            );
        };
        let Some((key_pem, key_what)) = pem(base, &self.key, &self.key_file, "key", "key_file")? else {
            anyhow::bail!("tls_server_config has no key_file (or key)");
        };
        let chain = certificates(&cert_pem, &cert_what)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| anyhow::anyhow!("{key_what}: no private key in it: {e}"))?;

        let versions = self.versions(notes)?;
        let provider = Arc::new(self.provider(&versions)?);
        let verifier = self.client_verifier(base, &provider, notes)?;
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| anyhow::anyhow!("tls_server_config: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| anyhow::anyhow!("{cert_what} and {key_what}: {e}"))?;
        // Go: prefer_server_cipher_suites, true unless said otherwise.
        cfg.ignore_client_order = self.prefer_server_cipher_suites.unwrap_or(true);
        cfg.alpn_protocols =
            if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
        Ok(Some(cfg))
    }

    /// min_version (default TLS12) … max_version (default TLS13), as rustls versions.
    fn versions(&self, notes: &mut Vec<String>) -> anyhow::Result<Vec<&'static SupportedProtocolVersion>> {
        let min = match self.min_version.as_deref() {
            Some(s) => version("min_version", s)?,
            None => 2,
        };
        let max = match self.max_version.as_deref() {
            Some(s) => version("max_version", s)?,
            None => 3,
        };
        if max < 2 {
            anyhow::bail!(
                "max_version {}: TLS 1.0 and 1.1 are not served (rustls has TLS 1.2 and 1.3 only)",
                VERSIONS[usize::from(max)].0
            );
        }
        if min > max {
            anyhow::bail!(
                "min_version {} is above max_version {}",
                VERSIONS[usize::from(min)].0,
                VERSIONS[usize::from(max)].0
            );
        }
        if min < 2 {
            notes.push(format!(
                "min_version {}: TLS 1.0 and 1.1 are not served (rustls); the lowest version served is TLS 1.2",
                VERSIONS[usize::from(min)].0
            ));
        }
        let mut v = Vec::new();
        if min <= 2 {
            v.push(&rustls::version::TLS12);
        }
        if max == 3 {
            v.push(&rustls::version::TLS13);
        }
        Ok(v)
    }

    /// aws-lc-rs with the configured TLS 1.2 suites and curves.
    fn provider(&self, versions: &[&'static SupportedProtocolVersion]) -> anyhow::Result<CryptoProvider> {
        let mut provider = aws_lc_rs::default_provider();
        if let Some(names) = &self.cipher_suites {
            if names.is_empty() {
                anyhow::bail!("cipher_suites is empty (leave it out for the default suites)");
            }
            if !versions.contains(&&rustls::version::TLS12) {
                anyhow::bail!(
                    "cipher_suites choose TLS 1.2 suites, but min_version TLS13 turns TLS 1.2 off: \
                     leave cipher_suites out (TLS 1.3 suites are not configurable)"
                );
            }
            let mut tls12 = Vec::new();
            for name in names {
                if TLS13_SUITES.contains(&name.as_str()) {
                    anyhow::bail!(
                        "cipher_suites: {name} is a TLS 1.3 suite; cipher_suites apply to TLS 1.2 only \
                         (as in exporter-toolkit), TLS 1.3 suites are not configurable"
                    );
                }
                let suite = tls12_suite(name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "cipher_suites: {name} is not a TLS 1.2 suite rustls offers (it offers \
                         TLS_ECDHE_{{ECDSA,RSA}}_WITH_{{AES_128_GCM_SHA256,AES_256_GCM_SHA384,CHACHA20_POLY1305_SHA256}})"
                    )
                })?;
                if !tls12.contains(&suite) {
                    tls12.push(suite);
                }
            }
            // TLS 1.3 suites as rustls has them, then the chosen TLS 1.2 ones in their order.
            provider.cipher_suites.retain(|s| s.tls13().is_some());
            provider.cipher_suites.extend(tls12);
        }
        if let Some(names) = &self.curve_preferences {
            if names.is_empty() {
                anyhow::bail!("curve_preferences is empty (leave it out for the default curves)");
            }
            let mut groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
            for name in names {
                let g = curve(name)?;
                if !groups.iter().any(|h| h.name() == g.name()) {
                    groups.push(g);
                }
            }
            provider.kx_groups = groups;
        }
        Ok(provider)
    }

    /// client_auth_type, client_ca_file / client_ca and client_allowed_sans.
    fn client_verifier(
        &self,
        base: &Path,
        provider: &Arc<CryptoProvider>,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
        let auth = ClientAuth::parse(self.client_auth_type.as_deref().unwrap_or(""))?;
        let ca = pem(base, &self.client_ca, &self.client_ca_file, "client_ca", "client_ca_file")?;
        let roots = match &ca {
            Some((bytes, what)) => {
                let mut roots = RootCertStore::empty();
                for c in certificates(bytes, what)? {
                    roots.add(c).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
                }
                Some(Arc::new(roots))
            }
            None => None,
        };
        if auth == ClientAuth::NoClientCert {
            if roots.is_some() {
                anyhow::bail!("client_ca_file is set but client_auth_type is NoClientCert: no client would be checked");
            }
            if self.client_allowed_sans.is_some() {
                anyhow::bail!(
                    "client_allowed_sans needs client_auth_type RequireAndVerifyClientCert (or RequireAnyClientCert)"
                );
            }
            return Ok(Arc::new(NoClientAuth));
        }
        let algs = provider.signature_verification_algorithms;
        let hints: Vec<DistinguishedName> = roots.as_ref().map(|r| r.subjects()).unwrap_or_default();
        let verifier: Arc<dyn ClientCertVerifier> = if auth.verifies() {
            let Some(roots) = roots else {
                anyhow::bail!(
                    "client_auth_type {auth:?} needs client_ca_file (or client_ca): the CA client certificates must be signed by"
                );
            };
            let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let b = if auth == ClientAuth::VerifyClientCertIfGiven { b.allow_unauthenticated() } else { b };
            b.build().map_err(|e| anyhow::anyhow!("client_ca_file: {e}"))?
        } else {
            notes.push(format!(
                "client_auth_type {auth:?} does not verify client certificates (as in Go): \
                 use RequireAndVerifyClientCert with client_ca_file to authenticate clients"
            ));
            Arc::new(AnyCertificate { mandatory: auth == ClientAuth::RequireAnyClientCert, hints, algs })
        };
        let Some(sans) = &self.client_allowed_sans else { return Ok(verifier) };
        if !matches!(auth, ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert) {
            // As exporter-toolkit: with the other types a client may send no certificate, so no SAN to match.
            anyhow::bail!(
                "client_allowed_sans needs client_auth_type RequireAndVerifyClientCert (or RequireAnyClientCert), not {auth:?}"
            );
        }
        if sans.is_empty() {
            anyhow::bail!("client_allowed_sans is empty: no client could connect");
        }
        Ok(Arc::new(AllowedSans { inner: verifier, sans: sans.clone() }))
    }
}

/// Go's RequestClientCert (`mandatory` false) and RequireAnyClientCert (true):
/// a client certificate is asked for and its key's signature checked, but the
/// certificate itself is not verified against any CA.
#[derive(Debug)]
struct AnyCertificate {
    mandatory: bool,
    hints: Vec<DistinguishedName>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Go parses the certificate but checks nothing more: at least it must be one.
        match subject_alt_names(end_entity) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => Err(rustls::Error::InvalidCertificate(CertificateError::BadEncoding)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// client_allowed_sans: after `inner` accepted the certificate, one of its
/// subject alternative names (DNS, e-mail, IP, URI; as Go prints them) must
/// be exactly one of `sans`.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let names =
            subject_alt_names(end_entity).ok_or(rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if names.iter().any(|n| self.sans.contains(n)) {
            Ok(verified)
        } else {
            tracing::debug!(?names, "client certificate refused: none of its SANs is in client_allowed_sans");
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
