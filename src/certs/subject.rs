//! How a `tls_client_auth` client identifies its certificate (RFC 8705 §2.1.2).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::dn;
use super::ClientCertificate;

/// What a `tls_client_auth` client registered to identify its certificate
/// (RFC 8705 §2.1.2): exactly one of these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectMatcher {
    /// `tls_client_auth_subject_dn`: the subject DN in RFC 4514 form.
    SubjectDn(String),
    /// `tls_client_auth_san_dns`: a `dNSName` SAN.
    SanDns(String),
    /// `tls_client_auth_san_uri`: a `uniformResourceIdentifier` SAN.
    SanUri(String),
    /// `tls_client_auth_san_ip`: an `iPAddress` SAN.
    SanIp(IpAddr),
    /// `tls_client_auth_san_email`: an `rfc822Name` SAN.
    SanEmail(String),
}

const SUBJECT_DN: &str = "tls_client_auth_subject_dn";
const SAN_DNS: &str = "tls_client_auth_san_dns";
const SAN_URI: &str = "tls_client_auth_san_uri";
const SAN_IP: &str = "tls_client_auth_san_ip";
const SAN_EMAIL: &str = "tls_client_auth_san_email";

impl SubjectMatcher {
    /// The RFC 8705 metadata member name, e.g. `tls_client_auth_san_uri`.
    #[must_use]
    pub fn metadata_name(&self) -> &'static str {
        match self {
            Self::SubjectDn(_) => SUBJECT_DN,
            Self::SanDns(_) => SAN_DNS,
            Self::SanUri(_) => SAN_URI,
            Self::SanIp(_) => SAN_IP,
            Self::SanEmail(_) => SAN_EMAIL,
        }
    }

    /// The registered value as a string (IP as text).
    #[must_use]
    pub fn value(&self) -> String {
        match self {
            Self::SubjectDn(s) | Self::SanDns(s) | Self::SanUri(s) | Self::SanEmail(s) => s.clone(),
            Self::SanIp(ip) => ip.to_string(),
        }
    }

    /// Validates a registered `value` for the metadata member `metadata_name`
    /// (client registration): a DN must be RFC 4514 with at least one attribute,
    /// a DNS name an exact host name (no wildcards), a URI absolute (e.g.
    /// `spiffe://trust-domain/path`), an IP address IPv4 or IPv6, an email
    /// `local@domain`. The error message names the field.
    pub fn parse(metadata_name: &str, value: &str) -> Result<Self, String> {
        let refuse = |what: &str| Err(format!("{metadata_name} must be {what}"));
        let plain =
            !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || c.is_control());
        match metadata_name {
            SUBJECT_DN => match dn::parse(value) {
                Ok(_) => Ok(Self::SubjectDn(value.to_owned())),
                Err(e) => Err(format!(
                    "{metadata_name} is not an RFC 4514 distinguished name: {e}"
                )),
            },
            SAN_DNS if is_host_name(value) => Ok(Self::SanDns(value.to_owned())),
            SAN_DNS => refuse("a DNS host name"),
            SAN_URI if plain && url::Url::parse(value).is_ok() => {
                Ok(Self::SanUri(value.to_owned()))
            }
            SAN_URI => refuse("an absolute URI"),
            SAN_IP => value
                .parse()
                .map(Self::SanIp)
                .or_else(|_| refuse("an IPv4 or IPv6 address")),
            SAN_EMAIL => match value.split_once('@') {
                Some((local, domain))
                    if plain
                        && !local.is_empty()
                        && !domain.is_empty()
                        && !domain.contains('@') =>
                {
                    Ok(Self::SanEmail(value.to_owned()))
                }
                _ => refuse("an email address"),
            },
            _ => Err(format!(
                "{metadata_name} is not a tls_client_auth certificate identifier"
            )),
        }
    }

    /// Whether `cert` matches: the subject DN by RDN sequence (attribute types by
    /// OID, values case-insensitively with whitespace runs collapsed, escapes
    /// decoded, multi-valued RDNs as sets); a DNS SAN case-insensitively
    /// (ignoring a trailing dot); a URI SAN exactly; an IP SAN by address (an
    /// IPv4-mapped IPv6 address equals the IPv4 address); an email SAN with the
    /// local part exact and the domain case-insensitive.
    #[must_use]
    pub fn matches(&self, cert: &ClientCertificate) -> bool {
        match self {
            Self::SubjectDn(want) => dn::parse(want).is_ok_and(|want| want == *cert.subject()),
            Self::SanDns(want) => {
                let want = want.strip_suffix('.').unwrap_or(want);
                cert.san_dns().iter().any(|name| {
                    name.strip_suffix('.')
                        .unwrap_or(name)
                        .eq_ignore_ascii_case(want)
                })
            }
            Self::SanUri(want) => cert.san_uris().iter().any(|uri| uri == want),
            Self::SanIp(want) => cert
                .san_ips()
                .iter()
                .any(|ip| ip.to_canonical() == want.to_canonical()),
            Self::SanEmail(want) => want.rsplit_once('@').is_some_and(|(local, domain)| {
                cert.san_emails().iter().any(|email| {
                    email
                        .rsplit_once('@')
                        .is_some_and(|(l, d)| l == local && d.eq_ignore_ascii_case(domain))
                })
            }),
        }
    }
}

/// An exact DNS host name: letters, digits and inner hyphens in labels of at
/// most 63 characters, at most 253 in all, optionally with a trailing dot.
fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use rcgen::{DistinguishedName, DnType, SanType};

    use super::*;
    use crate::certs::testutil::{leaf_params, self_signed, TestResult};

    fn matcher(name: &str, value: &str) -> Result<SubjectMatcher, String> {
        SubjectMatcher::parse(&format!("tls_client_auth_{name}"), value)
    }

    #[test]
    fn parse_accepts_and_refuses() {
        for (name, value) in [
            ("subject_dn", "CN=api,O=Example\\, Inc.,C=DE"),
            ("subject_dn", "cn=api+uid=7,DC=example,DC=org"),
            ("subject_dn", "CN=api,1.3.6.1.4.1.99999.1=#0C0178"),
            ("san_dns", "api.example.org"),
            ("san_dns", "API.Example.org."),
            ("san_dns", "localhost"),
            ("san_uri", "spiffe://example.org/ns/pay/sa/api"),
            ("san_uri", "urn:example:client:42"),
            ("san_ip", "10.0.0.1"),
            ("san_ip", "2001:db8::1"),
            ("san_email", "api@example.org"),
        ] {
            let parsed = matcher(name, value);
            assert!(parsed.is_ok(), "{name}={value}: {parsed:?}");
        }
        for (name, value) in [
            ("subject_dn", ""),
            ("subject_dn", "/C=DE/O=Example/CN=api"),
            ("subject_dn", "FOO=bar"),
            ("san_dns", "*.example.org"),
            ("san_dns", "-api.example.org"),
            ("san_dns", "api..example.org"),
            ("san_dns", "api example.org"),
            ("san_dns", ""),
            ("san_uri", "/relative/path"),
            ("san_uri", "spiffe://example.org/a b"),
            ("san_ip", "10.0.0.256"),
            ("san_ip", "example.org"),
            ("san_email", "api"),
            ("san_email", "@example.org"),
            ("san_email", "api@"),
            ("san_email", "a@b@example.org"),
            ("san_email", "a b@example.org"),
            ("subject", "CN=api"),
        ] {
            match matcher(name, value) {
                Err(err) => assert!(err.contains(&format!("tls_client_auth_{name}")), "{err}"),
                Ok(m) => panic!("{name}={value} should be refused, got {m:?}"),
            }
        }
    }

    #[test]
    fn a_refusal_says_what_the_member_must_be() {
        for (name, value, says) in [
            (
                "subject_dn",
                "FOO=bar",
                "is not an RFC 4514 distinguished name",
            ),
            ("san_dns", "*.example.org", "must be a DNS host name"),
            ("san_uri", "/relative/path", "must be an absolute URI"),
            ("san_ip", "example.org", "must be an IPv4 or IPv6 address"),
            ("san_email", "api", "must be an email address"),
            (
                "subject",
                "CN=api",
                "is not a tls_client_auth certificate identifier",
            ),
        ] {
            let err = matcher(name, value).unwrap_err();
            assert!(
                err.starts_with(&format!("tls_client_auth_{name} {says}")),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn dns_names_follow_the_label_rules_up_to_their_lengths() {
        let label63 = "a".repeat(63);
        // 4 labels of 63 and dots: 255; trimmed to exactly 253.
        let long = format!("{label63}.{label63}.{label63}.{}", "b".repeat(61));
        assert_eq!(long.len(), 253);
        for ok in [
            "my-api.example.org",
            "a-b-c.example.org",
            &format!("{label63}.example.org"),
            &long,
            &format!("{long}."),
        ] {
            assert!(is_host_name(ok), "{ok} should be a host name");
        }
        for bad in [
            "api-.example.org",
            "my_api.example.org",
            &format!("{label63}a.example.org"),
            &format!("{long}b"),
            ".",
        ] {
            assert!(!is_host_name(bad), "{bad} should not be a host name");
        }
    }

    #[test]
    fn uris_and_emails_with_control_characters_are_refused() {
        for (name, value) in [
            ("san_uri", "urn:example:\u{1}client"),
            ("san_email", "api\u{7f}@example.org"),
            ("san_email", "api@example.org\u{0}"),
        ] {
            assert!(matcher(name, value).is_err(), "{name}={value:?}");
        }
    }

    #[test]
    fn metadata_name_value_and_serde_round_trip() -> TestResult {
        for (name, value) in [
            ("subject_dn", "CN=api"),
            ("san_dns", "api.example.org"),
            ("san_uri", "spiffe://example.org/api"),
            ("san_ip", "::1"),
            ("san_email", "api@example.org"),
        ] {
            let m = matcher(name, value)?;
            assert_eq!(m.metadata_name(), format!("tls_client_auth_{name}"));
            assert_eq!(m.value(), value);
            let json = serde_json::to_value(&m)?;
            assert_eq!(json, serde_json::json!({ name: value }));
            assert_eq!(serde_json::from_value::<SubjectMatcher>(json)?, m);
        }
        Ok(())
    }

    #[test]
    fn matches_each_kind() -> TestResult {
        let mut params = leaf_params("api");
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CountryName, "DE");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example, Inc.");
        params
            .distinguished_name
            .push(DnType::CommonName, "Payment  Service");
        params.subject_alt_names = vec![
            SanType::DnsName("api.example.org".try_into()?),
            SanType::URI("spiffe://example.org/ns/pay/sa/api".try_into()?),
            SanType::IpAddress(Ipv4Addr::new(10, 1, 2, 3).into()),
            SanType::Rfc822Name("Api@Example.org".try_into()?),
        ];
        let cert = ClientCertificate::from_chain(vec![self_signed(params)?.0])?;
        assert_eq!(
            cert.subject_dn(),
            "CN=Payment  Service,O=Example\\, Inc.,C=DE"
        );

        let yes = [
            ("subject_dn", "CN=Payment  Service,O=Example\\, Inc.,C=DE"),
            (
                "subject_dn",
                "cn=payment service , o=EXAMPLE\\2C INC. , c=de",
            ),
            (
                "subject_dn",
                "2.5.4.3=Payment Service,2.5.4.10=Example\\, Inc.,2.5.4.6=DE",
            ),
            ("san_dns", "API.example.org."),
            ("san_uri", "spiffe://example.org/ns/pay/sa/api"),
            ("san_ip", "10.1.2.3"),
            ("san_ip", "::ffff:10.1.2.3"),
            ("san_email", "Api@example.ORG"),
        ];
        let no = [
            ("subject_dn", "C=DE,O=Example\\, Inc.,CN=Payment Service"),
            ("subject_dn", "CN=Payment Service,O=Example,C=DE"),
            ("subject_dn", "CN=Payment Service,O=Example\\, Inc."),
            ("subject_dn", "CN=Payment Service+O=Example\\, Inc.,C=DE"),
            ("san_dns", "example.org"),
            ("san_dns", "api.example.org.evil"),
            ("san_uri", "spiffe://example.org/ns/pay/sa/api/x"),
            ("san_ip", "10.1.2.4"),
            ("san_email", "api@example.org"),
        ];
        for (name, value) in yes {
            assert!(
                matcher(name, value)?.matches(&cert),
                "{name}={value} should match"
            );
        }
        for (name, value) in no {
            assert!(
                !matcher(name, value)?.matches(&cert),
                "{name}={value} should not match"
            );
        }
        // A value that slipped past `parse` (e.g. from storage) never matches.
        assert!(!SubjectMatcher::SubjectDn("garbage".into()).matches(&cert));
        Ok(())
    }
}
