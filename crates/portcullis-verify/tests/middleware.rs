//! The tower (axum) and actix-web middleware: claims in the extensions on
//! success; status and `WWW-Authenticate` on failure.

#![cfg(all(feature = "tower", feature = "actix"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Test tables read best with short names and local helper types.
#![allow(
    clippy::many_single_char_names,
    clippy::items_after_statements,
    clippy::format_collect,
    clippy::too_many_lines
)]

mod common;

use axum::{body::Body, http::Request, routing::get, Extension, Router};
use common::{claims, Issuer, Key, NOW};
use portcullis_verify::{Clock, Requirements, VerifiedToken};
use tower::ServiceExt as _;

#[tokio::test]
async fn the_tower_layer_passes_verified_claims_and_answers_failures() {
    let key = Key::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let verifier = issuer.verifier(&Clock::manual(NOW));
    let app = Router::new()
        .route(
            "/orders",
            get(|Extension(t): Extension<VerifiedToken>| async move { t.claims().sub.clone() }),
        )
        .layer(portcullis_verify::tower::VerifyLayer::with_requirements(
            verifier,
            Requirements::new().scope("read"),
        ));
    let token = key.token(&claims(&issuer.url));
    let send = |auth: Option<String>| {
        let app = app.clone();
        async move {
            let mut req = Request::get("/orders").header("host", "api.example.com");
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
        }
    };

    let res = send(Some(format!("Bearer {token}"))).await;
    assert_eq!(res.status(), 200);
    let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
    assert_eq!(&body[..], b"svc-a");

    let res = send(None).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let res = send(Some(format!("Bearer {token}x"))).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));

    let mut narrow = claims(&issuer.url);
    narrow["scope"] = serde_json::json!("write");
    let res = send(Some(format!("Bearer {}", key.token(&narrow)))).await;
    assert_eq!(res.status(), 403);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("scope=\"read\""));
}

#[actix_web::test]
async fn the_actix_middleware_passes_verified_claims_and_answers_failures() {
    use actix_web::{test, web, App};

    let key = Key::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let verifier = issuer.verifier(&Clock::manual(NOW));
    let app = test::init_service(
        App::new()
            .wrap(portcullis_verify::actix::Verify::new(verifier))
            .route(
                "/orders",
                web::get().to(|t: web::ReqData<VerifiedToken>| async move {
                    t.claims().client_id.clone()
                }),
            ),
    )
    .await;
    let token = key.token(&claims(&issuer.url));

    let req = test::TestRequest::get()
        .uri("/orders")
        .insert_header(("authorization", format!("Bearer {token}")));
    let res = test::call_service(&app, req.to_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(&test::read_body(res).await[..], b"svc-a");

    let req = test::TestRequest::get()
        .uri("/orders")
        .insert_header(("authorization", "Bearer a.b.c"));
    let res = test::call_service(&app, req.to_request()).await;
    assert_eq!(res.status(), 401);
    let challenge = res
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
}
