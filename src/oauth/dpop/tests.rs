//! The proof checks of [`super::proof`], with proofs signed here by `ring`.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::{
    rand::SystemRandom,
    signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING},
};
use serde_json::{json, Value};

use super::proof::{check, normalize_htu, Expectations, ProofError};

const HTU: &str = "https://as.example.com/token";
const NOW: i64 = 1_700_000_000;

struct Key(EcdsaKeyPair);

impl Key {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn jwk(&self) -> Value {
        let point = self.0.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        })
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .0
            .sign(&SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn proof(&self) -> String {
        self.sign(&self.header(), &claims())
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()})
    }
}

fn claims() -> Value {
    json!({"jti": "j-1", "htm": "POST", "htu": HTU, "iat": NOW})
}

fn run(proof: &str) -> Result<super::proof::Proof, ProofError> {
    let htus = [normalize_htu(HTU).unwrap()];
    let algorithms: Vec<String> = super::ALGORITHMS.iter().map(|a| (*a).into()).collect();
    let expect = Expectations {
        htm: "POST",
        htus: &htus,
        algorithms: &algorithms,
        max_age: 60,
        leeway: 5,
    };
    check(proof, &expect, NOW)
}

#[test]
fn a_good_proof_gives_its_thumbprint_and_how_long_to_remember_it() {
    let key = Key::new();
    let proof = run(&key.proof()).unwrap();
    let expected = super::jwk::PublicJwk::parse(&key.jwk())
        .unwrap()
        .thumbprint();
    assert_eq!(proof.jkt, expected);
    assert_eq!(proof.jti, "j-1");
    assert_eq!(proof.remember_until, NOW + 60 + 10 + 1);
    assert_eq!(proof.nonce, None);
}

#[test]
fn htu_is_compared_without_query_fragment_default_port_or_case_of_the_host() {
    let key = Key::new();
    for htu in [
        "https://AS.example.com/token",
        "https://as.example.com:443/token?x=1#f",
        "https://as.example.com/./token",
    ] {
        let mut c = claims();
        c["htu"] = htu.into();
        run(&key.sign(&key.header(), &c)).unwrap_or_else(|e| panic!("{htu}: {e}"));
    }
}

#[test]
fn every_bad_proof_is_refused_with_its_reason() {
    let key = Key::new();
    let other = Key::new();
    let with = |name: &str, value: Value| {
        let mut c = claims();
        c[name] = value;
        key.sign(&key.header(), &c)
    };
    let without = |name: &str| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(name);
        key.sign(&key.header(), &c)
    };
    let header_with = |name: &str, value: Value| {
        let mut h = key.header();
        h[name] = value;
        key.sign(&h, &claims())
    };
    let good = key.proof();
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, _) = rest.split_once('.').unwrap();
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "not a compact JWS"),
        ("a.b".into(), "not a compact JWS"),
        (format!("{good}.x"), "not a compact JWS"),
        ("x".repeat(9000), "too long"),
        ("!!.e30.e30".into(), "header is not base64url"),
        (
            format!("{}.e30.AA", URL_SAFE_NO_PAD.encode("[]")),
            "header is not a JSON object",
        ),
        (header_with("typ", "JWT".into()), "typ is not dpop+jwt"),
        (header_with("typ", Value::Null), "typ is not dpop+jwt"),
        (header_with("alg", "none".into()), "alg is not one of"),
        (header_with("alg", "HS256".into()), "alg is not one of"),
        (header_with("alg", "EdDSA".into()), "does not fit its jwk"),
        (header_with("crit", json!(["exp"])), "crit"),
        (header_with("jwk", Value::Null), "no jwk header"),
        (
            header_with("jwk", json!({"kty": "oct", "k": "AA"})),
            "private or symmetric",
        ),
        (
            {
                let mut jwk = key.jwk();
                jwk["d"] = "AAAA".into();
                header_with("jwk", jwk)
            },
            "private",
        ),
        (header_with("jwk", other.jwk()), "signature does not verify"),
        (
            format!("{head}.{payload}.AAAA"),
            "signature does not verify",
        ),
        (format!("{head}.{payload}.!!"), "signature is not base64url"),
        (without("jti"), "lacks one of jti, htm, htu and iat"),
        (without("htm"), "lacks one of"),
        (without("htu"), "lacks one of"),
        (without("iat"), "lacks one of"),
        (with("htm", "GET".into()), "htm is not the request's method"),
        (with("htm", "post".into()), "htm is not"),
        (
            with("htu", "https://as.example.com/introspect".into()),
            "htu is not this endpoint's URL",
        ),
        (
            with("htu", "http://as.example.com/token".into()),
            "htu is not",
        ),
        (with("htu", "/token".into()), "htu is not"),
        (
            with("iat", (NOW - 66).into()),
            "iat is outside the accepted window",
        ),
        (with("iat", (NOW + 6).into()), "iat is outside"),
        (with("iat", "yesterday".into()), "iat is not a number"),
        (with("jti", "".into()), "jti is empty or longer"),
        (
            with("jti", "x".repeat(257).into()),
            "jti is empty or longer",
        ),
        (
            with("jti", 7.into()),
            "payload is not a JSON object of its claims",
        ),
    ];
    for (proof, why) in cases {
        let err = run(&proof).expect_err(why);
        assert!(err.0.contains(why), "case {why:?}: got {err}");
    }
}

#[test]
fn the_edges_of_the_iat_window_are_accepted() {
    let key = Key::new();
    for iat in [NOW - 65, NOW + 5] {
        let mut c = claims();
        c["iat"] = iat.into();
        run(&key.sign(&key.header(), &c)).unwrap_or_else(|e| panic!("{iat}: {e}"));
    }
}
