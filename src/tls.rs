//! HTTPS for the listeners: rustls with a certificate and key read from files
//! and reloaded when they change, and optional client certificates (mTLS).
//!
//! The server certificate lives in a [`ReloadingCert`]; every handshake asks it
//! for the current one, so [`ReloadingCert::reload`] (run periodically by
//! [`ReloadingCert::spawn_reloader`]) rotates the certificate without a restart.
//! A failed reload leaves the previous certificate in use.
//!
//! Client certificates are requested but not required, and any certificate is
//! accepted at the TLS layer as long as the peer proves possession of its key.
//! Which certificate a client must present, and which CA (if any) must have
//! issued it, depends on the client's registration (RFC 8705
//! `tls_client_auth` versus `self_signed_tls_client_auth`), so that check is
//! made by the application per request, on the chain that [`on_connect`]
//! stores as [`PeerCertificates`].

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use arc_swap::ArcSwap;

use crate::certs::{CertError, ClientCertificate};
use ring::digest;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Paths of the server's certificate chain (PEM) and private key (PEM: PKCS#8, PKCS#1 or SEC1).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf certificate.
    pub key: PathBuf,
}

/// Why TLS material could not be loaded.  Messages name the file and the problem, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not valid PEM.
    #[error("{}: invalid PEM: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong (for the key file, without any of its content).
        reason: String,
    },
    /// The certificate file holds no certificate.
    #[error("{}: no PEM certificate found", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error("{}: no PEM private key (PKCS#8, PKCS#1 or SEC1) found", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key is not one rustls can sign with.
    #[error("{}: unusable private key: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why rustls rejected the key.
        source: rustls::Error,
    },
    /// The leaf certificate cannot be parsed.
    #[error("{}: invalid certificate: {source}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why the certificate was rejected.
        source: rustls::Error,
    },
    /// The private key does not belong to the leaf certificate.
    #[error("the private key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

/// The server certificate, swappable while the server runs.
pub struct ReloadingCert {
    current: ArcSwap<CertifiedKey>,
    files: TlsFiles,
    /// SHA-256 of the certificate and key files last loaded; the lock also
    /// serialises reloads.
    loaded: Mutex<[u8; 32]>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Loads the files; fails if unreadable, empty, not matching (key does not belong to the cert), or unparsable.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let (cert_pem, key_pem) = read_files(&files)?;
        let key = certified_key(&files, &cert_pem, &key_pem)?;
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(key),
            loaded: Mutex::new(fingerprint(&cert_pem, &key_pem)),
            files,
        }))
    }

    /// Re-reads both files; when their contents changed and they are valid, the new certificate
    /// is used for new handshakes. Returns `Ok(true)` when swapped, `Ok(false)` when unchanged;
    /// on error the old certificate stays in use and the error is returned.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let (cert_pem, key_pem) = read_files(&self.files)?;
        let digest = fingerprint(&cert_pem, &key_pem);
        if digest == *loaded {
            return Ok(false);
        }
        let key = certified_key(&self.files, &cert_pem, &key_pem)?;
        self.current.store(Arc::new(key));
        *loaded = digest;
        Ok(true)
    }

    /// Runs [`reload`](Self::reload) every `interval` on the tokio runtime, logging swaps at
    /// info and failures at warn (calling `failed` for each), forever.
    ///
    /// The files are small, so they are read on the runtime thread.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn spawn_reloader(
        self: Arc<Self>,
        interval: Duration,
        failed: impl Fn() + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                match self.reload() {
                    Ok(true) => tracing::info!(
                        cert = %self.files.cert.display(),
                        key = %self.files.key.display(),
                        "TLS certificate reloaded"
                    ),
                    Ok(false) => {}
                    Err(error) => {
                        failed();
                        tracing::warn!(
                            %error,
                            "TLS certificate not reloaded; the previous one stays in use"
                        );
                    }
                }
            }
        })
    }

    /// The DER of the leaf certificate currently served (for tests and logs).
    #[must_use]
    pub fn current_leaf(&self) -> CertificateDer<'static> {
        // `certified_key` never stores an empty chain.
        self.current.load().cert[0].clone()
    }

    /// A rustls `ServerConfig` (ring provider, TLS 1.2 and 1.3) that resolves the server
    /// certificate through this `ReloadingCert` on every handshake, and that requests but does
    /// not require a client certificate, accepting any at the TLS layer (see the module docs).
    ///
    /// No ALPN protocols are set: actix-web's `listen_rustls_0_23` adds the ones it serves.
    ///
    /// # Panics
    ///
    /// Never in practice: the ring provider supports both protocol versions.
    #[must_use]
    pub fn server_config(self: &Arc<Self>) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = AnyClientCert {
            algorithms: provider.signature_verification_algorithms,
        };
        #[allow(clippy::expect_used)]
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read_files(files: &TlsFiles) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    Ok((read(&files.cert)?, read(&files.key)?))
}

fn fingerprint(cert_pem: &[u8], key_pem: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [cert_pem, key_pem] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Parses and checks the chain and key; the chain it returns is never empty.
fn certified_key(
    files: &TlsFiles,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: files.cert.clone(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: files.key.clone(),
        },
        // The other messages may quote the file; say only what kind of problem it is.
        e => TlsError::Pem {
            path: files.key.clone(),
            reason: match e {
                pem::Error::MissingSectionEnd { .. } => "missing END line",
                pem::Error::IllegalSectionStart { .. } => "malformed BEGIN line",
                pem::Error::Base64Decode(_) => "bad base64",
                _ => "unreadable",
            }
            .to_owned(),
        },
    })?;
    let signing_key = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::Key {
            path: files.key.clone(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
        Err(source) => Err(TlsError::Certificate {
            path: files.cert.clone(),
            source,
        }),
    }
}

/// Requests a client certificate and accepts any, checking only the handshake signature.
///
/// Chain validation is deliberately *not* done here: whether a certificate is
/// acceptable depends on the client it authenticates (RFC 8705: issued by a
/// trusted CA for `tls_client_auth`, or a registered self-signed certificate
/// for `self_signed_tls_client_auth`), which is not known during the
/// handshake. The application validates the chain from [`PeerCertificates`]
/// later, per client. What this verifier does guarantee is proof of possession:
/// the peer signed the handshake with the key of the certificate it presented.
#[derive(Debug)]
struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Any certificate, including self-signed ones: see the type's docs.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client certificate chain a TLS peer presented (leaf first); absent on plain HTTP or
/// when the peer sent none.
///
/// Only proof of possession of the leaf's key has been checked; the chain itself is not
/// validated (see the module docs).
#[derive(Debug)]
pub struct PeerCertificates {
    chain: Arc<[CertificateDer<'static>]>,
    parsed: OnceLock<Result<Arc<ClientCertificate>, CertError>>,
}

impl PeerCertificates {
    /// The chain as presented, leaf first.
    #[must_use]
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The parsed certificate: parsed by the connection's first request that
    /// asks, and kept for the later requests on the same connection.
    pub fn certificate(&self) -> Result<Arc<ClientCertificate>, CertError> {
        self.parsed
            .get_or_init(|| ClientCertificate::from_chain(self.chain.to_vec()).map(Arc::new))
            .clone()
    }
}

/// An `HttpServer::on_connect` hook: stores [`PeerCertificates`] in the connection's extensions
/// when the connection is TLS and the peer presented a certificate.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    let Some(tls) = conn.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    if let Some(chain) = tls.get_ref().1.peer_certificates() {
        if !chain.is_empty() {
            ext.insert(PeerCertificates {
                chain: chain.into(),
                parsed: OnceLock::new(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use actix_web::{web, App, HttpRequest, HttpServer};
    use rcgen::CertifiedKey as Generated;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn generate() -> Result<Generated, rcgen::Error> {
        rcgen::generate_simple_self_signed(vec!["localhost".into()])
    }

    fn write(files: &TlsFiles, generated: &Generated) -> std::io::Result<()> {
        std::fs::write(&files.cert, generated.cert.pem())?;
        std::fs::write(&files.key, generated.key_pair.serialize_pem())
    }

    fn setup() -> Result<(tempfile::TempDir, TlsFiles, Generated), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        let generated = generate()?;
        write(&files, &generated)?;
        Ok((dir, files, generated))
    }

    #[test]
    fn loads_and_serves_the_written_cert() -> TestResult {
        let (_dir, files, generated) = setup()?;
        let cert = ReloadingCert::load(files)?;
        assert_eq!(cert.current_leaf(), *generated.cert.der());
        Ok(())
    }

    #[test]
    fn reload_swaps_only_on_change() -> TestResult {
        let (_dir, files, first) = setup()?;
        let cert = ReloadingCert::load(files.clone())?;
        assert!(!cert.reload()?);

        let second = generate()?;
        write(&files, &second)?;
        assert!(cert.reload()?);
        assert_eq!(cert.current_leaf(), *second.cert.der());
        assert_ne!(cert.current_leaf(), *first.cert.der());
        assert!(!cert.reload()?);
        Ok(())
    }

    #[test]
    fn bad_files_keep_the_old_cert() -> TestResult {
        let (_dir, files, first) = setup()?;
        let cert = ReloadingCert::load(files.clone())?;

        std::fs::write(&files.key, "garbage")?;
        let err = cert.reload().err().ok_or("garbage key accepted")?;
        assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
        assert_eq!(cert.current_leaf(), *first.cert.der());

        std::fs::write(&files.key, generate()?.key_pair.serialize_pem())?;
        let err = cert.reload().err().ok_or("foreign key accepted")?;
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        assert_eq!(cert.current_leaf(), *first.cert.der());

        write(&files, &first)?;
        std::fs::write(&files.cert, "")?;
        let err = cert.reload().err().ok_or("empty cert accepted")?;
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert_eq!(cert.current_leaf(), *first.cert.der());
        Ok(())
    }

    #[test]
    fn missing_file_is_named() -> TestResult {
        let (dir, mut files, _) = setup()?;
        files.key = dir.path().join("absent.pem");
        let err = ReloadingCert::load(files)
            .err()
            .ok_or("missing key accepted")?;
        assert!(err.to_string().contains("absent.pem"), "{err}");
        Ok(())
    }

    async fn peer(req: HttpRequest) -> String {
        match req.conn_data::<PeerCertificates>() {
            Some(peer) => format!("certs={}", peer.chain().len()),
            None => "none".to_owned(),
        }
    }

    #[actix_web::test]
    async fn serves_https_with_optional_client_certs_and_reloads() -> TestResult {
        let (_dir, files, first) = setup()?;
        let cert = ReloadingCert::load(files.clone())?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = HttpServer::new(|| App::new().route("/", web::get().to(peer)))
            .workers(1)
            .on_connect(on_connect)
            .listen_rustls_0_23(listener, cert.server_config())?
            .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);

        let url = format!("https://localhost:{}/", addr.port());
        let client = |trusted: &Generated, identity: Option<&Generated>| {
            let mut builder = reqwest::Client::builder()
                .use_rustls_tls()
                .resolve("localhost", addr)
                .add_root_certificate(reqwest::Certificate::from_pem(
                    trusted.cert.pem().as_bytes(),
                )?)
                .tls_info(true);
            if let Some(id) = identity {
                let pem = id.cert.pem() + &id.key_pair.serialize_pem();
                builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes())?);
            }
            builder.build()
        };
        let get = |client: reqwest::Client| {
            let url = url.clone();
            async move {
                let resp = client.get(url).send().await?.error_for_status()?;
                let leaf = resp
                    .extensions()
                    .get::<reqwest::tls::TlsInfo>()
                    .and_then(|info| info.peer_certificate())
                    .map(<[u8]>::to_vec);
                Ok::<_, reqwest::Error>((leaf, resp.text().await?))
            }
        };

        let (leaf, body) = get(client(&first, None)?).await?;
        assert_eq!(body, "none");
        assert_eq!(leaf.as_deref(), Some(first.cert.der().as_ref()));

        let (_, body) = get(client(&first, Some(&generate()?))?).await?;
        assert_eq!(body, "certs=1");

        let second = generate()?;
        write(&files, &second)?;
        assert!(cert.reload()?);
        let (leaf, body) = get(client(&second, None)?).await?;
        assert_eq!(body, "none");
        assert_eq!(leaf.as_deref(), Some(second.cert.der().as_ref()));

        handle.stop(false).await;
        Ok(())
    }
}
