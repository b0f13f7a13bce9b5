//! The admin REST API: RFC 7591 registration and client management.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{assert_error, Engine, TestApp, ADMIN_TOKEN};

#[rstest]
#[tokio::test]
async fn registration_returns_rfc_7591_metadata_and_the_secret_exactly_once(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;

    let res = app
        .admin(
            Method::POST,
            "/admin/clients",
            Some(json!({
                "client_name": "orders",
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic",
                "scope": "orders:read orders:write",
                "allowed_audiences": ["https://orders.example"],
                "access_token_ttl": 120,
                "redirect_uris": ["https://ignored.example/cb"],
                "response_types": [],
            })),
        )
        .await;

    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let created: Value = res.json().await.unwrap();
    let id = created["client_id"].as_str().unwrap();
    assert_eq!(
        created["client_secret"].as_str().unwrap().len(),
        43,
        "256-bit secret, base64url"
    );
    assert_eq!(created["client_secret_expires_at"], 0);
    assert_eq!(created["client_id_issued_at"], app.clock.now().timestamp());
    assert_eq!(created["client_name"], "orders");
    assert_eq!(created["grant_types"], json!(["client_credentials"]));
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(created["scope"], "orders:read orders:write");
    assert_eq!(
        created["allowed_audiences"],
        json!(["https://orders.example"])
    );
    assert_eq!(created["default_audience"], "https://orders.example");
    assert_eq!(created["access_token_ttl"], 120);
    assert_eq!(created["enabled"], true);
    assert!(
        created.get("redirect_uris").is_none(),
        "inapplicable metadata is ignored"
    );

    let shown: Value = app
        .admin(Method::GET, &format!("/admin/clients/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        shown.get("client_secret").is_none(),
        "the secret is shown only at creation"
    );
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(shown, expected);
}

#[rstest]
#[tokio::test]
async fn clients_are_listed_in_pages(#[values(Engine::Sqlite, Engine::Postgres)] engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for n in ["c-1", "c-2", "c-3", "c-4", "c-5"] {
        app.register_client(json!({"client_id": n})).await;
    }

    let page: Value = app
        .admin(Method::GET, "/admin/clients?limit=2", None)
        .await
        .json()
        .await
        .unwrap();
    let ids = |p: &Value| {
        p["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["client_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&page), ["c-1", "c-2"]);
    assert_eq!(page["next_after"], "c-2");
    let page: Value = app
        .admin(Method::GET, "/admin/clients?limit=2&after=c-2", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&page), ["c-3", "c-4"]);
    let page: Value = app
        .admin(Method::GET, "/admin/clients?limit=2&after=c-4", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&page), ["c-5"]);
    assert_eq!(page["next_after"], Value::Null);
    assert!(page["clients"][0].get("client_secret").is_none());

    for (query, why) in [
        ("limit=0", "limit 0"),
        ("limit=201", "limit too big"),
        ("limit=abc", "limit not a number"),
        ("after=bad%20id", "bad cursor"),
        ("bogus=1", "unknown parameter"),
    ] {
        let res = app
            .admin(Method::GET, &format!("/admin/clients?{query}"), None)
            .await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid_request", why).await;
    }
}

#[rstest]
#[tokio::test]
async fn update_replaces_metadata_and_takes_effect_on_the_next_token(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;

    let res = app
        .admin(Method::PUT, &format!("/admin/clients/{id}"), Some(json!({"client_id": id, "scope": "read", "allowed_audiences": ["https://new.example"]})))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["scope"], "read");
    assert_eq!(
        updated["client_name"],
        Value::Null,
        "omitted fields are cleared (RFC 7592 full replacement)"
    );
    assert!(updated.get("client_secret").is_none());

    let res = app
        .token_basic(
            &id,
            &secret,
            &[("grant_type", "client_credentials"), ("scope", "write")],
        )
        .await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        "write no longer allowed",
    )
    .await;
    let body = app
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    app.verify(
        body["access_token"].as_str().unwrap(),
        "https://new.example",
    )
    .await;

    let res = app
        .admin(
            Method::PUT,
            &format!("/admin/clients/{id}"),
            Some(json!({"client_id": "other"})),
        )
        .await;
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        "client_id mismatch",
    )
    .await;
}

#[rstest]
#[tokio::test]
async fn secret_rotation_keeps_the_old_secret_for_the_grace_period_only(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, old) = app.standard_client().await;
    let cc = [("grant_type", "client_credentials")];

    let res = app
        .admin(
            Method::POST,
            &format!("/admin/clients/{id}/secret"),
            Some(json!({"grace_period": 600})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let rotated: Value = res.json().await.unwrap();
    let new = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(
        rotated["previous_secrets_expire_at"],
        app.clock.now().timestamp() + 600
    );

    // Both work during the grace period.
    app.token(&id, &old, &cc).await;
    app.token(&id, &new, &cc).await;

    // After it, only the new one does.
    app.clock.advance(Duration::seconds(601));
    let res = app.token_basic(&id, &old, &cc).await;
    assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "old secret after grace",
    )
    .await;
    app.token(&id, &new, &cc).await;

    // A rotation without grace ends the previous secret at once.
    let res = app
        .admin(Method::POST, &format!("/admin/clients/{id}/secret"), None)
        .await;
    let newest = res.json::<Value>().await.unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app.token_basic(&id, &new, &cc).await;
    assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "previous secret without grace",
    )
    .await;
    app.token(&id, &newest, &cc).await;

    for (body, why) in [
        (json!({"grace_period": -1}), "negative"),
        (json!({"grace_period": 99_999_999}), "too long"),
        (json!({"grace_period": "soon"}), "not a number"),
        (json!({"grace": 1}), "unknown member"),
    ] {
        let res = app
            .admin(
                Method::POST,
                &format!("/admin/clients/{id}/secret"),
                Some(body),
            )
            .await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid_request", why).await;
    }
    app.token(&id, &newest, &cc).await;
}

#[rstest]
#[tokio::test]
async fn deleting_a_client_ends_its_tokens_and_its_record(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, secret) = app.standard_client().await;

    let res = app
        .admin(Method::DELETE, &format!("/admin/clients/{id}"), None)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    let res = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_error(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "deleted client",
    )
    .await;
    for (method, path) in [
        (Method::GET, format!("/admin/clients/{id}")),
        (Method::DELETE, format!("/admin/clients/{id}")),
        (Method::POST, format!("/admin/clients/{id}/disable")),
        (Method::POST, format!("/admin/clients/{id}/secret")),
        (Method::PUT, format!("/admin/clients/{id}")),
    ] {
        let body = (method == Method::PUT).then(|| json!({}));
        let res = app.admin(method.clone(), &path, body).await;
        assert_error(
            res,
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("{method} {path}"),
        )
        .await;
    }
    // The id can be registered again.
    app.register_client(json!({"client_id": id})).await;
}

#[rstest]
#[tokio::test]
async fn admin_calls_without_a_valid_admin_token_are_401(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (id, _) = app.standard_client().await;
    let url = app.url("/admin/clients");
    let wrong = format!("{ADMIN_TOKEN}x");
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "no token"),
        (Some(format!("Bearer {wrong}")), "wrong token"),
        (Some(format!("Basic {ADMIN_TOKEN}")), "wrong scheme"),
        (Some("Bearer ".to_owned()), "empty token"),
    ];
    for (header, why) in cases {
        for req in [
            app.http.post(&url).json(&json!({"client_name": "x"})),
            app.http.get(&url),
            app.http.get(format!("{url}/{id}")),
            app.http.delete(format!("{url}/{id}")),
            app.http.post(format!("{url}/{id}/secret")),
        ] {
            let req = match &header {
                Some(h) => req.header("Authorization", h),
                None => req,
            };
            let res = req.send().await.unwrap();
            assert!(
                res.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{why}"
            );
            assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token", why).await;
        }
    }
    // Nothing changed: the client is still there, alone.
    let list: Value = app
        .admin(Method::GET, "/admin/clients", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["clients"].as_array().unwrap().len(), 1);
}

#[rstest]
#[tokio::test]
async fn invalid_registrations_are_refused_and_store_nothing(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"grant_types": ["authorization_code"]}),
            "unsupported grant type",
        ),
        (json!({"grant_types": []}), "empty grant types"),
        (
            json!({"grant_types": "client_credentials"}),
            "grant_types not an array",
        ),
        (
            json!({"token_endpoint_auth_method": "none"}),
            "public client",
        ),
        (
            json!({"token_endpoint_auth_method": "client_secret_jwt"}),
            "unsupported auth method",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt"}),
            "private_key_jwt without jwks or jwks_uri",
        ),
        (json!({"scope": "bad\"scope"}), "malformed scope"),
        (json!({"scope": 5}), "scope not a string"),
        (
            json!({"allowed_audiences": ["not a uri"]}),
            "relative audience",
        ),
        (
            json!({"allowed_audiences": "https://a"}),
            "audiences not an array",
        ),
        (
            json!({"allowed_audiences": ["https://a", "https://b"], "default_audience": "https://c"}),
            "default outside allow-list",
        ),
        (json!({"access_token_ttl": 0}), "zero lifetime"),
        (
            json!({"access_token_ttl": 86_401}),
            "lifetime over the server maximum",
        ),
        (json!({"access_token_ttl": "long"}), "lifetime not a number"),
        (
            json!({"client_id": "spaces are not allowed"}),
            "bad client id",
        ),
        (json!({"client_secret": "chosen"}), "chosen secret"),
        (json!([1, 2]), "not an object"),
    ];
    for (body, why) in cases {
        let res = app.admin(Method::POST, "/admin/clients", Some(body)).await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid_client_metadata", why).await;
    }
    let res = app
        .http
        .post(app.url("/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        "malformed JSON",
    )
    .await;
    let res = app
        .http
        .post(app.url("/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .form(&[("client_name", "x")])
        .send()
        .await
        .unwrap();
    assert_error(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request",
        "form body",
    )
    .await;
    let res = app
        .admin(
            Method::POST,
            "/admin/clients",
            Some(json!({"client_name": "x", "padding": "y".repeat(20_000)})),
        )
        .await;
    assert_error(
        res,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        "oversized body",
    )
    .await;

    let list: Value = app
        .admin(Method::GET, "/admin/clients", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["clients"], json!([]), "nothing was stored");
}

#[rstest]
#[tokio::test]
async fn a_taken_client_id_is_a_conflict(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    app.register_client(json!({"client_id": "billing", "scope": "a"}))
        .await;
    let res = app
        .admin(
            Method::POST,
            "/admin/clients",
            Some(json!({"client_id": "billing", "scope": "b"})),
        )
        .await;
    assert_error(res, StatusCode::CONFLICT, "conflict", "duplicate id").await;
    let shown: Value = app
        .admin(Method::GET, "/admin/clients/billing", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["scope"], "a", "the existing client is unchanged");
}

/// Typos do not create useless clients: an unknown member is refused with
/// the member meant, a wrong type names its member, a non-object body is
/// refused; IANA-registered metadata and a client's own view are accepted.
#[rstest]
#[tokio::test]
async fn misspelt_or_mistyped_registration_members_are_refused_with_the_member_meant(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let cases = [
        (
            json!({"scope": "a", "allowed_audience": ["https://a.example"]}),
            "unknown client metadata \"allowed_audience\": did you mean \"allowed_audiences\"?",
        ),
        (
            json!({"scopes": "a"}),
            "unknown client metadata \"scopes\": did you mean \"scope\"?",
        ),
        (
            json!({"access_token_ttl": "300"}),
            "access_token_ttl: invalid type: string \"300\", expected an integer",
        ),
        (json!([]), "the request body must be a JSON object"),
    ];
    for (body, message) in cases {
        for (method, path) in [
            (Method::POST, "/admin/clients".to_owned()),
            (Method::PUT, "/admin/clients/nobody".to_owned()),
        ] {
            let res = app.admin(method, &path, Some(body.clone())).await;
            let error = assert_error(
                res,
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                &body.to_string(),
            )
            .await;
            let description = error["error_description"].as_str().unwrap();
            assert!(description.starts_with(message), "{body}: {description}");
        }
    }
    let list: Value = app
        .admin(Method::GET, "/admin/clients", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["clients"], json!([]), "nothing was created: {list}");

    // Registered metadata that does not apply here is ignored, and what GET
    // shows can be sent back with PUT.
    let created = app
        .register_client(
            json!({"scope": "a", "redirect_uris": ["https://x/cb"], "logo_uri": "https://x/l.png"}),
        )
        .await;
    let id = created["client_id"].as_str().unwrap();
    let shown: Value = app
        .admin(Method::GET, &format!("/admin/clients/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .admin(
            Method::PUT,
            &format!("/admin/clients/{id}"),
            Some(shown.clone()),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["scope"], shown["scope"]);
}

/// Integer members take any JSON number without a fraction, as JSON Schema
/// (and so `openapi.yaml`) counts integers; a fraction, or a body that is not
/// a JSON object, is refused and changes nothing.
#[rstest]
#[tokio::test]
async fn integers_may_be_written_as_whole_floats_and_bodies_must_be_objects(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;

    let res = app
        .admin(
            Method::POST,
            "/admin/clients",
            Some(json!({ "client_id": "whole", "access_token_ttl": 300.0, "token_quota_per_hour": 2.5e3 })),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["access_token_ttl"], 300);
    assert_eq!(created["token_quota_per_hour"], 2500);

    let res = app
        .admin(
            Method::POST,
            "/admin/clients/whole/secret",
            Some(json!({ "grace_period": 60.0 })),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    for (method, path, body) in [
        (
            Method::POST,
            "/admin/clients",
            json!({ "client_id": "fraction", "access_token_ttl": 300.5 }),
        ),
        (Method::POST, "/admin/clients", json!([null, null])),
        (Method::PUT, "/admin/clients/whole", json!(["whole"])),
        (
            Method::POST,
            "/admin/clients/whole/secret",
            json!({ "grace_period": 0.5 }),
        ),
        (Method::POST, "/admin/clients/whole/secret", json!([])),
        (Method::POST, "/admin/keys/rotate", json!([false, false])),
    ] {
        let res = app.admin(method.clone(), path, Some(body.clone())).await;
        assert_eq!(
            res.status(),
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}"
        );
        let err: Value = res.json().await.unwrap();
        assert!(
            err["error"] == "invalid_client_metadata" || err["error"] == "invalid_request",
            "{err}"
        );
    }

    // Nothing was created or changed by the refused requests.
    let listed: Value = app
        .admin(Method::GET, "/admin/clients", None)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["whole"]);
    let shown: Value = app
        .admin(Method::GET, "/admin/clients/whole", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["access_token_ttl"], 300);
}
