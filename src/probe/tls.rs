//! TLS for both engines with rustls and the `ring` provider.
//!
//! `prefer` and `require` encrypt without verifying the certificate (as
//! libpq's modes of the same name do); `verify-full` checks the chain against
//! the CA bundle the caller passes in, and the host name.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::error::{ErrorKind, ProbeError, Stage};
use crate::crd::instance::TlsMode;

/// The TLS part of a [`Target`](super::Target).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: TlsMode,
    /// PEM bundle of the CA(s) that sign the server certificate; required by
    /// `verify-full`, ignored otherwise.
    pub ca_pem: Option<Vec<u8>>,
}

impl TlsSettings {
    pub fn new(mode: TlsMode) -> Self {
        TlsSettings { mode, ca_pem: None }
    }

    pub fn verify_full(ca_pem: impl Into<Vec<u8>>) -> Self {
        TlsSettings {
            mode: TlsMode::VerifyFull,
            ca_pem: Some(ca_pem.into()),
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The mode as it is spelled in the instance spec.
pub(crate) fn mode_name(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::Disable => "disable",
        TlsMode::Prefer => "prefer",
        TlsMode::Require => "require",
        TlsMode::VerifyFull => "verify-full",
    }
}

fn tls_error(message: String) -> ProbeError {
    ProbeError::new(ErrorKind::TlsError, Stage::Connect, message)
}

/// The certificates in a PEM bundle; an error a DBA can act on when there are
/// none or the PEM is malformed.
pub(crate) fn parse_ca_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ProbeError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(format!("the CA bundle is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls_error("the CA bundle contains no PEM certificate".into()));
    }
    Ok(certs)
}

/// The CA bundle `verify-full` needs, or an error saying it is missing.
pub(crate) fn required_ca(settings: &TlsSettings) -> Result<&[u8], ProbeError> {
    settings.ca_pem.as_deref().ok_or_else(|| {
        tls_error("tls.mode verify-full needs a CA bundle (tls.caSecretRef) to verify the server certificate".into())
    })
}

/// A rustls client configuration for `mode`, or `None` for `disable`.
pub(crate) fn client_config(settings: &TlsSettings) -> Result<Option<ClientConfig>, ProbeError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(format!("cannot set up TLS: {e}")))?;
    let config = match settings.mode {
        TlsMode::Disable => return Ok(None),
        TlsMode::Prefer | TlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(
                provider().signature_verification_algorithms,
            )))
            .with_no_client_auth(),
        TlsMode::VerifyFull => {
            let mut roots = RootCertStore::empty();
            for cert in parse_ca_bundle(required_ca(settings)?)? {
                roots
                    .add(cert)
                    .map_err(|e| tls_error(format!("the CA bundle holds an unusable certificate: {e}")))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Some(config))
}

/// Encrypts without authenticating the server, but still checks that the
/// server holds the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A self-signed CA certificate made once with openssl; it signed none of
    // the test servers' certificates.
    const CA_PEM: &str = include_str!("../../tests/fixtures/unrelated-ca.pem");

    #[test]
    fn disable_needs_no_config() {
        assert!(client_config(&TlsSettings::new(TlsMode::Disable)).unwrap().is_none());
    }

    #[test]
    fn prefer_and_require_build_a_config() {
        for mode in [TlsMode::Prefer, TlsMode::Require] {
            assert!(client_config(&TlsSettings::new(mode)).unwrap().is_some());
        }
    }

    #[test]
    fn verify_full_without_a_ca_is_a_tls_error() {
        let err = client_config(&TlsSettings::new(TlsMode::VerifyFull)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TlsError);
        assert!(err.message.contains("caSecretRef"), "{}", err.message);
    }

    #[test]
    fn a_bundle_without_certificates_is_rejected() {
        let err = parse_ca_bundle(b"not a certificate").unwrap_err();
        assert_eq!(err.kind, ErrorKind::TlsError);
        assert!(err.message.contains("no PEM certificate"), "{}", err.message);
    }

    #[test]
    fn verify_full_trusts_the_given_bundle() {
        assert_eq!(parse_ca_bundle(CA_PEM.as_bytes()).unwrap().len(), 1);
        let settings = TlsSettings::verify_full(CA_PEM);
        assert!(client_config(&settings).unwrap().is_some());
    }
}
