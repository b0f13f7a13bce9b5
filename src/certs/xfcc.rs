//! Envoy's `x-forwarded-client-cert` (XFCC) header.
//!
//! Format (<https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert>):
//! elements separated by `,`, each a `;`-separated list of `Key=Value` pairs;
//! a value may be double-quoted (with `\"` escapes) when it holds `,`, `;` or
//! `=`. `Cert` is the URL-encoded PEM of the client certificate, `Chain` the
//! URL-encoded PEM of the whole chain, leaf first.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

use super::CertError;

/// At most this many elements (proxy hops) in the header.
const MAX_ELEMENTS: usize = 16;
/// At most this many certificates in a `Chain`.
const MAX_CHAIN: usize = 10;

fn xfcc(msg: impl Into<String>) -> CertError {
    CertError::Xfcc(msg.into())
}

/// Parses Envoy's `x-forwarded-client-cert` header and returns the certificate
/// chain (leaf first) of the client as seen by the proxy nearest to us: the
/// last element.
///
/// From that element, `Cert` (the leaf) is required; `Chain`, if present, must
/// start with that leaf and is returned whole. Refuses more than 16 elements
/// or 10 certificates in a chain.
pub fn parse_xfcc(header: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let elements = split_unquoted(header, ',')?;
    if elements.len() > MAX_ELEMENTS {
        return Err(xfcc(format!("more than {MAX_ELEMENTS} elements")));
    }
    let element = elements.last().copied().unwrap_or_default();
    let (mut cert, mut chain) = (None, None);
    for pair in split_unquoted(element, ';')? {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| xfcc("an element holds a field that is not Key=Value"))?;
        let key = key.trim();
        let slot = if key.eq_ignore_ascii_case("Cert") {
            &mut cert
        } else if key.eq_ignore_ascii_case("Chain") {
            &mut chain
        } else {
            continue;
        };
        if slot.replace(unquote(value.trim())?).is_some() {
            return Err(xfcc(format!("duplicate {key} field")));
        }
    }
    let cert = cert.ok_or_else(|| {
        xfcc(
            "the nearest element has no Cert field; configure Envoy with forward_client_cert_details \
             and set_current_client_cert_details.cert: true",
        )
    })?;
    let Ok([leaf]) = <[_; 1]>::try_from(decode_pem("Cert", &cert)?) else {
        return Err(xfcc("Cert holds more than one certificate"));
    };
    let Some(chain) = chain else {
        return Ok(vec![leaf]);
    };
    let chain = decode_pem("Chain", &chain)?;
    if chain.first() != Some(&leaf) {
        return Err(xfcc("Chain does not start with Cert"));
    }
    Ok(chain)
}

/// Splits at `sep` outside double quotes (inside quotes, `\` escapes the next
/// character).
fn split_unquoted(s: &str, sep: char) -> Result<Vec<&str>, CertError> {
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
            start = i + sep.len_utf8();
        }
    }
    if quoted {
        return Err(xfcc("unterminated quoted value"));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

/// Strips the double quotes of a quoted value and resolves its `\` escapes.
fn unquote(value: &str) -> Result<Cow<'_, str>, CertError> {
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(Cow::Borrowed(value));
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or_else(|| xfcc("malformed quoted value"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    Ok(Cow::Owned(out))
}

/// Decodes the URL-encoded PEM of `field`: one or more certificates, at most
/// [`MAX_CHAIN`].
fn decode_pem(field: &str, value: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let pem: Vec<u8> = percent_decode_str(value).collect();
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(&pem) {
        if certs.len() == MAX_CHAIN {
            return Err(xfcc(format!(
                "{field} holds more than {MAX_CHAIN} certificates"
            )));
        }
        certs.push(item.map_err(|_| xfcc(format!("{field} is not valid PEM")))?);
    }
    if certs.is_empty() {
        return Err(xfcc(format!("{field} holds no PEM certificate")));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

    use super::*;
    use crate::certs::testutil::{leaf_params, self_signed, Ca, TestResult};
    use crate::certs::ClientCertificate;

    fn encode(pem: &str) -> String {
        utf8_percent_encode(pem, NON_ALPHANUMERIC).to_string()
    }

    fn is_xfcc_error(result: &Result<Vec<CertificateDer<'static>>, CertError>) -> bool {
        matches!(result, Err(CertError::Xfcc(_)))
    }

    #[test]
    fn single_element_with_cert() -> TestResult {
        let (der, pem) = self_signed(leaf_params("api"))?;
        let header = format!(
            "By=spiffe://cluster.local/ns/auth/sa/portcullis;Hash=468ed33b;Cert=\"{}\";\
             Subject=\"CN=api\";URI=spiffe://cluster.local/ns/foo/sa/client",
            encode(&pem)
        );
        assert_eq!(parse_xfcc(&header)?, std::slice::from_ref(&der));
        // Unquoted works too, and the result feeds ClientCertificate.
        let chain = parse_xfcc(&format!("Cert={}", encode(&pem)))?;
        assert_eq!(
            ClientCertificate::from_chain(chain)?.leaf_der(),
            der.as_ref()
        );
        Ok(())
    }

    #[test]
    fn takes_the_last_element() -> TestResult {
        let (first, first_pem) = self_signed(leaf_params("edge"))?;
        let (last, last_pem) = self_signed(leaf_params("api"))?;
        let header = format!(
            "Cert=\"{}\",Cert=\"{}\"",
            encode(&first_pem),
            encode(&last_pem)
        );
        let chain = parse_xfcc(&header)?;
        assert_eq!(chain, [last]);
        assert_ne!(chain, [first]);
        Ok(())
    }

    #[test]
    fn cert_with_chain() -> TestResult {
        let root = Ca::root("Root")?;
        let issuing = root.intermediate("Issuing")?;
        let mut params = leaf_params("api");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        let leaf_key = rcgen::KeyPair::generate()?;
        let leaf = params.signed_by(&leaf_key, &issuing.cert, &issuing.key)?;
        let chain_pem = format!("{}{}", leaf.pem(), issuing.pem());
        let header = format!(
            "Cert=\"{}\";Chain=\"{}\"",
            encode(&leaf.pem()),
            encode(&chain_pem)
        );
        assert_eq!(parse_xfcc(&header)?, [leaf.der().clone(), issuing.der()]);

        let mismatched = format!(
            "Cert=\"{}\";Chain=\"{}\"",
            encode(&root.pem()),
            encode(&chain_pem)
        );
        assert!(is_xfcc_error(&parse_xfcc(&mismatched)));
        Ok(())
    }

    #[test]
    fn quoted_values_hold_separators() -> TestResult {
        let (der, pem) = self_signed(leaf_params("api"))?;
        let header = format!(
            "Hash=abc;Subject=\"CN=a,b;c=\\\"d\\\"\";Cert=\"{}\";DNS=\"x;y,z\"",
            encode(&pem)
        );
        assert_eq!(parse_xfcc(&header)?, [der]);
        assert_eq!(split_unquoted("a=\"1,2\",b", ',')?, ["a=\"1,2\"", "b"]);
        assert_eq!(unquote("\"CN=\\\"x\\\";y\"")?, "CN=\"x\";y");
        Ok(())
    }

    #[test]
    fn refusals() -> TestResult {
        let (_, pem) = self_signed(leaf_params("api"))?;
        let cert = encode(&pem);

        let no_cert = parse_xfcc(&format!("Cert=\"{cert}\",By=spiffe://a;URI=spiffe://b"));
        match &no_cert {
            Err(CertError::Xfcc(msg)) => assert!(
                msg.contains("no Cert") && msg.contains("cert: true"),
                "{msg}"
            ),
            other => panic!("unexpected {other:?}"),
        }
        assert!(is_xfcc_error(&parse_xfcc("")));
        assert!(is_xfcc_error(&parse_xfcc("Cert=garbage")));
        assert!(is_xfcc_error(&parse_xfcc(&format!(
            "Cert={}",
            encode("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
        ))));
        assert!(is_xfcc_error(&parse_xfcc(&format!("Cert=\"{cert}"))));
        assert!(is_xfcc_error(&parse_xfcc(&format!(
            "Cert={cert};Cert={cert}"
        ))));
        assert!(is_xfcc_error(&parse_xfcc(&format!("Cert={cert};Hash"))));
        assert!(is_xfcc_error(&parse_xfcc(&format!(
            "Cert={}",
            encode(&pem.repeat(2))
        ))));

        let ok = vec![format!("Cert={cert}"); MAX_ELEMENTS].join(",");
        parse_xfcc(&ok)?;
        assert!(is_xfcc_error(&parse_xfcc(&format!("{ok},Cert={cert}"))));

        let long_chain = pem.repeat(MAX_CHAIN + 1);
        assert!(is_xfcc_error(&parse_xfcc(&format!(
            "Cert={cert};Chain={}",
            encode(&long_chain)
        ))));
        parse_xfcc(&format!(
            "Cert={cert};Chain={}",
            encode(&pem.repeat(MAX_CHAIN))
        ))?;
        Ok(())
    }
}
