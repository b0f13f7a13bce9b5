//! Whole numbers in JSON bodies, as JSON Schema counts integers.
//!
//! JSON Schema (and so `openapi.yaml`) calls any number without a fractional
//! part an integer: `300` and `300.0` alike. Serde's integer types refuse the
//! second, so the admin API's integer members deserialize through
//! [`WholeNumber`], which accepts both and refuses `300.5`.

use serde::{de, Deserialize, Deserializer, Serialize};

/// A JSON number without a fractional part, within the range of `i64`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WholeNumber(pub i64);

/// 2^63 as a float: the first whole float beyond `i64::MAX`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

struct Visitor;

impl de::Visitor<'_> for Visitor {
    type Value = WholeNumber;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<WholeNumber, E> {
        Ok(WholeNumber(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<WholeNumber, E> {
        i64::try_from(v)
            .map(WholeNumber)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &"an integer below 2^63"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<WholeNumber, E> {
        if v.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&v) {
            // Whole and within range: the conversion is exact.
            #[allow(clippy::cast_possible_truncation)]
            Ok(WholeNumber(v as i64))
        } else {
            Err(E::invalid_type(de::Unexpected::Float(v), &self))
        }
    }
}

impl<'de> Deserialize<'de> for WholeNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::WholeNumber;

    fn parse(json: &str) -> Result<i64, String> {
        serde_json::from_str::<WholeNumber>(json)
            .map(|n| n.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn integers_and_whole_floats_are_accepted() {
        assert_eq!(parse("300"), Ok(300));
        assert_eq!(parse("-7"), Ok(-7));
        assert_eq!(parse("300.0"), Ok(300));
        assert_eq!(parse("2.205e3"), Ok(2205));
        assert_eq!(parse("-0.0"), Ok(0));
        assert_eq!(parse("9223372036854775807"), Ok(i64::MAX));
    }

    #[test]
    fn fractions_out_of_range_and_other_types_are_refused() {
        for json in [
            "300.5",
            "1e300",
            "-1e19",
            "9223372036854775808",
            "\"300\"",
            "true",
            "null",
            "[]",
        ] {
            let error = parse(json).expect_err(json);
            assert!(error.contains("integer"), "{json}: {error}");
        }
    }
}
