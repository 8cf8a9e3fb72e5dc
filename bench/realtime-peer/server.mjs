// Socket.IO peer for bench/realtime-vs-socketio.sh: the same job as Portico's realtime hub,
// done the way a Socket.IO application would do it.
//
//   - websocket transport only (no long-polling), no per-message compression (Portico's hub
//     has none either), bufferutil installed as Socket.IO's docs advise for performance;
//   - every connection presents a JWT in its auth payload (`40{"token":"…"}`), verified on
//     connect like Portico verifies `?token=`: with JWKS_URL set, the very access tokens
//     Portico issues (EdDSA, checked against Portico's published keys, fetched once at start,
//     issuer and audience checked); with JWT_SECRET instead, HS256 tokens (standalone use,
//     `node server.mjs mint` prints one);
//   - a connection joins the room `user:<sub>` (as Portico joins `user:<id>`), and any room
//     it asks for with a `subscribe` event, confirmed with a `subscribed` event;
//   - messages are broadcast to a room from a client's `publish` event
//     ({channel, event, data}) or from `POST /publish` with the same body and a service token
//     as bearer (audience PEER_PUBLISH_AUDIENCE), answered 202 — Portico's /internal/publish.
//
// Environment: PEER_PORT (3000), JWKS_URL or JWT_SECRET, PEER_ISSUER (checked when set),
// PEER_AUDIENCE (user tokens, checked when set), PEER_PUBLISH_AUDIENCE ("realtime").
import http from "node:http";
import { Server } from "socket.io";
import { SignJWT, createLocalJWKSet, jwtVerify } from "jose";

const port = Number(process.env.PEER_PORT ?? 3000);
const issuer = process.env.PEER_ISSUER || undefined;
const audience = process.env.PEER_AUDIENCE || undefined;
const publishAudience = process.env.PEER_PUBLISH_AUDIENCE ?? "realtime";

function fail(message) {
  console.error(`realtime-peer: ${message}`);
  process.exit(2);
}

let key;
let algorithms;
if (process.env.JWKS_URL) {
  const res = await fetch(process.env.JWKS_URL);
  if (!res.ok) fail(`JWKS_URL answered ${res.status}`);
  key = createLocalJWKSet(await res.json());
  algorithms = ["EdDSA", "ES256"];
} else if (process.env.JWT_SECRET) {
  key = new TextEncoder().encode(process.env.JWT_SECRET);
  algorithms = ["HS256"];
} else {
  fail("set JWKS_URL (Portico's keys) or JWT_SECRET (HS256)");
}

if (process.argv[2] === "mint") {
  // node server.mjs mint [sub] [audience] → an HS256 token valid for an hour.
  if (!process.env.JWT_SECRET) fail("mint needs JWT_SECRET");
  let jwt = new SignJWT({}).setProtectedHeader({ alg: "HS256" })
    .setSubject(process.argv[3] ?? "bench-user").setIssuedAt().setExpirationTime("1h");
  if (process.argv[4]) jwt = jwt.setAudience(process.argv[4]);
  if (issuer) jwt = jwt.setIssuer(issuer);
  console.log(await jwt.sign(key));
  process.exit(0);
}

async function verify(token, aud) {
  if (typeof token !== "string" || token === "") throw new Error("AUTH_003");
  const { payload } = await jwtVerify(token, key, { algorithms, issuer, audience: aud });
  return payload;
}

function validMessage(m) {
  return m && typeof m.channel === "string" && m.channel !== "" &&
    typeof m.event === "string" && m.event !== "";
}

const httpServer = http.createServer((req, res) => {
  const reply = (status, body) => {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body));
  };
  if (req.method === "GET" && req.url === "/health") return reply(200, { ok: true });
  if (req.method !== "POST" || req.url !== "/publish") return reply(404, { error: "no route" });
  const auth = req.headers.authorization ?? "";
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > 64 * 1024) req.destroy();
    else chunks.push(c);
  });
  req.on("end", async () => {
    try {
      await verify(auth.startsWith("Bearer ") ? auth.slice(7) : "", publishAudience);
    } catch {
      return reply(401, { error: "unauthorized" });
    }
    let m;
    try {
      m = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return reply(400, { error: "invalid JSON" });
    }
    if (!validMessage(m)) return reply(400, { error: "channel and event are required" });
    io.to(m.channel).emit(m.event, m.data);
    reply(202, {});
  });
});

const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  maxHttpBufferSize: 64 * 1024,
});

io.use(async (socket, next) => {
  try {
    socket.data.user = await verify(socket.handshake.auth?.token, audience);
    next();
  } catch (e) {
    next(new Error(e.code === "ERR_JWT_EXPIRED" ? "AUTH_002" : "AUTH_001"));
  }
});

io.on("connection", (socket) => {
  socket.join(`user:${socket.data.user.sub}`);
  socket.on("subscribe", (d) => {
    if (!d || typeof d.channel !== "string" || d.channel === "") {
      return socket.emit("error", { code: "REQ_001", message: "channel is required" });
    }
    socket.join(d.channel);
    socket.emit("subscribed", { channel: d.channel });
  });
  socket.on("publish", (m) => {
    if (!validMessage(m)) {
      return socket.emit("error", { code: "REQ_001", message: "channel and event are required" });
    }
    io.to(m.channel).emit(m.event, m.data);
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`realtime-peer listening on 127.0.0.1:${port} (pid ${process.pid})`);
});
