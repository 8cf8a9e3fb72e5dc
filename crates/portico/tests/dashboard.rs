//! The dashboard over real HTTP: `portico up` on port 0, a cookie jar, forms posted as a
//! browser posts them. The `chromium` test at the end drives a real headless Chromium
//! through chromium-driver (WebDriver); it is `#[ignore]`d and needs
//! `PORTICO_TEST_CHROMEDRIVER` (scripts/test sets it, installing Debian's chromium and
//! chromium-driver when it can).
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::json;
use support::{JSON, Scratch, Server, register, request, ws_connect, ws_next, ws_send};

const PASSWORD: &str = "correct horse battery";

/// A browser's cookies for one server.
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn take(&mut self, res: &support::Response) {
        for cookie in &res.set_cookies {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || cookie.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn get(&mut self, addr: SocketAddr, path: &str) -> support::Response {
        let cookie = self.header();
        let res = request(addr, "GET", path, &[("Cookie", cookie.as_str())], b"");
        self.take(&res);
        res
    }

    fn post(&mut self, addr: SocketAddr, path: &str, form: &[(&str, &str)]) -> support::Response {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let cookie = self.header();
        let origin = format!("http://{addr}");
        let res = request(
            addr,
            "POST",
            path,
            &[
                ("Cookie", cookie.as_str()),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", origin.as_str()),
            ],
            body.as_bytes(),
        );
        self.take(&res);
        res
    }

    fn csrf(&self) -> String {
        self.0["portico_csrf"].clone()
    }

    /// Signs `email` in through the form; the answer to the POST.
    fn sign_in(&mut self, addr: SocketAddr, email: &str, password: &str) -> support::Response {
        let page = self.get(addr, "/dashboard/sign-in");
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = self.csrf();
        self.post(
            addr,
            "/dashboard/sign-in",
            &[("email", email), ("password", password), ("csrf", &csrf)],
        )
    }
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn start(config: &str) -> (Scratch, Server) {
    let scratch = Scratch::new();
    scratch.write(
        "portico.toml",
        &format!("[server]\ndata_dir = \"data\"\n{config}"),
    );
    let server = Server::start(scratch.path(), &["--config", "portico.toml"], &[]);
    (scratch, server)
}

/// A user signed in through the dashboard.
fn signed_in(server: &Server, email: &str) -> Jar {
    register(server.addr, email);
    let mut jar = Jar::default();
    let res = jar.sign_in(server.addr, email, PASSWORD);
    assert_eq!(res.status, 303, "{}", res.body);
    jar
}

/// The value of `pk_…`-style text after `value="` in the new-key field.
fn shown_key(body: &str) -> String {
    let start = body.find("id=\"new-key\"").unwrap();
    let rest = &body[start..];
    let v = rest.find("value=\"").unwrap() + 7;
    let end = rest[v..].find('"').unwrap();
    rest[v..v + end].to_owned()
}

fn validate(addr: SocketAddr, token: &str) -> u16 {
    let body = json!({ "token": token }).to_string();
    request(addr, "POST", "/auth/validate", &JSON, body.as_bytes()).status
}

#[test]
fn the_sign_in_page_is_a_labelled_form_with_a_csrf_cookie() {
    let (_scratch, server) = start("");
    let mut jar = Jar::default();
    let res = jar.get(server.addr, "/dashboard/sign-in");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    for needle in [
        "<label for=\"email\">",
        "<label for=\"password\">",
        "id=\"email\"",
        "name=\"viewport\"",
        "/dashboard/assets/dashboard.css",
        "name=\"csrf\"",
    ] {
        assert!(res.body.contains(needle), "{needle} missing:\n{}", res.body);
    }
    let csrf = &res.set_cookies[0];
    assert!(csrf.starts_with("portico_csrf="), "{csrf}");
    assert!(
        csrf.contains("HttpOnly") && csrf.contains("SameSite=Strict"),
        "{csrf}"
    );
    let css = request(
        server.addr,
        "GET",
        "/dashboard/assets/dashboard.css",
        &[],
        b"",
    );
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
}

#[test]
fn a_wrong_password_is_answered_in_words_not_an_envelope() {
    let (_scratch, server) = start("");
    register(server.addr, "ana@example.com");
    let mut jar = Jar::default();
    let res = jar.sign_in(server.addr, "ana@example.com", "not the password");
    assert_eq!(res.status, 401);
    assert!(
        res.body.contains("Wrong email or password."),
        "{}",
        res.body
    );
    assert!(res.body.contains("role=\"alert\""), "{}", res.body);
    assert!(!res.body.contains("AUTH_005"), "{}", res.body);
    assert!(!jar.0.contains_key("portico_access"));
}

#[test]
fn signing_in_sets_strict_http_only_cookies_and_opens_the_status_page() {
    let (_scratch, server) = start(
        "[upstreams.billing]\nurl = \"http://127.0.0.1:9\"\n[[routes]]\nprefix = \"/api/billing\"\nupstream = \"billing\"\n",
    );
    register(server.addr, "ana@example.com");
    let mut jar = Jar::default();
    jar.get(server.addr, "/dashboard/sign-in");
    let before = jar.csrf();
    let res = jar.sign_in(server.addr, "ana@example.com", PASSWORD);
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.header("location"), Some("/dashboard/"));
    assert_ne!(jar.csrf(), before, "a sign-in replaces the CSRF token");
    let access = res
        .set_cookies
        .iter()
        .find(|c| c.starts_with("portico_access="))
        .unwrap();
    assert!(
        access.contains("HttpOnly") && access.contains("SameSite=Strict"),
        "{access}"
    );
    assert!(access.contains("Path=/dashboard"), "{access}");
    assert!(jar.0.contains_key("portico_refresh"));

    let page = jar.get(server.addr, "/dashboard/");
    assert_eq!(page.status, 200, "{}", page.body);
    for needle in [
        "Circuits",
        "billing",
        "closed",
        "data_dir",
        "id=\"connections\">0<",
        "ana@example.com",
    ] {
        assert!(
            page.body.contains(needle),
            "{needle} missing:\n{}",
            page.body
        );
    }
}

#[test]
fn pages_without_a_session_send_the_browser_to_sign_in() {
    let (_scratch, server) = start("");
    for path in ["/dashboard/", "/dashboard/keys", "/dashboard/demo"] {
        let res = request(server.addr, "GET", path, &[], b"");
        assert_eq!(res.status, 303, "{path}: {}", res.body);
        assert_eq!(res.header("location"), Some("/dashboard/sign-in"), "{path}");
    }
    let forged = request(
        server.addr,
        "GET",
        "/dashboard/",
        &[("Cookie", "portico_access=not-a-token")],
        b"",
    );
    assert_eq!(forged.status, 303);
}

#[test]
fn keys_are_created_shown_once_listed_without_secret_and_deleted() {
    let (_scratch, server) = start("");
    let mut jar = signed_in(&server, "ana@example.com");
    let csrf = jar.csrf();
    let created = jar.post(
        server.addr,
        "/dashboard/keys",
        &[("name", "ci"), ("csrf", &csrf)],
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.body.contains("shown only once"), "{}", created.body);
    let key = shown_key(&created.body);
    assert_eq!(validate(server.addr, &key), 200, "the shown key works");

    let listed = jar.get(server.addr, "/dashboard/keys");
    assert_eq!(listed.status, 200);
    assert!(
        listed.body.contains("<th scope=\"row\">ci</th>"),
        "{}",
        listed.body
    );
    assert!(!listed.body.contains(&key), "the list shows no secret");

    let id = {
        let at = listed.body.find("/dashboard/keys/").unwrap() + "/dashboard/keys/".len();
        let end = listed.body[at..].find('/').unwrap();
        listed.body[at..at + end].to_owned()
    };
    let deleted = jar.post(
        server.addr,
        &format!("/dashboard/keys/{id}/delete"),
        &[("csrf", &csrf)],
    );
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(
        deleted.header("location"),
        Some("/dashboard/keys?done=deleted")
    );
    let after = jar.get(server.addr, "/dashboard/keys?done=deleted");
    assert!(after.body.contains("Key deleted."), "{}", after.body);
    assert!(
        after.body.contains("You have no API keys."),
        "{}",
        after.body
    );
    assert_eq!(
        validate(server.addr, &key),
        401,
        "the deleted key is refused"
    );
}

#[test]
fn a_form_without_the_right_csrf_token_changes_nothing() {
    let (_scratch, server) = start("");
    let mut jar = signed_in(&server, "ana@example.com");
    let wrong = jar.post(
        server.addr,
        "/dashboard/keys",
        &[("name", "ci"), ("csrf", "guess")],
    );
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert!(
        wrong
            .body
            .contains("This form has expired or was sent from another site")
    );
    // The right token from another site's page.
    let cookie = jar.header();
    let body = format!("name=ci&csrf={}", jar.csrf());
    let cross = request(
        server.addr,
        "POST",
        "/dashboard/keys",
        &[
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "https://evil.example"),
        ],
        body.as_bytes(),
    );
    assert_eq!(cross.status, 403, "{}", cross.body);
    let listed = jar.get(server.addr, "/dashboard/keys");
    assert!(
        listed.body.contains("You have no API keys."),
        "{}",
        listed.body
    );
    // Signing out needs it too.
    let out = jar.post(server.addr, "/dashboard/sign-out", &[("csrf", "guess")]);
    assert_eq!(out.status, 403);
}

#[test]
fn user_controlled_text_is_escaped() {
    let (_scratch, server) = start("");
    let mut jar = signed_in(&server, "ana@example.com");
    let csrf = jar.csrf();
    let name = "<script>alert(1)</script>\"'&";
    let created = jar.post(
        server.addr,
        "/dashboard/keys",
        &[("name", name), ("csrf", &csrf)],
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let listed = jar.get(server.addr, "/dashboard/keys");
    assert!(!listed.body.contains("<script>alert"), "{}", listed.body);
    assert!(
        listed
            .body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"),
        "{}",
        listed.body
    );
    let mut stranger = Jar::default();
    let res = stranger.sign_in(
        server.addr,
        "\"><script>x()</script>@example.com",
        "wrong-password",
    );
    assert!(!res.body.contains("<script>x()"), "{}", res.body);
}

#[test]
fn an_expired_access_cookie_is_refreshed_with_the_refresh_cookie() {
    let (_scratch, server) = start("");
    let mut jar = signed_in(&server, "ana@example.com");
    let old_refresh = jar.0["portico_refresh"].clone();
    jar.0
        .insert("portico_access".into(), "expired.or.garbage".into());
    let page = jar.get(server.addr, "/dashboard/keys");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_ne!(jar.0["portico_refresh"], old_refresh, "rotated");
    assert_eq!(validate(server.addr, &jar.0["portico_access"]), 200);
}

#[test]
fn signing_out_ends_the_session() {
    let (_scratch, server) = start("");
    let mut jar = signed_in(&server, "ana@example.com");
    let access = jar.0["portico_access"].clone();
    let csrf = jar.csrf();
    let out = jar.post(server.addr, "/dashboard/sign-out", &[("csrf", &csrf)]);
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(out.header("location"), Some("/dashboard/sign-in"));
    assert!(!jar.0.contains_key("portico_access"));
    assert_eq!(
        validate(server.addr, &access),
        401,
        "the session's token is revoked"
    );
    assert_eq!(jar.get(server.addr, "/dashboard/").status, 303);
}

#[test]
fn the_root_redirects_to_the_dashboard_unless_a_route_claims_it() {
    let (_scratch, server) = start("");
    let url = format!("dashboard at http://{}/dashboard/", server.addr);
    assert!(
        server.wait_for_line(|l| l.contains(&url)).is_some(),
        "the start log names the dashboard's URL: {:?}",
        server.output()
    );
    let res = request(server.addr, "GET", "/", &[], b"");
    assert_eq!(res.status, 303);
    assert_eq!(res.header("location"), Some("/dashboard/"));

    let (_scratch, server) = start(
        "[upstreams.site]\nurl = \"http://127.0.0.1:9\"\n[[routes]]\nprefix = \"/\"\nupstream = \"site\"\nauth = \"none\"\n",
    );
    let res = request(server.addr, "GET", "/", &[], b"");
    assert_eq!(res.status, 503, "the gateway keeps /: {}", res.body);
    let page = request(server.addr, "GET", "/dashboard/sign-in", &[], b"");
    assert_eq!(page.status, 200, "the dashboard stays reachable");
}

#[test]
fn the_demo_page_says_in_words_when_no_agent_action_is_configured() {
    let (_scratch, server) = start("");
    let mut jar = signed_in(&server, "ana@example.com");
    let page = jar.get(server.addr, "/dashboard/demo");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("No start_agent action is configured"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("demo.js"));
}

#[test]
fn the_live_status_is_published_to_signed_in_connections() {
    let (_scratch, server) = start("[upstreams.billing]\nurl = \"http://127.0.0.1:9\"\n");
    let token = register(server.addr, "ana@example.com");
    let mut ws = ws_connect(server.addr, &token);
    assert_eq!(ws_next(&mut ws)["type"], "connection_established");
    ws_send(
        &mut ws,
        &json!({"action": "subscribe", "data": {"channel": "dashboard:status"}}),
    );
    let mut frame = ws_next(&mut ws);
    assert_eq!(frame["type"], "subscribed", "{frame}");
    // Published every 2 s; the socket's read timeout (10 s) is the deadline.
    while frame["type"] != "status_snapshot" {
        frame = ws_next(&mut ws);
    }
    assert_eq!(
        frame["data"]["services"][0]["service"], "billing",
        "{frame}"
    );
    assert_eq!(frame["data"]["connections"], 1, "{frame}");
    assert!(
        frame["data"]["health"]["checks"]["data_dir"].is_object(),
        "{frame}"
    );
    // Clients may not publish there.
    ws_send(
        &mut ws,
        &json!({"action": "publish", "data": {"channel": "dashboard:status", "event": "status_snapshot", "payload": {}}}),
    );
    loop {
        let f = ws_next(&mut ws);
        if f["type"] == "error" {
            break;
        }
        assert_eq!(f["type"], "status_snapshot", "{f}");
    }
}

#[test]
fn each_oauth_provider_gets_a_button_and_the_callback_becomes_a_session() {
    let (_scratch, server) = start(
        r#"
[auth.providers.corp]
client_id = "dash"
client_secret = "dash-secret"
authorize_url = "https://id.example.com/authorize"
token_url = "https://id.example.com/token"
userinfo_url = "https://id.example.com/userinfo"
"#,
    );
    // As a browser that opened http://127.0.0.1:8080/, which the default allow-list allows.
    let page = request(
        server.addr,
        "GET",
        "/dashboard/sign-in",
        &[("Host", "127.0.0.1:8080")],
        b"",
    );
    assert_eq!(page.status, 200);
    let href = "/auth/oauth?provider=corp&amp;redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fdashboard%2Foauth%2Fcallback";
    assert!(page.body.contains(href), "{}", page.body);
    assert!(
        page.body.contains(">Sign in with corp</a>"),
        "{}",
        page.body
    );
    let to_provider = request(server.addr, "GET", &href.replace("&amp;", "&"), &[], b"");
    assert_eq!(to_provider.status, 302, "{}", to_provider.body);
    assert!(
        to_provider
            .header("location")
            .unwrap()
            .starts_with("https://id.example.com/authorize?"),
        "{:?}",
        to_provider.headers
    );

    // Auth's callback sent the browser here with the tokens in the fragment; the page's
    // script posts them.
    let mut jar = Jar::default();
    let callback = jar.get(server.addr, "/dashboard/oauth/callback");
    assert_eq!(callback.status, 200);
    assert!(
        callback.body.contains("/dashboard/assets/oauth.js"),
        "{}",
        callback.body
    );
    assert!(callback.body.contains("<noscript>"), "{}", callback.body);
    let csrf = jar.csrf();
    let bogus = jar.post(
        server.addr,
        "/dashboard/oauth/complete",
        &[
            ("access_token", "forged"),
            ("refresh_token", "x"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(bogus.status, 401, "{}", bogus.body);
    assert!(bogus.body.contains("did not finish"), "{}", bogus.body);
    assert!(!jar.0.contains_key("portico_access"));

    let body = r#"{"email":"oauth@example.com","password":"correct horse battery"}"#;
    let tokens = request(
        server.addr,
        "POST",
        "/auth/register",
        &JSON,
        body.as_bytes(),
    )
    .json();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let done = jar.post(
        server.addr,
        "/dashboard/oauth/complete",
        &[
            ("access_token", access),
            ("refresh_token", refresh),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), Some("/dashboard/"));
    let status = jar.get(server.addr, "/dashboard/");
    assert_eq!(status.status, 200);
    assert!(status.body.contains("oauth@example.com"), "{}", status.body);
}

// === the browser test ===

/// `chromedriver --port=<free>`, killed when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Driver {
    fn start(path: &str) -> Driver {
        let addr = support::free_addr();
        let child = std::process::Command::new(path)
            .arg(format!("--port={}", addr.port()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
        let until = std::time::Instant::now() + support::DEADLINE;
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < until,
                "chromedriver did not start on {addr}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://{addr}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clicks the element `at` finds.
async fn click(client: &fantoccini::Client, at: fantoccini::Locator<'_>) {
    client.find(at).await.unwrap().click().await.unwrap();
}

/// Types `text` into the element `css` finds.
async fn type_into(client: &fantoccini::Client, css: &str, text: &str) {
    let field = client.find(fantoccini::Locator::Css(css)).await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// Where the README's screenshots go.
fn screenshot_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
}

#[test]
#[ignore = "needs Debian's chromium and chromium-driver: PORTICO_TEST_CHROMEDRIVER (scripts/test)"]
fn chromium_signs_in_manages_a_key_and_watches_an_agent_run() {
    let driver_path = std::env::var("PORTICO_TEST_CHROMEDRIVER")
        .expect("PORTICO_TEST_CHROMEDRIVER names the chromium-driver binary");
    let agent = support::free_addr();
    let scratch = Scratch::new();
    scratch.write(
        "portico.toml",
        &format!(
            r#"
[server]
data_dir = "data"

[[auth.clients]]
id = "agent-demo"
secret = "agent-demo-secret-0123456789"
audiences = ["realtime"]

# Shown as a button; never followed here (no network).
[auth.providers.github]
client_id = "dashboard-test"
client_secret = "dashboard-test-secret"

[upstreams.agent]
url = "http://{agent}"
internal_token = "agent-internal-secret"
health = "/health"

[[routes]]
prefix = "/api/agent"
upstream = "agent"
auth = "required"

[realtime.actions]
start_agent = {{ upstream = "agent", path = "/api/agent/start" }}
"#
        ),
    );
    let server = Server::start(scratch.path(), &["--config", "portico.toml"], &[]);
    let portico_url = format!("http://{}", server.addr);
    let _demo = support::Demo::start(
        scratch.path(),
        "agent",
        agent,
        &[
            "--portico",
            &portico_url,
            "--client-id",
            "agent-demo",
            "--internal-token",
            "agent-internal-secret",
        ],
        &[("PORTICO_DEMO_CLIENT_SECRET", "agent-demo-secret-0123456789")],
    );
    register(server.addr, "founder@example.com");
    let driver = Driver::start(&driver_path);
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        use fantoccini::{ClientBuilder, Locator};
        use std::time::Duration;

        let mut caps = serde_json::Map::new();
        let mut chrome = json!({"args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1100,900"
        ]});
        if let Ok(binary) = std::env::var("PORTICO_TEST_CHROMIUM") {
            chrome["binary"] = json!(binary);
        }
        caps.insert("goog:chromeOptions".into(), chrome);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a WebDriver session of chromium");
        let wait = |c: &fantoccini::Client, css: &'static str| {
            let c = c.clone();
            async move {
                c.wait()
                    .at_most(Duration::from_secs(20))
                    .for_element(Locator::Css(css))
                    .await
                    .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            }
        };
        let shot = |c: &fantoccini::Client, name: &'static str| {
            let c = c.clone();
            let path = shots.join(name);
            async move {
                let png = c.screenshot().await.unwrap();
                std::fs::write(&path, png).unwrap();
            }
        };

        // Sign in: the dashboard sends an anonymous browser to the sign-in page.
        client.goto(&format!("{portico_url}/")).await.unwrap();
        wait(&client, "#email").await;
        let button = client
            .find(Locator::LinkText("Sign in with github"))
            .await
            .unwrap();
        let href = button.attr("href").await.unwrap().unwrap();
        assert!(
            href.contains("/auth/oauth?provider=github&redirect_uri="),
            "{href}"
        );
        assert!(
            client
                .current_url()
                .await
                .unwrap()
                .path()
                .ends_with("/dashboard/sign-in")
        );
        type_into(&client, "#email", "founder@example.com").await;
        type_into(&client, "#password", "wrong password!").await;
        click(&client, Locator::Css("form.card button[type=submit]")).await;
        let error = wait(&client, "#form-error").await;
        assert_eq!(error.text().await.unwrap(), "Wrong email or password.");
        type_into(&client, "#password", PASSWORD).await;
        shot(&client, "sign-in.png").await;
        click(&client, Locator::Css("form.card button[type=submit]")).await;

        // Status, live over the WebSocket.
        wait(&client, "#live[data-state=on]").await;
        wait(&client, "#services tbody tr").await;
        let connections = client.find(Locator::Css("#connections")).await.unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while connections.text().await.unwrap() == "0" {
            assert!(
                std::time::Instant::now() < until,
                "the live count never showed this page"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        shot(&client, "status.png").await;

        // API keys: create (shown once), then delete.
        click(&client, Locator::LinkText("API keys")).await;
        wait(&client, "#key-name")
            .await
            .send_keys("browser-test")
            .await
            .unwrap();
        click(&client, Locator::Css("form.card button[type=submit]")).await;
        let key = wait(&client, "#new-key")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap();
        assert!(key.len() > 20, "{key}");
        shot(&client, "keys.png").await;
        click(
            &client,
            Locator::Css("button[aria-label='Delete key browser-test']"),
        )
        .await;
        let notice = wait(&client, "p.notice").await;
        assert!(notice.text().await.unwrap().contains("Key deleted."));
        wait(&client, "#no-keys").await;

        // The agent demo: start a run, see its events up to agent_completed.
        click(&client, Locator::LinkText("Agent demo")).await;
        wait(&client, "#start:enabled").await.click().await.unwrap();
        wait(&client, "#events li[data-type=agent_completed]").await;
        let seen = client.find_all(Locator::Css("#events li")).await.unwrap();
        assert!(seen.len() >= 5, "{} events", seen.len());
        let first = seen[0].attr("data-type").await.unwrap();
        assert_eq!(first.as_deref(), Some("agent_started"));
        shot(&client, "demo.png").await;

        // A phone-sized window still reads.
        client.set_window_size(390, 844).await.unwrap();
        click(&client, Locator::LinkText("Status")).await;
        wait(&client, "#live[data-state=on]").await;
        shot(&client, "status-phone.png").await;
        client.close().await.unwrap();
    });
}
