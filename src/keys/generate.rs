//! Generation of signing key pairs (ring) and their public JWKs (RFC 7517/7518,
//! RFC 8037). The key id is the RFC 7638 SHA-256 thumbprint of the public JWK.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
use ring::{
    rand::SystemRandom,
    signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING},
};
use rsa::{pkcs8::EncodePrivateKey as _, traits::PublicKeyParts as _};
use zeroize::Zeroizing;

use super::{Algorithm, KekError};

/// A freshly generated key pair.
pub struct GeneratedKey {
    /// Key id (JWK thumbprint).
    pub kid: String,
    /// Public JWK, with `kid`, `use` and `alg` set.
    pub public_jwk: Jwk,
    /// PKCS#8 DER private key, wiped on drop.
    pub pkcs8: Zeroizing<Vec<u8>>,
}

/// RSA modulus size for RS256/PS256 keys.
const RSA_BITS: usize = 2048;

/// Generates a new key pair for `alg`.
pub fn generate(alg: Algorithm) -> Result<GeneratedKey, KekError> {
    let rng = SystemRandom::new();
    let (pkcs8, params, key_alg) = match alg {
        Algorithm::Es256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| KekError::Random)?;
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
                    .map_err(|_| KekError::Random)?;
            (
                Zeroizing::new(doc.as_ref().to_vec()),
                ec_params(pair.public_key().as_ref()),
                KeyAlgorithm::ES256,
            )
        }
        Algorithm::EdDsa => {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KekError::Random)?;
            let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| KekError::Random)?;
            let params = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            });
            (
                Zeroizing::new(doc.as_ref().to_vec()),
                params,
                KeyAlgorithm::EdDSA,
            )
        }
        Algorithm::Rs256 | Algorithm::Ps256 => {
            // ring cannot generate RSA keys; the RustCrypto rsa crate does, and
            // ring then signs with the PKCS#8 it exports.
            let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, RSA_BITS)
                .map_err(|_| KekError::Random)?;
            let der = key.to_pkcs8_der().map_err(|_| KekError::Random)?;
            let params = AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                e: URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            });
            let key_alg = if alg == Algorithm::Rs256 {
                KeyAlgorithm::RS256
            } else {
                KeyAlgorithm::PS256
            };
            (Zeroizing::new(der.as_bytes().to_vec()), params, key_alg)
        }
    };
    let mut public_jwk = Jwk {
        common: CommonParameters::default(),
        algorithm: params,
    };
    let kid = public_jwk.thumbprint(ThumbprintHash::SHA256);
    public_jwk.common = CommonParameters {
        public_key_use: Some(PublicKeyUse::Signature),
        key_algorithm: Some(key_alg),
        key_id: Some(kid.clone()),
        ..CommonParameters::default()
    };
    Ok(GeneratedKey {
        kid,
        public_jwk,
        pkcs8,
    })
}

/// JWK members of an uncompressed SEC1 P-256 point (`0x04 || X || Y`).
fn ec_params(point: &[u8]) -> AlgorithmParameters {
    let (x, y) = point[1..].split_at(32);
    AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
        key_type: EllipticCurveKeyType::EC,
        curve: EllipticCurve::P256,
        x: URL_SAFE_NO_PAD.encode(x),
        y: URL_SAFE_NO_PAD.encode(y),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_jwks_are_public_only_and_named_by_their_thumbprint() {
        for alg in [Algorithm::Es256, Algorithm::EdDsa] {
            let key = generate(alg).unwrap();
            let json = serde_json::to_value(&key.public_jwk).unwrap();
            assert_eq!(json["kid"], key.kid.as_str());
            assert_eq!(json["use"], "sig");
            assert_eq!(json["alg"], alg.as_str());
            assert!(
                json.get("d").is_none(),
                "{alg:?} JWK must not carry the private part"
            );
            assert_eq!(key.kid.len(), 43, "base64url SHA-256");
        }
    }

    #[test]
    fn rsa_keys_publish_modulus_and_exponent_only() {
        let key = generate(Algorithm::Ps256).unwrap();
        let json = serde_json::to_value(&key.public_jwk).unwrap();
        assert_eq!(json["kty"], "RSA");
        assert_eq!(json["e"], "AQAB");
        assert!(json.get("d").is_none() && json.get("p").is_none());
    }

    #[test]
    fn two_generated_keys_differ() {
        assert_ne!(
            generate(Algorithm::Es256).unwrap().kid,
            generate(Algorithm::Es256).unwrap().kid
        );
    }
}
