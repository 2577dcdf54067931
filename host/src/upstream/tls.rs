//! TLS towards targets: the public roots or a CA file the config names, and a client
//! certificate for targets that ask for one.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;

pub use crate::pem::PemError as TlsError;

/// The files an upstream's `tls` names, resolved against the config's folder.
#[derive(Debug, Default, Clone)]
pub struct Files {
    pub ca: Option<PathBuf>,
    /// Certificate and key.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl Files {
    /// Each file's modification time, to tell a renewed certificate.
    pub fn stamp(&self) -> Vec<Option<std::time::SystemTime>> {
        let client = self.client.iter().flat_map(|(c, k)| [c, k]);
        self.ca
            .iter()
            .chain(client)
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }
}

pub fn client_config(files: &Files) -> Result<rustls::ClientConfig, TlsError> {
    let roots = match &files.ca {
        Some(path) => crate::pem::roots(path)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let shown = |path: &Option<PathBuf>| {
        path.as_ref()
            .map_or_else(String::new, |p| p.display().to_string())
    };
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|source| TlsError::Invalid {
        what: "CA",
        path: shown(&files.ca),
        source,
    })?
    .with_root_certificates(roots);
    match &files.client {
        Some((cert, key)) => builder
            .with_client_auth_cert(crate::pem::certs(cert)?, crate::pem::key(key)?)
            .map_err(|source| TlsError::Invalid {
                what: "client certificate",
                path: cert.display().to_string(),
                source,
            }),
        None => Ok(builder.with_no_client_auth()),
    }
}
