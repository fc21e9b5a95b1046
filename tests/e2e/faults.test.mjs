// Faults in what the gateway depends on: a KV namespace that hangs or will
// not take writes, an origin that refuses connections, and an identity
// provider that is slow or serves garbage. Each fails closed with a clear
// 5xx code, never forwards what it could not check, and never shows success
// for a revocation that was not recorded.
//
// Pinned elsewhere, not repeated here:
// - KV reads failing (503 revocation_unavailable, nothing forwarded):
//   revocation.test.mjs "unreadable KV: 503 revocation_unavailable and the origin receives nothing"
// - KV write failing on logout (503 revocation_unavailable):
//   revocation.test.mjs "a failed write on logout is reported as a failure"
// - a verified request to an origin that went away (502 origin_unreachable):
//   forwarding.test.mjs "an unreachable origin answers 502 origin_unreachable"
// - JWKS provider down with keys cached, never answering or 404 with none cached:
//   jwks.test.mjs "provider down while keys are cached: tokens still verify",
//   "a provider that never answers costs one 5 s timeout, then 503 keys_unavailable",
//   "no keys ever fetched: 503 keys_unavailable, not a bad-token 401"
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPair, exportJWK } from "jose";
import { startHarness, bearer, json } from "../support/harness.mjs";
import { startJwksServer } from "../support/jwks-server.mjs";
import { closedPortUrl } from "../support/closed-port.mjs";
import { mint, now, es256Token, ADMIN_TOKEN } from "../support/tokens.mjs";

/** KV_READ_TIMEOUT_MS in js/host.mjs. */
const KV_READ_TIMEOUT_MS = 3000;
/** RETRY_PAUSES_MS in src/revocation.rs: three attempts, 1.1 s and 2.2 s apart... */
const WRITE_RETRY_MS = 1100 + 2200;
/** ...each pause spread by up to half again (src/jitter.rs, `latest`). */
const WRITE_RETRY_LATEST_MS = 1650 + 3300;
/** FETCH_TIMEOUT_MS in src/edge/jwks.rs. */
const JWKS_TIMEOUT_MS = 5000;
/**
 * What a request may cost beyond the product's own waiting on the machine CI
 * runs on (two cores, sixteen workerd instances and a compiler beside them):
 * machine speed, not the product's contract. The upper bounds below are the
 * product's wait plus this.
 */
const LOAD_SLACK_MS = 6000;

let h;
let idp;
const keys = {};

// Garbage an identity provider might serve with a 200, each refused as a
// key set. `k1` and `k3` are real keys, so a set that is only garbage
// because of how it is wrapped would verify if it were (wrongly) accepted.
const GARBAGE = {
  "not-json": () => ({ body: "<html><body><h1>502 Bad Gateway</h1></body></html>", contentType: "text/html" }),
  truncated: () => ({ body: JSON.stringify({ keys: [keys.k1.jwk, keys.k3.jwk] }).slice(0, 60) }),
  "no-keys": () => ({ body: JSON.stringify({ issuer: "https://issuer.tokengate.test", jwks_uri: "elsewhere" }) }),
  "keys-not-a-list": () => ({ body: JSON.stringify({ keys: { ...keys.k3.jwk } }) }),
  "empty-keys": () => ({ body: JSON.stringify({ keys: [] }) }),
  "wrong-types": () => ({
    body: JSON.stringify({
      keys: [
        42,
        "k3",
        null,
        true,
        [keys.k3.jwk],
        { ...keys.k3.jwk, kty: "RSA" }, // EC members under another key type
        { ...keys.k3.jwk, kty: 7 },
        { ...keys.k3.jwk, x: 12345 },
        { ...keys.k3.jwk, crv: "P-521" },
        { ...keys.k3.jwk, kty: "XYZ" },
        { kty: "oct", k: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", kid: "k3" }, // HMAC in a public set
        { ...keys.k3.jwk, use: "enc" },
      ],
    }),
  }),
  // Over the 256 KiB limit, though it holds usable keys.
  oversized: () => ({ body: JSON.stringify({ keys: [keys.k1.jwk, keys.k3.jwk], padding: "x".repeat(300 * 1024) }) }),
};
const jwksPath = (scenario) => `/${scenario}/jwks.json`;

before(async () => {
  for (const kid of ["k1", "k3"]) {
    const pair = await generateKeyPair("ES256", { extractable: true });
    keys[kid] = { ...pair, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg: "ES256" } };
  }
  idp = await startJwksServer();
  // One worker (one isolate, one key cache) per scenario.
  const gateways = { "gw-closed-origin": { ORIGIN_URL: await closedPortUrl() } };
  const scenarios = ["slow-cached", ...Object.keys(GARBAGE).flatMap((g) => [`cold-${g}`, `cached-${g}`])];
  for (const scenario of scenarios) {
    gateways[`gw-${scenario}`] = { JWT_SECRET: undefined, JWT_JWKS_URL: idp.url(jwksPath(scenario)) };
  }
  h = await startHarness({ gateways });
});
after(async () => {
  await h?.close();
  await idp?.close();
});
beforeEach(async () => {
  await h.probe("reset");
  h.takeReceived();
});

let users = 0;
const freshUser = () => `fault-user-${++users}-${Date.now()}`;

/** Status and error code, the body read either way. */
async function outcome(response) {
  const text = await response.text();
  if (response.status === 200) return 200;
  let code;
  try {
    code = JSON.parse(text).error;
  } catch {
    code = `(not JSON: ${text.slice(0, 80)})`;
  }
  return `${response.status} ${code}`;
}

/** Runs `send` and says how long it took, in ms. */
async function timed(send) {
  const start = Date.now();
  const result = await send();
  return [result, Date.now() - start];
}

// ---- 1. KV -----------------------------------------------------------------

test("KV reads hanging: 503 revocation_unavailable after the 3 s timeout, nothing forwarded", async () => {
  const token = await mint({ sub: freshUser() }, h.config);
  await h.probe("hang-reads");
  const asks = [
    ["GET /api/resource", "/api/resource", { headers: bearer(token) }],
    ["POST password change", h.config.PASSWORD_CHANGE_PATH, { method: "POST", headers: bearer(token), body: "new=pw" }],
    ["POST /auth/logout-all", "/auth/logout-all", { method: "POST", headers: bearer(token) }],
    ["POST /auth/logout", "/auth/logout", { method: "POST", headers: bearer(token) }],
  ];
  // All at once: each has its own 3 s timer, so this takes ~3 s, not ~12 s
  // (the upper bound is under three timeouts: requests waiting on each other would show).
  const results = await Promise.all(asks.map(([, path, init]) => timed(async () => outcome(await h.probed(path, init)))));
  asks.forEach(([what], i) => {
    const [result, waited] = results[i];
    assert.equal(result, "503 revocation_unavailable", what);
    assert.ok(waited >= KV_READ_TIMEOUT_MS - 100 && waited < KV_READ_TIMEOUT_MS + LOAD_SLACK_MS, `${what}: answered after ${waited} ms`);
  });
  assert.ok((await h.probe("stats")).gets >= asks.length, "every request asked KV (and got no answer)");
  assert.deepEqual(h.takeReceived(), [], "nothing reached the origin");
});

test("KV writes failing on logout-all: 503 revocation_unavailable after three attempts, never 200", async () => {
  const sub = freshUser();
  const token = await mint({ sub }, h.config);
  await h.probe("fail-writes");
  const [result, waited] = await timed(async () => outcome(await h.probed("/auth/logout-all", { method: "POST", headers: bearer(token) })));
  assert.equal(result, "503 revocation_unavailable");
  assert.equal((await h.probe("stats")).puts, 3, "bounded retry: three attempts");
  assert.ok(waited >= WRITE_RETRY_MS - 100 && waited < WRITE_RETRY_LATEST_MS + LOAD_SLACK_MS, `answered after ${waited} ms`);
  assert.equal(await h.kv.get(`v1:sub:${sub}`), null);
});

// Extends revocation.test.mjs "password change whose cut-off cannot be
// written" (503 sessions_not_revoked, three puts) with what it leaves out:
// the origin did get and accept the change, and the retries were spaced.
test("KV writes failing on a password change the origin accepted: the origin got it, the client gets 503 sessions_not_revoked", async () => {
  const sub = freshUser();
  const token = await mint({ sub }, h.config);
  await h.probe("fail-writes");
  const [response, waited] = await timed(() =>
    h.probed(h.config.PASSWORD_CHANGE_PATH, {
      method: "POST",
      headers: { ...bearer(token), "content-type": "application/json" },
      body: JSON.stringify({ new: "correct horse" }),
    }),
  );
  const body = await json(response);
  assert.equal(response.status, 503);
  assert.equal(body.error, "sessions_not_revoked");
  assert.doesNotMatch(JSON.stringify(body), /correct horse/, "the origin's answer is not passed on");
  const received = h.takeReceived();
  assert.equal(received.length, 1, "forwarded once");
  assert.equal(received[0].method, "POST");
  assert.equal(received[0].body, JSON.stringify({ new: "correct horse" }));
  assert.equal(received[0].headers["x-auth-subject"], sub);
  assert.equal((await h.probe("stats")).puts, 3);
  assert.ok(waited >= WRITE_RETRY_MS - 100 && waited < WRITE_RETRY_LATEST_MS + LOAD_SLACK_MS, `answered after ${waited} ms`);
});

test("KV writes failing on the admin API: every revoke form answers 503 revocation_unavailable, never revoked: true", async () => {
  const token = await mint({ sub: freshUser() }, h.config);
  await h.probe("fail-writes");
  const bodies = [
    { token },
    { jti: `admin-fault-${Date.now()}`, exp: now() + 600, sub: freshUser() },
    { sub: freshUser() },
  ];
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
  const results = await Promise.all(
    bodies.map((body) =>
      timed(async () => {
        const response = await h.probed("/_admin/revoke", { method: "POST", headers: admin, body: JSON.stringify(body) });
        const text = await response.text();
        return { status: response.status, text };
      }),
    ),
  );
  bodies.forEach((body, i) => {
    const [{ status, text }, waited] = results[i];
    const what = Object.keys(body).join("+");
    assert.equal(status, 503, `${what}: ${text}`);
    assert.equal(JSON.parse(text).error, "revocation_unavailable", what);
    assert.doesNotMatch(text, /"revoked"\s*:\s*true/, what);
    assert.ok(waited >= WRITE_RETRY_MS - 100, `${what}: answered after ${waited} ms, without the retries`);
  });
  assert.equal((await h.probe("stats")).puts, 3 * bodies.length, "three attempts each");
});

// ---- 2. Origin -------------------------------------------------------------

test("origin refusing connections: 502 origin_unreachable for a public path and the password-change route, no cut-off recorded", async () => {
  const at = h.at("gw-closed-origin");
  assert.equal(await outcome(await at("/demo/page?x=1")), "502 origin_unreachable", "public path");
  assert.equal(await outcome(await at("/demo/form", { method: "POST", body: "a=1" })), "502 origin_unreachable", "public path, with a body");

  // The origin never accepted the change, so nothing is revoked.
  const sub = freshUser();
  const token = await mint({ sub }, h.config);
  const change = await at(h.config.PASSWORD_CHANGE_PATH, { method: "POST", headers: bearer(token), body: "new=pw" });
  assert.equal(await outcome(change), "502 origin_unreachable", "password change");
  assert.equal(await h.kv.get(`v1:sub:${sub}`), null, "no cut-off without the origin's success");
  assert.equal(await outcome(await h.fetch("/api/resource", { headers: bearer(token) })), 200, "the token still works elsewhere");
});

// ---- 3. Identity provider ----------------------------------------------------

const esToken = (kid) => es256Token(keys[kid].privateKey, kid, h.config);

const verifyAt = async (scenario, kid) =>
  outcome(await h.at(`gw-${scenario}`)("/api/resource", { headers: bearer(await esToken(kid)) }));

test("JWKS garbage with no keys cached: 503 keys_unavailable, never a verdict on the token", async () => {
  for (const [name, make] of Object.entries(GARBAGE)) {
    const { body, ...options } = make();
    idp.serveRaw(jwksPath(`cold-${name}`), body, options);
    // k3 is in most of the garbage: a set wrongly accepted would verify it.
    assert.equal(await verifyAt(`cold-${name}`, "k3"), "503 keys_unavailable", name);
    assert.equal(idp.fetches(jwksPath(`cold-${name}`)), 1, `${name}: fetched`);
  }
  assert.deepEqual(h.takeReceived(), []);
});

test("JWKS garbage with keys cached: the cached keys keep verifying, nothing from the garbage is used", async () => {
  for (const [name, make] of Object.entries(GARBAGE)) {
    const scenario = `cached-${name}`;
    idp.serve(jwksPath(scenario), [keys.k1.jwk]);
    assert.equal(await verifyAt(scenario, "k1"), 200, `${name}: warm-up`);
    const { body, ...options } = make();
    idp.serveRaw(jwksPath(scenario), body, options);
    // An unknown kid forces a refresh, which gets the garbage.
    assert.equal(await verifyAt(scenario, "k3"), "401 unknown_key", `${name}: k3 from the garbage`);
    assert.equal(idp.fetches(jwksPath(scenario)), 2, `${name}: refetched once`);
    assert.equal(await verifyAt(scenario, "k1"), 200, `${name}: cached k1 still verifies`);
  }
});

test("JWKS provider slower than the 5 s timeout with keys cached: one timeout, cached keys keep verifying, the late answer is not used", async () => {
  const path = jwksPath("slow-cached");
  idp.serve(path, [keys.k1.jwk]);
  assert.equal(await verifyAt("slow-cached", "k1"), 200);
  // From now on the provider has k3 too, but answers only after 15 s: well
  // after the timeout and the slack a loaded machine needs, so an answer
  // before it is the timeout's, never the late key set's.
  const late = JWKS_TIMEOUT_MS + LOAD_SLACK_MS + 4000;
  idp.serve(path, [keys.k1.jwk, keys.k3.jwk]);
  idp.slow(path, late);
  try {
    const [forced, waited] = await timed(() => verifyAt("slow-cached", "k3"));
    assert.equal(forced, "401 unknown_key");
    assert.ok(waited >= JWKS_TIMEOUT_MS - 500 && waited < JWKS_TIMEOUT_MS + LOAD_SLACK_MS, `waited ${waited} ms`);
    assert.ok(waited < late, `waited ${waited} ms: until the late answer`);
    assert.equal(idp.fetches(path), 2);
    // A cached key waits for no provider: waiting would cost a timeout (5 s).
    const [cached, quick] = await timed(() => verifyAt("slow-cached", "k1"));
    assert.equal(cached, 200);
    assert.ok(quick < JWKS_TIMEOUT_MS - 1000, `a cached key waited ${quick} ms`);
  } finally {
    idp.slow(path, 0);
  }
});
