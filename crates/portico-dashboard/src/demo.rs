//! The agent demo page: a message box that starts an agent run over the WebSocket (the
//! routed action `start_agent`, which the hub POSTs to the `agent` demo upstream) and a list
//! that shows each event of the run as it streams in on the user's channel, until
//! `agent_completed`. Without `[realtime.actions] start_agent` the page says so in words.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::State;
use crate::html::{self, Frame, Nav};

/// `GET /dashboard/demo`.
pub(crate) async fn page(state: State, headers: HeaderMap) -> Response {
    let Some(session) = state.session(&headers).await else {
        return crate::to_sign_in();
    };
    let ready = state.parts.agent_action && state.parts.hub.is_some();
    let content = if ready {
        "<p>Start a run of the seed-000 agent. Portico sends the WebSocket action \
         <code>start_agent</code> to the agent upstream, which streams the run's events back \
         to you through the hub.</p>\n\
         <form id=\"demo-form\" class=\"card\">\n\
         <label for=\"message\">Message to the agent</label>\n\
         <input id=\"message\" name=\"message\" type=\"text\" required maxlength=\"500\" \
         value=\"Why is my cloud bill so high?\">\n\
         <button id=\"start\" type=\"submit\" disabled>Start agent run</button>\n</form>\n\
         <p id=\"demo-state\" role=\"status\">Connecting to the WebSocket…</p>\n\
         <noscript><p class=\"error\">This page needs JavaScript: the run's events arrive \
         over a WebSocket.</p></noscript>\n\
         <section aria-labelledby=\"events-heading\">\n<h2 id=\"events-heading\">Events</h2>\n\
         <ol id=\"events\" class=\"events\" aria-live=\"polite\"></ol>\n</section>\n"
            .to_owned()
    } else if state.parts.hub.is_none() {
        html::error_box(
            "The WebSocket hub does not run in this process, so no agent run can be started here.",
        )
    } else {
        html::error_box(
            "No start_agent action is configured, so there is no agent to start. Add \
             [realtime.actions] start_agent = { upstream = \"agent\", path = \
             \"/api/agent/start\" } to the config, run portico demo agent, and restart \
             (see docs/demos.md).",
        )
    };
    let frame = Frame {
        title: "Agent demo",
        nav: Nav::Demo,
        email: Some(&session.email),
        csrf: Some(&session.csrf),
        ws_token: ready.then_some(session.access.as_str()),
        script: ready.then_some("demo.js"),
    };
    crate::html(
        StatusCode::OK,
        html::page(&frame, &content),
        session.set_cookies,
    )
}
