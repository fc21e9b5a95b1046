// The classic design from the blog recipe: Node.js + Express middleware,
// `jsonwebtoken` verify, and an in-memory array of revoked tokens checked
// with `includes` on every request. Forwards to the same origin with the same
// identity headers as the gateways, so the job is the same.
//
//   node bench/classic/server.mjs '<json options>'
// options: {secret, issuer, audience, originUrl, seedCount, revoked: [tokens]}
// Prints {"port": N, "listSize": N} once listening.
import express from "express";
import jwt from "jsonwebtoken";
import http from "node:http";
import { randomBytes } from "node:crypto";

const opts = JSON.parse(process.argv[2]);
const origin = new URL(opts.originUrl);

// The revoked list: seedCount tokens shaped like real ones (same header, same
// claim layout, similar lengths), then the revoked tokens the traffic uses, at
// the end, where `includes` finds them last.
const revokedTokens = [];
{
  const header = Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT" })).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const sigs = randomBytes(32 * Math.min(opts.seedCount, 65536));
  for (let i = 0; i < opts.seedCount; i++) {
    const payload = { scope: "read write", iss: opts.issuer, aud: opts.audience, sub: `user-hs256-${i % 1000}`,
      jti: `rv-hs256-${i}-${sigs.subarray((i * 6) % (sigs.length - 6), ((i * 6) % (sigs.length - 6)) + 6).toString("base64url")}`,
      iat: now - 60, exp: now + 4 * 3600 };
    const off = (i * 32) % sigs.length;
    revokedTokens.push(`${header}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${sigs.subarray(off, off + 32).toString("base64url")}`);
  }
  for (const t of opts.revoked ?? []) revokedTokens.push(t);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const app = express();
app.disable("x-powered-by");
app.disable("etag");

// Middleware 1: authenticate (the recipe: blacklist check, then jwt.verify).
function authenticateToken(req, res, next) {
  const authHeader = req.headers["authorization"];
  const token = authHeader && authHeader.split(" ")[1];
  if (!token) return res.status(401).json({ error: "token_missing" });
  if (revokedTokens.includes(token)) return res.status(401).json({ error: "token_revoked" });
  jwt.verify(token, opts.secret, { algorithms: ["HS256"], issuer: opts.issuer, audience: opts.audience }, (err, user) => {
    if (err) return res.status(401).json({ error: err.name === "JsonWebTokenError" && err.message === "invalid signature" ? "signature_invalid" : "token_invalid" });
    req.user = user;
    req.token = token;
    next();
  });
}

// Middleware 2: forward to the origin with identity headers, client X-Auth-* removed.
function forward(req, res) {
  const headers = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith("x-auth-") || name.startsWith("x_auth_")) continue;
    headers[name] = value;
  }
  headers.host = origin.host;
  headers["x-auth-subject"] = String(req.user.sub ?? "");
  headers["x-auth-token-id"] = String(req.user.jti ?? "");
  headers["x-auth-issuer"] = String(req.user.iss ?? "");
  headers["x-auth-claims"] = req.token.split(".")[1];
  const upstream = http.request(
    { host: origin.hostname, port: origin.port, method: req.method, path: req.originalUrl, headers, agent },
    (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    },
  );
  upstream.on("error", () => res.status(502).json({ error: "origin_unreachable" }));
  req.pipe(upstream);
}

app.use(authenticateToken);
app.use(forward);

const server = app.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port, listSize: revokedTokens.length }) + "\n");
});
server.keepAliveTimeout = 60_000;
