//! The CA bundle for `tls_client_auth`, and chain verification with webpki.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use super::{CertError, ClientCertificate};

/// The CA bundle that `tls_client_auth` certificates must chain to.
#[derive(Clone, Debug)]
pub struct TrustAnchors {
    certs: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
}

impl TrustAnchors {
    /// Reads the PEM certificates in `pem`; there must be at least one, and each
    /// must be usable as a trust anchor.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertError> {
        let mut certs = Vec::new();
        let mut anchors = Vec::new();
        for (n, item) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let der = item.map_err(|e| CertError::Bundle(format!("certificate {}: {e}", n + 1)))?;
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| {
                    CertError::Bundle(format!(
                        "certificate {} cannot be a trust anchor: {e}",
                        n + 1
                    ))
                })?
                .to_owned();
            anchors.push(anchor);
            certs.push(der);
        }
        if certs.is_empty() {
            return Err(CertError::Bundle("no PEM certificates found".into()));
        }
        Ok(Self { certs, anchors })
    }

    /// Reads a PEM CA bundle from `path`; errors name the path.
    pub fn load(path: &Path) -> Result<Self, CertError> {
        let pem = std::fs::read(path)
            .map_err(|e| CertError::Bundle(format!("cannot read {}: {e}", path.display())))?;
        Self::from_pem(&pem).map_err(|e| match e {
            CertError::Bundle(msg) => CertError::Bundle(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// The CA certificates (DER), in bundle order.
    #[must_use]
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    /// The number of CA certificates.
    #[must_use]
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether the bundle is empty (never, for a bundle that loaded).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Verifies that `cert` chains (using `chain[1..]` as intermediates) to one of
    /// the anchors for TLS client authentication at time `now`; webpki checks the
    /// validity period of every certificate in the path.
    ///
    /// An expired or not-yet-valid path is [`CertError::Expired`] /
    /// [`CertError::NotYetValid`]; any other failure is [`CertError::Untrusted`].
    pub fn verify(&self, cert: &ClientCertificate, now: DateTime<Utc>) -> Result<(), CertError> {
        let (leaf, intermediates) = cert
            .chain()
            .split_first()
            .ok_or_else(|| CertError::Malformed("no client certificate was presented".into()))?;
        let leaf = EndEntityCert::try_from(leaf).map_err(|e| untrusted(&e))?;
        let time = UnixTime::since_unix_epoch(Duration::from_secs(
            u64::try_from(now.timestamp()).unwrap_or(0),
        ));
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            intermediates,
            time,
            KeyUsage::client_auth(),
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| untrusted(&e))
    }
}

/// Maps a webpki error to a short, client-safe reason.
fn untrusted(e: &webpki::Error) -> CertError {
    use webpki::Error as E;
    let reason = match e {
        E::CertExpired { .. } => return CertError::Expired,
        E::CertNotValidYet { .. } => return CertError::NotYetValid,
        E::UnknownIssuer => "unknown issuer",
        E::RequiredEkuNotFoundContext(_) => "not issued for TLS client authentication",
        E::CaUsedAsEndEntity => "a CA certificate cannot authenticate a client",
        E::InvalidSignatureForPublicKey => "invalid signature",
        E::BadDer | E::BadDerTime => "malformed certificate",
        _ => {
            // Other kinds: the variant name, without any context values.
            let text = format!("{e:?}");
            let end = text
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(text.len());
            return CertError::Untrusted(text[..end].to_owned());
        }
    };
    CertError::Untrusted(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use rcgen::{date_time_ymd, ExtendedKeyUsagePurpose};

    use super::*;
    use crate::certs::testutil::{at, leaf_params, self_signed, Ca, TestResult};

    fn now() -> DateTime<Utc> {
        at(2025, 6, 1)
    }

    fn client(chain: Vec<CertificateDer<'static>>) -> Result<ClientCertificate, CertError> {
        ClientCertificate::from_chain(chain)
    }

    #[test]
    fn leaf_issued_by_the_ca_verifies() -> TestResult {
        let ca = Ca::root("Root")?;
        let anchors = TrustAnchors::from_pem(ca.pem().as_bytes())?;
        assert_eq!((anchors.len(), anchors.is_empty()), (1, false));
        assert_eq!(anchors.certificates(), [ca.der()]);
        anchors.verify(&client(vec![ca.issue(leaf_params("api"))?])?, now())?;
        Ok(())
    }

    #[test]
    fn intermediate_must_be_in_the_chain() -> TestResult {
        let root = Ca::root("Root")?;
        let issuing = root.intermediate("Issuing")?;
        let leaf = issuing.issue(leaf_params("api"))?;
        let anchors = TrustAnchors::from_pem(root.pem().as_bytes())?;
        anchors.verify(&client(vec![leaf.clone(), issuing.der()])?, now())?;
        assert_eq!(
            anchors.verify(&client(vec![leaf])?, now()),
            Err(CertError::Untrusted("unknown issuer".into()))
        );
        Ok(())
    }

    #[test]
    fn foreign_and_self_signed_leaves_are_untrusted() -> TestResult {
        let anchors = TrustAnchors::from_pem(Ca::root("Root")?.pem().as_bytes())?;
        let foreign = Ca::root("Other")?.issue(leaf_params("api"))?;
        assert!(matches!(
            anchors.verify(&client(vec![foreign])?, now()),
            Err(CertError::Untrusted(_))
        ));
        let (own, _) = self_signed(leaf_params("api"))?;
        assert!(matches!(
            anchors.verify(&client(vec![own])?, now()),
            Err(CertError::Untrusted(_))
        ));
        Ok(())
    }

    #[test]
    fn validity_is_checked_at_now() -> TestResult {
        let ca = Ca::root("Root")?;
        let anchors = TrustAnchors::from_pem(ca.pem().as_bytes())?;
        let mut params = leaf_params("api");
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2025, 1, 1);
        let cert = client(vec![ca.issue(params)?])?;
        assert_eq!(anchors.verify(&cert, now()), Err(CertError::Expired));
        assert_eq!(
            anchors.verify(&cert, at(2023, 6, 1)),
            Err(CertError::NotYetValid)
        );
        anchors.verify(&cert, at(2024, 6, 1))?;
        Ok(())
    }

    #[test]
    fn server_auth_only_leaf_is_refused() -> TestResult {
        let ca = Ca::root("Root")?;
        let anchors = TrustAnchors::from_pem(ca.pem().as_bytes())?;
        let mut params = leaf_params("api");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        assert_eq!(
            anchors.verify(&client(vec![ca.issue(params)?])?, now()),
            Err(CertError::Untrusted(
                "not issued for TLS client authentication".into()
            ))
        );
        Ok(())
    }

    #[test]
    fn bundle_errors() -> TestResult {
        let garbage = TrustAnchors::from_pem(b"garbage");
        assert!(matches!(garbage, Err(CertError::Bundle(_))), "{garbage:?}");
        let bad_base64 = TrustAnchors::from_pem(
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        assert!(
            matches!(bad_base64, Err(CertError::Bundle(_))),
            "{bad_base64:?}"
        );
        let not_a_cert = TrustAnchors::from_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        assert!(
            matches!(not_a_cert, Err(CertError::Bundle(_))),
            "{not_a_cert:?}"
        );

        let dir = tempfile::tempdir()?;
        let missing = dir.path().join("missing-ca.pem");
        match TrustAnchors::load(&missing) {
            Err(CertError::Bundle(msg)) => assert!(msg.contains("missing-ca.pem"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }

        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "nothing here")?;
        match TrustAnchors::load(&path) {
            Err(CertError::Bundle(msg)) => assert!(msg.contains("ca.pem"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }

        let (first, second) = (Ca::root("A")?, Ca::root("B")?);
        let mut file = std::fs::File::create(&path)?;
        write!(file, "# two roots\n{}{}", first.pem(), second.pem())?;
        assert_eq!(TrustAnchors::load(&path)?.len(), 2);
        Ok(())
    }
}
