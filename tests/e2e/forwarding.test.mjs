// What the origin receives for good requests, and that it receives nothing
// for bad ones.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startHarness, bearer, json } from "../support/harness.mjs";
import { mint, claimsOf } from "../support/tokens.mjs";

let h;
before(async () => (h = await startHarness()));
after(async () => h?.close());

test("a verified request reaches the origin with identity, body and query intact", async () => {
  const token = await mint({ sub: "alice" }, h.config);
  h.takeReceived();
  const response = await h.fetch("/api/orders?page=2&sort=desc", {
    method: "POST",
    headers: { ...bearer(token), "content-type": "application/json", "x-custom": "kept" },
    body: JSON.stringify({ item: "book", qty: 2 }),
  });
  assert.equal(response.status, 200);
  await response.arrayBuffer();
  const [seen, ...more] = h.takeReceived();
  assert.equal(more.length, 0);
  assert.equal(seen.method, "POST");
  assert.equal(seen.url, "/api/orders?page=2&sort=desc");
  assert.equal(seen.body, '{"item":"book","qty":2}');
  assert.equal(seen.headers["x-custom"], "kept");
  assert.equal(seen.headers["content-type"], "application/json");
  const claims = claimsOf(token);
  assert.equal(seen.headers["x-auth-subject"], "alice");
  assert.equal(seen.headers["x-auth-token-id"], claims.jti);
  assert.equal(seen.headers["x-auth-issuer"], h.config.JWT_ISSUER);
  const forwardedClaims = JSON.parse(Buffer.from(seen.headers["x-auth-claims"], "base64url").toString("utf8"));
  assert.deepEqual(forwardedClaims, claims);
});

test("a large streamed body arrives byte for byte", async () => {
  const token = await mint({}, h.config);
  const body = Buffer.alloc(3 * 1024 * 1024, "0123456789abcdef").toString();
  h.takeReceived();
  const response = await h.fetch("/upload", { method: "PUT", headers: bearer(token), body });
  assert.equal(response.status, 200);
  await response.arrayBuffer();
  const [seen] = h.takeReceived();
  assert.equal(seen.body.length, body.length);
  assert.equal(seen.body, body);
});

test("client-sent X-Auth-* headers never reach the origin", async () => {
  const token = await mint({ sub: "alice" }, h.config);
  const spoofed = { "x-auth-subject": "root", "X-Auth-Claims": "e30", "x-auth-role": "admin", X_Auth_Issuer: "evil" };
  h.takeReceived();
  await (await h.fetch("/api/me", { headers: { ...bearer(token), ...spoofed } })).arrayBuffer();
  await (await h.fetch("/demo/page", { headers: spoofed })).arrayBuffer();
  const [verified, publicRequest] = h.takeReceived();
  assert.equal(verified.headers["x-auth-subject"], "alice");
  assert.equal(verified.headers["x-auth-role"], undefined);
  for (const request of [verified, publicRequest]) {
    for (const name of Object.keys(request.headers)) {
      // CGI-style origins read X_Auth_Issuer as X-Auth-Issuer.
      if (name.replaceAll("_", "-").startsWith("x-auth-")) {
        assert.ok(["x-auth-subject", "x-auth-issuer", "x-auth-token-id", "x-auth-claims"].includes(name) && request === verified, `leaked ${name}`);
      }
    }
  }
  assert.equal(verified.headers["x-auth-issuer"], h.config.JWT_ISSUER);
});

test("public paths and CORS preflights are forwarded without a token", async () => {
  h.takeReceived();
  const page = await h.fetch("/demo/anything?x=1");
  assert.equal(page.status, 200);
  await page.arrayBuffer();
  const preflight = await h.fetch("/api/orders", {
    method: "OPTIONS",
    headers: { origin: "https://app.example", "access-control-request-method": "POST" },
    body: "an unverified request must not carry a body to the origin",
  });
  assert.equal(preflight.status, 200);
  await preflight.arrayBuffer();
  const [first, second] = h.takeReceived();
  assert.equal(first.url, "/demo/anything?x=1");
  assert.equal(second.method, "OPTIONS");
  assert.equal(second.body, "");

  // A bare OPTIONS is not a preflight and needs a token like anything else.
  const bare = await h.fetch("/api/orders", { method: "OPTIONS" });
  assert.equal(bare.status, 401);
  await bare.arrayBuffer();
  // An encoded slash cannot smuggle a protected path under a public prefix.
  for (const sneaky of ["/demo/..%2Fapi%2Fadmin", "/demo/..;/api/admin"]) {
    const response = await h.fetch(sneaky);
    assert.equal(response.status, 401, sneaky);
    await response.arrayBuffer();
  }
  assert.equal(h.takeReceived().length, 0);
});

test("the token may come from the configured cookie", async () => {
  const token = await mint({ sub: "carol" }, h.config);
  h.takeReceived();
  const response = await h.fetch("/api/me", { headers: { cookie: `theme=dark; ${h.config.TOKEN_COOKIE}=${token}` } });
  assert.equal(response.status, 200);
  await response.arrayBuffer();
  assert.equal(h.takeReceived()[0].headers["x-auth-subject"], "carol");
});

test("an origin redirect is passed back, not followed", async () => {
  const token = await mint({}, h.config);
  const response = await h.fetch("/somewhere", { headers: { ...bearer(token), "x-origin-status": "302" } });
  assert.equal(response.status, 302);
  await response.arrayBuffer();
});

// Last in this file: it takes the origin down.
test("an unreachable origin answers 502 origin_unreachable", async () => {
  await h.origin.close();
  const token = await mint({}, h.config);
  const response = await h.fetch("/api/me", { headers: bearer(token) });
  assert.equal(response.status, 502);
  assert.equal((await json(response)).error, "origin_unreachable");
});
