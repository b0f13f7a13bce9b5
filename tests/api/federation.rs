//! Workload identity federation against the real server on both engines:
//! federations managed over the admin API; Kubernetes service-account
//! tokens, SPIFFE JWT-SVIDs and GitHub Actions tokens (signed by test
//! issuers served over loopback HTTP, or HTTPS pinned by a `ca_bundle`, or
//! an inline JWKS) as client assertions
//! (RFC 7523 §2.2) and JWT-bearer grants (RFC 7523 §2.1); every refusal with
//! its RFC error and an audit event; JWKS endpoints that are slow, huge or down.

use reqwest::{Method, Response, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::{
    helpers::{assert_describes, assert_error, Engine, TestApp},
    issuers::{
        github_claims, kubernetes_claims, nothing_listening, svid_claims, Issuer, Mode, RsaKey,
    },
    pki::{Ca, ClientKey},
};

pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A server that may fetch keys from loopback, with a 1 s fetch timeout.
pub async fn spawn(engine: Engine) -> TestApp {
    TestApp::spawn_with(
        engine,
        json!({
            "jwks_uri_allow_loopback": true,
            "jwks_fetch_timeout": 1,
            "jwks_cache_ttl": 300,
            "jwks_stale_max": 600,
            "jwks_refetch_interval": 10,
        }),
    )
    .await
}

/// Registers a federation; returns its view.
pub async fn federation(app: &TestApp, body: Value) -> Value {
    let res = app
        .admin(Method::POST, "/admin/federations", Some(body))
        .await;
    let status = res.status();
    let view: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{view}");
    view
}

/// Registers a secretless client authenticated by federated tokens.
pub async fn federated_client(app: &TestApp, id: &str, scope: &str) -> Value {
    app.register_client(json!({
        "client_id": id,
        "token_endpoint_auth_method": "federated_jwt",
        "grant_types": ["client_credentials", JWT_BEARER_GRANT],
        "scope": scope,
        "allowed_audiences": ["https://api.example.com"],
    }))
    .await
}

pub async fn post(app: &TestApp, form: &[(&str, &str)]) -> Response {
    app.http
        .post(app.url("/token"))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn grant(app: &TestApp, assertion: &str) -> Response {
    post(
        app,
        &[("grant_type", JWT_BEARER_GRANT), ("assertion", assertion)],
    )
    .await
}

async fn client_assertion(app: &TestApp, assertion: &str) -> Response {
    post(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
    )
    .await
}

fn now(app: &TestApp) -> i64 {
    app.clock.now().timestamp()
}

async fn ok_token(res: Response, case: &str) -> Value {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{case}: {body}");
    body
}

#[rstest]
#[tokio::test]
async fn federations_are_validated_stored_changed_and_audited(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = spawn(engine).await;
    let key = RsaKey::new("k1");
    let body = json!({
        "federation_id": "cluster-a",
        "issuer": "https://kubernetes.default.svc.cluster.local",
        "jwks": {"keys": [key.public_jwk()]},
        "audiences": ["https://portcullis.example"],
        "rules": [{"client_id": "payments", "sub_pattern": "system:serviceaccount:payments:*"}],
    });

    // Create, show, list.
    let view = federation(&app, body.clone()).await;
    assert_eq!(view["federation_id"], "cluster-a");
    assert_eq!(view["key_source"], "jwks");
    assert_eq!(view["allowed_algs"], json!(["RS256", "ES256"]));
    assert_eq!(view["max_token_age"], 3600);
    assert_eq!(view["enabled"], true);
    let shown: Value = app
        .admin(Method::GET, "/admin/federations/cluster-a", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown, view);
    let list: Value = app
        .admin(Method::GET, "/admin/federations", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["federations"], json!([view]));

    // The same id or issuer again: 409.
    let res = app
        .admin(Method::POST, "/admin/federations", Some(body.clone()))
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let mut same_issuer = body.clone();
    same_issuer["federation_id"] = json!("cluster-b");
    let res = app
        .admin(Method::POST, "/admin/federations", Some(same_issuer))
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);

    // Bad inputs: 400 invalid_request naming the member; nothing stored.
    let cases = [
        (json!({"issuer": null}), "issuer"),
        (json!({"audiences": []}), "audiences"),
        (json!({"allowed_algs": ["HS256"]}), "HS256"),
        (json!({"allowed_algs": ["none"]}), "none"),
        (json!({"rules": [{"client_id": "payments"}]}), "rules[0]"),
        (json!({"rules": []}), "rules or a rego"),
        (
            json!({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
            "jwks",
        ),
        (
            json!({"jwks": null, "issuer": "system:not-a-url"}),
            "discovered",
        ),
        (
            json!({"jwks": null, "jwks_uri": "https://169.254.169.254/keys"}),
            "jwks_uri",
        ),
        (
            json!({"ca_bundle": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"}),
            "ca_bundle",
        ),
        (
            json!({"rego": "package portcullis.federation\nclient_id := "}),
            "rego",
        ),
        (json!({"max_token_age": 0}), "max_token_age"),
        (json!({"unknown_member": 1}), "unknown_member"),
    ];
    for (change, word) in cases {
        let mut b = body.clone();
        b["federation_id"] = json!("bad");
        b["issuer"] = json!("https://bad.example");
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        let res = app.admin(Method::POST, "/admin/federations", Some(b)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{change}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"], "invalid_request", "{change}");
        assert!(
            err["error_description"].as_str().unwrap().contains(word),
            "{change}: {err}"
        );
    }
    let res = app.admin(Method::GET, "/admin/federations/bad", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Replace, disable, enable, delete.
    let mut changed = body.clone();
    changed["max_token_age"] = json!(600);
    let res = app
        .admin(Method::PUT, "/admin/federations/cluster-a", Some(changed))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["max_token_age"], 600);
    let res = app
        .admin(Method::PUT, "/admin/federations/other", Some(body.clone()))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "federation_id must match the URL"
    );
    let res = app
        .admin(Method::POST, "/admin/federations/cluster-a/disable", None)
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["enabled"], false);
    let res = app
        .admin(Method::POST, "/admin/federations/cluster-a/enable", None)
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["enabled"], true);
    let res = app
        .admin(Method::DELETE, "/admin/federations/cluster-a", None)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .admin(Method::DELETE, "/admin/federations/cluster-a", None)
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .http
        .get(app.url("/admin/federations"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "admin token required"
    );

    // Every change is in the audit trail, with the federation before and after.
    for kind in [
        "federation_created",
        "federation_updated",
        "federation_disabled",
        "federation_enabled",
        "federation_deleted",
    ] {
        let events = app.audit_details(kind).await;
        assert_eq!(events.len(), 1, "{kind}: {events:?}");
        assert!(events[0].contains("cluster-a"), "{kind}: {}", events[0]);
    }
    let created: Value =
        serde_json::from_str(&app.audit_details("federation_created").await[0]).unwrap();
    assert_eq!(
        created["after"]["issuer"],
        "https://kubernetes.default.svc.cluster.local"
    );
}

#[rstest]
#[tokio::test]
async fn a_kubernetes_service_account_token_authenticates_its_client_and_is_a_jwt_bearer_grant(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: a cluster whose issuer serves discovery and its JWKS.
    let app = spawn(engine).await;
    let key = RsaKey::new("k8s-2024");
    let cluster = Issuer::start(json!({"keys": [key.public_jwk()]})).await;
    let aud = app.state.oauth.issuer.clone();
    let view = federation(
        &app,
        json!({
            "federation_id": "prod-cluster",
            "issuer": cluster.url,
            "audiences": [aud],
            "rules": [{"client_id": "payments-api", "sub": "system:serviceaccount:payments:api"}],
        }),
    )
    .await;
    assert_eq!(view["key_source"], "discovery");
    federated_client(&app, "payments-api", "orders:read orders:write").await;
    let sa_token = key.sign(
        &json!({}),
        &kubernetes_claims(&cluster.url, &aud, "payments", "api", now(&app)),
    );

    // Act 1: the projected token as the client assertion (no client_id needed).
    let body = ok_token(client_assertion(&app, &sa_token).await, "client assertion").await;
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://api.example.com",
        )
        .await;
    assert_eq!(claims["sub"], "payments-api");
    assert_eq!(claims["client_id"], "payments-api");
    assert_eq!(claims["ext_sub"], "system:serviceaccount:payments:api");
    assert_eq!(claims["ext_iss"], cluster.url.as_str());
    assert_eq!(body["scope"], "orders:read orders:write");
    // The same token again (workloads reuse it within its lifetime), naming the client.
    let res = post(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "payments-api"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &sa_token),
        ],
    )
    .await;
    ok_token(res, "client assertion with client_id").await;

    // Act 2: the RFC 7523 §2.1 grant, narrowed to one scope.
    let res = post(
        &app,
        &[
            ("grant_type", JWT_BEARER_GRANT),
            ("assertion", &sa_token),
            ("scope", "orders:read"),
        ],
    )
    .await;
    let body = ok_token(res, "jwt-bearer grant").await;
    assert_eq!(body["scope"], "orders:read");
    assert!(body.get("refresh_token").is_none());
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://api.example.com",
        )
        .await;
    assert_eq!(claims["sub"], "payments-api");
    assert_eq!(claims["ext_sub"], "system:serviceaccount:payments:api");

    // Assert: the original subject is in the audit events; keys were fetched once.
    let issued = app.audit_details("token_issued").await;
    assert_eq!(issued.len(), 3, "{issued:?}");
    for event in &issued {
        let e: Value = serde_json::from_str(event).unwrap();
        assert_eq!(e["ext_sub"], "system:serviceaccount:payments:api", "{e}");
        assert_eq!(e["auth_method"], "federated_jwt", "{e}");
    }
    assert!(issued.iter().any(|e| e.contains(JWT_BEARER_GRANT)));
    assert_eq!(
        cluster.hits(),
        2,
        "discovery and JWKS, each fetched once and cached"
    );

    // Another service account of the cluster maps to nothing.
    let other = key.sign(
        &json!({}),
        &kubernetes_claims(&cluster.url, &aud, "payments", "worker", now(&app)),
    );
    let body = assert_error(
        grant(&app, &other).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "unmapped",
    )
    .await;
    assert_describes(&body, "no mapping rule");
    assert_error(
        client_assertion(&app, &other).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "unmapped",
    )
    .await;
    // A private_key_jwt client keeps working unchanged beside federations.
    let pk = ClientKey::new("pk1");
    let c = app
        .register_client(
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": ClientKey::jwks(&[&pk]),
                                "allowed_audiences": ["https://api.example.com"]}),
        )
        .await;
    let id = c["client_id"].as_str().unwrap();
    let a = pk.assertion(id, &app.url("/token"), now(&app));
    ok_token(client_assertion(&app, &a).await, "private_key_jwt").await;
}

#[rstest]
#[tokio::test]
async fn a_spiffe_jwt_svid_maps_by_pattern_with_an_inline_trust_bundle(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = spawn(engine).await;
    let key = ClientKey::new("spire-1");
    let mut jwk = key.public_jwk();
    // A SPIRE trust bundle marks JWT-SVID keys with use "jwt-svid".
    jwk["use"] = json!("jwt-svid");
    let aud = app.state.oauth.issuer.clone();
    federation(
        &app,
        json!({
            "issuer": "https://spire.example.org",
            "jwks": {"keys": [jwk]},
            "audiences": [aud],
            "allowed_algs": ["ES256"],
            "max_token_age": 600,
            "rules": [{"client_id": "pay-workloads", "sub_pattern": "spiffe://example.org/ns/pay/*", "scope": "ledger:read"}],
        }),
    )
    .await;
    federated_client(&app, "pay-workloads", "ledger:read ledger:write").await;
    let svid = |id: &str| {
        key.sign(
            &json!({"typ": "JWT"}),
            &svid_claims("https://spire.example.org", &aud, id, now(&app)),
        )
    };

    let body = ok_token(
        grant(&app, &svid("spiffe://example.org/ns/pay/sa/ledger")).await,
        "svid",
    )
    .await;
    assert_eq!(body["scope"], "ledger:read", "the rule narrows the scope");
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://api.example.com",
        )
        .await;
    assert_eq!(claims["ext_sub"], "spiffe://example.org/ns/pay/sa/ledger");

    // Another namespace, or a wider scope than the rule allows: refused.
    let body = assert_error(
        grant(&app, &svid("spiffe://example.org/ns/web/sa/ui")).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "other ns",
    )
    .await;
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("mapping"));
    let res = post(
        &app,
        &[
            ("grant_type", JWT_BEARER_GRANT),
            ("assertion", &svid("spiffe://example.org/ns/pay/x")),
            ("scope", "ledger:write"),
        ],
    )
    .await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid_scope", "wider scope").await;
}

#[rstest]
#[tokio::test]
async fn github_actions_tokens_map_by_claim_conditions_and_by_rego(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = spawn(engine).await;
    let key = RsaKey::new("gh-1");
    let gh = Issuer::start(json!({"keys": [key.public_jwk()]})).await;
    let aud = app.state.oauth.issuer.clone();
    federation(
        &app,
        json!({
            "issuer": gh.url,
            "jwks_uri": format!("{}/jwks", gh.url),
            "audiences": [aud],
            "allowed_algs": ["RS256"],
            "rules": [{"client_id": "shop-deployer", "claims": {
                "repository": "acme/shop",
                "ref": "refs/heads/main",
                "environment": ["production", "staging"],
                "job_workflow_ref": "acme/shop/.github/workflows/*@refs/heads/main",
            }}],
            "rego": "package portcullis.federation\nimport rego.v1\n\nclient_id := \"tools-ci\" if {\n  input.claims.repository_owner == \"acme\"\n  startswith(input.claims.repository, \"acme/tools-\")\n}\n\nscopes := [\"artifacts:read\"] if { input.claims.environment != \"production\" }\n",
        }),
    )
    .await;
    federated_client(&app, "shop-deployer", "deploy").await;
    federated_client(&app, "tools-ci", "artifacts:read artifacts:write").await;
    let token = |repo: &str, git_ref: &str, env: &str| {
        key.sign(
            &json!({"typ": "JWT", "x5t": "b2sJl9OFcQv3tNzFqTcKXpDk7-I"}),
            &github_claims(&gh.url, &aud, repo, git_ref, env, now(&app)),
        )
    };

    let body = ok_token(
        grant(&app, &token("acme/shop", "refs/heads/main", "production")).await,
        "main",
    )
    .await;
    assert_eq!(body["scope"], "deploy");
    ok_token(
        client_assertion(&app, &token("acme/shop", "refs/heads/main", "staging")).await,
        "staging",
    )
    .await;
    for (repo, git_ref, env) in [
        ("acme/shop", "refs/heads/feature", "production"),
        ("acme/shop", "refs/heads/main", "dev"),
        ("evil/shop", "refs/heads/main", "production"),
    ] {
        let case = format!("{repo} {git_ref} {env}");
        assert_error(
            grant(&app, &token(repo, git_ref, env)).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            &case,
        )
        .await;
    }
    // No rule matches: the Rego module maps tools repositories and narrows their scope.
    let body = ok_token(
        grant(&app, &token("acme/tools-lint", "refs/heads/main", "ci")).await,
        "rego",
    )
    .await;
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://api.example.com",
        )
        .await;
    assert_eq!(claims["sub"], "tools-ci");
    assert_eq!(body["scope"], "artifacts:read");
    let issued = app.audit_details("token_issued").await;
    assert!(
        issued
            .iter()
            .any(|e| e.contains("repo:acme/tools-lint:environment:ci")),
        "{issued:?}"
    );
}

#[rstest]
#[tokio::test]
async fn bad_federated_tokens_get_the_rfc_error_and_an_audit_event(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = spawn(engine).await;
    let key = RsaKey::new("k1");
    let cluster = Issuer::start(json!({"keys": [key.public_jwk()]})).await;
    let aud = app.state.oauth.issuer.clone();
    federation(
        &app,
        json!({
            "federation_id": "cluster",
            "issuer": cluster.url,
            "audiences": [aud],
            "max_token_age": 600,
            "rules": [
                {"client_id": "api", "sub": "system:serviceaccount:pay:api"},
                {"client_id": "ghost", "sub": "system:serviceaccount:pay:ghost"},
            ],
        }),
    )
    .await;
    federated_client(&app, "api", "read").await;
    let t = now(&app);
    let good = kubernetes_claims(&cluster.url, &aud, "pay", "api", t);
    let with = |change: Value| {
        let mut c = good.clone();
        for (k, v) in change.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let public = key.public_jwk();
    let hs256_with_public_key = {
        use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
        use ring::hmac;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": "k1"}).to_string()),
            URL_SAFE_NO_PAD.encode(good.to_string())
        );
        let secret = hmac::Key::new(hmac::HMAC_SHA256, public.to_string().as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(hmac::sign(&secret, input.as_bytes()))
        )
    };
    let alg_none = {
        use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
            URL_SAFE_NO_PAD.encode(good.to_string())
        )
    };
    let stranger = RsaKey::new("other-kid");
    let cases = [
        (
            "unknown issuer",
            key.sign(&json!({}), &with(json!({"iss": "https://unknown.example"}))),
            "not a trusted federation",
        ),
        (
            "key not in the JWKS",
            stranger.sign(&json!({}), &good),
            "kid",
        ),
        (
            "expired",
            key.sign(
                &json!({}),
                &with(json!({"iat": t - 500, "nbf": t - 500, "exp": t - 100})),
            ),
            "expired",
        ),
        (
            "not yet valid",
            key.sign(&json!({}), &with(json!({"nbf": t + 300}))),
            "nbf",
        ),
        (
            "too old",
            key.sign(&json!({}), &with(json!({"iat": t - 900, "nbf": t - 900}))),
            "max_token_age",
        ),
        (
            "wrong aud",
            key.sign(
                &json!({}),
                &with(json!({"aud": ["https://kubernetes.default.svc"]})),
            ),
            "aud",
        ),
        ("alg none", alg_none, "alg"),
        ("HS256 with the public key", hs256_with_public_key, "alg"),
        (
            "no mapping",
            key.sign(
                &json!({}),
                &with(json!({"sub": "system:serviceaccount:pay:other"})),
            ),
            "mapping",
        ),
        (
            "mapped client does not exist",
            key.sign(
                &json!({}),
                &with(json!({"sub": "system:serviceaccount:pay:ghost"})),
            ),
            "client",
        ),
        (
            "tampered",
            format!("{}x", key.sign(&json!({}), &good)),
            "signature",
        ),
    ];
    for (case, token, word) in &cases {
        let body = assert_error(
            grant(&app, token).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            case,
        )
        .await;
        assert!(
            body["error_description"].as_str().unwrap().contains(word),
            "{case}: {body}"
        );
    }
    // As client assertions the same tokens are invalid_client (the unknown
    // issuer is then read as a private_key_jwt assertion of an unknown client).
    for (case, token, _) in &cases {
        assert_error(
            client_assertion(&app, token).await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            case,
        )
        .await;
    }
    // A disabled federation refuses its tokens; enabled again, it accepts them.
    let token = key.sign(&json!({}), &good);
    ok_token(grant(&app, &token).await, "good").await;
    app.admin(Method::POST, "/admin/federations/cluster/disable", None)
        .await;
    let body = assert_error(
        grant(&app, &token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "disabled",
    )
    .await;
    assert_describes(&body, "disabled");
    assert_error(
        client_assertion(&app, &token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "disabled",
    )
    .await;
    app.admin(Method::POST, "/admin/federations/cluster/enable", None)
        .await;
    ok_token(grant(&app, &token).await, "enabled again").await;
    // A client that is not federated_jwt cannot be reached by a mapping.
    app.register_client(json!({"client_id": "ghost"})).await;
    let ghost = key.sign(
        &json!({}),
        &with(json!({"sub": "system:serviceaccount:pay:ghost"})),
    );
    assert_error(
        grant(&app, &ghost).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "secret client",
    )
    .await;

    // Every refusal is audited with its code.
    let denied = app.audit_details("token_denied").await;
    assert_eq!(denied.len(), cases.len() * 2 + 3, "{denied:?}");
    assert!(
        denied.iter().any(|d| d.contains("max_token_age")),
        "{denied:?}"
    );
}

#[rstest]
#[tokio::test]
async fn a_slow_huge_or_down_jwks_endpoint_is_a_bounded_clear_error_and_a_cached_set_outlives_an_outage(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = spawn(engine).await;
    let key = RsaKey::new("k1");
    let aud = app.state.oauth.issuer.clone();
    let issuers = [
        Issuer::start(json!({"keys": [key.public_jwk()]})).await,
        Issuer::start(json!({"keys": [key.public_jwk()]})).await,
    ];
    let down = nothing_listening().await;
    for (i, url) in [issuers[0].url.clone(), issuers[1].url.clone(), down.clone()]
        .iter()
        .enumerate()
    {
        federation(
            &app,
            json!({"federation_id": format!("f{i}"), "issuer": url, "jwks_uri": format!("{url}/jwks"), "audiences": [aud],
                   "rules": [{"client_id": "api", "sub_pattern": "*"}]}),
        )
        .await;
    }
    federated_client(&app, "api", "read").await;
    let token = |iss: &str| {
        key.sign(
            &json!({}),
            &kubernetes_claims(iss, &aud, "pay", "api", now(&app)),
        )
    };

    // Slow (beyond jwks_fetch_timeout), huge (beyond jwks_fetch_max_bytes), down: a clear invalid_grant.
    issuers[0].set_mode(Mode::Slow);
    issuers[1].set_mode(Mode::Huge);
    for (case, iss) in [
        ("slow", &issuers[0].url),
        ("huge", &issuers[1].url),
        ("down", &down),
    ] {
        let body = assert_error(
            grant(&app, &token(iss)).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            case,
        )
        .await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("keys are unavailable"),
            "{case}: {body}"
        );
        assert!(
            !body.to_string().contains("127.0.0.1"),
            "{case}: the endpoint's address is not echoed"
        );
    }

    // Once fetched, a set serves while its endpoint fails: for jwks_cache_ttl
    // plus jwks_stale_max (300 + 600 s here), then the error comes back.
    let issuer = &issuers[1];
    issuer.set_mode(Mode::Up);
    app.clock.advance(chrono::Duration::seconds(11)); // past the re-fetch interval
    ok_token(grant(&app, &token(&issuer.url)).await, "fetched").await;
    issuer.set_mode(Mode::Failing);
    app.clock.advance(chrono::Duration::seconds(500));
    ok_token(
        grant(&app, &token(&issuer.url)).await,
        "stale set while failing",
    )
    .await;
    app.clock.advance(chrono::Duration::seconds(401));
    assert_error(
        grant(&app, &token(&issuer.url)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "stale set expired",
    )
    .await;
    // The endpoint recovers: keys come back at the next attempt after the interval.
    issuer.set_mode(Mode::Up);
    app.clock.advance(chrono::Duration::seconds(11));
    ok_token(grant(&app, &token(&issuer.url)).await, "recovered").await;

    // The issuer rotates: a token with the new kid makes the server fetch
    // again (at most once per jwks_refetch_interval), not wait for the cache.
    let rotated = RsaKey::new("k2");
    issuer.publish(json!({"keys": [key.public_jwk(), rotated.public_jwk()]}));
    let hits = issuer.hits();
    let new_kid = rotated.sign(
        &json!({}),
        &kubernetes_claims(&issuer.url, &aud, "pay", "api", now(&app)),
    );
    assert_error(
        grant(&app, &new_kid).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "within the interval",
    )
    .await;
    assert_eq!(issuer.hits(), hits, "no fetch within the re-fetch interval");
    app.clock.advance(chrono::Duration::seconds(10));
    ok_token(grant(&app, &new_kid).await, "rotated key").await;
    assert_eq!(issuer.hits(), hits + 1, "one fetch for the unknown kid");
}

#[rstest]
#[tokio::test]
async fn keys_served_over_https_by_a_cluster_ca_are_fetched_only_through_its_ca_bundle(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange: three in-cluster issuers serving discovery and JWKS over
    // HTTPS with certificates of the cluster's CA; one federation trusts
    // that CA, one trusts another CA, one names no CA (public roots only).
    let app = spawn(engine).await;
    let key = RsaKey::new("k8s-tls");
    let cluster_ca = Ca::new("kubernetes");
    let other_ca = Ca::new("another cluster");
    let jwks = json!({"keys": [key.public_jwk()]});
    let pinned = Issuer::start_tls(jwks.clone(), &cluster_ca).await;
    let wrong_ca = Issuer::start_tls(jwks.clone(), &cluster_ca).await;
    let no_ca = Issuer::start_tls(jwks, &cluster_ca).await;
    assert!(
        pinned.url.starts_with("https://127.0.0.1:"),
        "{}",
        pinned.url
    );
    let aud = app.state.oauth.issuer.clone();
    for (id, issuer, ca) in [
        ("pinned", &pinned, Some(cluster_ca.pem())),
        ("wrong-ca", &wrong_ca, Some(other_ca.pem())),
        ("no-ca", &no_ca, None),
    ] {
        let mut body = json!({
            "federation_id": id,
            "issuer": issuer.url,
            "audiences": [aud],
            "rules": [{"client_id": "payments-api", "sub": "system:serviceaccount:payments:api"}],
        });
        if let Some(pem) = ca {
            body["ca_bundle"] = json!(pem);
        }
        let view = federation(&app, body).await;
        assert_eq!(view["key_source"], "discovery", "{id}");
    }
    federated_client(&app, "payments-api", "orders:read").await;
    let token = |iss: &str| {
        key.sign(
            &json!({}),
            &kubernetes_claims(iss, &aud, "payments", "api", now(&app)),
        )
    };

    // Act and assert: through the pinned CA, a Kubernetes service-account
    // token is a client assertion and a JWT-bearer grant.
    let sa_token = token(&pinned.url);
    let body = ok_token(client_assertion(&app, &sa_token).await, "pinned assertion").await;
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://api.example.com",
        )
        .await;
    assert_eq!(claims["sub"], "payments-api");
    assert_eq!(claims["ext_sub"], "system:serviceaccount:payments:api");
    assert_eq!(claims["ext_iss"], pinned.url.as_str());
    ok_token(grant(&app, &sa_token).await, "pinned grant").await;
    assert_eq!(
        pinned.hits(),
        2,
        "discovery and JWKS over HTTPS, each fetched once and cached"
    );

    // A certificate the federation does not trust: no request is ever
    // answered, and the token is refused with the RFC error, not a 500.
    for (case, issuer) in [("another CA", &wrong_ca), ("no CA bundle", &no_ca)] {
        let body = assert_error(
            grant(&app, &token(&issuer.url)).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            case,
        )
        .await;
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.contains("keys are unavailable"),
            "{case}: {body}"
        );
        assert!(
            !body.to_string().contains("127.0.0.1"),
            "{case}: the endpoint's address is not echoed"
        );
        // After the re-fetch interval, the client-assertion path is refused too.
        app.clock.advance(chrono::Duration::seconds(11));
        let body = assert_error(
            client_assertion(&app, &token(&issuer.url)).await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            case,
        )
        .await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("keys are unavailable"),
            "{case}: {body}"
        );
        assert_eq!(issuer.hits(), 0, "{case}: the TLS handshake failed");
    }

    // A literal private address is accepted only when a CA bundle pins
    // the fetch (an API server reached by its service IP), and then only
    // over https.
    let mut body = json!({
        "federation_id": "service-ip",
        "issuer": "https://10.96.0.1",
        "audiences": [aud],
        "rules": [{"client_id": "payments-api", "sub_pattern": "*"}],
    });
    let refused = |body: Value, case: &'static str| {
        let app = &app;
        async move {
            let res = app
                .admin(Method::POST, "/admin/federations", Some(body))
                .await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{case}");
            let err: Value = res.json().await.unwrap();
            assert_eq!(err["error"], "invalid_request", "{case}: {err}");
            err["error_description"].as_str().unwrap().to_owned()
        }
    };
    let description = refused(body.clone(), "private address without a CA bundle").await;
    assert!(description.contains("ca_bundle"), "{description}");
    body["ca_bundle"] = json!(cluster_ca.pem());
    let view = federation(&app, body.clone()).await;
    assert_eq!(view["key_source"], "discovery");
    body["federation_id"] = json!("plain-http");
    body["issuer"] = json!("http://10.96.0.2");
    let description = refused(body.clone(), "plain http with a CA bundle").await;
    assert!(description.contains("https"), "{description}");
    body["issuer"] = json!(no_ca.url.replace("https:", "http:"));
    let description = refused(body, "plain http to loopback with a CA bundle").await;
    assert!(description.contains("https"), "{description}");
}

#[rstest]
#[tokio::test]
async fn metadata_advertises_the_new_grants_and_federated_jwt(
    #[values(Engine::Sqlite)] engine: Engine,
) {
    let app = spawn(engine).await;
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let grants = meta["grant_types_supported"].as_array().unwrap();
    for g in [
        JWT_BEARER_GRANT,
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "client_credentials",
    ] {
        assert!(grants.contains(&json!(g)), "{g}: {meta}");
    }
    let methods = meta["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(
        methods.contains(&json!("federated_jwt")) && methods.contains(&json!("private_key_jwt"))
    );
}
