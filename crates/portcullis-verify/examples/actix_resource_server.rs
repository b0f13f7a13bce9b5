//! An actix-web resource server accepting Portcullis access tokens.
//!
//! ```sh
//! PORTCULLIS_ISSUER=http://127.0.0.1:8080 AUDIENCE=https://api.example.com \
//!   cargo run -p portcullis-verify --features actix --example actix_resource_server
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/orders
//! # a DPoP-bound token: examples/python/dpop_client.py at the repository root
//! ```

use actix_web::{web, App, HttpResponse, HttpServer};
use portcullis_verify::{
    actix::Verify, DpopConfig, ProtectedResourceMetadata, Requirements, VerifiedToken, Verifier,
    VerifierConfig,
};

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let mut config = VerifierConfig::new(
        env("PORTCULLIS_ISSUER", "http://127.0.0.1:8080"),
        env("AUDIENCE", "https://api.example.com"),
    );
    config.realm = Some("orders".into());
    // Accept DPoP-bound tokens (RFC 9449) with a proof of their key, besides Bearer tokens.
    config.dpop = Some(DpopConfig::default());
    let verifier = Verifier::new(config)?;
    if let Err(e) = verifier.warm_up().await {
        eprintln!("keys not fetched yet ({e}); the first request will try again");
    }
    let metadata = ProtectedResourceMetadata::for_verifier(&verifier)
        .scopes(["read"])
        .to_json();
    let listen = env("LISTEN", "127.0.0.1:3000");
    println!("listening on http://{listen}");
    HttpServer::new(move || {
        let metadata = metadata.clone();
        App::new()
            .route(
                "/.well-known/oauth-protected-resource",
                web::get().to(move || {
                    let body = metadata.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(body)
                    }
                }),
            )
            .service(
                web::scope("/orders")
                    .wrap(Verify::with_requirements(
                        verifier.clone(),
                        Requirements::new().scope("read"),
                    ))
                    .route("", web::get().to(list_orders)),
            )
    })
    .bind(listen)?
    .run()
    .await?;
    Ok(())
}

async fn list_orders(token: web::ReqData<VerifiedToken>) -> String {
    format!("orders of {}\n", token.claims().sub)
}
