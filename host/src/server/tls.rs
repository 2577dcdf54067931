//! TLS termination: certificate and key files to a rustls server config with ALPN.

use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{what} file {path} holds no PEM {what}; give it in PEM form")]
    Empty { what: &'static str, path: String },
    #[error("certificate {cert} and key {key} do not make a TLS config: {source}")]
    Invalid {
        cert: String,
        key: String,
        source: rustls::Error,
    },
}

pub fn server_config(
    cert: &Path,
    key: &Path,
    http2: bool,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let read = |what, p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            what,
            path: p.display().to_string(),
            source,
        })
    };
    let cert_pem = read("certificate", cert)?;
    let key_pem = read("key", key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read {
            what: "certificate",
            path: cert.display().to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what: "certificate",
            path: cert.display().to_string(),
        });
    }
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|source| TlsError::Read {
            what: "key",
            path: key.display().to_string(),
            source,
        })?
        .ok_or_else(|| TlsError::Empty {
            what: "key",
            path: key.display().to_string(),
        })?;
    let invalid = |source| TlsError::Invalid {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        source,
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(invalid)?
    .with_no_client_auth()
    .with_single_cert(certs, key_der)
    .map_err(invalid)?;
    cfg.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(cfg))
}
