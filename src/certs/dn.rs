//! Distinguished names: rendering as RFC 4514 text the way
//! `openssl x509 -nameopt RFC2253` does, parsing RFC 4514 text, and comparing
//! the two in the spirit of RFC 4517 `distinguishedNameMatch`.

use std::fmt::Write as _;

use x509_parser::asn1_rs::{Any, Class, FromDer, Tag, ToDer};
use x509_parser::x509::X509Name;

/// Attribute types with a short name: OID and the name OpenSSL prints.
/// Input also accepts the names case-insensitively, and `E` for `emailAddress`.
const ATTRIBUTE_TYPES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "title"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.42", "GN"),
    ("2.5.4.46", "dnQualifier"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    (EMAIL_OID, "emailAddress"),
];
const EMAIL_OID: &str = "1.2.840.113549.1.9.1";

/// An attribute value as compared: normalized text, or the DER of a value that
/// is not a character string.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    /// Lower-cased, trimmed, internal whitespace runs collapsed to one space.
    Text(String),
    Der(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Attribute {
    oid: String,
    value: Value,
}

impl Attribute {
    fn new(oid: String, text: Option<&str>, der: Vec<u8>) -> Self {
        let value = match text {
            Some(text) => Value::Text(
                text.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase(),
            ),
            None => Value::Der(der),
        };
        Self { oid, value }
    }
}

/// A distinguished name normalized for comparison: RDNs in RFC 4514 order (most
/// specific first), the attributes of each RDN sorted (RDNs are sets).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Dn(Vec<Vec<Attribute>>);

/// Renders `name` as RFC 4514 text and normalizes it for comparison.
///
/// The text follows `openssl x509 -nameopt RFC2253`: RDNs and the attributes of
/// a multi-valued RDN in reverse DER order, OpenSSL short names, `,+"\<>;` and a
/// leading `#` or space and a trailing space escaped with a backslash, control
/// characters and non-ASCII bytes (UTF-8) as `\XX`. Attributes without a short
/// name, or whose value is not a character string, are `OID=#<hex DER>`.
pub(crate) fn from_x509(name: &X509Name<'_>) -> Result<(String, Dn), String> {
    let mut text = String::new();
    let mut rdns = Vec::new();
    for rdn in name.iter_rdn().collect::<Vec<_>>().into_iter().rev() {
        let mut set = Vec::new();
        for atv in rdn.iter().collect::<Vec<_>>().into_iter().rev() {
            text.push(if set.is_empty() { ',' } else { '+' });
            let oid = atv.attr_type().to_id_string();
            let value = atv.attr_value();
            let decoded = decode_text(value);
            let der = value
                .to_der_vec()
                .map_err(|_| "an attribute value could not be encoded")?;
            if let (Some(short), Some(s)) = (short_name(&oid), &decoded) {
                text.push_str(short);
                text.push('=');
                escape_into(&mut text, s);
            } else {
                let _ = write!(text, "{oid}=#");
                for b in &der {
                    let _ = write!(text, "{b:02X}");
                }
            }
            set.push(Attribute::new(oid, decoded.as_deref(), der));
        }
        set.sort();
        rdns.push(set);
    }
    // Every RDN pushed a leading ','; drop the first.
    if !text.is_empty() {
        text.remove(0);
    }
    Ok((text, Dn(rdns)))
}

/// Parses RFC 4514 text (`CN=api,O=Example,C=DE`) into a normalized name.
///
/// Lenient about whitespace around `,`, `+` and `=`; refuses an empty name,
/// unknown attribute type names, unescaped `"`, `;`, `<`, `>`, bad escapes and
/// bad `#` hex values.
pub(crate) fn parse(s: &str) -> Result<Dn, String> {
    let bytes = s.as_bytes();
    if s.trim().is_empty() {
        return Err("must name at least one attribute".into());
    }
    let mut rdns = Vec::new();
    let mut set = Vec::new();
    let mut pos = 0;
    loop {
        let eq = s[pos..]
            .find('=')
            .map(|i| pos + i)
            .ok_or("an attribute has no '='")?;
        let oid = attribute_oid(s[pos..eq].trim())?;
        pos = eq + 1;
        while bytes.get(pos) == Some(&b' ') {
            pos += 1;
        }
        let attribute = if bytes.get(pos) == Some(&b'#') {
            let end = s[pos..].find([',', '+']).map_or(s.len(), |i| pos + i);
            let der = decode_hex(s[pos + 1..end].trim_end()).ok_or("a '#' value is not hex")?;
            let Ok(([], any)) = Any::from_der(&der) else {
                return Err("a '#' value is not a DER encoding".into());
            };
            pos = end;
            let text = decode_text(&any);
            Attribute::new(oid, text.as_deref(), der)
        } else {
            let mut value = Vec::new();
            while let Some(&b) = bytes.get(pos) {
                match b {
                    b',' | b'+' => break,
                    b'\\' => {
                        let hex = bytes
                            .get(pos + 1..pos + 3)
                            .and_then(|h| decode_hex(std::str::from_utf8(h).ok()?));
                        if let Some(decoded) = hex {
                            value.extend(decoded);
                            pos += 3;
                        } else if let Some(
                            &c @ (b' ' | b'"' | b'#' | b'+' | b',' | b';' | b'<' | b'=' | b'>'
                            | b'\\'),
                        ) = bytes.get(pos + 1)
                        {
                            value.push(c);
                            pos += 2;
                        } else {
                            return Err("invalid '\\' escape".into());
                        }
                    }
                    b'"' | b';' | b'<' | b'>' => {
                        return Err(format!("'{}' in a value must be escaped", char::from(b)));
                    }
                    _ => {
                        value.push(b);
                        pos += 1;
                    }
                }
            }
            let value = String::from_utf8(value).map_err(|_| "a value is not UTF-8")?;
            Attribute::new(oid, Some(&value), Vec::new())
        };
        set.push(attribute);
        match bytes.get(pos) {
            Some(b'+') => {}
            Some(_) => {
                set.sort();
                rdns.push(std::mem::take(&mut set));
            }
            None => {
                set.sort();
                rdns.push(set);
                return Ok(Dn(rdns));
            }
        }
        pos += 1;
    }
}

fn short_name(oid: &str) -> Option<&'static str> {
    ATTRIBUTE_TYPES
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|&(_, name)| name)
}

/// The OID of an RFC 4514 attribute type: a short name or a dotted OID.
fn attribute_oid(name: &str) -> Result<String, String> {
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        let arcs: Vec<&str> = name.split('.').collect();
        let valid = arcs.len() >= 2
            && arcs.iter().all(|arc| {
                !arc.is_empty()
                    && arc.bytes().all(|b| b.is_ascii_digit())
                    && (arc.len() == 1 || !arc.starts_with('0'))
            });
        return if valid {
            Ok(name.to_owned())
        } else {
            Err(format!("invalid attribute type OID \"{name}\""))
        };
    }
    if name.eq_ignore_ascii_case("E") {
        return Ok(EMAIL_OID.to_owned());
    }
    ATTRIBUTE_TYPES
        .iter()
        .find(|(_, short)| short.eq_ignore_ascii_case(name))
        .map(|&(oid, _)| oid.to_owned())
        .ok_or_else(|| {
            if name.is_empty() {
                "an attribute has no type".to_owned()
            } else {
                format!("unknown attribute type \"{name}\"")
            }
        })
}

/// The text of a character-string value (any ASN.1 string type), else `None`.
fn decode_text(value: &Any<'_>) -> Option<String> {
    let header = &value.header;
    if header.class() != Class::Universal || header.is_constructed() {
        return None;
    }
    let data = value.data;
    match header.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => String::from_utf8(data.to_vec()).ok(),
        // Teletex: in practice Latin-1, as OpenSSL treats it.
        Tag::T61String => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString if data.len().is_multiple_of(2) => char::decode_utf16(
            data.chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]])),
        )
        .collect::<Result<_, _>>()
        .ok(),
        Tag::UniversalString if data.len().is_multiple_of(4) => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// Appends `value` escaped as OpenSSL's `ASN1_STRFLGS_RFC2253` does.
fn escape_into(out: &mut String, value: &str) {
    let last = value.len().saturating_sub(1);
    for (i, b) in value.bytes().enumerate() {
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            0..0x20 | 0x7f.. => {
                let _ = write!(out, "\\{b:02X}");
            }
            _ => out.push(char::from(b)),
        }
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    // (`from_str_radix` alone would accept a sign, as in "+c".)
    if hex.is_empty() || !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        matches!((parse(a), parse(b)), (Ok(a), Ok(b)) if a == b)
    }

    #[test]
    fn parse_refuses_bad_names() {
        for bad in [
            "",
            "   ",
            "CN",
            "=api",
            "XX=api",
            "CN=api,",
            "CN=a\"b",
            "CN=a;O=b",
            "CN=a\\zz",
            "CN=#zz",
            "CN=#0c",
            "1..2=x",
            "01.2=x",
            "/C=US/CN=api",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn comparison_normalizes_case_space_escapes_and_types() {
        assert!(same("CN=api,O=Example,C=DE", "cn = API , o=example,  C=de"));
        assert!(same("CN=My   Service ", "CN=my service"));
        assert!(same(
            "CN=api,O=Example\\, Inc.",
            "CN=api,O=Example\\2C Inc."
        ));
        assert!(same(
            "2.5.4.3=api,0.9.2342.19200300.100.1.25=example",
            "CN=api,DC=example"
        ));
        assert!(same("E=a@example.org", "emailAddress=a@example.org"));
        // "#" followed by the DER of UTF8String "api".
        assert!(same("CN=#0C03617069", "CN=api"));
        assert!(same("CN=api+UID=42,O=Example", "UID=42 + CN=api,O=Example"));
        assert!(!same("CN=api,O=Example", "O=Example,CN=api"));
        assert!(!same("CN=api,O=Example", "CN=api"));
        assert!(!same("CN=api+UID=42,O=Example", "CN=api,UID=42,O=Example"));
        assert!(!same("CN=api,O=Example, Inc.", "CN=api,O=Example\\, Inc."));
    }

    #[test]
    fn multi_valued_rdn_from_der() -> Result<(), Box<dyn std::error::Error>> {
        // SEQUENCE { SET { O=Example }, SET { CN=api, UID=42 } }: rcgen cannot make this.
        let der = decode_hex(concat!(
            "3032",
            "3110300E060355040A0C074578616D706C65",
            "311E",
            "300A06035504030C03617069",
            "3010060A0992268993F22C6401010C023432",
        ))
        .ok_or("bad hex")?;
        let (rest, name) = X509Name::from_der(&der)?;
        assert!(rest.is_empty());
        let (text, dn) = from_x509(&name)?;
        assert_eq!(text, "UID=42+CN=api,O=Example");
        assert_eq!(Ok(dn.clone()), parse("cn=API+uid=42,o=example"));
        assert_ne!(Ok(dn), parse("CN=api,UID=42,O=Example"));
        Ok(())
    }

    #[test]
    fn escaping_follows_openssl() {
        let mut out = String::new();
        escape_into(&mut out, "#a,b+c\"d\\e<f>g;h Müller\n ");
        assert_eq!(
            out,
            "\\#a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h M\\C3\\BCller\\0A\\ "
        );
        // And what is rendered parses back to the same value.
        let expected = Attribute::new(
            "2.5.4.3".into(),
            Some("#a,b+c\"d\\e<f>g;h Müller\n "),
            Vec::new(),
        );
        assert_eq!(parse(&format!("CN={out}")), Ok(Dn(vec![vec![expected]])));
    }
}
