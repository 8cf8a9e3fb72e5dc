//! The one TLS client setup every outgoing HTTPS call uses (OAuth providers, a remote auth
//! component, `https://` upstreams): rustls on the `ring` provider with the Mozilla root
//! store compiled in (webpki-roots) — no OpenSSL, no C/cmake build, and the same trust on
//! every machine whatever its system certificates.

use std::sync::Arc;

/// A client configuration with safe default protocol versions (TLS 1.2 and 1.3), the
/// Mozilla roots, and no client certificate.
pub fn client_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_config_builds_with_roots_and_both_protocol_versions() {
        let config = super::client_config().unwrap();
        assert!(config.alpn_protocols.is_empty());
        assert!(config.crypto_provider().cipher_suites.len() >= 2);
    }
}
