//! The parsed client certificate chain.

use std::net::IpAddr;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::dn::{self, Dn};
use super::CertError;

/// A parsed client certificate chain (leaf first).
///
/// Only the leaf is parsed; the rest of the chain is passed to path building by
/// [`TrustAnchors::verify`](super::TrustAnchors::verify).
#[derive(Clone, Debug)]
pub struct ClientCertificate {
    chain: Vec<CertificateDer<'static>>,
    thumbprint: String,
    subject_dn: String,
    subject: Dn,
    issuer_dn: String,
    san_dns: Vec<String>,
    san_uris: Vec<String>,
    san_ips: Vec<IpAddr>,
    san_emails: Vec<String>,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
}

fn malformed(what: &str) -> CertError {
    CertError::Malformed(format!(
        "the client certificate could not be parsed: {what}"
    ))
}

impl ClientCertificate {
    /// Parses the leaf of `chain` (leaf first). An empty chain is
    /// [`CertError::Malformed`].
    pub fn from_chain(chain: Vec<CertificateDer<'static>>) -> Result<Self, CertError> {
        let leaf = chain
            .first()
            .ok_or_else(|| CertError::Malformed("no client certificate was presented".into()))?;
        let x509 = match X509Certificate::from_der(leaf) {
            Ok(([], x509)) => x509,
            Ok(_) => return Err(malformed("trailing data after the certificate")),
            Err(_) => return Err(malformed("invalid DER")),
        };
        let (subject_dn, subject) = dn::from_x509(x509.subject()).map_err(|e| malformed(&e))?;
        let (issuer_dn, _) = dn::from_x509(x509.issuer()).map_err(|e| malformed(&e))?;

        let (mut san_dns, mut san_uris, mut san_ips, mut san_emails) =
            (vec![], vec![], vec![], vec![]);
        let san = x509
            .subject_alternative_name()
            .map_err(|_| malformed("invalid subjectAltName"))?;
        for name in san.iter().flat_map(|ext| &ext.value.general_names) {
            match name {
                GeneralName::DNSName(s) => san_dns.push((*s).to_owned()),
                GeneralName::URI(s) => san_uris.push((*s).to_owned()),
                GeneralName::RFC822Name(s) => san_emails.push((*s).to_owned()),
                GeneralName::IPAddress(octets) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*octets) {
                        san_ips.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*octets) {
                        san_ips.push(IpAddr::from(v6));
                    } else {
                        return Err(malformed("invalid IP address in subjectAltName"));
                    }
                }
                _ => {}
            }
        }

        let time = |t: &x509_parser::time::ASN1Time| {
            DateTime::from_timestamp(t.timestamp(), 0)
                .ok_or_else(|| malformed("validity out of range"))
        };
        let not_before = time(&x509.validity().not_before)?;
        let not_after = time(&x509.validity().not_after)?;
        let thumbprint = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, leaf));
        Ok(Self {
            chain,
            thumbprint,
            subject_dn,
            subject,
            issuer_dn,
            san_dns,
            san_uris,
            san_ips,
            san_emails,
            not_before,
            not_after,
        })
    }

    /// The chain as presented, leaf first; never empty.
    #[must_use]
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The DER encoding of the leaf certificate.
    #[must_use]
    pub fn leaf_der(&self) -> &[u8] {
        &self.chain[0]
    }

    /// RFC 8705 §3.1 thumbprint: base64url (no padding) SHA-256 of the leaf's
    /// DER — the `x5t#S256` confirmation value.
    #[must_use]
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Subject DN as an RFC 4514 string (most specific RDN first, e.g.
    /// `CN=api,O=Example,C=DE`), as `openssl x509 -noout -subject -nameopt RFC2253`
    /// prints it (non-ASCII bytes escaped as `\XX`).
    #[must_use]
    pub fn subject_dn(&self) -> &str {
        &self.subject_dn
    }

    /// The subject DN normalized for matching.
    pub(crate) fn subject(&self) -> &Dn {
        &self.subject
    }

    /// Issuer DN, rendered like [`subject_dn`](Self::subject_dn).
    #[must_use]
    pub fn issuer_dn(&self) -> &str {
        &self.issuer_dn
    }

    /// `dNSName` subject alternative names, as encoded.
    #[must_use]
    pub fn san_dns(&self) -> &[String] {
        &self.san_dns
    }

    /// `uniformResourceIdentifier` subject alternative names (e.g. SPIFFE IDs).
    #[must_use]
    pub fn san_uris(&self) -> &[String] {
        &self.san_uris
    }

    /// `iPAddress` subject alternative names.
    #[must_use]
    pub fn san_ips(&self) -> &[IpAddr] {
        &self.san_ips
    }

    /// `rfc822Name` (email) subject alternative names.
    #[must_use]
    pub fn san_emails(&self) -> &[String] {
        &self.san_emails
    }

    /// Start of the leaf's validity period.
    #[must_use]
    pub fn not_before(&self) -> DateTime<Utc> {
        self.not_before
    }

    /// End of the leaf's validity period (inclusive).
    #[must_use]
    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    /// Refuses a certificate outside its validity period at `now`.
    pub fn check_validity(&self, now: DateTime<Utc>) -> Result<(), CertError> {
        if now < self.not_before {
            Err(CertError::NotYetValid)
        } else if now > self.not_after {
            Err(CertError::Expired)
        } else {
            Ok(())
        }
    }

    /// A JSON summary for policies and audit:
    /// `{"subject_dn","issuer_dn","san":{"dns":[],"uri":[],"ip":[],"email":[]},"x5t#S256","not_before","not_after"}`
    /// (times as unix seconds).
    #[must_use]
    pub fn summary(&self) -> Value {
        json!({
            "subject_dn": self.subject_dn,
            "issuer_dn": self.issuer_dn,
            "san": {
                "dns": self.san_dns,
                "uri": self.san_uris,
                "ip": self.san_ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "email": self.san_emails,
            },
            "x5t#S256": self.thumbprint,
            "not_before": self.not_before.timestamp(),
            "not_after": self.not_after.timestamp(),
        })
    }
}

/// Whether a JWK registered by a `self_signed_tls_client_auth` client names this
/// certificate: its `x5c[0]` (standard base64 DER, RFC 7517 §4.7) equals the
/// leaf DER, or its `x5t#S256` equals the thumbprint.
#[must_use]
pub fn jwk_names_certificate(jwk: &Value, cert: &ClientCertificate) -> bool {
    let by_x5c = jwk
        .pointer("/x5c/0")
        .and_then(Value::as_str)
        .and_then(|b64| STANDARD.decode(b64).ok())
        .is_some_and(|der| der == cert.leaf_der());
    by_x5c || jwk.get("x5t#S256").and_then(Value::as_str) == Some(cert.thumbprint())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use rcgen::{date_time_ymd, DnType, SanType};

    use super::*;
    use crate::certs::testutil::{at, leaf_params, self_signed, TestResult};

    #[test]
    fn thumbprint_subject_and_sans() -> TestResult {
        let mut params = leaf_params("api");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CountryName, "DE");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example");
        params.distinguished_name.push(DnType::CommonName, "api");
        params.subject_alt_names = vec![
            SanType::DnsName("api.example.org".try_into()?),
            SanType::URI("spiffe://example.org/ns/pay/sa/api".try_into()?),
            SanType::IpAddress(Ipv4Addr::new(10, 1, 2, 3).into()),
            SanType::IpAddress(Ipv6Addr::LOCALHOST.into()),
            SanType::Rfc822Name("api@example.org".try_into()?),
        ];
        let (der, _) = self_signed(params)?;
        let cert = ClientCertificate::from_chain(vec![der.clone()])?;

        let digest = ring::digest::digest(&ring::digest::SHA256, &der);
        assert_eq!(cert.thumbprint(), URL_SAFE_NO_PAD.encode(digest));
        assert_eq!(cert.leaf_der(), der.as_ref());
        assert_eq!(cert.subject_dn(), "CN=api,O=Example,C=DE");
        assert_eq!(cert.issuer_dn(), "CN=api,O=Example,C=DE");
        assert_eq!(cert.san_dns(), ["api.example.org"]);
        assert_eq!(cert.san_uris(), ["spiffe://example.org/ns/pay/sa/api"]);
        assert_eq!(
            cert.san_ips(),
            [
                IpAddr::from([10, 1, 2, 3]),
                IpAddr::from(Ipv6Addr::LOCALHOST)
            ]
        );
        assert_eq!(cert.san_emails(), ["api@example.org"]);

        let summary = cert.summary();
        assert_eq!(summary["x5t#S256"], cert.thumbprint());
        assert_eq!(summary["san"]["ip"], json!(["10.1.2.3", "::1"]));
        assert_eq!(summary["subject_dn"], "CN=api,O=Example,C=DE");
        assert_eq!(summary["not_after"], cert.not_after().timestamp());
        Ok(())
    }

    #[test]
    fn dn_values_are_escaped_like_openssl() -> TestResult {
        let mut params = leaf_params("Müller, Jörg");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example, Inc.");
        let (der, _) = self_signed(params)?;
        let cert = ClientCertificate::from_chain(vec![der])?;
        assert_eq!(
            cert.subject_dn(),
            "O=Example\\, Inc.,CN=M\\C3\\BCller\\, J\\C3\\B6rg"
        );
        Ok(())
    }

    #[test]
    fn refuses_empty_and_garbage_chains() {
        assert!(matches!(
            ClientCertificate::from_chain(vec![]),
            Err(CertError::Malformed(_))
        ));
        let garbage = CertificateDer::from(b"not a certificate".to_vec());
        assert!(matches!(
            ClientCertificate::from_chain(vec![garbage]),
            Err(CertError::Malformed(_))
        ));
    }

    #[test]
    fn validity_period() -> TestResult {
        let mut params = leaf_params("api");
        params.not_before = date_time_ymd(2025, 1, 1);
        params.not_after = date_time_ymd(2026, 1, 1);
        let cert = ClientCertificate::from_chain(vec![self_signed(params)?.0])?;
        assert_eq!(cert.not_before(), at(2025, 1, 1));
        assert_eq!(cert.check_validity(at(2025, 6, 1)), Ok(()));
        assert_eq!(cert.check_validity(at(2026, 1, 1)), Ok(()));
        assert_eq!(cert.check_validity(at(2026, 1, 2)), Err(CertError::Expired));
        assert_eq!(
            cert.check_validity(at(2024, 12, 31)),
            Err(CertError::NotYetValid)
        );
        Ok(())
    }

    #[test]
    fn jwk_names_the_certificate_by_x5c_or_x5t() -> TestResult {
        let (der, _) = self_signed(leaf_params("api"))?;
        let cert = ClientCertificate::from_chain(vec![der.clone()])?;
        let (other, _) = self_signed(leaf_params("api"))?;

        assert!(jwk_names_certificate(
            &json!({"kty": "EC", "x5c": [STANDARD.encode(&der)]}),
            &cert
        ));
        assert!(jwk_names_certificate(
            &json!({"kty": "EC", "x5t#S256": cert.thumbprint()}),
            &cert
        ));
        assert!(!jwk_names_certificate(
            &json!({"kty": "EC", "x5c": [STANDARD.encode(&other)]}),
            &cert
        ));
        assert!(!jwk_names_certificate(
            &json!({"kty": "EC", "x5t#S256": "AAAA"}),
            &cert
        ));
        assert!(!jwk_names_certificate(
            &json!({"kty": "EC", "x5c": "not-a-list"}),
            &cert
        ));
        assert!(!jwk_names_certificate(&json!({"kty": "EC"}), &cert));
        Ok(())
    }
}
