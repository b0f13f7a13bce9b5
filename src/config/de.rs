//! Deserializers shared by the sections: lists written as a TOML array or as
//! one comma-separated string (the form an environment variable takes),
//! secrets that may arrive typed, and the list of keys a section reads.

use std::net::SocketAddr;

use secrecy::SecretString;
use serde::{de, Deserialize, Deserializer};

/// A value from TOML or the environment that should be text. Environment
/// values that look like numbers or booleans arrive typed; take them back as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Self::Text(s) => s,
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Scalar>),
    One(Scalar),
}

/// An IP address and port (`listen`, `admin_listen`). A host name is not
/// resolved (`localhost` may mean `127.0.0.1`, `::1` or both): the message says
/// to write the address.
pub(super) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = Scalar::deserialize(d)?.into_string();
    parse_socket_addr(&text).map_err(de::Error::custom)
}

/// [`socket_addr`] for an optional setting.
pub(super) fn optional_socket_addr<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    Option::<Scalar>::deserialize(d)?
        .map(|s| parse_socket_addr(&s.into_string()).map_err(de::Error::custom))
        .transpose()
}

/// Parses `ip:port` (`[ipv6]:port`), or says what to write instead.
pub(super) fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    text.parse().map_err(|_| {
        let port = text
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        match port {
            Some(port) => format!(
                "{text:?} is not an IP address and port: host names are not resolved here, \
                 write the address, e.g. 127.0.0.1:{port} (this machine only) or 0.0.0.0:{port} \
                 (every interface)"
            ),
            None => format!(
                "{text:?} is not an IP address and port such as 127.0.0.1:8080 or [::1]:8080"
            ),
        }
    })
}

/// Secrets from a list, or from one comma-separated string.
pub(super) fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    Ok(comma_strings(d)?
        .into_iter()
        .map(SecretString::from)
        .collect())
}

/// Strings from a list, or from one comma-separated string; blanks are dropped.
pub(super) fn comma_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(v) => v.into_iter().map(Scalar::into_string).collect::<Vec<_>>(),
        OneOrMany::One(s) => s.into_string().split(',').map(str::to_owned).collect(),
    }
    .into_iter()
    .map(|s| s.trim().to_owned())
    .filter(|s| !s.is_empty())
    .collect())
}

/// An optional secret, whatever type the environment gave its text.
pub(super) fn optional_secret<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(|s| SecretString::from(s.into_string())))
}

/// The keys a section reads: the field names its derived `Deserialize` hands
/// to `deserialize_struct`, so the list cannot drift from the struct.
pub(crate) fn keys_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The deserializer refuses to produce a value once it has the names.
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A deserializer that records the field names of the struct asked of it.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct's field names can be read"))
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("field names read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
        enum identifier ignored_any
    }
}
