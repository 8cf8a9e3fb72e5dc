//! The status page: each upstream's circuit (the data of `/status/services`), each `/health`
//! check, and how many WebSocket connections this process holds.
//!
//! The server renders a snapshot, so the page says something without JavaScript. Live
//! updates come over the hub: while a connection of this process subscribes, the live publisher
//! ([`Dashboard::spawn_live_status`](crate::Dashboard::spawn_live_status)) publishes the
//! same snapshot as the event `status_snapshot` on [`CHANNEL`] every `live_every`; the page's
//! script connects to `/ws` with the user's access token, subscribes, and redraws the tables.
//! The channel's namespace ([`namespace`]) lets every authenticated connection join (the same
//! facts are public at `/status/services` and `/health`) and lets no client publish.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portico_realtime::settings::Namespace;
use serde_json::{Map, Value, json};

use crate::html::{self, Frame, Nav, escape};
use crate::{Inner, State};

/// The channel the live status is published on.
pub const CHANNEL: &str = "dashboard:status";

/// The event name of a published snapshot.
pub const EVENT: &str = "status_snapshot";

/// The realtime namespace of [`CHANNEL`], to add to the hub's settings: any signed-in
/// connection may join, none may publish, the last snapshot is kept for a minute.
pub fn namespace() -> (String, Namespace) {
    (
        "dashboard".to_owned(),
        Namespace {
            permission: None,
            check: None,
            presence: false,
            history_size: 1,
            history_ttl: Duration::from_secs(60),
            allow_client_publish: false,
        },
    )
}

/// The status at this moment: `{"services": […], "health": {status, checks}, "connections": n}`.
pub(crate) async fn snapshot(inner: &Inner) -> Value {
    let report = inner.parts.services.report();
    let services: Vec<Value> = report["services"]
        .as_object()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    let health = serde_json::to_value(inner.parts.health.report().await).unwrap_or(Value::Null);
    let connections = inner
        .parts
        .hub
        .as_ref()
        .map(portico_realtime::Hub::connections);
    json!({
        "services": services,
        "health": health,
        "connections": connections,
        "timestamp": humantime::format_rfc3339_seconds(inner.parts.clock.system_now()).to_string(),
    })
}

/// `GET /dashboard/`.
pub(crate) async fn page(state: State, headers: HeaderMap) -> Response {
    let Some(session) = state.session(&headers).await else {
        return crate::to_sign_in();
    };
    let snapshot = snapshot(&state).await;
    let live = if state.parts.hub.is_some() {
        "<p id=\"live\" class=\"live\" role=\"status\" data-state=\"off\">\
         Snapshot from the server. Live updates start when the page connects.</p>\n"
    } else {
        "<p id=\"live\" class=\"live\" role=\"status\">The WebSocket hub does not run here: \
         this is a snapshot; reload the page to update it.</p>\n"
    };
    let content = format!("{live}{}", render(&snapshot));
    let frame = Frame {
        title: "Service status",
        nav: Nav::Status,
        email: Some(&session.email),
        csrf: Some(&session.csrf),
        ws_token: state.parts.hub.as_ref().map(|_| session.access.as_str()),
        script: state.parts.hub.as_ref().map(|_| "status.js"),
    };
    crate::html(
        StatusCode::OK,
        html::page(&frame, &content),
        session.set_cookies,
    )
}

/// The three sections of the page for `snapshot` (the script redraws the same ids).
fn render(snapshot: &Value) -> String {
    let mut out = String::new();
    out.push_str(
        "<section aria-labelledby=\"services-heading\">\n<h2 id=\"services-heading\">Circuits</h2>\n",
    );
    let services = snapshot["services"].as_array().cloned().unwrap_or_default();
    if services.is_empty() {
        out.push_str("<p id=\"services-empty\">No upstreams are configured.</p>\n");
    }
    out.push_str(
        "<div class=\"scroll\"><table id=\"services\">\n<thead><tr><th scope=\"col\">Upstream</th>\
         <th scope=\"col\">Circuit</th><th scope=\"col\">Failures</th>\
         <th scope=\"col\">Last failure</th><th scope=\"col\">Last change</th></tr></thead>\n<tbody>\n",
    );
    for s in &services {
        let state = text(&s["state"]);
        out.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td><span class=\"badge {}\">{}</span></td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>\n",
            escape(&text(&s["service"])),
            escape(&state),
            escape(&state.replace('_', " ")),
            escape(&text(&s["failure_count"])),
            escape(&text_or(&s["last_failure"], "never")),
            escape(&text(&s["last_state_change"])),
        ));
    }
    out.push_str("</tbody></table></div>\n</section>\n");

    let health = &snapshot["health"];
    out.push_str(&format!(
        "<section aria-labelledby=\"health-heading\">\n<h2 id=\"health-heading\">Health: \
         <span id=\"health-status\" class=\"badge {0}\">{0}</span></h2>\n",
        escape(&text(&health["status"]))
    ));
    out.push_str(
        "<div class=\"scroll\"><table id=\"health\">\n<thead><tr><th scope=\"col\">Check</th>\
         <th scope=\"col\">Status</th><th scope=\"col\">Latency</th><th scope=\"col\">Critical</th>\
         <th scope=\"col\">Note</th></tr></thead>\n<tbody>\n",
    );
    if let Some(checks) = health["checks"].as_object() {
        for (name, c) in checks {
            let status = text(&c["status"]);
            out.push_str(&format!(
                "<tr><th scope=\"row\">{}</th><td><span class=\"badge {1}\">{1}</span></td>\
                 <td>{2} ms</td><td>{3}</td><td>{4}</td></tr>\n",
                escape(name),
                escape(&status),
                escape(&text(&c["latency_ms"])),
                if c["critical"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                escape(&text_or(&c["message"], "")),
            ));
        }
    }
    out.push_str("</tbody></table></div>\n</section>\n");

    out.push_str(&format!(
        "<section aria-labelledby=\"ws-heading\">\n<h2 id=\"ws-heading\">WebSocket</h2>\n\
         <p>Connections held by this process: <strong id=\"connections\">{}</strong></p>\n\
         <p class=\"muted\">Updated <time id=\"updated\">{}</time></p>\n</section>\n",
        escape(&text_or(&snapshot["connections"], "not running")),
        escape(&text(&snapshot["timestamp"])),
    ));
    out
}

/// A JSON value as text (strings without quotes).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn text_or(v: &Value, empty: &str) -> String {
    match v {
        Value::Null => empty.to_owned(),
        other => text(other),
    }
}

/// See the module docs.
pub(crate) fn spawn_live(inner: Arc<Inner>) {
    let Some(hub) = inner.parts.hub.clone() else {
        return;
    };
    tokio::spawn(async move {
        let stop = inner.parts.shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = inner.parts.clock.sleep(inner.parts.live_every) => {
                    // Nobody here watches: skip the health probes.
                    if !hub.has_local_subscribers(CHANNEL) {
                        continue;
                    }
                    let data = snapshot(&inner).await;
                    if let Err(e) = hub.publish(CHANNEL, EVENT, &data, &Map::new(), None).await {
                        tracing::debug!("dashboard: live status not published: {e}");
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_is_rendered_escaped() {
        let snapshot = json!({
            "services": [{"service": "<agent>", "state": "half_open", "failure_count": 2,
                          "last_failure": null, "last_state_change": "2026-01-01T00:00:00Z"}],
            "health": {"status": "healthy", "checks": {"db<": {"status": "healthy",
                        "latency_ms": 3, "critical": true}}},
            "connections": 4,
            "timestamp": "2026-01-01T00:00:05Z",
        });
        let html = render(&snapshot);
        assert!(
            html.contains("&lt;agent&gt;") && !html.contains("<agent>"),
            "{html}"
        );
        assert!(html.contains("half open"), "{html}");
        assert!(html.contains("db&lt;"), "{html}");
        assert!(
            html.contains("<strong id=\"connections\">4</strong>"),
            "{html}"
        );
    }

    #[test]
    fn the_namespace_refuses_client_publishing() {
        let (name, ns) = namespace();
        assert_eq!(format!("{name}:status"), CHANNEL);
        assert!(!ns.allow_client_publish);
    }
}
