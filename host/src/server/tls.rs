//! TLS termination: a listener's certificates (a default one, more chosen by the client's SNI
//! among the names each is valid for), optional client-certificate verification (mutual TLS),
//! ALPN.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use crate::config::{ClientAuth, ServerTls};
use crate::pem::{self, PemError};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("certificate {cert} and key {key} do not make a TLS config: {source}")]
    Invalid {
        cert: String,
        key: String,
        source: rustls::Error,
    },
    #[error(
        "certificate {0} names no DNS name (subject alternative name) to be chosen by; give it one or make it the listener's `cert`"
    )]
    NoNames(String),
    #[error("client CA {path}: {source}")]
    ClientCa {
        path: String,
        source: rustls::server::VerifierBuilderError,
    },
}

/// The rustls config of a listener's `tls`; `resolve` anchors relative paths.
pub fn server_config(
    tls: &ServerTls,
    resolve: impl Fn(&Path) -> PathBuf,
    http2: bool,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let default = certified(
        &resolve(tls.cert.get_ref()),
        &resolve(tls.key.get_ref()),
        &provider,
    )?;
    let mut by_name = BySni {
        exact: HashMap::new(),
        wildcard: HashMap::new(),
        default,
    };
    for more in &tls.certs {
        let cert = resolve(more.cert.get_ref());
        let key = certified(&cert, &resolve(more.key.get_ref()), &provider)?;
        let names = dns_names(&key);
        if names.is_empty() {
            return Err(TlsError::NoNames(cert.display().to_string()));
        }
        for name in names {
            // The first certificate listed for a name wins.
            match name.strip_prefix("*.") {
                Some(suffix) => by_name.wildcard.entry(suffix.to_string()),
                None => by_name.exact.entry(name),
            }
            .or_insert_with(|| key.clone());
        }
    }
    let invalid = |source| TlsError::Invalid {
        cert: tls.cert.get_ref().display().to_string(),
        key: tls.key.get_ref().display().to_string(),
        source,
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(invalid)?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let path = resolve(ca.get_ref());
            let roots = Arc::new(pem::roots(&path)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = match tls.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|source| {
                TlsError::ClientCa {
                    path: path.display().to_string(),
                    source,
                }
            })?)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(by_name));
    cfg.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(cfg))
}

/// Every file a listener's `tls` reads, to watch them for changes.
pub fn files(tls: &ServerTls) -> Vec<&Path> {
    let mut all = vec![tls.cert.get_ref().as_path(), tls.key.get_ref().as_path()];
    for more in &tls.certs {
        all.extend([more.cert.get_ref().as_path(), more.key.get_ref().as_path()]);
    }
    all.extend(tls.client_ca.as_ref().map(|c| c.get_ref().as_path()));
    all
}

/// The subject of the client's certificate, as `CN=alice,O=Example` (RFC 4514 order), when it
/// sent one.
pub fn client_subject(conn: &rustls::ServerConnection) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    Some(cert.subject().to_string())
}

fn certified(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    CertifiedKey::from_der(pem::certs(cert)?, pem::key(key)?, provider)
        .map(Arc::new)
        .map_err(|source| TlsError::Invalid {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            source,
        })
}

/// The DNS names in a certificate's subject alternative names, lower case.
fn dns_names(key: &CertifiedKey) -> Vec<String> {
    let Some(leaf) = key.cert.first() else {
        return Vec::new();
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Picks the certificate for the name the client asked for: exact, then `*.` one level up,
/// then the listener's default.
#[derive(Debug)]
struct BySni {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // rustls hands the name over lower case.
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let found = self.exact.get(name).or_else(|| {
            name.split_once('.')
                .and_then(|(_, parent)| self.wildcard.get(parent))
        });
        Some(found.unwrap_or(&self.default).clone())
    }
}
