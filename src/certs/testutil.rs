//! Test certificates made with rcgen.

use chrono::{DateTime, TimeZone as _, Utc};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A certificate authority: its certificate and key.
pub(crate) struct Ca {
    pub(crate) cert: Certificate,
    pub(crate) key: KeyPair,
}

impl Ca {
    /// A self-signed root CA named `CN=<name>`.
    pub(crate) fn root(name: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let cert = ca_params(name).self_signed(&key)?;
        Ok(Self { cert, key })
    }

    /// An intermediate CA named `CN=<name>`, issued by `self`.
    pub(crate) fn intermediate(&self, name: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let cert = ca_params(name).signed_by(&key, &self.cert, &self.key)?;
        Ok(Self { cert, key })
    }

    /// A certificate issued by `self` from `params`.
    pub(crate) fn issue(
        &self,
        params: CertificateParams,
    ) -> Result<CertificateDer<'static>, rcgen::Error> {
        let key = KeyPair::generate()?;
        Ok(params.signed_by(&key, &self.cert, &self.key)?.der().clone())
    }

    /// The CA certificate as PEM.
    pub(crate) fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate as DER.
    pub(crate) fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Parameters of a TLS client certificate named `CN=<cn>` (clientAuth EKU,
/// valid 1975–4096).
pub(crate) fn leaf_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

/// A self-signed certificate from `params`, and its PEM.
pub(crate) fn self_signed(
    params: CertificateParams,
) -> Result<(CertificateDer<'static>, String), rcgen::Error> {
    let cert = params.self_signed(&KeyPair::generate()?)?;
    Ok((cert.der().clone(), cert.pem()))
}

/// Midnight UTC on the given day.
pub(crate) fn at(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}
