//! A paced (open-loop) HTTP/1.1 load for `bench/auth-validate.sh`: sends one request every
//! `1/RATE` s for `SECONDS` s over `CONNECTIONS` keep-alive connections, whatever the server's
//! answers take, and prints the rate held and the latency.
//!
//! ```text
//! cargo run --release -p portico-auth --example paced_load -- \
//!     ADDR PATH BODY RATE SECONDS CONNECTIONS
//! # e.g. 127.0.0.1:8080 /auth/validate '{"token":"…"}' 5000 10 32
//! ```
//!
//! Request `i` is due at `start + i/RATE` and goes out on connection `i mod CONNECTIONS`.
//! Its latency runs from when it was sent to the end of its answer — or from when it was due,
//! if its connection was still busy with an earlier request then, so a server stall counts
//! for every request it held up (no coordinated omission). The timer's 1 ms grain is not
//! counted as latency; "late" says how far behind schedule the sends fell. Requests still
//! unsent when `SECONDS` are over are not sent ("skipped"): the load ends on time even when
//! the server cannot keep up with it.
//!
//! A benchmark tool, not part of the service. A failed connection counts as status 0 and is
//! opened again for the next request.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// One request's outcome.
struct Sample {
    /// Microseconds from sent (or due, if its connection was busy) to the answer's end.
    latency_us: u64,
    /// Microseconds it was sent after it was due.
    late_us: u64,
    /// HTTP status; 0 when the connection failed.
    status: u16,
    /// When the answer ended.
    done: Instant,
}

const USAGE: &str = "usage: paced_load ADDR PATH BODY RATE SECONDS CONNECTIONS";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 6 {
        return Err(USAGE.into());
    }
    let addr = args[0].clone();
    let rate: f64 = args[3].parse().map_err(|e| format!("RATE: {e}; {USAGE}"))?;
    let seconds: f64 = args[4]
        .parse()
        .map_err(|e| format!("SECONDS: {e}; {USAGE}"))?;
    let connections: usize = args[5].parse().map_err(|e| format!("CONNECTIONS: {e}"))?;
    if !(rate > 0.0 && seconds > 0.0 && connections > 0) {
        return Err(format!("RATE, SECONDS and CONNECTIONS must be positive; {USAGE}").into());
    }
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{}",
        args[1],
        args[2].len(),
        args[2]
    )
    .into_bytes();
    let total = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + Duration::from_secs_f64(seconds);

    let mut tasks = Vec::new();
    for first in 0..connections.min(total) {
        let (addr, request) = (addr.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = connect(&addr).await;
            if stream.is_none() {
                eprintln!("paced_load: cannot connect to {addr}");
            }
            let mut samples = Vec::new();
            let mut buf = Vec::with_capacity(4096);
            let mut free_at = start;
            let mut skipped = 0;
            for i in (first..total).step_by(connections) {
                let due = start + interval * i as u32;
                tokio::time::sleep_until(due).await;
                let sent = Instant::now();
                if sent > end {
                    skipped += 1;
                    continue;
                }
                if stream.is_none() {
                    stream = connect(&addr).await;
                }
                let answer = match stream.as_mut() {
                    Some(stream) => exchange(stream, &request, &mut buf).await,
                    None => None,
                };
                let status = answer.unwrap_or_else(|| {
                    stream = None;
                    0
                });
                let done = Instant::now();
                let from = if free_at > due { due } else { sent };
                samples.push(Sample {
                    latency_us: micros(done - from),
                    late_us: micros(sent - due),
                    status,
                    done,
                });
                free_at = done;
            }
            (samples, skipped)
        }));
    }
    let mut samples = Vec::new();
    let mut skipped = 0;
    for task in tasks {
        let (some, unsent) = task.await?;
        samples.extend(some);
        skipped += unsent;
    }
    report(&samples, skipped, start, rate);
    Ok(())
}

async fn connect(addr: &str) -> Option<TcpStream> {
    let stream = TcpStream::connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    Some(stream)
}

/// Sends `request` and reads one answer with a `Content-Length`; its status, or `None` when
/// the connection failed or the answer could not be read.
async fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> Option<u16> {
    stream.write_all(request).await.ok()?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buf[..end]).ok()?.to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())?;
        if buf.len() >= end + 4 + length {
            return head.split(' ').nth(1)?.parse().ok();
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn report(samples: &[Sample], skipped: usize, start: Instant, rate: f64) {
    let mut latency: Vec<u64> = samples.iter().map(|s| s.latency_us).collect();
    latency.sort_unstable();
    let pct = |p: f64| {
        let i = ((p * latency.len() as f64) as usize).min(latency.len().saturating_sub(1));
        latency.get(i).copied().unwrap_or(0) as f64 / 1000.0
    };
    let mut statuses = BTreeMap::new();
    for s in samples {
        *statuses.entry(s.status).or_insert(0u64) += 1;
    }
    let end = samples.iter().map(|s| s.done).max().unwrap_or(start);
    let elapsed = end.saturating_duration_since(start).as_secs_f64();
    let late = samples.iter().map(|s| s.late_us).max().unwrap_or(0) as f64 / 1000.0;
    // Written, not printed: a closed pipe (`| head -1`) is no reason to panic.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "sent {} in {elapsed:.1} s = {:.0}/s (asked {rate}/s, {skipped} skipped), status \
         {statuses:?}, latency p50 {:.3} ms p90 {:.3} ms p99 {:.3} ms max {:.3} ms, \
         late at most {late:.1} ms",
        samples.len(),
        samples.len() as f64 / elapsed.max(f64::EPSILON),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
    );
    let _ = writeln!(out, "p50_ms={:.3} p99_ms={:.3}", pct(0.50), pct(0.99));
}
