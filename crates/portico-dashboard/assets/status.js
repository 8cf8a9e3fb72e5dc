// The status page, live: subscribes to dashboard:status and redraws the three sections
// from each status_snapshot. Text goes in through textContent only (never as HTML).
"use strict";
(function () {
  var live = document.getElementById("live");
  function setLive(state, words) {
    live.setAttribute("data-state", state);
    live.textContent = words;
  }
  function cell(row, text, header) {
    var c = document.createElement(header ? "th" : "td");
    if (header) { c.setAttribute("scope", "row"); }
    c.textContent = text;
    row.appendChild(c);
    return c;
  }
  function badge(td, state) {
    td.textContent = "";
    var span = document.createElement("span");
    span.className = "badge " + state;
    span.textContent = String(state).replace("_", " ");
    td.appendChild(span);
  }
  function text(v, empty) { return v === null || v === undefined ? (empty || "") : String(v); }
  function draw(s) {
    var services = document.querySelector("#services tbody");
    services.textContent = "";
    (s.services || []).forEach(function (svc) {
      var tr = document.createElement("tr");
      cell(tr, text(svc.service), true);
      badge(cell(tr, ""), text(svc.state));
      cell(tr, text(svc.failure_count));
      cell(tr, text(svc.last_failure, "never"));
      cell(tr, text(svc.last_state_change));
      services.appendChild(tr);
    });
    var health = document.querySelector("#health tbody");
    health.textContent = "";
    var checks = (s.health && s.health.checks) || {};
    Object.keys(checks).sort().forEach(function (name) {
      var c = checks[name];
      var tr = document.createElement("tr");
      cell(tr, name, true);
      badge(cell(tr, ""), text(c.status));
      cell(tr, text(c.latency_ms) + " ms");
      cell(tr, c.critical ? "yes" : "no");
      cell(tr, text(c.message));
      health.appendChild(tr);
    });
    var overall = document.getElementById("health-status");
    overall.className = "badge " + text(s.health && s.health.status);
    overall.textContent = text(s.health && s.health.status);
    document.getElementById("connections").textContent = text(s.connections, "not running");
    document.getElementById("updated").textContent = text(s.timestamp);
  }
  window.PorticoLive.connect({
    open: function (link) {
      link.send({ action: "subscribe", data: { channel: "dashboard:status" } });
    },
    frame: function (frame) {
      if (frame.type === "subscribed") {
        setLive("on", "Live: updates every few seconds over the WebSocket.");
      } else if (frame.type === "status_snapshot") {
        draw(frame.data);
        setLive("on", "Live: updates every few seconds over the WebSocket.");
      } else if (frame.type === "error") {
        setLive("off", "Live updates are unavailable: " + text(frame.data && frame.data.message));
      }
    },
    closed: function () { setLive("off", "Connection lost; reconnecting…"); }
  });
})();
