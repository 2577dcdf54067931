//! Certificates, keys and CA bundles read from PEM files, for TLS on both sides of the gateway;
//! every error names the file and what it should hold.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{what} file {path} holds no PEM {what}; give it in PEM form")]
    Empty { what: &'static str, path: String },
    #[error("{what} file {path}: {source}")]
    Invalid {
        what: &'static str,
        path: String,
        source: rustls::Error,
    },
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// A certificate chain, leaf first.
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let what = "certificate";
    let pem = read(what, path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| PemError::Read {
            what,
            path: path.display().to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(PemError::Empty {
            what,
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1).
pub fn key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let what = "key";
    let pem = read(what, path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| PemError::Read {
            what,
            path: path.display().to_string(),
            source,
        })?
        .ok_or_else(|| PemError::Empty {
            what,
            path: path.display().to_string(),
        })
}

/// Every CA certificate in a bundle.
pub fn roots(path: &Path) -> Result<RootCertStore, PemError> {
    let what = "CA";
    let mut roots = RootCertStore::empty();
    for cert in certs(path).map_err(|e| match e {
        PemError::Empty { path, .. } => PemError::Empty { what, path },
        other => other,
    })? {
        roots.add(cert).map_err(|source| PemError::Invalid {
            what,
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(roots)
}
