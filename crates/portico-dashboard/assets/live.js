// The dashboard's WebSocket client: connects to /ws with the page's access token
// (<meta name="portico-token">), reconnects with a growing delay, and reloads the page when
// the hub refuses the token (1008) or it expired (4001): the server then refreshes the
// session and renders a new token.
"use strict";
window.PorticoLive = {
  connect: function (handlers) {
    var meta = document.querySelector('meta[name="portico-token"]');
    if (!meta) { return null; }
    var token = meta.getAttribute("content");
    var delay = 500;
    var socket = null;
    var link = {
      send: function (frame) {
        if (socket && socket.readyState === WebSocket.OPEN) {
          socket.send(JSON.stringify(frame));
          return true;
        }
        return false;
      }
    };
    function open() {
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + "/ws?token=" + encodeURIComponent(token));
      socket.onmessage = function (event) {
        var frame;
        try { frame = JSON.parse(event.data); } catch (e) { return; }
        if (frame.type === "connection_established") {
          delay = 500;
          if (handlers.open) { handlers.open(link, frame); }
        } else if (frame.type !== "heartbeat" && handlers.frame) {
          handlers.frame(frame);
        }
      };
      socket.onclose = function (event) {
        if (event.code === 1008 || event.code === 4001) {
          location.reload();
          return;
        }
        if (handlers.closed) { handlers.closed(); }
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 15000);
      };
    }
    open();
    return link;
  }
};
