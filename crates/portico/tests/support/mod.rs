//! Test support: run the real `portico` binary in a scratch directory, read what it logs,
//! and talk HTTP/1.1 to it over a plain TCP stream.
#![allow(dead_code)] // each test file uses a different part of this module

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The header of a JSON request body.
pub const JSON: [(&str, &str); 1] = [("Content-Type", "application/json")];

/// Registers `email` through `POST /auth/register`; its access token.
pub fn register(addr: SocketAddr, email: &str) -> String {
    register_user(addr, email).0
}

/// Registers `email` through `POST /auth/register`; its access token and user id.
pub fn register_user(addr: SocketAddr, email: &str) -> (String, String) {
    let body = format!(r#"{{"email":"{email}","password":"correct horse battery"}}"#);
    let res = request(addr, "POST", "/auth/register", &JSON, body.as_bytes());
    assert_eq!(res.status, 201, "{}", res.body);
    let json = res.json();
    (
        json["access_token"].as_str().unwrap().to_owned(),
        json["user"]["id"].as_str().unwrap().to_owned(),
    )
}

/// A client-credentials (service) token from `POST /auth/token`.
pub fn service_token(addr: SocketAddr, client_id: &str, secret: &str) -> String {
    let body =
        format!("grant_type=client_credentials&client_id={client_id}&client_secret={secret}");
    let res = request(
        addr,
        "POST",
        "/auth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()["access_token"].as_str().unwrap().to_owned()
}

/// How long anything in these tests may take before it counts as hung.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A scratch directory, removed on drop.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "portico-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `portico.toml` (or another file) in the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let file = self.path.join(name);
        std::fs::write(&file, text).unwrap();
        file
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The binary, run in `dir` with a clean environment plus `env`.
pub fn portico(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portico"));
    cmd.args(args).current_dir(dir).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the binary to completion.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let output = portico(dir, args, env)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Outcome::from(output)
}

/// A finished run.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Lines the child printed (stdout and stderr together), with a way to wait for one.
#[derive(Clone, Default)]
struct Lines {
    inner: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Lines {
    fn follow(&self, stream: impl Read + Send + 'static) {
        let lines = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let (list, cv) = &*lines.inner;
                list.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
    }

    fn wait_for(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        let (list, cv) = &*self.inner;
        let deadline = Instant::now() + DEADLINE;
        let mut guard = list.lock().unwrap();
        loop {
            if let Some(found) = guard.iter().find(|l| pred(l)) {
                return Some(found.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            guard = cv.wait_timeout(guard, left).unwrap().0;
        }
    }

    fn all(&self) -> Vec<String> {
        self.inner.0.lock().unwrap().clone()
    }
}

/// A running `portico up`.
pub struct Server {
    child: Child,
    lines: Lines,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `portico up --listen 127.0.0.1:0 <extra>` in `dir` and waits for its
    /// "listening on" line, which gives the bound address.
    pub fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_command(dir, "up", extra, env)
    }

    /// Like [`Server::start`] for another serving command (`auth`).
    pub fn start_command(
        dir: &Path,
        command: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut args = vec![command, "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = portico(dir, &args, env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Lines::default();
        lines.follow(child.stdout.take().unwrap());
        lines.follow(child.stderr.take().unwrap());
        let line = lines.wait_for(|l| l.contains("listening on http://"));
        let Some(line) = line else {
            let _ = child.kill();
            panic!(
                "no \"listening on\" line; output:\n{}",
                lines.all().join("\n")
            );
        };
        let addr = bound_address(&line).unwrap_or_else(|| panic!("no address in {line:?}"));
        Server { child, lines, addr }
    }

    /// Waits until the child printed a line matching `pred`.
    pub fn wait_for_line(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.lines.wait_for(pred)
    }

    /// Everything printed so far.
    pub fn output(&self) -> Vec<String> {
        self.lines.all()
    }

    /// Sends SIGTERM through `kill(1)`.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, polling until the deadline.
    pub fn wait_exit(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// `GET path` with extra headers.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, "GET", path, headers, b"")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address after "listening on http://" in a log line (text or JSON).
fn bound_address(line: &str) -> Option<SocketAddr> {
    let start = line.find("listening on http://")? + "listening on http://".len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '\\')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    /// Every `Set-Cookie` header (`headers` keeps only the last of a repeated header).
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // A `Host` among `headers` replaces the address (a browser that used another name).
    let host = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map_or_else(|| addr.to_string(), |(_, value)| (*value).to_owned());
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("host") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading the body and close; that is fine.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let pairs: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let set_cookies = pairs
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.clone())
        .collect();
    let headers: BTreeMap<String, String> = pairs.into_iter().collect();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        set_cookies,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

impl Server {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`HUP`, `TERM`, …) through `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }
}

/// A free address on 127.0.0.1 (free when this returns: the caller binds it right after).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A `portico demo …` process, killed when dropped.
pub struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Demo {
    /// Runs `portico demo <name> --listen <addr> <extra>` in `dir` and waits until it answers
    /// `/health`.
    pub fn start(
        dir: &Path,
        name: &str,
        addr: SocketAddr,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Demo {
        let listen = addr.to_string();
        let mut args = vec!["demo", name, "--listen", &listen];
        args.extend_from_slice(extra);
        let child = portico(dir, &args, env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let demo = Demo(child);
        let until = Instant::now() + DEADLINE;
        while TcpStream::connect(addr).is_err()
            || request(addr, "GET", "/health", &[], b"").status != 200
        {
            assert!(
                Instant::now() < until,
                "portico demo {name} did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        demo
    }

    /// Tells a `search` or `tutor` demo to fail every call (or to stop failing), as the
    /// gateway would call it: with its internal token.
    pub fn set_failing(addr: SocketAddr, internal_token: &str, failing: bool) {
        let body = format!(r#"{{"failing":{failing}}}"#);
        let told = request(
            addr,
            "POST",
            "/control/failing",
            &[
                JSON[0],
                ("X-Internal-Auth", internal_token),
                ("X-User-ID", "ops"),
            ],
            body.as_bytes(),
        );
        assert_eq!(told.status, 200, "{}", told.body);
    }
}

/// A WebSocket client of the hub.
pub type Ws = tokio_tungstenite::tungstenite::WebSocket<
    tokio_tungstenite::tungstenite::stream::MaybeTlsStream<TcpStream>,
>;

/// Connects to the hub at `addr` with `token`; reads time out after 10 s.
pub fn ws_connect(addr: SocketAddr, token: &str) -> Ws {
    use tokio_tungstenite::tungstenite::{self, stream::MaybeTlsStream};
    let (ws, _) = tungstenite::connect(format!("ws://{addr}/ws?token={token}")).unwrap();
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    ws
}

/// The next frame the hub sends that is not a heartbeat.
pub fn ws_next(ws: &mut Ws) -> serde_json::Value {
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match ws.read().unwrap() {
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] != "heartbeat" {
                    return v;
                }
            }
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Sends `frame` to the hub.
pub fn ws_send(ws: &mut Ws, frame: &serde_json::Value) {
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        frame.to_string(),
    ))
    .unwrap();
}

/// `examples/<name>/portico.toml` as the repository ships it, written as `portico.toml` into
/// `scratch`, with each fixed demo address the file names (`127.0.0.1:9003`) replaced by the
/// test's free one: the examples' end-to-end tests run the very file a reader copies.
pub fn example_config(scratch: &Scratch, name: &str, addresses: &[(&str, SocketAddr)]) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .join("portico.toml");
    let mut text =
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    for (fixed, free) in addresses {
        assert!(text.contains(fixed), "{} names no {fixed}", file.display());
        text = text.replace(fixed, &free.to_string());
    }
    scratch.write("portico.toml", &text);
}
