//! TLS settings (feature `tls`): the certificate chain and key read from
//! PEM files into a rustls `ServerConfig` with the `ring` provider.
//!
//! A loaded config is shared by every connection that starts with it; a
//! reload (`SIGHUP`) makes a new one for the connections that come after,
//! while the running ones keep theirs. So a certificate is replaced without
//! dropping a connection, and a reload that fails keeps the old one.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Read `cert` (a chain, leaf first) and `key` (PKCS#8, PKCS#1 or SEC1;
/// RSA, ECDSA or Ed25519) into a server config that offers ALPN
/// `http/1.1`. The error is one line that names the file and the fault.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected PEM blocks 'BEGIN CERTIFICATE')",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "cannot read private key {}: {e} (expected a PEM private key: PKCS#8, PKCS#1 or SEC1)",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate {} and its key do not fit: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
