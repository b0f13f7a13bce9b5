//! Test key material made at test time: a CA with server and client
//! certificates (rcgen), client signing keys with assertions signed by ring
//! (a JOSE implementation independent of the server's jsonwebtoken), and a
//! tiny HTTP server publishing a client's JWK set.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine as _,
};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use ring::{
    rand::SystemRandom,
    signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING},
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A certificate authority.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

/// A certificate with its private key.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

/// What a leaf certificate should say.
#[derive(Default)]
pub struct Leaf {
    pub cn: Option<String>,
    pub org: Option<String>,
    pub dns: Vec<String>,
    pub uris: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub emails: Vec<String>,
    /// Expired long ago.
    pub expired: bool,
    /// Valid only from 2099.
    pub future: bool,
    /// A server certificate (serverAuth) instead of a client one.
    pub server: bool,
}

impl Leaf {
    pub fn spiffe(id: &str) -> Self {
        Self {
            cn: Some("workload".into()),
            uris: vec![id.into()],
            ..Self::default()
        }
    }
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        // rcgen starts with a default CN; names are built here in DER order.
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, name);
        p.distinguished_name
            .push(DnType::OrganizationName, "Portcullis Tests");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Self { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn issue(&self, leaf: &Leaf) -> Issued {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        // rcgen starts with a default CN; names are built here in DER order.
        p.distinguished_name = DistinguishedName::new();
        // DER order runs from the most general attribute to the most specific.
        if let Some(org) = &leaf.org {
            p.distinguished_name
                .push(DnType::OrganizationName, org.as_str());
        }
        if let Some(cn) = &leaf.cn {
            p.distinguished_name.push(DnType::CommonName, cn.as_str());
        }
        for d in &leaf.dns {
            p.subject_alt_names
                .push(SanType::DnsName(d.clone().try_into().unwrap()));
        }
        for u in &leaf.uris {
            p.subject_alt_names
                .push(SanType::URI(u.clone().try_into().unwrap()));
        }
        for ip in &leaf.ips {
            p.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for e in &leaf.emails {
            p.subject_alt_names
                .push(SanType::Rfc822Name(e.clone().try_into().unwrap()));
        }
        p.extended_key_usages = vec![if leaf.server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if leaf.expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        if leaf.future {
            p.not_before = rcgen::date_time_ymd(2099, 1, 1);
            p.not_after = rcgen::date_time_ymd(2100, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1, written with the CA
    /// appended (a full chain, as cert-manager writes it) to `dir`; returns
    /// the certificate and key paths.
    pub fn server_files(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        self.write_server_leaf(&cert, &key);
        (cert, key)
    }

    /// Issues a new server leaf and writes it (with the CA) and its key;
    /// returns the leaf.
    pub fn write_server_leaf(&self, cert: &Path, key: &Path) -> Issued {
        let leaf = self.issue(&Leaf {
            cn: Some("localhost".into()),
            dns: vec!["localhost".into()],
            ips: vec![IpAddr::from([127, 0, 0, 1])],
            server: true,
            ..Leaf::default()
        });
        std::fs::write(cert, format!("{}{}", leaf.cert_pem, self.pem())).unwrap();
        std::fs::write(key, &leaf.key_pem).unwrap();
        leaf
    }

    /// Writes the CA certificate to `dir/name.pem`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, self.pem()).unwrap();
        path
    }
}

impl Issued {
    /// A self-signed client certificate (for `self_signed_tls_client_auth`).
    pub fn self_signed(cn: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        // rcgen starts with a default CN; names are built here in DER order.
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    pub fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(format!("{}{}", self.cert_pem, self.key_pem).as_bytes())
            .unwrap()
    }

    /// RFC 8705 `x5t#S256`, computed here independently of the server.
    pub fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &self.der))
    }

    /// A JWK naming this certificate by `x5c` (its public key is the
    /// certificate's; the members a JWK needs are filled in from a new key,
    /// since only `x5c` is compared).
    pub fn x5c_jwk(&self) -> Value {
        let mut jwk = ClientKey::new("cert").public_jwk();
        jwk["x5c"] = json!([STANDARD.encode(&self.der)]);
        jwk
    }

    /// The header value Envoy sends with `forward_client_cert_details`.
    pub fn xfcc(&self) -> String {
        let encoded: String = percent_encoding::utf8_percent_encode(
            &self.cert_pem,
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        format!(
            "By=spiffe://cluster.local/ns/auth/sa/portcullis;Hash={};Cert=\"{encoded}\";Subject=\"CN=x\"",
            hex(ring::digest::digest(&ring::digest::SHA256, &self.der).as_ref())
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A client's ES256 signing key.
pub struct ClientKey {
    pub kid: String,
    pkcs8: Vec<u8>,
}

impl ClientKey {
    pub fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self {
            kid: kid.to_owned(),
            pkcs8: pkcs8.as_ref().to_vec(),
        }
    }

    fn pair(&self) -> EcdsaKeyPair {
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.pkcs8,
            &SystemRandom::new(),
        )
        .unwrap()
    }

    /// The public JWK (`kid`, `use: sig`, `alg: ES256`).
    pub fn public_jwk(&self) -> Value {
        let point = self.pair().public_key().as_ref().to_vec();
        json!({
            "kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    pub fn jwks(keys: &[&ClientKey]) -> Value {
        json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
    }

    /// A compact JWS over `claims`, signed with ring; `header` members
    /// override the defaults (`alg: ES256`, `kid`).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let mut h = json!({ "alg": "ES256", "typ": "JWT", "kid": self.kid });
        for (k, v) in header.as_object().unwrap() {
            if v.is_null() {
                h.as_object_mut().unwrap().remove(k);
            } else {
                h[k] = v.clone();
            }
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .pair()
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// A client assertion for `client_id` to `aud`, valid from `now` for 60 s.
    pub fn assertion(&self, client_id: &str, aud: &str, now: i64) -> String {
        self.sign(
            &json!({}),
            &json!({
                "iss": client_id, "sub": client_id, "aud": aud,
                "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string(),
            }),
        )
    }
}

/// An HTTP server on loopback answering every request with `body` (which the
/// test may change), counting requests.
pub struct JwksServer {
    pub url: String,
    pub body: Arc<Mutex<String>>,
    pub hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(body: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/jwks.json",
            listener.local_addr().unwrap().port()
        );
        let body = Arc::new(Mutex::new(body.to_string()));
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, h) = (Arc::clone(&body), Arc::clone(&hits));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (b, h) = (Arc::clone(&b), Arc::clone(&h));
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut read = 0;
                    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let body = b.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Self { url, body, hits }
    }

    pub fn set(&self, body: &Value) {
        *self.body.lock().unwrap() = body.to_string();
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
