//! What each administrative action on a client does to everything the client
//! holds or may ask for, as one table: new tokens, refreshes, and the
//! introspection of the access and refresh tokens it was given before.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{assert_error, Engine, TestApp};

const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

/// What the client sees after an action: `None` is success, `Some((status,
/// error))` the OAuth error it gets.
type Outcome = Option<(StatusCode, &'static str)>;

struct Case {
    /// The admin call (`POST /admin/clients/{id}/<action>`, or `DELETE`).
    action: &'static str,
    /// A new client-credentials token.
    token: Outcome,
    /// A refresh with the refresh token issued before the action.
    refresh: Outcome,
    /// The call that undoes it (`enable` after `disable`), after which a token is issued.
    undo: Option<&'static str>,
}

const REFUSED_CLIENT: Outcome = Some((StatusCode::UNAUTHORIZED, "invalid_client"));

fn cases() -> [Case; 3] {
    [
        Case {
            action: "disable",
            token: REFUSED_CLIENT,
            refresh: REFUSED_CLIENT,
            undo: Some("enable"),
        },
        Case {
            action: "revoke-tokens",
            token: None,
            refresh: Some((StatusCode::BAD_REQUEST, "invalid_grant")),
            undo: None,
        },
        Case {
            action: "delete",
            token: REFUSED_CLIENT,
            refresh: REFUSED_CLIENT,
            undo: None,
        },
    ]
}

async fn expect(res: reqwest::Response, outcome: Outcome, case: &str) {
    match outcome {
        None => {
            let status = res.status();
            assert_eq!(
                status,
                StatusCode::OK,
                "{case}: {}",
                res.text().await.unwrap()
            );
        }
        Some((status, error)) => {
            assert_error(res, status, error, case).await;
        }
    }
}

#[rstest]
#[tokio::test]
async fn each_admin_action_on_a_client_ends_what_it_promises_at_once(
    #[values(Engine::Sqlite, Engine::Postgres)] engine: Engine,
) {
    let app = TestApp::spawn(engine).await;
    // The resource server introspecting the tokens.
    let (rs, rs_secret) = app.refresh_client(json!({})).await;
    for case in cases() {
        // Arrange: a client holding an access and a refresh token.
        let (id, secret) = app
            .refresh_client(json!({"allow_introspection": false}))
            .await;
        let body = app.token(&id, &secret, &CC).await;
        let access = body["access_token"].as_str().unwrap().to_owned();
        let refresh = body["refresh_token"].as_str().unwrap().to_owned();
        for t in [&access, &refresh] {
            assert_eq!(app.introspect(&rs, &rs_secret, t).await["active"], true);
        }

        // Act
        let res = if case.action == "delete" {
            app.admin(Method::DELETE, &format!("/admin/clients/{id}"), None)
                .await
        } else {
            let path = format!("/admin/clients/{id}/{}", case.action);
            app.admin(Method::POST, &path, None).await
        };
        assert!(
            res.status().is_success(),
            "{}: {}",
            case.action,
            res.status()
        );
        if case.action == "revoke-tokens" {
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["refresh_token_families_revoked"], 1, "{body}");
        }
        // Tokens issued later are not covered by a revocation at this second.
        app.clock.advance(Duration::seconds(1));

        // Assert: the tokens given before end at once, and no second chance
        // whatever the client tries.
        for t in [&access, &refresh] {
            let answer = app.introspect(&rs, &rs_secret, t).await;
            assert_eq!(answer, json!({"active": false}), "{}", case.action);
        }
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ];
        let what = format!("{}: refresh", case.action);
        expect(
            app.token_basic(&id, &secret, &form).await,
            case.refresh,
            &what,
        )
        .await;
        let what = format!("{}: new token", case.action);
        let res = app.token_basic(&id, &secret, &CC).await;
        if case.action == "disable" {
            let body = assert_error(res, StatusCode::UNAUTHORIZED, "invalid_client", &what).await;
            assert_eq!(body["error_description"], "the client is disabled");
        } else {
            expect(res, case.token, &what).await;
        }
        if case.action == "delete" {
            let left = app
                .column(&format!(
                    "SELECT id FROM refresh_families WHERE client_id = '{id}'"
                ))
                .await;
            assert!(left.is_empty(), "refresh tokens deleted with the client");
            assert_eq!(
                app.admin(Method::GET, &format!("/admin/clients/{id}"), None)
                    .await
                    .status(),
                StatusCode::NOT_FOUND
            );
        }

        if let Some(undo) = case.undo {
            let path = format!("/admin/clients/{id}/{undo}");
            assert_eq!(
                app.admin(Method::POST, &path, None).await.status(),
                StatusCode::OK
            );
            let fresh = app.access_token(&id, &secret).await;
            assert_eq!(
                app.introspect(&rs, &rs_secret, &fresh).await["active"],
                true,
                "{undo}"
            );
        }
    }
    // Actions on a client that does not exist: 404, nothing else.
    for (method, path) in [
        (Method::POST, "/admin/clients/nobody/disable"),
        (Method::POST, "/admin/clients/nobody/revoke-tokens"),
        (Method::DELETE, "/admin/clients/nobody"),
    ] {
        let res = app.admin(method, path, None).await;
        assert_error(res, StatusCode::NOT_FOUND, "not_found", path).await;
    }
}
