//! Values typed the way the environment types them (`600` an integer,
//! `true` a bool, `a,b` a string, `[a, b]` an array) reach every field type
//! of every section: through `Serialized` values parsed as `Env` parses them,
//! and through real `PORTCULLIS_*` variables in a `figment::Jail`.

use std::path::PathBuf;

use figment::{providers::Serialized, Figment};
use secrecy::ExposeSecret;

use super::{ConfigError, LogFormat, Settings};
use crate::keys::Algorithm;

/// A value as the `Env` provider makes it from a variable's text: `600` an
/// integer, `true` a bool, `[a, b]` an array, anything else a string.
fn env(text: &str) -> figment::value::Value {
    text.parse().unwrap()
}

/// Env-typed values of every field type, through the sections.
fn env_figment(pairs: &[(&str, &str)]) -> Figment {
    pairs.iter().fold(Figment::new(), |f, (k, v)| {
        f.merge(Serialized::default(k, env(v)))
    })
}

#[test]
fn values_typed_as_the_environment_types_them_reach_every_section() {
    let s = Settings::from_figment(&env_figment(&[
        ("listen", "0.0.0.0:9000"),
        ("admin_listen", "127.0.0.1:9001"),
        ("issuer", "https://auth.example"),
        ("workers", "3"),
        ("max_body_bytes", "2048"),
        ("request_timeout", "7"),
        ("trusted_proxies", "10.0.0.0/8, 127.0.0.1"),
        ("forwarded_client_cert", "true"),
        ("database_url", "postgres://db/x"),
        ("database_max_connections", "9"),
        (
            "admin_tokens",
            "first-admin-token-0001,second-admin-token-002",
        ),
        ("kek", "12345"),
        ("kek_generate", "false"),
        ("kek_file", "/etc/portcullis/kek"),
        ("old_kek_files", "[/a/kek, /b/kek]"),
        ("old_keks", "1234,abcd"),
        ("signing_alg", "RS256"),
        ("key_rotation_interval", "172800"),
        ("key_prepublish", "86400"),
        ("access_token_ttl", "600"),
        ("max_access_token_ttl", "1200"),
        ("clock_skew", "30"),
        ("policy_claims", "team"),
        ("rate_limit_ip_burst", "7"),
        ("token_quota_per_day", "1000"),
        ("argon2_concurrency", "4"),
        ("assertion_signing_algs", "ES256,RS256"),
        ("jwks_fetch_max_bytes", "4096"),
        ("log_format", "pretty"),
        ("log_level", "debug"),
    ]))
    .unwrap();
    let l = &s.listeners;
    assert_eq!(l.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(l.admin_listen.unwrap().to_string(), "127.0.0.1:9001");
    assert_eq!(l.issuer.as_deref(), Some("https://auth.example"));
    assert_eq!(
        (l.workers, l.max_body_bytes, l.request_timeout),
        (3, 2048, 7)
    );
    assert_eq!(l.trusted_proxies, ["10.0.0.0/8", "127.0.0.1"]);
    assert!(l.forwarded_client_cert);
    assert!(!s.database.is_sqlite());
    assert_eq!(s.database.database_max_connections, 9);
    assert_eq!(s.admin.admin_tokens.len(), 2);
    let k = &s.keys;
    assert_eq!(k.kek.as_ref().unwrap().expose_secret(), "12345");
    assert_eq!(k.kek_generate, Some(false));
    assert_eq!(k.kek_file, PathBuf::from("/etc/portcullis/kek"));
    assert_eq!(k.old_kek_files, [PathBuf::from("/a/kek"), "/b/kek".into()]);
    assert_eq!(k.old_keks[0].expose_secret(), "1234");
    assert_eq!(k.signing_alg, Algorithm::Rs256);
    assert_eq!(
        (k.key_rotation_interval, k.key_prepublish),
        (172_800, 86_400)
    );
    let t = &s.tokens;
    assert_eq!((t.access_token_ttl, t.max_access_token_ttl), (600, 1200));
    assert_eq!(t.clock_skew, 30);
    assert_eq!(t.retired_key_retention(), 1230);
    assert_eq!(t.policy_claims, ["team"]);
    assert_eq!(s.limits.rate_limit_ip_burst, 7);
    assert_eq!(s.limits.token_quota_per_day, 1000);
    assert_eq!(s.limits.argon2_permits(), 4);
    assert_eq!(s.client_auth.assertion_signing_algs, ["ES256", "RS256"]);
    assert_eq!(s.client_auth.jwks_fetch_max_bytes, 4096);
    assert_eq!(s.logging.log_format, LogFormat::Pretty);
    assert_eq!(s.logging.log_level, "debug");
    assert!(!s.may_generate_kek());
}

#[test]
fn a_mistyped_value_is_refused_with_its_key_named() {
    for (key, value) in [
        ("access_token_ttl", "ten"),
        ("workers", "-1"),
        ("admin_listen", "localhost"),
        ("forwarded_client_cert", "yes"),
        ("signing_alg", "HS256"),
        ("log_format", "xml"),
    ] {
        let err = Settings::from_figment(&env_figment(&[(key, value)])).unwrap_err();
        assert!(
            matches!(err, ConfigError::Load(_)) && err.to_string().contains(key),
            "{key}: {err}"
        );
    }
}

/// Real `PORTCULLIS_*` variables through [`Settings::load`].
#[test]
#[allow(clippy::result_large_err)] // the closure type of figment::Jail
fn environment_variables_load_through_the_sections() {
    figment::Jail::expect_with(|jail| {
        // Only the variables set here (the test command exports variables of its own).
        jail.clear_env();
        jail.set_env("PORTCULLIS_DATABASE_URL", "postgres://db/x");
        jail.set_env("PORTCULLIS_LISTEN", "0.0.0.0:9443");
        jail.set_env("PORTCULLIS_ADMIN_LISTEN", "127.0.0.1:9444");
        jail.set_env("PORTCULLIS_ACCESS_TOKEN_TTL", "600");
        jail.set_env("PORTCULLIS_KEY_REFRESH_INTERVAL", "0");
        jail.set_env("PORTCULLIS_MAX_HEADER_BYTES", "4096");
        jail.set_env("PORTCULLIS_KEK_GENERATE", "true");
        jail.set_env("PORTCULLIS_KEK", "12345");
        jail.set_env("PORTCULLIS_KEK_FILE", "/run/kek");
        jail.set_env(
            "PORTCULLIS_ADMIN_TOKENS",
            "first-admin-token-0001,second-admin-token-002",
        );
        jail.set_env("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/8,192.168.0.1");
        jail.set_env("PORTCULLIS_FORWARDED_CLIENT_CERT", "true");
        jail.set_env("PORTCULLIS_SIGNING_ALG", "EdDSA");
        jail.set_env("PORTCULLIS_JWKS_CACHE_TTL", "600");
        jail.set_env("PORTCULLIS_LOG_FORMAT", "pretty");
        let s = Settings::load(None).unwrap();
        assert_eq!(s.listeners.listen.to_string(), "0.0.0.0:9443");
        assert_eq!(s.listeners.admin_listen.unwrap().port(), 9444);
        assert_eq!(s.listeners.max_header_bytes, 4096);
        assert_eq!(s.listeners.trusted_proxies.len(), 2);
        assert!(s.listeners.forwarded_client_cert);
        assert_eq!(s.tokens.access_token_ttl, 600);
        assert_eq!(s.keys.key_refresh_interval, 0);
        assert_eq!(s.keys.kek.as_ref().unwrap().expose_secret(), "12345");
        assert_eq!(s.keys.kek_file, PathBuf::from("/run/kek"));
        assert_eq!(s.keys.signing_alg, Algorithm::EdDsa);
        assert!(s.may_generate_kek());
        assert_eq!(s.admin.admin_tokens.len(), 2);
        assert_eq!(s.client_auth.jwks_cache_ttl, 600);
        assert_eq!(s.logging.log_format, LogFormat::Pretty);

        jail.set_env("PORTCULLIS_UNKNOWN_KEY", "1");
        let message = Settings::load(None).unwrap_err().to_string();
        assert!(
            message.contains("PORTCULLIS_UNKNOWN_KEY: unknown setting (portcullis.example.toml"),
            "nothing alike to suggest: {message}"
        );
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // the closure type of figment::Jail
fn a_mistyped_environment_variable_is_named() {
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("PORTCULLIS_DATABASE_URL", "sqlite://x.db");
        jail.set_env("PORTCULLIS_REQUEST_TIMEOUT", "soon");
        let message = Settings::load(None).unwrap_err().to_string();
        assert!(
            message.contains("PORTCULLIS_REQUEST_TIMEOUT: invalid type"),
            "{message}"
        );
        Ok(())
    });
}

/// What Kubernetes injects into every pod for a Service named `portcullis`
/// with ports `http` (8080) and `admin` (9090).
const SERVICE_LINKS: &[(&str, &str)] = &[
    ("PORTCULLIS_PORT", "tcp://10.96.0.12:8080"),
    ("PORTCULLIS_PORT_8080_TCP", "tcp://10.96.0.12:8080"),
    ("PORTCULLIS_PORT_8080_TCP_PROTO", "tcp"),
    ("PORTCULLIS_PORT_8080_TCP_PORT", "8080"),
    ("PORTCULLIS_PORT_8080_TCP_ADDR", "10.96.0.12"),
    ("PORTCULLIS_PORT_9090_TCP", "tcp://10.96.0.12:9090"),
    ("PORTCULLIS_PORT_9090_TCP_PROTO", "tcp"),
    ("PORTCULLIS_PORT_9090_TCP_PORT", "9090"),
    ("PORTCULLIS_PORT_9090_TCP_ADDR", "10.96.0.12"),
    ("PORTCULLIS_SERVICE_HOST", "10.96.0.12"),
    ("PORTCULLIS_SERVICE_PORT", "8080"),
    ("PORTCULLIS_SERVICE_PORT_HTTP", "8080"),
    ("PORTCULLIS_SERVICE_PORT_ADMIN", "9090"),
];

#[test]
#[allow(clippy::result_large_err)] // the closure type of figment::Jail
fn kubernetes_service_link_variables_are_ignored() {
    figment::Jail::expect_with(|jail| {
        // Only the variables the test sets (the test command exports variables of its own).
        jail.clear_env();
        jail.clear_env();
        for (key, value) in SERVICE_LINKS {
            jail.set_env(key, value);
        }
        jail.set_env("PORTCULLIS_DATABASE_URL", "sqlite://x.db");
        let s = Settings::load(None).unwrap();
        assert_eq!(s.listeners.listen.to_string(), "127.0.0.1:8080");
        let mut ignored = s.ignored_variables.clone();
        ignored.sort_unstable();
        let mut expected: Vec<_> = SERVICE_LINKS.iter().map(|(k, _)| *k).collect();
        expected.sort_unstable();
        assert_eq!(ignored, expected);

        jail.set_env("PORTCULLIS_LISTEN", "0.0.0.0:9443");
        let s = Settings::load(None).unwrap();
        assert_eq!(
            s.listeners.listen.to_string(),
            "0.0.0.0:9443",
            "real settings still apply"
        );

        jail.set_env("PORTCULLIS_LISTNE", "0.0.0.0:9443");
        let message = Settings::load(None).unwrap_err().to_string();
        assert!(
            message.contains("PORTCULLIS_LISTNE: unknown setting; did you mean `listen`?"),
            "{message}"
        );
        assert!(
            !message.contains("admin_listen"),
            "no list of every key: {message}"
        );
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // the closure type of figment::Jail
fn a_service_link_shape_in_the_toml_file_is_still_refused() {
    figment::Jail::expect_with(|jail| {
        // Only the variables the test sets (the test command exports variables of its own).
        jail.clear_env();
        jail.clear_env();
        jail.create_file("portcullis.toml", "port = 8080\n")?;
        let message = Settings::load(Some("portcullis.toml".as_ref()))
            .unwrap_err()
            .to_string();
        assert!(message.contains("port in "), "{message}");
        assert!(
            message.contains("portcullis.toml: unknown setting"),
            "{message}"
        );
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // the closure type of figment::Jail
fn the_database_url_is_read_from_a_file() {
    figment::Jail::expect_with(|jail| {
        // Only the variables the test sets (the test command exports variables of its own).
        jail.clear_env();
        jail.clear_env();
        let url = "postgres://portcullis:s3cret-pw@db:5432/portcullis";
        jail.create_file("database-url", &format!("{url}\n"))?;
        let path = jail.directory().join("database-url");
        jail.set_env("PORTCULLIS_DATABASE_URL_FILE", path.display());
        let s = Settings::load(None).unwrap();
        assert_eq!(s.database.database_url.expose_secret(), url);
        assert!(!s.database.is_sqlite());
        assert_eq!(
            s.database.database_url_file.as_deref(),
            Some(path.as_path())
        );
        assert!(!format!("{s:?}").contains("s3cret-pw"));

        // Both forms at once: refused, naming both.
        jail.set_env("PORTCULLIS_DATABASE_URL", url);
        let message = Settings::load(None).unwrap_err().to_string();
        assert!(
            message.contains("database_url and database_url_file"),
            "{message}"
        );
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // the closure type of figment::Jail
fn a_missing_database_url_file_is_named_with_its_setting() {
    figment::Jail::expect_with(|jail| {
        // Only the variables the test sets (the test command exports variables of its own).
        jail.clear_env();
        jail.clear_env();
        let path = jail.directory().join("no-such-secret");
        jail.set_env("PORTCULLIS_DATABASE_URL_FILE", path.display());
        let err = Settings::load(None).unwrap_err();
        assert!(matches!(err, ConfigError::File { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("database_url_file"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // the closure type of figment::Jail
fn the_drain_delay_is_read_and_bounded() {
    figment::Jail::expect_with(|jail| {
        // Only the variables the test sets (the test command exports variables of its own).
        jail.clear_env();
        jail.clear_env();
        assert_eq!(
            Settings::load(None).unwrap().listeners.shutdown_drain_delay,
            5
        );
        jail.set_env("PORTCULLIS_SHUTDOWN_DRAIN_DELAY", "0");
        assert_eq!(
            Settings::load(None).unwrap().listeners.shutdown_drain_delay,
            0
        );
        jail.set_env("PORTCULLIS_SHUTDOWN_DRAIN_DELAY", "301");
        let message = Settings::load(None).unwrap_err().to_string();
        assert!(message.contains("shutdown_drain_delay"), "{message}");
        Ok(())
    });
}
