//! The three scenarios of issue #6, the same for every target:
//!
//! - `idle`: open N authenticated, subscribed connections, say `ready`, hold them until a
//!   signal or a time limit (the driving script reads the server's RSS meanwhile).
//! - `fanout`: N subscribers, K publishes one at a time (the next after every subscriber got
//!   the previous or a timeout), per-delivery latency p50/p99/max, deliveries lost.
//! - `throughput`: N subscribers, publishes for a duration either at a fixed rate or flat out
//!   with a bounded number of publishes in flight (so queues stay bounded and a hub that drops
//!   slow consumers is not pushed into it), delivered messages per second.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::connect::{Endpoint, Opened, open_many};
use crate::histogram::Histogram;
use crate::publish::Publisher;
use crate::report::{Report, cpu_us, own_rss_kib};
use crate::subscriber::{Stats, Subscribers};

/// How often waiting loops look at the delivery counter.
const POLL: Duration = Duration::from_millis(1);

/// What every scenario shares: where to connect, the channel, how to publish.
pub struct Run {
    /// The server and token.
    pub ep: Endpoint,
    /// The channel every subscriber joins.
    pub channel: String,
    /// HTTP publishing (URL, bearer token); `None` publishes over a client WebSocket.
    pub publish_http: Option<(String, String)>,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// Tries per connection.
    pub attempts: u32,
    /// The server's process id, to report its CPU time per delivered message.
    pub server_pid: Option<u32>,
    /// The generator's worker threads.
    pub threads: usize,
}

impl Run {
    async fn open(&self, n: usize, report: &mut Report) -> Opened {
        let opened = open_many(&self.ep, &self.channel, n, self.concurrency, self.attempts).await;
        report
            .set("target", format!("{:?}", self.ep.target).to_lowercase())
            .set("connections", opened.connections.len())
            .set("connect_failed", opened.failed)
            .set("connect_retries", opened.retries)
            .set("connect_s", format!("{:.2}", opened.elapsed.as_secs_f64()));
        if let Some(e) = &opened.last_error {
            eprintln!("connect failures: {}; last: {e}", opened.failed);
        }
        opened
    }

    /// The start of a scenario that publishes: its report, and `n` subscribed connections
    /// reading into the returned stats — all of them, or an error.
    async fn subscribed(
        &self,
        scenario: &str,
        n: usize,
    ) -> anyhow::Result<(Report, Arc<Stats>, Subscribers)> {
        let mut report = Report::default();
        report.set("scenario", scenario);
        let opened = self.open(n, &mut report).await;
        if opened.failed > 0 {
            report.print("connections failed");
            bail!("{} of {n} connections failed", opened.failed);
        }
        let stats = Arc::new(Stats::default());
        let subs = Subscribers::spawn(opened.connections, self.ep.target, stats.clone());
        Ok((report, stats, subs))
    }

    /// A publisher with up to `in_flight` HTTP publishes unanswered at once.
    async fn publisher(&self, in_flight: usize) -> anyhow::Result<Publisher> {
        match &self.publish_http {
            Some((url, token)) => Publisher::http(url, token, &self.channel, in_flight),
            None => Publisher::ws(&self.ep, &self.channel).await,
        }
    }

    fn publish_via(&self) -> &'static str {
        if self.publish_http.is_some() {
            "http"
        } else {
            "ws"
        }
    }
}

/// The server pid as /proc names it.
fn server_pid(run: &Run) -> Option<String> {
    run.server_pid.map(|p| p.to_string())
}

/// Waits until `stats` counts `target` deliveries or `deadline` passes; returns the count.
async fn delivered_by(stats: &Stats, target: u64, deadline: Instant) -> u64 {
    loop {
        let got = stats.delivered.load(Relaxed);
        if got >= target || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Holds `n` subscribed connections until SIGINT/SIGTERM or `hold`; returns whether all
/// opened and none was dropped.
pub async fn idle(run: &Run, n: usize, hold: Option<Duration>) -> anyhow::Result<bool> {
    let mut report = Report::default();
    report.set("scenario", "idle");
    let opened = run.open(n, &mut report).await;
    let failed = opened.failed;
    let stats = Arc::new(Stats::default());
    let subs = Subscribers::spawn(opened.connections, run.ep.target, stats.clone());
    println!("ready connections={} connect_failed={failed}", n - failed);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let held = Instant::now();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = async {
            match hold {
                Some(h) => tokio::time::sleep(h).await,
                None => std::future::pending().await,
            }
        } => {}
    }
    let dropped = stats.dropped.load(Relaxed);
    report
        .set("held_s", format!("{:.1}", held.elapsed().as_secs_f64()))
        .set("dropped", dropped)
        .set("client_rss_kib", own_rss_kib());
    report.print(&format!(
        "{} connections open ({failed} failed) in {:.2} s, held {:.1} s, {dropped} dropped by the server{}",
        n - failed,
        opened.elapsed.as_secs_f64(),
        held.elapsed().as_secs_f64(),
        stats.last_drop().map(|r| format!(" (last: {r})")).unwrap_or_default(),
    ));
    subs.stop().await;
    Ok(failed == 0 && dropped == 0)
}

/// Fan-out latency: parameters.
pub struct Fanout {
    /// Subscribers.
    pub subscribers: usize,
    /// Measured publishes.
    pub publishes: u64,
    /// Publishes before those, not measured.
    pub warmup: u64,
    /// Pause between one publish's last delivery and the next publish.
    pub interval: Duration,
    /// How long to wait for one publish's deliveries.
    pub timeout: Duration,
}

/// One publish at a time to `subscribers`; per-delivery latency and losses.
pub async fn fanout(run: &Run, p: &Fanout) -> anyhow::Result<bool> {
    let (mut report, stats, subs) = run.subscribed("fanout", p.subscribers).await?;
    let n = p.subscribers as u64;
    // One publish at a time: the next waits for every delivery of the previous one.
    let mut publisher = run.publisher(1).await?;
    // Time from each publish to its last delivery.
    let spread = Histogram::default();
    let mut lost = 0;
    for seq in 0..p.warmup + p.publishes {
        if seq == p.warmup {
            stats.latency.reset();
        }
        let before = stats.delivered.load(Relaxed);
        let sent = Instant::now();
        publisher.publish(seq).await?;
        let got = delivered_by(&stats, before + n, sent + p.timeout).await - before;
        if seq >= p.warmup {
            lost += n.saturating_sub(got);
            spread.record(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
        }
        if got < n && stats.dropped.load(Relaxed) > 0 {
            // Dropped subscribers never catch up: every further publish would wait out the
            // whole timeout.
            eprintln!(
                "stopping after publish {seq}: {} connections dropped",
                stats.dropped.load(Relaxed)
            );
            break;
        }
        tokio::time::sleep(p.interval).await;
    }
    publisher.finish().await?;
    let h = &stats.latency;
    let dropped = stats.dropped.load(Relaxed);
    report
        .set("publish_via", run.publish_via())
        .set("subscribers", n)
        .set("publishes", p.publishes)
        .set("deliveries", h.count())
        .set("expected", n * p.publishes)
        .set("lost", lost)
        .set("dropped", dropped)
        .ms("p50_ms", h.quantile(0.50))
        .ms("p99_ms", h.quantile(0.99))
        .ms("max_ms", h.max())
        .ms("mean_ms", h.mean() as u64)
        .ms("last_p50_ms", spread.quantile(0.5))
        .ms("last_max_ms", spread.max())
        .set("client_rss_kib", own_rss_kib());
    report.print(&format!(
        "{} publishes to {n} subscribers (via {}): {} deliveries of {}, {lost} lost, {dropped} connections dropped\n\
         delivery latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; last delivery of a publish p50 {:.2} ms, max {:.2} ms",
        p.publishes,
        run.publish_via(),
        h.count(),
        n * p.publishes,
        h.quantile(0.5) as f64 / 1e3,
        h.quantile(0.99) as f64 / 1e3,
        h.max() as f64 / 1e3,
        spread.quantile(0.5) as f64 / 1e3,
        spread.max() as f64 / 1e3,
    ));
    subs.stop().await;
    Ok(lost == 0 && dropped == 0)
}

/// Sustained throughput: parameters.
pub struct Throughput {
    /// Subscribers.
    pub subscribers: usize,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time before it.
    pub warmup: Duration,
    /// Publishes per second; `None` is flat out, bounded by `window`.
    pub rate: Option<f64>,
    /// Flat out: publishes not yet delivered to every subscriber, at most.
    pub window: u64,
    /// How long to wait for stragglers at the end.
    pub drain: Duration,
}

/// Publishes for `warmup + duration` and counts deliveries during `duration`.
pub async fn throughput(run: &Run, p: &Throughput) -> anyhow::Result<bool> {
    let (mut report, stats, subs) = run.subscribed("throughput", p.subscribers).await?;
    let n = p.subscribers as u64;
    // Publishes are handed over without waiting for the previous answer, as many as the
    // window lets be undelivered: a publisher waiting for each answer would bound the rate
    // by the server's answer time under load, not by its deliveries.
    let in_flight = usize::try_from(p.window).unwrap_or(usize::MAX);
    let mut publisher = run.publisher(in_flight).await?;
    let mut ticker = p.rate.map(|r| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(0.001)));
        // A publisher that falls behind sends at the rate it can, not in bursts.
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let start = Instant::now();
    let measure_from = start + p.warmup;
    let end = measure_from + p.duration;
    let mut measured: Option<(Instant, u64, u64)> = None;
    let server = server_pid(run);
    let mut cpu_from = (None, None);
    let mut seq = 0u64;
    'publishing: loop {
        match &mut ticker {
            Some(t) => {
                t.tick().await;
            }
            None => {
                while seq * n >= stats.delivered.load(Relaxed) + p.window * n {
                    if Instant::now() >= end {
                        break 'publishing;
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }
        let now = Instant::now();
        if now >= end {
            break;
        }
        if measured.is_none() && now >= measure_from {
            measured = Some((now, stats.delivered.load(Relaxed), seq));
            cpu_from = (server.as_deref().and_then(cpu_us), cpu_us("self"));
            stats.latency.reset();
        }
        publisher.publish(seq).await?;
        seq += 1;
    }
    let stopped = Instant::now();
    let delivered_at_stop = stats.delivered.load(Relaxed);
    let cpu_to = (server.as_deref().and_then(cpu_us), cpu_us("self"));
    let (from, delivered_from, seq_from) = measured.unwrap_or((stopped, delivered_at_stop, seq));
    let secs = stopped.duration_since(from).as_secs_f64().max(1e-9);
    let rate = (delivered_at_stop - delivered_from) as f64 / secs;
    let publish_rate = (seq - seq_from) as f64 / secs;
    let in_window = (delivered_at_stop - delivered_from).max(1) as f64;
    // CPU µs per delivered message and share of one core, during the measured window.
    let cpu = |from: Option<u64>, to: Option<u64>| match (from, to) {
        (Some(a), Some(b)) => (
            format!("{:.2}", b.saturating_sub(a) as f64 / in_window),
            format!("{:.0}", b.saturating_sub(a) as f64 / 1e4 / secs),
        ),
        _ => ("na".to_owned(), "na".to_owned()),
    };
    let (server_us, server_pct) = cpu(cpu_from.0, cpu_to.0);
    let (client_us, client_pct) = cpu(cpu_from.1, cpu_to.1);
    // One worker thread near a full core means the generator, not the server, set the pace.
    let threads = run.threads.max(1) as f64;
    let saturated = client_pct
        .parse::<f64>()
        .is_ok_and(|pct| pct >= 90.0 * threads);
    publisher.finish().await?;
    let expected = seq * n;
    let delivered = delivered_by(&stats, expected, Instant::now() + p.drain).await;
    let lost = expected.saturating_sub(delivered);
    let dropped = stats.dropped.load(Relaxed);
    let h = &stats.latency;
    report
        .set("publish_via", run.publish_via())
        .set("subscribers", n)
        .set(
            "mode",
            p.rate
                .map_or_else(|| format!("window{}", p.window), |r| format!("rate{r}")),
        )
        .set("measured_s", format!("{secs:.2}"))
        .set("msgs_per_s", format!("{rate:.0}"))
        .set("publishes_per_s", format!("{publish_rate:.1}"))
        .set("published", seq)
        .set("expected", expected)
        .set("lost", lost)
        .set("dropped", dropped)
        .ms("p50_ms", h.quantile(0.50))
        .ms("p99_ms", h.quantile(0.99))
        .ms("max_ms", h.max())
        .set("server_cpu_us_per_msg", &server_us)
        .set("server_cpu_pct", &server_pct)
        .set("client_cpu_us_per_msg", &client_us)
        .set("client_cpu_pct", &client_pct)
        .set("client_saturated", saturated)
        .set("client_rss_kib", own_rss_kib());
    let warning = if saturated {
        "\nthe load generator used all its CPU: this rate is a floor of the server's"
    } else {
        ""
    };
    report.print(&format!(
        "CPU per delivered message: server {server_us} µs ({server_pct} % of a core), load generator {client_us} µs ({client_pct} %)\n\
         {rate:.0} messages/s delivered to {n} subscribers over {secs:.1} s ({publish_rate:.1} publishes/s via {}); \
         {lost} of {expected} lost, {dropped} connections dropped; latency under load p50 {:.1} ms, p99 {:.1} ms{warning}",
        run.publish_via(),
        h.quantile(0.5) as f64 / 1e3,
        h.quantile(0.99) as f64 / 1e3,
    ));
    subs.stop().await;
    Ok(lost == 0 && dropped == 0)
}
