// The demo origin: a tiny HTTP server that shows exactly what reached it
// through Tokengate (method, URL, headers including the X-Auth-* identity,
// body) and can mint a development token. The end-to-end tests use the same
// server to record what the origin received.
//
//   node demo/origin.mjs            (needs JWT_SECRET, see `npm run dev`)

import http from "node:http";
import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";

/**
 * Starts the origin. Every request is recorded in `received`.
 * `mint` settings enable /demo/mint (the dev-token form).
 * A request header `x-origin-status: NNN` makes the origin answer NNN,
 * so tests can play an origin that refuses (say) a password change.
 */
export function startOrigin({ port = 0, host = "127.0.0.1", mint } = {}) {
  const received = [];
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const record = {
      method: req.method,
      url: req.url,
      headers: req.headers,
      body: Buffer.concat(chunks).toString("utf8"),
    };
    received.push(record);
    const url = new URL(req.url, "http://origin");
    try {
      if (url.pathname === "/demo" || url.pathname === "/demo/") {
        return send(res, 200, "text/html; charset=utf-8", demoPage());
      }
      if (url.pathname === "/demo/mint" && mint) {
        return await mintToken(res, url, mint);
      }
      const status = Number(req.headers["x-origin-status"] ?? 200);
      send(res, status >= 200 && status <= 599 ? status : 200, "application/json", JSON.stringify(record, null, 2));
    } catch (error) {
      send(res, 500, "text/plain", String(error));
    }
  });
  return new Promise((resolve) => {
    server.listen(port, host, () => {
      resolve({
        url: `http://${host}:${server.address().port}`,
        received,
        close: () => new Promise((done) => server.close(done)),
      });
    });
  });
}

function send(res, status, type, body) {
  res.writeHead(status, { "content-type": type });
  res.end(body);
}

async function mintToken(res, url, { secret, issuer, audience, cookie }) {
  const sub = url.searchParams.get("sub") || "alice";
  const ttl = Math.min(Number(url.searchParams.get("ttl")) || 600, 86400);
  const token = await new SignJWT({ name: sub })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(sub)
    .setIssuer(issuer)
    .setAudience(audience)
    .setJti(randomUUID())
    // Fractional iat: ordered exactly against logout-all cut-offs.
    .setIssuedAt(Date.now() / 1000)
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
    .sign(new TextEncoder().encode(secret));
  res.writeHead(200, {
    "content-type": "application/json",
    // The same cookie Tokengate reads (TOKEN_COOKIE) and clears on logout.
    "set-cookie": `${cookie}=${token}; Path=/; HttpOnly; SameSite=Lax`,
  });
  res.end(JSON.stringify({ sub, token, try: `curl -H 'Authorization: Bearer ${token}' http://127.0.0.1:8787/hello` }, null, 2));
}

function demoPage() {
  return `<!doctype html><meta charset="utf-8"><title>Tokengate demo</title>
<style>body{font:15px system-ui;max-width:46rem;margin:2rem auto;padding:0 1rem}pre{background:#f4f4f4;padding:1rem;overflow:auto}</style>
<h1>Tokengate demo origin</h1>
<p>This page is public (<code>PUBLIC_PATHS</code>). Everything else goes through Tokengate's JWT check.</p>
<p><button onclick="mint()">Mint a dev token for</button> <input id=sub value=alice size=10> (sets the <code>tg_token</code> cookie)</p>
<p><button onclick="go('GET','/hello')">GET /hello</button>
<button onclick="go('POST','/auth/logout')">POST /auth/logout</button>
<button onclick="go('POST','/auth/logout-all')">POST /auth/logout-all</button>
<button onclick="go('POST','/auth/password-change')">POST /auth/password-change</button></p>
<pre id=out>Mint a token, then call /hello: the origin echoes what it received, X-Auth-* identity headers included.</pre>
<script>
const out = document.getElementById('out');
async function mint() {
  const r = await fetch('/demo/mint?sub=' + encodeURIComponent(document.getElementById('sub').value));
  out.textContent = await r.text();
}
async function go(method, path) {
  const r = await fetch(path, { method });
  out.textContent = method + ' ' + path + ' -> ' + r.status + '\\n\\n' + await r.text();
}
</script>`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const secret = process.env.JWT_SECRET;
  if (!secret) {
    console.error("demo origin: set JWT_SECRET (npm run dev does this for you)");
    process.exit(1);
  }
  const origin = await startOrigin({
    port: Number(process.env.ORIGIN_PORT ?? 8788),
    mint: {
      secret,
      issuer: process.env.JWT_ISSUER,
      audience: process.env.JWT_AUDIENCE,
      cookie: process.env.TOKEN_COOKIE ?? "tg_token",
    },
  });
  console.log(`demo origin listening on ${origin.url}`);
}
