//! Loading, defaults, validation messages (each naming its setting), the keys
//! the sections read, and the redaction of secrets in `Debug`.

use super::*;
use crate::keys::Algorithm;
use figment::providers::Serialized;
use secrecy::ExposeSecret;

fn settings(pairs: &[(&str, serde_json::Value)]) -> Result<Settings, ConfigError> {
    let mut figment = Figment::new();
    for (k, v) in pairs {
        figment = figment.merge(Serialized::default(k, v));
    }
    Settings::from_figment(&figment)
}

#[test]
fn defaults_follow_the_specification() {
    let s = settings(&[]).unwrap();
    assert_eq!(s.listeners.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        s.database.database_url.expose_secret(),
        "sqlite://data/portcullis.db"
    );
    assert_eq!(s.keys.signing_alg, Algorithm::Es256);
    assert_eq!(s.tokens.access_token_ttl, 300);
    assert!(s.may_generate_kek());
}

#[test]
fn jwks_and_metrics_protections_are_on_by_default() {
    let l = settings(&[]).unwrap().limits;
    assert_eq!(
        (l.rate_limit_jwks_per_second, l.rate_limit_jwks_burst),
        (20, 100)
    );
    assert_eq!(
        (l.jwks_consumers_per_address, l.jwks_consumers_max),
        (16, 10_000)
    );
    assert!(!l.metrics_client_labels);
    assert!(settings(&[("jwks_consumers_max", 0.into())])
        .unwrap_err()
        .to_string()
        .contains("jwks_consumers_max"));
}

#[test]
fn failed_authentications_wait_100_ms_by_default_and_at_most_10_s() {
    let l = settings(&[]).unwrap().limits;
    assert_eq!(
        l.auth_failure_delay(),
        std::time::Duration::from_millis(100)
    );
    let l = settings(&[("auth_failure_delay_ms", 0.into())])
        .unwrap()
        .limits;
    assert!(l.auth_failure_delay().is_zero());
    assert!(settings(&[("auth_failure_delay_ms", 10_000.into())]).is_ok());
    assert!(settings(&[("auth_failure_delay_ms", 10_001.into())])
        .unwrap_err()
        .to_string()
        .contains("auth_failure_delay_ms must be at most 10000"));
}

#[test]
fn admin_tokens_accept_a_comma_separated_string_or_a_list() {
    let s = settings(&[(
        "admin_tokens",
        "first-admin-token-0001, second-admin-token-002".into(),
    )])
    .unwrap();
    assert_eq!(s.admin.admin_tokens.len(), 2);
    assert_eq!(
        s.admin.admin_tokens[1].expose_secret(),
        "second-admin-token-002"
    );
    let s = settings(&[("admin_tokens", serde_json::json!(["x-admin-token-00001"]))]).unwrap();
    assert_eq!(s.admin.admin_tokens.len(), 1);
}

#[test]
fn inconsistent_values_are_refused_with_the_setting_named() {
    let cases: &[(&[(&str, serde_json::Value)], &str)] = &[
        (&[("access_token_ttl", 0.into())], "access_token_ttl"),
        (&[("access_token_ttl", 7200.into())], "max_access_token_ttl"),
        (&[("issuer", "ftp://x".into())], "issuer"),
        (&[("issuer", "https://x/?a=b".into())], "issuer"),
        (&[("database_url", "mysql://x".into())], "database_url"),
        (&[("admin_tokens", "short".into())], "admin token"),
        (&[("listen", "not an address".into())], "listen"),
        (&[("unknown_key", 1.into())], "unknown_key"),
        (&[("key_prepublish", 300.into())], "key_prepublish"),
        (
            &[
                ("key_prepublish", 7200.into()),
                ("key_rotation_interval", 3600.into()),
            ],
            "key_rotation_interval",
        ),
        (&[("signing_alg", "HS256".into())], "signing_alg"),
        (&[("audit_retention", 30.into())], "audit_retention"),
        (
            &[("audit_export", "/nonexistent-dir/audit.jsonl".into())],
            "audit_export",
        ),
    ];
    for (pairs, needle) in cases {
        let err = settings(pairs)
            .err()
            .unwrap_or_else(|| panic!("{needle}: accepted"));
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
}

#[test]
fn the_example_configuration_file_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/portcullis.example.toml");
    let s = Settings::from_figment(&Figment::new().merge(Toml::file(path))).unwrap();
    assert_eq!(s.listeners.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.logging.log_format, LogFormat::Json);
    // It lists every key, set or commented out.
    let text = std::fs::read_to_string(path).unwrap();
    for key in known_keys() {
        assert!(
            text.lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} ="))),
            "{key} is not in portcullis.example.toml"
        );
    }
}

#[test]
fn postgres_does_not_generate_a_kek_unless_told_to() {
    let s = settings(&[("database_url", "postgres://localhost/x".into())]).unwrap();
    assert!(!s.may_generate_kek());
    let s = settings(&[
        ("database_url", "postgres://localhost/x".into()),
        ("kek_generate", true.into()),
    ])
    .unwrap();
    assert!(s.may_generate_kek());
}

#[test]
fn sections_read_disjoint_keys_and_together_every_documented_one() {
    let keys = known_keys();
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), keys.len(), "a key read by two sections");
    assert_eq!(keys.len(), 79);
    let readme = include_str!("../../README.md");
    for key in keys {
        assert!(
            readme.contains(&format!("| `{key}`")) || readme.contains(&format!("/ `{key}`")),
            "{key} is not in the README's settings table"
        );
    }
}

#[test]
fn an_unknown_key_is_refused_with_its_name_and_source() {
    let toml = "listen = \"127.0.0.1:8080\"\nlisten_adress = \"127.0.0.1:9\"\n";
    let err = Settings::from_figment(&Figment::new().merge(Toml::string(toml))).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(
            "listen_adress in TOML source string: unknown setting; did you mean `listen`?"
        ),
        "{message}"
    );
}

#[test]
fn debug_output_shows_no_secret() {
    let s = settings(&[
        ("database_url", "postgres://user:db-password@db/x".into()),
        ("admin_tokens", "admin-token-secret-0001".into()),
        ("kek", "kek-secret-value".into()),
        ("old_keks", "old-kek-secret".into()),
    ])
    .unwrap();
    let debug = format!("{s:?}");
    for secret in [
        "db-password",
        "admin-token-secret",
        "kek-secret",
        "old-kek-secret",
    ] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("listen: 127.0.0.1:8080"), "{debug}");
}

#[test]
fn forgetting_the_secrets_leaves_none_behind() {
    let mut s = settings(&[
        ("admin_tokens", "first-admin-token-0001".into()),
        ("kek", "a2VrLWJ5dGVzLWtlay1ieXRlcy1rZWstYnl0ZXMtMTI=".into()),
        (
            "old_keks",
            "b2xkLWtlay1ieXRlcy1vbGQta2VrLWJ5dGVzLTEyMw==".into(),
        ),
        ("database_url", "postgres://u:hunter2@db/portcullis".into()),
    ])
    .unwrap();
    s.forget_secrets();
    assert!(s.admin.admin_tokens.is_empty());
    assert!(s.keys.kek.is_none());
    assert!(s.keys.old_keks.is_empty());
    assert!(s.database.database_url.expose_secret().is_empty());
    assert_eq!(s.database.database_max_connections, 16, "the rest is kept");
}

#[test]
fn keys_in_a_toml_file_are_named_as_written_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    std::fs::write(&path, "listen_addr = \"127.0.0.1:9\"\n").unwrap();
    let message = Settings::from_figment(&Figment::new().merge(Toml::file(&path)))
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        format!(
            "invalid configuration: listen_addr in {}: unknown setting; did you mean `listen`? \
             (portcullis.example.toml and the README's Configuration table list every setting)",
            path.display()
        )
    );
    std::fs::write(&path, "access_token_ttl = \"ten\"\n").unwrap();
    let message = Settings::from_figment(&Figment::new().merge(Toml::file(&path)))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(&format!(
            "invalid configuration: access_token_ttl in {}: invalid type",
            path.display()
        )),
        "{message}"
    );
    assert!(!message.contains("default."), "{message}");
}

#[test]
fn a_host_name_to_listen_on_is_refused_with_the_address_to_write() {
    for key in ["listen", "admin_listen"] {
        let message = settings(&[(key, "localhost:8081".into())])
            .unwrap_err()
            .to_string();
        assert!(message.contains(key), "{message}");
        assert!(
            message.contains("\"localhost:8081\" is not an IP address and port")
                && message.contains("127.0.0.1:8081"),
            "{message}"
        );
    }
    let message = settings(&[("listen", "nonsense".into())])
        .unwrap_err()
        .to_string();
    assert!(message.contains("such as 127.0.0.1:8080"), "{message}");
    let s = settings(&[("listen", "[::1]:9000".into())]).unwrap();
    assert_eq!(s.listeners.listen.to_string(), "[::1]:9000");
}

#[test]
fn public_scopes_must_be_scope_tokens() {
    let s = settings(&[("public_scopes", "a, b:c".into())]).unwrap();
    assert_eq!(s.tokens.public_scopes, ["a", "b:c"]);
    let message = settings(&[("public_scopes", "a\"b".into())])
        .unwrap_err()
        .to_string();
    assert!(message.contains("public_scopes"), "{message}");
}
