// The agent demo: sends start_agent over the WebSocket and lists each event of that run as
// it arrives on the user's channel, until agent_completed.
"use strict";
(function () {
  var form = document.getElementById("demo-form");
  var button = document.getElementById("start");
  var message = document.getElementById("message");
  var state = document.getElementById("demo-state");
  var events = document.getElementById("events");
  var runId = null;
  var started = 0;
  function say(words) { state.textContent = words; }
  function add(type, data) {
    var li = document.createElement("li");
    li.className = "event";
    li.setAttribute("data-type", type);
    var name = document.createElement("strong");
    name.textContent = type;
    li.appendChild(name);
    var detail = document.createElement("code");
    detail.textContent = " " + JSON.stringify(data);
    li.appendChild(detail);
    events.appendChild(li);
  }
  var link = window.PorticoLive.connect({
    open: function () {
      button.disabled = runId !== null;
      if (runId === null) { say("Connected. Type a message and start a run."); }
    },
    frame: function (frame) {
      var meta = frame.metadata || {};
      if (frame.type === "action_result" && meta.client_id === "dashboard-" + started) {
        runId = frame.data && frame.data.run_id;
        if (!runId) {
          button.disabled = false;
          say("The agent did not start the run: " + JSON.stringify(frame.data));
          return;
        }
        say("Run " + runId + " started; events appear below as they stream in.");
      } else if (frame.type === "error" && meta.client_id === "dashboard-" + started) {
        button.disabled = false;
        runId = null;
        say("The run could not start: " + ((frame.data && frame.data.message) || "unknown error") + ".");
      } else if (runId !== null && meta.run_id === runId) {
        add(frame.type, frame.data);
        if (frame.type === "agent_completed") {
          say("Run " + runId + " completed.");
          runId = null;
          button.disabled = false;
        }
      }
    },
    closed: function () {
      button.disabled = true;
      say("Connection lost; reconnecting…");
    }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!message.value.trim()) { say("Type a message for the agent first."); message.focus(); return; }
    started += 1;
    events.textContent = "";
    var sent = link && link.send({
      action: "start_agent",
      client_id: "dashboard-" + started,
      data: { message: message.value }
    });
    if (sent) {
      button.disabled = true;
      say("Starting a run…");
    } else {
      say("Not connected yet; try again in a moment.");
    }
  });
})();
