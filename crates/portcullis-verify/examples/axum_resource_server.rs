//! An axum resource server accepting Portcullis access tokens.
//!
//! ```sh
//! PORTCULLIS_ISSUER=http://127.0.0.1:8080 AUDIENCE=https://api.example.com \
//!   cargo run -p portcullis-verify --features axum --example axum_resource_server
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/orders
//! # a DPoP-bound token: examples/python/dpop_client.py at the repository root
//! ```
//!
//! `/orders` needs scope `read`; `/orders/cancel` needs `write` and asks the
//! issuer whether the token was revoked (set `RS_CLIENT_ID`/`RS_CLIENT_SECRET`);
//! `/.well-known/oauth-protected-resource` is the RFC 9728 document.

use axum::{
    routing::{get, post},
    Extension, Json, Router,
};
use portcullis_verify::{
    tower::VerifyLayer, DpopConfig, IntrospectionConfig, ProtectedResourceMetadata, Requirements,
    VerifiedToken, Verifier, VerifierConfig,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let mut config = VerifierConfig::new(
        env("PORTCULLIS_ISSUER", "http://127.0.0.1:8080"),
        env("AUDIENCE", "https://api.example.com"),
    );
    config.realm = Some("orders".into());
    // Accept DPoP-bound tokens (RFC 9449) with a proof of their key, besides Bearer tokens.
    config.dpop = Some(DpopConfig::default());
    if let (Ok(id), Ok(secret)) = (
        std::env::var("RS_CLIENT_ID"),
        std::env::var("RS_CLIENT_SECRET"),
    ) {
        config.introspection = Some(IntrospectionConfig::new(id, secret));
    }
    let verifier = Verifier::new(config)?;
    if let Err(e) = verifier.warm_up().await {
        eprintln!("keys not fetched yet ({e}); the first request will try again");
    }
    let metadata = ProtectedResourceMetadata::for_verifier(&verifier).scopes(["read", "write"]);

    let read =
        Router::new()
            .route("/orders", get(list_orders))
            .layer(VerifyLayer::with_requirements(
                verifier.clone(),
                Requirements::new().scope("read"),
            ));
    let write =
        Router::new()
            .route("/orders/cancel", post(cancel))
            .layer(VerifyLayer::with_requirements(
                verifier,
                Requirements::new().scope("write").introspected(),
            ));
    let app = Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(move || async move { Json(metadata) }),
        )
        .merge(read)
        .merge(write);
    let listener = tokio::net::TcpListener::bind(env("LISTEN", "127.0.0.1:3000")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn list_orders(Extension(token): Extension<VerifiedToken>) -> String {
    format!("orders of {}\n", token.claims().sub)
}

async fn cancel(Extension(token): Extension<VerifiedToken>) -> String {
    format!(
        "cancelled for {} (token {} still active)\n",
        token.claims().client_id,
        token.claims().jti
    )
}
