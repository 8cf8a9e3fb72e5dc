//! A real OpenID provider for the OAuth login tests: the npm package `oidc-provider`, run by
//! `node tests/oidc-provider/server.mjs` (see that file for its accounts and client), and
//! [`sign_in`], which plays the user's browser on the provider's pages.
//!
//! The provider lives in the directory named by `PORTICO_TEST_OIDC_PROVIDER`, where
//! `scripts/test` has run `npm ci`. Tests using it are `#[ignore]`d and have `oidc_provider` in
//! their path, so that `scripts/test` can skip them when npm is missing.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use url::Url;

/// The variable naming the directory that holds `server.mjs` with its `node_modules`.
pub const PROVIDER_DIR_VAR: &str = "PORTICO_TEST_OIDC_PROVIDER";

/// How long one start of the provider may take to print its `listening` line (it takes about
/// 1 s on this project's 2-core machines).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How many times [`shared`] starts the provider before giving up. Once, in CI, a provider
/// process stayed silent for 20 s while three others started in the same second; a second
/// start is what a person would do, and both attempts' output is shown if it fails too.
const START_ATTEMPTS: usize = 2;

/// How many requests [`sign_in`] makes at most before giving up (a full sign-in takes 7).
const MAX_STEPS: usize = 20;

/// A running provider with one confidential client. It lives as long as the test process:
/// it exits when its stdin closes, which the kernel does when the test process ends.
pub struct OidcProvider {
    /// The issuer, `http://127.0.0.1:<port>`; discovery is at
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The client's id.
    pub client_id: String,
    /// The client's secret (client_secret_basic or client_secret_post).
    pub client_secret: String,
    /// The only redirect URI the client may use.
    pub redirect_uri: String,
    /// The node process.
    child: Child,
    /// Held open: the provider exits when its stdin closes.
    _stdin: ChildStdin,
    /// Everything the provider wrote to stderr (and stdout after the `listening` line).
    log: Arc<Mutex<String>>,
}

impl OidcProvider {
    /// What the provider has logged so far, for failure messages.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

/// Copies every line of `from` into `log` on a thread of its own, until end of file; the first
/// line goes to `first` instead when given.
fn collect(
    from: impl Read + Send + 'static,
    log: Arc<Mutex<String>>,
    mut first: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if let Some(first) = first.take() {
                let _ = first.send(line);
                continue;
            }
            if let Ok(mut log) = log.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
}

/// The provider of this test process, started on first use on a free port of 127.0.0.1 with
/// one client (a fresh random secret) whose only allowed redirect URI is `redirect_uri`, and
/// shared by the process's tests (each signs in with its own cookie jar, and the accounts it
/// makes are derived from the login typed, so tests do not see each other). Starting one
/// provider per process rather than per test keeps the node start-ups (about 1 s of CPU each)
/// out of the way of the tests. Panics if `PORTICO_TEST_OIDC_PROVIDER` is unset, if the
/// provider does not start, or if a test asks for another redirect URI.
pub fn shared(redirect_uri: &str) -> &'static OidcProvider {
    static PROVIDER: OnceLock<OidcProvider> = OnceLock::new();
    let provider = PROVIDER.get_or_init(|| start(redirect_uri));
    assert_eq!(
        provider.redirect_uri, redirect_uri,
        "the shared OIDC provider's client allows one redirect URI per test process"
    );
    provider
}

/// Starts the provider, making up to [`START_ATTEMPTS`] attempts; panics with every attempt's
/// output if none prints `listening <issuer>` within [`START_TIMEOUT`].
fn start(redirect_uri: &str) -> OidcProvider {
    let dir = std::env::var(PROVIDER_DIR_VAR).unwrap_or_else(|_| {
        panic!(
            "{PROVIDER_DIR_VAR} is unset: it must name the directory holding server.mjs with its \
             node_modules installed (scripts/test sets it after \
             `npm ci --prefix crates/portico-auth/tests/oidc-provider`)"
        )
    });
    let mut failures = Vec::new();
    for attempt in 1..=START_ATTEMPTS {
        match start_once(&dir, redirect_uri) {
            Ok(provider) => {
                if !failures.is_empty() {
                    eprintln!(
                        "the OIDC provider started at attempt {attempt}; before:\n{}",
                        failures.join("\n")
                    );
                }
                return provider;
            }
            Err(failure) => failures.push(format!("attempt {attempt}: {failure}")),
        }
    }
    panic!(
        "the OIDC provider in {dir} did not start:\n{}",
        failures.join("\n")
    );
}

/// One start of `node server.mjs` in `dir`; on failure, what happened and the provider's stderr.
fn start_once(dir: &str, redirect_uri: &str) -> Result<OidcProvider, String> {
    let client_id = "portico-test".to_owned();
    let client_secret = format!("{:032x}", rand::random::<u128>());
    let mut child = Command::new("node")
        .arg("server.mjs")
        .current_dir(dir)
        .env("CLIENT_ID", &client_id)
        .env("CLIENT_SECRET", &client_secret)
        .env("REDIRECT_URI", redirect_uri)
        .env("PORT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `node server.mjs`: {e}"))?;
    let log = Arc::new(Mutex::new(String::new()));
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        return Err("the child's pipes are missing".into());
    };
    collect(stderr, log.clone(), None);
    let (first_tx, first_rx) = mpsc::channel();
    collect(stdout, log.clone(), Some(first_tx));

    let first = first_rx.recv_timeout(START_TIMEOUT);
    let issuer = first
        .as_deref()
        .ok()
        .and_then(|line| line.trim_end().strip_prefix("listening "))
        .map(str::to_owned);
    let Some(issuer) = issuer else {
        let _ = child.kill();
        let status = child.wait().ok();
        // The stderr thread ends once the process is gone; give it a moment to catch up.
        std::thread::sleep(Duration::from_millis(200));
        let log = log.lock().map(|l| l.clone()).unwrap_or_default();
        return Err(format!(
            "no `listening <issuer>` line within {START_TIMEOUT:?} (first stdout line: {first:?}; \
             after kill: {status:?}); its stderr:\n{log}"
        ));
    };
    Ok(OidcProvider {
        issuer,
        client_id,
        client_secret,
        redirect_uri: redirect_uri.to_owned(),
        child,
        _stdin: stdin,
        log,
    })
}

/// A plain-HTTP client for talking to the provider: no redirects followed, 10 s timeout.
/// (reqwest is built with `rustls-no-provider`, so even a plain-HTTP client needs a TLS
/// setup; this one takes the project's own instead of installing a process-wide default,
/// which could hide a missing TLS setup in the code under test.)
pub fn http_client() -> reqwest::Client {
    let tls = portico_core::tls::client_config().expect("TLS setup");
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// Plays the user's browser from the moment it is sent to `authorize_url` (the provider's
/// authorization endpoint with its query): follows the provider's redirects, keeps its cookies,
/// signs in on the dev login form as `login` (any password), confirms consent, and returns the
/// first redirect that leaves the provider — the client's redirect URI with `code`, `state` and
/// `iss` (or `error` if the provider refused the request) — without requesting it.
/// Panics, showing the page, on any other answer.
pub async fn sign_in(authorize_url: &str, login: &str) -> String {
    let http = http_client();
    let start = Url::parse(authorize_url)
        .unwrap_or_else(|e| panic!("authorization URL {authorize_url:?} is not a URL: {e}"));
    let provider = start.origin();
    let mut jar = BTreeMap::<String, String>::new();
    let mut url = start;
    let mut form: Option<Vec<(String, String)>> = None;
    for _ in 0..MAX_STEPS {
        let request = match form.take() {
            None => http.get(url.clone()),
            Some(fields) => http.post(url.clone()).form(&fields),
        };
        let request = if jar.is_empty() {
            request
        } else {
            let cookies: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request.header(reqwest::header::COOKIE, cookies.join("; "))
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
        for set_cookie in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let set_cookie = set_cookie.to_str().unwrap_or_default();
            let pair = set_cookie.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                let (name, value) = (name.trim(), value.trim());
                if value.is_empty() {
                    jar.remove(name);
                } else {
                    jar.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or_else(|| panic!("{status} from {url} without a usable Location"))
                .to_owned();
            let next = url.join(&location).unwrap_or_else(|e| {
                panic!("{status} from {url} to a bad Location {location:?}: {e}")
            });
            if next.origin() != provider {
                return next.into();
            }
            url = next;
            continue;
        }
        let body = response.text().await.unwrap_or_default();
        if status != reqwest::StatusCode::OK {
            panic!("{status} from {url} while signing in as {login:?}:\n{body}");
        }
        let (action, fields) = page_form(&body, login)
            .unwrap_or_else(|| panic!("no sign-in or consent form at {url}:\n{body}"));
        url = url
            .join(&action)
            .unwrap_or_else(|e| panic!("form at {url} posts to a bad URL {action:?}: {e}\n{body}"));
        form = Some(fields);
    }
    panic!("the provider had not sent the browser back to the client after {MAX_STEPS} requests");
}

/// The first POST form of `page`: its action and the fields to send — the hidden ones as they
/// are, `login` set to `login`, any password field to a dummy password (the dev form takes any).
fn page_form(page: &str, login: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = page.find("<form")?;
    let form = &page[start..];
    let form = &form[..form.find("</form>")?];
    let tag = &form[..form.find('>')?];
    if !attribute(tag, "method").is_some_and(|m| m.eq_ignore_ascii_case("post")) {
        return None;
    }
    let action = attribute(tag, "action")?;
    let mut fields = Vec::new();
    for input in form.split("<input").skip(1) {
        let input = &input[..input.find('>')?];
        let Some(name) = attribute(input, "name") else {
            continue;
        };
        let kind = attribute(input, "type").unwrap_or_default();
        let value = if name == "login" {
            login.to_owned()
        } else if kind == "password" {
            "any-password".to_owned()
        } else if kind == "hidden" {
            attribute(input, "value").unwrap_or_default()
        } else {
            continue;
        };
        fields.push((name, value));
    }
    Some((action, fields))
}

/// The value of attribute `name` in the (HTML-escaped, double-quoted) tag text `tag`.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = start + tag[start..].find('"')?;
    Some(
        tag[start..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}
