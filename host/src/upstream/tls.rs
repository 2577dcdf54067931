//! TLS towards targets: the public roots, or a CA file the config names.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("CA file {path} holds no PEM certificate; give the CA in PEM form")]
    Empty { path: String },
    #[error("CA file {path}: {source}")]
    Invalid { path: String, source: rustls::Error },
}

pub fn read_ca(path: &Path) -> Result<RootCertStore, TlsError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown.clone(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|source| TlsError::Read {
            path: shown.clone(),
            source,
        })?;
        roots.add(cert).map_err(|source| TlsError::Invalid {
            path: shown.clone(),
            source,
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::Empty { path: shown });
    }
    Ok(roots)
}

pub fn client_config(ca: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let roots = match ca {
        Some(path) => read_ca(path)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|source| TlsError::Invalid {
        path: String::new(),
        source,
    })?
    .with_root_certificates(roots)
    .with_no_client_auth())
}
