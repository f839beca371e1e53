//! Who is on the other end of the link.
//!
//! The recorder's identity is an Ed25519 key it generates itself; it
//! presents it as a self-signed TLS client certificate, and the cloud knows
//! a site by the raw 32-byte public key, not by any CA, name or serial. The
//! TLS 1.3 handshake's CertificateVerify proves possession of the private
//! key, so the key is the credential and nothing secret ever leaves the site.

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the recorder key is not a valid Ed25519 PKCS#8 key: {0}")]
    Key(String),
    #[error("TLS set-up: {0}")]
    Tls(String),
}

/// A recorder's key pair and the self-signed certificate that carries it.
pub struct Identity {
    pkcs8: Vec<u8>,
    cert: CertificateDer<'static>,
    public: [u8; 32],
}

impl Identity {
    /// A fresh key as PKCS#8 DER, to be stored 0600 by the caller.
    pub fn generate() -> Result<Vec<u8>, IdentityError> {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        Ok(kp.serialize_der())
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Identity, IdentityError> {
        let der = PrivatePkcs8KeyDer::from(pkcs8.to_vec());
        let kp = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ED25519)
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        let public: [u8; 32] = kp
            .public_key_raw()
            .try_into()
            .map_err(|_| IdentityError::Key("public key is not 32 bytes".into()))?;
        let cert = rcgen::CertificateParams::new(vec!["candor-recorder".to_string()])
            .and_then(|p| p.self_signed(&kp))
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        Ok(Identity {
            pkcs8: pkcs8.to_vec(),
            cert: cert.der().clone(),
            public,
        })
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    /// TLS 1.3 only, ALPN [`crate::ALPN_DIAL`] or [`crate::ALPN`], this key as client certificate,
    /// the cloud checked against `roots`.
    pub fn client_config(
        &self,
        roots: rustls::RootCertStore,
    ) -> Result<rustls::ClientConfig, IdentityError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| IdentityError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.clone())),
            )
            .map_err(|e| IdentityError::Tls(e.to_string()))?;
        c.alpn_protocols = vec![crate::ALPN_DIAL.to_vec(), crate::ALPN.to_vec()];
        Ok(c)
    }
}

/// The Ed25519 public key in a certificate, or `None` for any other key.
pub fn peer_key(cert: &[u8]) -> Option<[u8; 32]> {
    let (_, c) = x509_parser::parse_x509_certificate(cert).ok()?;
    let spki = c.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_SIG_ED25519 {
        return None;
    }
    spki.subject_public_key.data.as_ref().try_into().ok()
}

/// The cloud's client-certificate check: optional (browsers send none), and
/// when present it must hold an Ed25519 key whose signature over the
/// handshake verifies. Whether that key belongs to a site is the link
/// handler's decision, made against the database after the handshake.
#[derive(Debug)]
pub struct RecorderKeyVerifier {
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl RecorderKeyVerifier {
    pub fn new() -> Arc<RecorderKeyVerifier> {
        Arc::new(RecorderKeyVerifier {
            algs: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        })
    }
}

impl ClientCertVerifier for RecorderKeyVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match peer_key(end_entity) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_round_trips_and_its_certificate_names_it() {
        let pkcs8 = Identity::generate().unwrap();
        let a = Identity::from_pkcs8(&pkcs8).unwrap();
        let b = Identity::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(peer_key(a.cert.as_ref()), Some(*a.public_key()));
        let other = Identity::from_pkcs8(&Identity::generate().unwrap()).unwrap();
        assert_ne!(other.public_key(), a.public_key());
        assert!(Identity::from_pkcs8(b"not a key").is_err());
        assert_eq!(peer_key(b"garbage"), None);
    }
}
