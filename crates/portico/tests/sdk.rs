//! `portico-sdk` against the real binary: a service behind `portico up` that learns its
//! caller with the `Caller` extractor (checking `X-Portico-Identity` with the gateway's
//! JWKS), and a `Publisher` pushing an event to a user's WebSocket with a service client's
//! token.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use axum::Router;
use axum::routing::get;
use portico_sdk::{Caller, Publisher, Target, Verifier};
use serde_json::{Value, json};
use support::{Scratch, Server, register, request, ws_connect, ws_next};

#[test]
fn a_service_behind_portico_knows_its_caller_and_publishes_to_them() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The upstream's address must be in Portico's config before Portico's is known.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let scratch = Scratch::new();
    scratch.write(
        "portico.toml",
        &format!(
            r#"
[server]
data_dir = "data"

[[auth.clients]]
id = "etl-service"
secret = "etl-service-secret-0123456789"
audiences = ["realtime"]

[upstreams.etl]
url = "http://{upstream_addr}"

[[routes]]
prefix = "/api/etl"
upstream = "etl"
rewrite = "/api/v1"
auth = "required"

[roles.user]
permissions = ["etl.access"]
"#
        ),
    );
    let server = Server::start(scratch.path(), &["--config", "portico.toml"], &[]);
    let portico = format!("http://{}", server.addr);

    async fn whoami(caller: Caller) -> Result<axum::Json<Value>, portico_core::error::ApiError> {
        caller.require("etl.access")?;
        Ok(axum::Json(
            json!({"user_id": caller.user_id, "email": caller.email}),
        ))
    }
    let verifier = Verifier::jwks(&portico, "etl").unwrap();
    runtime.spawn(async move {
        upstream.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(upstream).unwrap();
        let app = Router::new()
            .route("/api/v1/whoami", get(whoami))
            .with_state(verifier);
        axum::serve(listener, app).await.unwrap();
    });

    // Through the gateway: the service verifies the identity Portico signed.
    let token = register(server.addr, "ada@example.com");
    let res = server.get(
        "/api/etl/whoami",
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["email"], "ada@example.com");
    let user_id = res.json()["user_id"].as_str().unwrap().to_owned();

    // Around the gateway: a forged X-User-ID is no identity.
    let direct = request(
        upstream_addr,
        "GET",
        "/api/v1/whoami",
        &[
            ("X-User-ID", &user_id),
            ("X-User-Permissions", "etl.access"),
        ],
        b"",
    );
    assert_eq!(direct.status, 401, "{}", direct.body);
    assert_eq!(direct.json()["error"]["code"], "AUTH_003");

    // The service tells the user's WebSocket, with its own client-credentials token.
    let mut ws = ws_connect(server.addr, &token);
    let mut next = move || ws_next(&mut ws);
    assert_eq!(next()["type"], "connection_established");
    let publisher = Publisher::with_client_credentials(
        &portico,
        "etl-service",
        "etl-service-secret-0123456789",
    )
    .unwrap();
    let offset = runtime
        .block_on(publisher.publish(
            Target::User(&user_id),
            "job_progress",
            json!({"job_id": "j1", "percent": 40}),
            Some(json!({"job_id": "j1"})),
        ))
        .unwrap();
    assert!(offset >= 1);
    let event = next();
    assert_eq!(event["type"], "job_progress", "{event}");
    assert_eq!(event["data"]["percent"], 40);
    assert_eq!(event["metadata"]["job_id"], "j1");
}
