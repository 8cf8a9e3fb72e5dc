//! `portico up` scaled out, as issue #7 asks: the same command with `PORTICO_DATABASE_URL`
//! and `PORTICO_REDIS_URL` runs on PostgreSQL and Redis, and two instances on them are one
//! Portico — an account made on one signs in on the other, a token of one is accepted by the
//! other, and a publication on one reaches a WebSocket on the other.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use serde_json::json;
use sqlx::{Connection, Executor};
use support::{JSON, Scratch, Server, register_user, request, service_token, ws_connect, ws_next};

const CONFIG: &str = r#"
[[auth.clients]]
id = "svc"
secret = "svc-secret-0123456789"
audiences = ["realtime"]
"#;

/// A new schema of the database at `base`, and the URL that puts Portico in it.
fn fresh_schema(runtime: &tokio::runtime::Runtime, base: &str) -> (String, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!("pt_up_{}_{nanos}", std::process::id());
    runtime.block_on(async {
        let mut admin = sqlx::PgConnection::connect(base).await.unwrap();
        admin
            .execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .unwrap();
    });
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    (schema, url)
}

#[test]
#[ignore = "needs PostgreSQL and Redis (PORTICO_TEST_DATABASE_URL, PORTICO_TEST_REDIS_URL)"]
fn two_portico_up_on_one_postgres_and_redis_are_one_portico() {
    let (Ok(database), Ok(redis)) = (
        std::env::var("PORTICO_TEST_DATABASE_URL"),
        std::env::var("PORTICO_TEST_REDIS_URL"),
    ) else {
        eprintln!("skipping: PORTICO_TEST_DATABASE_URL or PORTICO_TEST_REDIS_URL is not set");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (schema, url) = fresh_schema(&runtime, &database);
    let scratch = Scratch::new();
    scratch.write("portico.toml", CONFIG);
    let start = |data_dir: &str| {
        let server = Server::start(
            scratch.path(),
            &["--config", "portico.toml"],
            &[
                ("PORTICO_DATABASE_URL", url.as_str()),
                ("PORTICO_REDIS_URL", redis.as_str()),
                ("PORTICO_DATA_DIR", data_dir),
            ],
        );
        assert!(
            server
                .wait_for_line(|l| l.contains("(redis broker,"))
                .is_some(),
            "{:?}",
            server.output()
        );
        server
    };
    let one = start("one");
    let two = start("two");

    // An account made on one signs in on the other; a token of one is good on the other.
    let (token, user_id) = register_user(one.addr, "scaled@example.com");
    let login = request(
        two.addr,
        "POST",
        "/auth/login",
        &JSON,
        br#"{"email":"scaled@example.com","password":"correct horse battery"}"#,
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let me = two.get("/auth/me", &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["id"], user_id.as_str(), "{}", me.body);

    // A publication on one reaches the user's WebSocket on the other.
    let mut ws = ws_connect(two.addr, &token);
    assert_eq!(ws_next(&mut ws)["type"], "connection_established");
    let service = service_token(one.addr, "svc", "svc-secret-0123456789");
    let body = json!({"user_id": user_id, "event": "scaled_out", "data": {"from": "one"}});
    let published = request(
        one.addr,
        "POST",
        "/internal/publish",
        &[("Authorization", &format!("Bearer {service}")), JSON[0]],
        body.to_string().as_bytes(),
    );
    assert_eq!(published.status, 202, "{}", published.body);
    let frame = ws_next(&mut ws);
    assert_eq!(frame["type"], "scaled_out", "{frame}");
    assert_eq!(frame["data"]["from"], "one");

    // Both say what they run on.
    for server in [&one, &two] {
        let health = server.get("/health", &[]).json();
        assert_eq!(
            health["checks"]["database"]["status"], "healthy",
            "{health}"
        );
        assert_eq!(
            health["checks"]["realtime"]["status"], "healthy",
            "{health}"
        );
    }

    drop((one, two));
    runtime.block_on(async {
        let mut admin = sqlx::PgConnection::connect(&database).await.unwrap();
        admin
            .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
            .await
            .unwrap();
    });
}
