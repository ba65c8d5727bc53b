//! TLS for zen-sim: a throwaway certificate authority and a serving certificate for loopback.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A serving configuration and the CA certificate (PEM) clients must trust.
pub(crate) struct Identity {
    pub(crate) config: Arc<rustls::ServerConfig>,
    pub(crate) ca_pem: String,
}

/// Makes a CA and a certificate for `localhost`, `127.0.0.1`, `::1` and `host`, signed by it.
pub(crate) fn identity(host: &str) -> Result<Identity, String> {
    let fail = |error: rcgen::Error| format!("cannot make a TLS certificate: {error}");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "zen-sim-ca");
    let ca_key = KeyPair::generate().map_err(fail)?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(fail)?;

    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !names.iter().any(|name| name == host) {
        names.push(host.to_owned());
    }
    let mut params = CertificateParams::new(names).map_err(fail)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "zen-sim");
    let key = KeyPair::generate().map_err(fail)?;
    let certificate = params.signed_by(&key, &ca).map_err(fail)?;

    let chain = vec![
        CertificateDer::from(certificate.der().to_vec()),
        ca.der().clone(),
    ];
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("cannot configure TLS: {error}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|error| format!("cannot configure TLS: {error}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Identity {
        config: Arc::new(config),
        ca_pem: ca.pem(),
    })
}
