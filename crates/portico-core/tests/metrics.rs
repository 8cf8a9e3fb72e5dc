//! The Prometheus recorder and `/metrics` over real HTTP (its own test binary: the recorder
//! is process-global).

mod support;

use axum::Router;
use axum::routing::get;
use portico_core::request_id::RequestIdLayer;
use portico_core::telemetry::{Metrics, RouteLabel, http_metrics_layer};
use support::{TestServer, get as http_get};

#[tokio::test]
async fn metrics_renders_the_request_counter_and_histogram_after_a_request() {
    let metrics = Metrics::install().unwrap();
    // A fallback that routes by itself (as the gateway's does) names the route it served.
    let self_routed = |request: axum::extract::Request| async move {
        let mut response = axum::response::IntoResponse::into_response("proxied");
        if request.uri().path().starts_with("/api/etl/") {
            response
                .extensions_mut()
                .insert(RouteLabel("/api/etl".into()));
        } else {
            *response.status_mut() = axum::http::StatusCode::NOT_FOUND;
        }
        response
    };
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .merge(metrics.routes())
        .fallback(self_routed)
        .layer(http_metrics_layer())
        .layer(RequestIdLayer::new());
    let server = TestServer::start(app).await;

    assert_eq!(http_get(&server.url("/users/7")).await.status, 200);
    assert_eq!(http_get(&server.url("/users/8")).await.status, 200);
    assert_eq!(http_get(&server.url("/nope")).await.status, 404);
    assert_eq!(http_get(&server.url("/api/etl/jobs")).await.status, 200);
    assert_eq!(http_get(&server.url("/api/etl/runs")).await.status, 200);

    let reply = http_get(&server.url("/metrics")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = reply.text();
    let counter = text
        .lines()
        .find(|l| {
            l.starts_with("portico_http_requests_total{")
                && l.contains(r#"route="/users/{id}""#)
                && l.contains(r#"method="GET""#)
                && l.contains(r#"status="200""#)
        })
        .unwrap_or_else(|| panic!("no request counter in:\n{text}"));
    assert!(counter.ends_with(" 2"), "{counter}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("portico_http_requests_total{")
                && l.contains(r#"route="unmatched""#)
                && l.contains(r#"status="404""#)),
        "{text}"
    );
    let named = text
        .lines()
        .find(|l| {
            l.starts_with("portico_http_requests_total{") && l.contains(r#"route="/api/etl""#)
        })
        .unwrap_or_else(|| panic!("no counter for the named route in:\n{text}"));
    assert!(named.ends_with(" 2"), "{named}");
    let unmatched = text
        .lines()
        .find(|l| {
            l.starts_with("portico_http_requests_total{") && l.contains(r#"route="unmatched""#)
        })
        .unwrap();
    assert!(
        unmatched.ends_with(" 1"),
        "only /nope is unmatched: {unmatched}"
    );
    assert!(
        text.contains("portico_http_request_duration_seconds_bucket{"),
        "latency is a histogram with buckets:\n{text}"
    );
    assert!(
        text.contains("# TYPE portico_http_requests_total counter"),
        "{text}"
    );
}

#[test]
fn install_twice_returns_the_same_recorder() {
    let a = Metrics::install().unwrap();
    let b = Metrics::install().unwrap();
    metrics::counter!("portico_test_twice_total").increment(1);
    assert!(a.render().contains("portico_test_twice_total 1"));
    assert!(b.render().contains("portico_test_twice_total 1"));
}
