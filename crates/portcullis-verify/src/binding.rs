//! Certificate-bound tokens (RFC 8705 §3): `cnf.x5t#S256` against the TLS
//! peer certificate, or against Envoy's `x-forwarded-client-cert` (XFCC)
//! when the caller trusts the proxy that set it.
//!
//! XFCC (<https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert>):
//! elements separated by `,`, each `;`-separated `Key=Value` pairs, values
//! optionally double-quoted with `\` escapes. The nearest proxy's element is
//! the last. `Hash` is the hex SHA-256 of the certificate's DER, `Cert` its
//! URL-encoded PEM; when both are present both must match.

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine as _,
};
use percent_encoding::percent_decode_str;
use ring::digest;

/// The RFC 8705 `x5t#S256` of a DER certificate: base64url(SHA-256(DER)).
///
/// ```
/// let thumbprint = portcullis_verify::certificate_thumbprint(b"not really DER");
/// assert_eq!(thumbprint.len(), 43);
/// ```
#[must_use]
pub fn certificate_thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, der))
}

/// Whether the client certificate is the one `x5t` names: the TLS peer
/// certificate if any, else the forwarded one.
pub(crate) fn certificate_matches(
    x5t: &str,
    peer: Option<&[u8]>,
    xfcc: Option<&str>,
) -> Result<(), &'static str> {
    if let Some(der) = peer {
        return if certificate_thumbprint(der) == x5t {
            Ok(())
        } else {
            Err("the access token is bound to another client certificate")
        };
    }
    let Some(header) = xfcc else {
        return Err("the access token is bound to a client certificate and none was presented");
    };
    let thumbprints = forwarded_thumbprints(header)?;
    if thumbprints.is_empty() {
        return Err("the forwarded client certificate has neither Hash nor Cert");
    }
    if thumbprints.iter().all(|t| t == x5t) {
        Ok(())
    } else {
        Err("the access token is bound to another client certificate")
    }
}

/// The `x5t#S256` values named by the nearest element of an XFCC header (from `Hash` and `Cert`).
fn forwarded_thumbprints(header: &str) -> Result<Vec<String>, &'static str> {
    const MALFORMED: &str = "the forwarded client certificate header is malformed";
    if header.len() > 64 * 1024 {
        return Err(MALFORMED);
    }
    let elements = split_unquoted(header, ',').ok_or(MALFORMED)?;
    let element = elements.last().copied().unwrap_or_default();
    let mut out = Vec::new();
    for pair in split_unquoted(element, ';').ok_or(MALFORMED)? {
        let Some((key, value)) = pair.trim().split_once('=') else {
            continue;
        };
        let value = unquote(value.trim()).ok_or(MALFORMED)?;
        if key.trim().eq_ignore_ascii_case("Hash") {
            let bytes = hex(&value).ok_or(MALFORMED)?;
            out.push(URL_SAFE_NO_PAD.encode(bytes));
        } else if key.trim().eq_ignore_ascii_case("Cert") {
            let pem = percent_decode_str(&value)
                .decode_utf8()
                .map_err(|_| MALFORMED)?;
            out.push(certificate_thumbprint(
                &first_pem_certificate(&pem).ok_or(MALFORMED)?,
            ));
        }
    }
    Ok(out)
}

/// Splits at `sep` outside double quotes; `None` on an unterminated quote.
fn split_unquoted(s: &str, sep: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    (!quoted).then(|| {
        parts.push(&s[start..]);
        parts
    })
}

fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Some(value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
fn first_pem_certificate(pem: &str) -> Option<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let end = start + pem[start..].find(END)?;
    let b64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).ok()
}

#[cfg(test)]
#[allow(clippy::format_collect)] // hex of a test digest
mod tests {
    use super::*;

    fn cert() -> (Vec<u8>, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.der().to_vec(), cert.pem())
    }

    fn xfcc(der: &[u8], pem: &str) -> String {
        let hash: String = digest::digest(&digest::SHA256, der)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let cert = percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC);
        format!("By=spiffe://a;Hash={hash};Cert=\"{cert}\";Subject=\"CN=x,O=y\"")
    }

    #[test]
    fn the_peer_certificate_must_be_the_bound_one() {
        let ((der, _), (other, _)) = (cert(), cert());
        let x5t = certificate_thumbprint(&der);
        assert!(certificate_matches(&x5t, Some(&der), None).is_ok());
        assert!(certificate_matches(&x5t, Some(&other), None).is_err());
        assert!(
            certificate_matches(&x5t, None, None).is_err(),
            "no certificate"
        );
    }

    #[test]
    fn the_nearest_xfcc_element_names_the_certificate_by_hash_and_cert() {
        let ((der, pem), (other, other_pem)) = (cert(), cert());
        let x5t = certificate_thumbprint(&der);
        assert!(certificate_matches(&x5t, None, Some(&xfcc(&der, &pem))).is_ok());
        let chained = format!("{},{}", xfcc(&other, &other_pem), xfcc(&der, &pem));
        assert!(
            certificate_matches(&x5t, None, Some(&chained)).is_ok(),
            "last element wins"
        );
        let reversed = format!("{},{}", xfcc(&der, &pem), xfcc(&other, &other_pem));
        assert!(certificate_matches(&x5t, None, Some(&reversed)).is_err());
        // Hash of one certificate with Cert of another: refused.
        let mixed = xfcc(&der, &other_pem);
        assert!(certificate_matches(&x5t, None, Some(&mixed)).is_err());
        let hash_only = xfcc(&der, &pem).split(";Cert").next().unwrap().to_owned();
        assert!(certificate_matches(&x5t, None, Some(&hash_only)).is_ok());
        for bad in [
            "Hash=zz",
            "Subject=\"unterminated",
            "By=x;Subject=\"CN=x\"",
            "Cert=\"%2D%2D\"",
        ] {
            assert!(certificate_matches(&x5t, None, Some(bad)).is_err(), "{bad}");
        }
    }
}
