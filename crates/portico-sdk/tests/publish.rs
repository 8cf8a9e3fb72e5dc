//! `Publisher` and `ServiceClient` against a fake of Portico's `/auth/token`, publish API
//! and one gateway route on port 0: the bodies DESIGN.md names, the service token fetched
//! once and renewed when refused, and the envelope's code in every refusal.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use portico_sdk::{Publisher, ServiceClient, ServiceError, Target};
use serde_json::{Value, json};

#[derive(Default)]
struct Fake {
    /// Tokens handed out, in order.
    issued: Vec<String>,
    /// Tokens the publish API accepts.
    valid: Vec<String>,
    /// Publish and disconnect bodies, with their path.
    calls: Vec<(String, Value)>,
}

type Shared = Arc<Mutex<Fake>>;

fn envelope(status: StatusCode, code: &str) -> (StatusCode, axum::Json<Value>) {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": format!("{code} from the fake")}})),
    )
}

async fn token(
    axum::extract::State(fake): axum::extract::State<Shared>,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    let expected = [
        "grant_type=client_credentials",
        "client_id=agent",
        "client_secret=s3cret",
    ];
    if !expected.iter().all(|f| body.split('&').any(|g| g == *f)) {
        return envelope(StatusCode::UNAUTHORIZED, "AUTH_005");
    }
    let mut fake = fake.lock().unwrap();
    let token = format!("tok-{}", fake.issued.len() + 1);
    fake.issued.push(token.clone());
    fake.valid.push(token.clone());
    (
        StatusCode::OK,
        axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600})),
    )
}

async fn internal(
    axum::extract::State(fake): axum::extract::State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    let mut fake = fake.lock().unwrap();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    if !fake.valid.contains(&bearer) {
        return envelope(StatusCode::UNAUTHORIZED, "AUTH_001");
    }
    let body: Value = serde_json::from_str(&body).unwrap();
    if body["channel"] == "denied" {
        return envelope(StatusCode::FORBIDDEN, "AUTH_006");
    }
    fake.calls.push((uri.path().to_owned(), body));
    let offset = fake.calls.len();
    (StatusCode::ACCEPTED, axum::Json(json!({"offset": offset})))
}

/// A gateway route that answers who called it.
async fn route(
    axum::extract::State(fake): axum::extract::State<Shared>,
    headers: HeaderMap,
) -> (StatusCode, axum::Json<Value>) {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    if !fake.lock().unwrap().valid.contains(&bearer) {
        return envelope(StatusCode::UNAUTHORIZED, "AUTH_001");
    }
    (StatusCode::OK, axum::Json(json!({"caller": bearer})))
}

async fn fake_portico() -> (String, Shared) {
    let fake = Shared::default();
    let app = Router::new()
        .route("/auth/token", post(token))
        .route("/internal/publish", post(internal))
        .route("/internal/disconnect", post(internal))
        .route("/api/sessions/s1/context", get(route))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fake)
}

#[tokio::test]
async fn a_service_client_calls_a_route_with_its_token_and_shares_it_with_its_publisher() {
    let (url, fake) = fake_portico().await;
    let service = ServiceClient::with_client_credentials(&url, "agent", "s3cret").unwrap();
    let answer = service.get("/api/sessions/s1/context").await.unwrap();
    assert_eq!(answer, json!({"caller": "tok-1"}));
    let publisher = Publisher::from(service.clone());
    publisher
        .publish(Target::Channel("c"), "e", json!(1), None)
        .await
        .unwrap();
    assert_eq!(fake.lock().unwrap().issued, ["tok-1"], "one token for both");
    let refused = service.get("/api/nowhere").await.unwrap_err();
    assert!(
        matches!(&refused, ServiceError::Refused { status: 404, .. }),
        "{refused:?}"
    );
}

#[tokio::test]
async fn publish_except_names_the_connection_left_out() {
    let (url, fake) = fake_portico().await;
    let publisher = Publisher::with_client_credentials(&url, "agent", "s3cret").unwrap();
    publisher
        .publish_except(
            Target::Channel("session:s1"),
            "code-change",
            json!({"code": "fn main() {}"}),
            None,
            "conn-7",
        )
        .await
        .unwrap();
    let fake = fake.lock().unwrap();
    assert_eq!(
        fake.calls,
        [(
            "/internal/publish".to_owned(),
            json!({"channel": "session:s1", "event": "code-change",
                   "data": {"code": "fn main() {}"}, "exclude_connection_id": "conn-7"})
        )]
    );
}

#[tokio::test]
async fn publishes_to_channels_and_users_with_one_service_token() {
    let (url, fake) = fake_portico().await;
    let publisher = Publisher::with_client_credentials(&url, "agent", "s3cret").unwrap();
    let offset = publisher
        .publish(
            Target::Channel("job:42"),
            "progress",
            json!({"percent": 50}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(offset, 1);
    let offset = publisher
        .clone()
        .publish(
            Target::User("u-ada"),
            "agent_completed",
            json!({"result": "ok"}),
            Some(json!({"run_id": "r1", "thread_id": "t1", "agent_name": "triage"})),
        )
        .await
        .unwrap();
    assert_eq!(offset, 2);
    publisher.disconnect_user("u-ada").await.unwrap();

    let fake = fake.lock().unwrap();
    assert_eq!(fake.issued, ["tok-1"], "one token for every call");
    assert_eq!(
        fake.calls,
        [
            (
                "/internal/publish".to_owned(),
                json!({"channel": "job:42", "event": "progress", "data": {"percent": 50}})
            ),
            (
                "/internal/publish".to_owned(),
                json!({"user_id": "u-ada", "event": "agent_completed", "data": {"result": "ok"},
                       "metadata": {"run_id": "r1", "thread_id": "t1", "agent_name": "triage"}})
            ),
            (
                "/internal/disconnect".to_owned(),
                json!({"user_id": "u-ada"})
            ),
        ]
    );
}

#[tokio::test]
async fn a_refused_service_token_is_renewed_once() {
    let (url, fake) = fake_portico().await;
    let publisher = Publisher::with_client_credentials(&url, "agent", "s3cret").unwrap();
    publisher
        .publish(Target::Channel("c"), "e", json!(1), None)
        .await
        .unwrap();
    // Portico no longer accepts the token (a restart with new keys, a rotation).
    fake.lock().unwrap().valid.clear();
    publisher
        .publish(Target::Channel("c"), "e", json!(2), None)
        .await
        .unwrap();
    assert_eq!(fake.lock().unwrap().issued, ["tok-1", "tok-2"]);
}

#[tokio::test]
async fn refusals_carry_the_envelopes_code() {
    let (url, _fake) = fake_portico().await;
    let publisher = Publisher::with_client_credentials(&url, "agent", "s3cret").unwrap();
    let e = publisher
        .publish(Target::Channel("denied"), "e", json!({}), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::Refused { status: 403, code, .. } if code == "AUTH_006"),
        "{e:?}"
    );

    let wrong = Publisher::with_client_credentials(&url, "agent", "guess").unwrap();
    let e = wrong
        .publish(Target::Channel("c"), "e", json!({}), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::Refused { status: 401, code, .. } if code == "AUTH_005"),
        "{e:?}"
    );

    // A fixed token is not renewed: its refusal is the answer.
    let fixed = Publisher::with_token(&url, "not-issued").unwrap();
    let e = fixed.disconnect_user("u").await.unwrap_err();
    assert!(
        matches!(&e, ServiceError::Refused { status: 401, code, .. } if code == "AUTH_001"),
        "{e:?}"
    );

    let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);
    let e = Publisher::with_token(&dead, "t")
        .unwrap()
        .publish(Target::Channel("c"), "e", json!({}), None)
        .await
        .unwrap_err();
    assert!(matches!(e, ServiceError::Unreachable(_)), "{e:?}");
    assert!(matches!(
        Publisher::with_token("portico:8080", "t"),
        Err(ServiceError::Invalid(_))
    ));
}
