//! OAuth 2.0 Token Exchange (RFC 8693) against the real server on both
//! engines: a service exchanges its caller's token for one to call the next
//! service, with and without an actor token, along a chain (nested `act`),
//! narrowing and never widening, never outliving the subject token, and
//! honouring `may_act` on a federated subject token.

use reqwest::StatusCode;
use rstest::rstest;
use serde_json::{json, Value};

use crate::{
    federation::{federated_client, federation, spawn},
    helpers::{assert_describes, basic, Engine, TestApp},
    issuers::kubernetes_claims,
    pki::ClientKey,
};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

struct Client {
    id: String,
    secret: String,
}

async fn client(app: &TestApp, body: Value) -> Client {
    let c = app.register_client(body).await;
    Client {
        id: c["client_id"].as_str().unwrap().to_owned(),
        secret: c["client_secret"].as_str().unwrap().to_owned(),
    }
}

async fn own_token(app: &TestApp, c: &Client) -> String {
    app.access_token(&c.id, &c.secret).await
}

/// A token exchange by `c`: (status, body).
async fn exchange(app: &TestApp, c: &Client, extra: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", EXCHANGE)];
    form.extend_from_slice(extra);
    let res = app
        .http
        .post(app.url("/token"))
        .header("Authorization", basic(&c.id, &c.secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

fn claims_of(token: &str) -> Value {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// `front` calls `orders`, which calls `stock`, which calls `billing`.
async fn services(app: &TestApp) -> (Client, Client, Client) {
    let front = client(
        app,
        json!({"client_name": "front", "scope": "orders:read orders:write",
               "allowed_audiences": ["https://orders.example"], "access_token_ttl": 300}),
    )
    .await;
    let orders = client(
        app,
        json!({"client_name": "orders", "grant_types": ["client_credentials", EXCHANGE],
               "scope": "orders:read orders:write stock:read",
               "allowed_audiences": ["https://orders.example", "https://stock.example"],
               "default_audience": "https://orders.example", "access_token_ttl": 900}),
    )
    .await;
    let stock = client(
        app,
        json!({"client_name": "stock", "grant_types": ["client_credentials", EXCHANGE],
               "scope": "orders:read stock:read",
               "allowed_audiences": ["https://stock.example", "https://billing.example"],
               "default_audience": "https://stock.example", "allow_introspection": true}),
    )
    .await;
    (front, orders, stock)
}

#[rstest]
#[tokio::test]
async fn exchanges_with_and_without_an_actor_and_along_a_chain_carry_act_and_only_narrow(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    // Arrange
    let app = TestApp::spawn(engine).await;
    let (front, orders, stock) = services(&app).await;
    let t1 = own_token(&app, &front).await;
    let t1_claims = claims_of(&t1);

    // Act 1: impersonation (no actor): the new token is about front, for orders.
    let (status, body) = exchange(
        &app,
        &orders,
        &[
            ("subject_token", &t1),
            ("subject_token_type", ACCESS_TOKEN),
            ("resource", "https://stock.example"),
            ("scope", "orders:read"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "orders:read");
    let c = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://stock.example",
        )
        .await;
    assert_eq!(
        (c["sub"].as_str(), c["client_id"].as_str()),
        (Some(front.id.as_str()), Some(orders.id.as_str()))
    );
    assert!(c.get("act").is_none(), "{c}");
    assert!(c["exp"].as_i64() <= t1_claims["exp"].as_i64());

    // Act 2: delegation: orders acts for front, proving itself with its own token.
    let orders_own = own_token(&app, &orders).await;
    let (status, body) = exchange(
        &app,
        &orders,
        &[
            ("subject_token", &t1),
            ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &orders_own),
            ("actor_token_type", JWT),
            ("audience", "https://stock.example"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let t2 = body["access_token"].as_str().unwrap().to_owned();
    let c2 = app.verify(&t2, "https://stock.example").await;
    assert_eq!(c2["sub"], front.id.as_str());
    assert_eq!(c2["act"], json!({"sub": orders.id}));
    assert_eq!(
        body["scope"], "orders:read orders:write",
        "the subject's scope within the client's"
    );

    // Act 3: the chain goes on: stock acts for front, after orders.
    let stock_own = own_token(&app, &stock).await;
    let (status, body) = exchange(
        &app,
        &stock,
        &[
            ("subject_token", &t2),
            ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &stock_own),
            ("actor_token_type", ACCESS_TOKEN),
            ("resource", "https://billing.example"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let t3 = body["access_token"].as_str().unwrap().to_owned();
    let c3 = app.verify(&t3, "https://billing.example").await;
    assert_eq!(
        c3["act"],
        json!({"sub": stock.id, "act": {"sub": orders.id}}),
        "nested act, current actor outermost"
    );
    assert_eq!(
        body["scope"], "orders:read",
        "narrowed to what stock may hold"
    );
    let shown = app.introspect(&stock.id, &stock.secret, &t3).await;
    assert_eq!(shown["active"], true);
    assert_eq!(shown["act"], c3["act"], "introspection shows act");
    assert_eq!(shown["sub"], front.id.as_str());

    // Assert: the audit trail names subject and actor chain.
    let issued = app.audit_details("token_issued").await;
    let exchanged: Vec<Value> = issued
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter(|e| e["grant_type"] == EXCHANGE)
        .collect();
    assert_eq!(exchanged.len(), 3);
    assert_eq!(exchanged[2]["act"], c3["act"]);
    assert_eq!(exchanged[2]["sub"], front.id.as_str());

    // Widening is refused: a scope the subject token lacks, an audience the client may not use.
    let (status, body) = exchange(
        &app,
        &orders,
        &[
            ("subject_token", &t1),
            ("subject_token_type", ACCESS_TOKEN),
            ("scope", "orders:read stock:read"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "{body}"
    );
    let (status, body) = exchange(
        &app,
        &orders,
        &[
            ("subject_token", &t1),
            ("subject_token_type", ACCESS_TOKEN),
            ("resource", "https://billing.example"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target")),
        "{body}"
    );
}

#[rstest]
#[tokio::test]
async fn bad_exchanges_get_the_rfc_error_and_an_audit_event(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    let (front, orders, stock) = services(&app).await;
    let elsewhere = client(
        &app,
        json!({"allowed_audiences": ["https://other.example"]}),
    )
    .await;
    let t1 = own_token(&app, &front).await;
    let other_aud = own_token(&app, &elsewhere).await;
    let st = |t: &str| {
        vec![
            ("subject_token", t.to_owned()),
            ("subject_token_type", ACCESS_TOKEN.to_owned()),
        ]
    };
    let cases: Vec<(&str, &Client, Vec<(&str, String)>, StatusCode, &str)> = vec![
        (
            "subject token of another audience",
            &orders,
            st(&other_aud),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "a token of stock's audience is not orders'",
            &stock,
            st(&t1),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "client not registered for token exchange",
            &front,
            st(&t1),
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
        ),
        (
            "garbage subject token",
            &orders,
            st("not-a-token"),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "no subject_token_type",
            &orders,
            vec![("subject_token", t1.clone())],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "refresh token requested",
            &orders,
            [
                st(&t1),
                vec![(
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:refresh_token".to_owned(),
                )],
            ]
            .concat(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "actor without type",
            &orders,
            [st(&t1), vec![("actor_token", t1.clone())]].concat(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "garbage actor",
            &orders,
            [
                st(&t1),
                vec![
                    ("actor_token", "x.y.z".to_owned()),
                    ("actor_token_type", JWT.to_owned()),
                ],
            ]
            .concat(),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
    ];
    for (case, c, form, status, code) in &cases {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, body) = exchange(&app, c, &form).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (*status, Some(*code)),
            "{case}: {body}"
        );
    }

    // Never outliving the subject token: 200 s into its 300, a 900 s client gets 100 s.
    let t1_exp = claims_of(&t1)["exp"].as_i64().unwrap();
    app.clock.advance(chrono::Duration::seconds(200));
    let (status, body) = exchange(
        &app,
        &orders,
        &[("subject_token", &t1), ("subject_token_type", ACCESS_TOKEN)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 100);
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["exp"]
            .as_i64()
            .unwrap(),
        t1_exp
    );
    // An expired subject token is refused.
    app.clock.advance(chrono::Duration::seconds(101));
    let (status, body) = exchange(
        &app,
        &orders,
        &[("subject_token", &t1), ("subject_token_type", ACCESS_TOKEN)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );

    let denied = app.audit_details("token_denied").await;
    assert_eq!(denied.len(), cases.len() + 1, "{denied:?}");
    // Malformed requests are refused before the grant is known.
    let of_exchange = denied.iter().filter(|d| d.contains(EXCHANGE)).count();
    assert_eq!(of_exchange, cases.len() + 1 - 3, "{denied:?}");
}

#[rstest]
#[tokio::test]
async fn a_federated_subject_token_is_exchanged_only_by_the_actor_its_may_act_names(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = spawn(engine).await;
    let (_, orders, stock) = services(&app).await;
    let key = ClientKey::new("k8s");
    let aud = app.state.oauth.issuer.clone();
    federation(
        &app,
        json!({"issuer": "https://k8s.example", "jwks": ClientKey::jwks(&[&key]), "audiences": [aud],
               "rules": [{"client_id": "pay-api", "sub": "system:serviceaccount:pay:api"}]}),
    )
    .await;
    federated_client(&app, "pay-api", "orders:read").await;
    let mut claims = kubernetes_claims(
        "https://k8s.example",
        &aud,
        "pay",
        "api",
        app.clock.now().timestamp(),
    );
    claims["may_act"] = json!({"sub": stock.id});
    let subject = key.sign(&json!({}), &claims);

    // orders is not the actor may_act names: refused.
    let (status, body) = exchange(
        &app,
        &orders,
        &[("subject_token", &subject), ("subject_token_type", JWT)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    assert_describes(&body, "may_act");
    let orders_own = own_token(&app, &orders).await;
    let (status, _) = exchange(
        &app,
        &stock,
        &[
            ("subject_token", &subject),
            ("subject_token_type", JWT),
            ("actor_token", &orders_own),
            ("actor_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an actor token of another party than may_act names"
    );

    // stock is: the token is about the mapped client, with the federated subject kept.
    let (status, body) = exchange(
        &app,
        &stock,
        &[("subject_token", &subject), ("subject_token_type", JWT)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let c = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "https://stock.example",
        )
        .await;
    assert_eq!(c["sub"], "pay-api");
    assert_eq!(c["client_id"], stock.id.as_str());
    assert_eq!(c["ext_sub"], "system:serviceaccount:pay:api");
    assert_eq!(body["scope"], "orders:read");
}

#[rstest]
#[tokio::test]
async fn the_token_policy_sees_the_subject_and_actor_tokens(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.rego");
    std::fs::write(
        &policy,
        r#"package portcullis
import rego.v1
default decision := {"allow": true}
decision := {"allow": false, "reason": "writers are not delegated"} if {
    input.grant_type == "urn:ietf:params:oauth:grant-type:token-exchange"
    contains(input.subject_token.scope, "orders:write")
    input.actor_token != null
}
"#,
    )
    .unwrap();
    let app = TestApp::spawn_with(engine, json!({ "policy_file": policy })).await;
    let (front, orders, _) = services(&app).await;
    let t1 = own_token(&app, &front).await;
    let st = [
        ("subject_token", t1.as_str()),
        ("subject_token_type", ACCESS_TOKEN),
    ];
    let (status, body) = exchange(&app, &orders, &st).await;
    assert_eq!(status, StatusCode::OK, "no actor: allowed: {body}");
    let actor = own_token(&app, &orders).await;
    let mut with_actor = st.to_vec();
    with_actor.extend([
        ("actor_token", actor.as_str()),
        ("actor_token_type", ACCESS_TOKEN),
    ]);
    let (status, body) = exchange(&app, &orders, &with_actor).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("access_denied")),
        "{body}"
    );
    assert_eq!(body["error_description"], "writers are not delegated");
}
