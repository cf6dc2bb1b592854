//! TLS for `sslmode=require`: rustls with the system's trusted roots (plus an optional
//! CA file), verifying the server's certificate chain and host name.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::ConnectError;

/// The connector for `sslmode=require`.
pub(crate) fn connector(root_cert: Option<&Path>) -> Result<MakeRustlsConnect, ConnectError> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are skipped; an empty store is caught below.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = root_cert {
        let unreadable = |e: rustls::pki_types::pem::Error| {
            ConnectError::Config(format!("root_cert {}: {e}", path.display()))
        };
        for cert in CertificateDer::pem_file_iter(path).map_err(unreadable)? {
            roots
                .add(cert.map_err(unreadable)?)
                .map_err(|e| ConnectError::Config(format!("root_cert {}: {e}", path.display())))?;
        }
    }
    if roots.is_empty() {
        return Err(ConnectError::Config(
            "sslmode=require but no trusted root certificate was found (set root_cert)".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
