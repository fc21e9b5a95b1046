// Tokengate as a workers-rs plugin: examples/workers-rs, a real
// `#[event(fetch)]` Worker built with the `workers-rs` feature, in Miniflare
// with its own routes behind the gate. The same revocation behaviour as the
// standalone gateway, and for bad tokens the very same answers: each is also
// sent to the standalone build (tests/support/harness.mjs) and compared.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { startHarness, bearer, json } from "../support/harness.mjs";
import { mint, claimsOf, now, SECRET, OTHER_SECRET, ADMIN_TOKEN } from "../support/tokens.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const example = path.join(root, "examples/workers-rs");

let mf;
let kv;
let config;
let standalone;
/** A request to the example Worker. */
let app;

before(async () => {
  // Its own cargo package: built here (incrementally) rather than by scripts/build.sh.
  execFileSync("bash", [path.join(example, "build.sh")], { stdio: "inherit" });
  const wrangler = unstable_getMiniflareWorkerOptions(path.join(example, "wrangler.toml")).workerOptions;
  config = { ...wrangler.bindings, JWT_SECRET: SECRET, ADMIN_TOKEN };
  mf = new Miniflare(convertV4MiniflareOptions({
    workers: [{
      name: "app",
      modules: [
        { type: "ESModule", path: path.join(example, "build/index.js") },
        { type: "CompiledWasm", path: path.join(example, "build/index_bg.wasm") },
      ],
      compatibilityDate: wrangler.compatibilityDate,
      bindings: config,
      kvNamespaces: wrangler.kvNamespaces,
    }],
  }));
  await mf.ready;
  kv = await mf.getKVNamespace("REVOCATIONS");
  app = (pathname, init = {}) => mf.dispatchFetch(`https://app.test${pathname}`, { redirect: "manual", ...init });
  standalone = await startHarness();
});

after(async () => {
  await mf?.dispose();
  await standalone?.close();
});

const freshUser = () => `user-${randomUUID()}`;
/** A token issued a few seconds ago: strictly before any cut-off made now. */
const older = (sub) => mint({ sub, claims: { iat: now() - 5 } }, config);

async function me(token) {
  const response = await app("/api/me", { headers: bearer(token) });
  const body = await json(response);
  return { status: response.status, body };
}

test("a valid token reaches the handler with its X-Auth-* identity; client-sent X-Auth-* never does", async () => {
  const sub = freshUser();
  const token = await mint({ sub }, config);
  const { status, body } = await me(token);
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.subject, sub);
  assert.equal(body.issuer, config.JWT_ISSUER);
  assert.equal(body.token_id, claimsOf(token).jti);
  assert.equal(body.claims, token.split(".")[1]);

  const spoofed = await app("/api/me", { headers: { ...bearer(token), "x-auth-subject": "admin", "X_Auth_Issuer": "evil" } });
  const seen = await json(spoofed);
  assert.equal(seen.subject, sub);
  assert.equal(seen.issuer, config.JWT_ISSUER);

  const anonymous = await app("/public/hello", { headers: { "x-auth-subject": "admin" } });
  assert.equal(anonymous.status, 200);
  assert.deepEqual(await json(anonymous), { hello: "anyone", subject: null });
});

test("bad tokens get exactly the standalone gateway's status, error code and WWW-Authenticate", async () => {
  const cases = {
    missing: null,
    garbage: "not.a.token",
    "wrong signature": await mint({ secret: OTHER_SECRET }, config),
    expired: await mint({ claims: { iat: now() - 7200, exp: now() - 3600 } }, config),
    "wrong audience": await mint({ claims: { aud: "someone-else" } }, config),
    "wrong issuer": await mint({ claims: { iss: "https://elsewhere.test" } }, config),
    "not yet valid": await mint({ claims: { nbf: now() + 3600 } }, config),
    "a cookie and a different bearer token": "cookie",
  };
  for (const [name, token] of Object.entries(cases)) {
    const init = { headers: token === null ? {} : bearer(token) };
    if (token === "cookie") {
      init.headers = { ...bearer(cases.expired), cookie: `${config.TOKEN_COOKIE}=${await mint({}, config)}` };
    }
    const ours = await app("/api/me", init);
    const theirs = await standalone.fetch("/api/me", init);
    const [oursBody, theirsBody] = [await json(ours), await json(theirs)];
    assert.notEqual(ours.status, 200, name);
    assert.equal(ours.status, theirs.status, name);
    assert.equal(oursBody.error, theirsBody.error, name);
    assert.equal(ours.headers.get("www-authenticate"), theirs.headers.get("www-authenticate"), name);
  }
});

test("logout revokes the token (401 token_revoked), and the KV entry is the standalone gateway's", async () => {
  const token = await mint({ sub: freshUser() }, config);
  assert.equal((await me(token)).status, 200);
  const logout = await app("/auth/logout", { method: "POST", headers: bearer(token) });
  assert.equal(logout.status, 200);
  assert.equal((await json(logout)).status, "logged_out");
  const reuse = await me(token);
  assert.equal(reuse.status, 401);
  assert.equal(reuse.body.error, "token_revoked");
  assert.ok(await kv.get(`v1:jti:${claimsOf(token).jti}`), "the revocation is in KV");
});

test("logout-all cuts off every token of the user issued before it; another user's still works", async () => {
  const sub = freshUser();
  const [phone, laptop] = [await older(sub), await older(sub)];
  const other = await older(freshUser());
  const response = await app("/auth/logout-all", { method: "POST", headers: bearer(phone) });
  const body = await json(response);
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.equal(body.sub, sub);
  assert.equal((await me(phone)).body.error, "token_revoked");
  assert.equal((await me(laptop)).body.error, "token_revoked");
  assert.equal((await me(other)).status, 200);
  assert.equal(Number(await kv.get(`v1:sub:${sub}`)), body.revoked_before);
});

test("a password change the handler accepts (2xx) cuts off the user's older tokens", async () => {
  const sub = freshUser();
  const [session, elsewhere] = [await older(sub), await older(sub)];
  const changed = await app("/auth/password-change", { method: "POST", headers: bearer(session) });
  assert.equal(changed.status, 204);
  assert.equal((await me(elsewhere)).body.error, "token_revoked");
  assert.ok(await kv.get(`v1:sub:${sub}`));
});

test("Tokengate-Revoke from the handler is recorded before its response goes back, and never reaches the client", async () => {
  const sub = freshUser();
  const [session, elsewhere] = [await older(sub), await older(sub)];
  const response = await app("/api/sign-out-everywhere", { method: "POST", headers: bearer(session) });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("tokengate-revoke"), null);
  assert.deepEqual(await json(response), { signed_out: true });
  assert.equal((await me(session)).body.error, "token_revoked");
  assert.equal((await me(elsewhere)).body.error, "token_revoked");
});

test("admin revocation by token and by user, with ADMIN_TOKEN", async () => {
  const admin = (body, token = ADMIN_TOKEN) =>
    app("/_admin/revoke", { method: "POST", headers: { ...bearer(token), "content-type": "application/json" }, body: JSON.stringify(body) });
  const byToken = await mint({ sub: freshUser() }, config);
  const userSub = freshUser();
  const userToken = await older(userSub);
  const active = await mint({ sub: freshUser() }, config);

  const refused = await admin({ token: byToken }, "wrong-admin-token-0000000");
  assert.equal(refused.status, 401);
  await refused.arrayBuffer();
  assert.equal((await json(await admin({ token: byToken }))).revoked, true);
  assert.equal((await json(await admin({ sub: userSub }))).sub, userSub);

  assert.equal((await me(byToken)).body.error, "token_revoked");
  assert.equal((await me(userToken)).body.error, "token_revoked");
  assert.equal((await me(active)).status, 200);
});

test("OpenID back-channel logout naming the user cuts off its tokens", async () => {
  const sub = freshUser();
  const token = await older(sub);
  const logoutToken = await new SignJWT({
    iss: config.JWT_ISSUER,
    aud: config.BACKCHANNEL_LOGOUT_AUDIENCE,
    sub,
    jti: randomUUID(),
    events: { "http://schemas.openid.net/event/backchannel-logout": {} },
  })
    .setProtectedHeader({ alg: "HS256", typ: "logout+jwt" })
    .setIssuedAt()
    .setExpirationTime(now() + 120)
    .sign(new TextEncoder().encode(SECRET));
  const response = await app(config.BACKCHANNEL_LOGOUT_PATH, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ logout_token: logoutToken }).toString(),
  });
  assert.equal(response.status, 200, await response.clone().text());
  await response.arrayBuffer();
  assert.equal((await me(token)).body.error, "token_revoked");
});

test("an admin body over 64 KiB is refused as the standalone gateway refuses it, streamed or declared", async () => {
  const oversized = JSON.stringify({ token: "x".repeat(100 * 1024) });
  const streamed = () => new ReadableStream({
    start(controller) {
      const bytes = new TextEncoder().encode(oversized);
      for (let at = 0; at < bytes.length; at += 16 * 1024) controller.enqueue(bytes.slice(at, at + 16 * 1024));
      controller.close();
    },
  });
  const headers = { ...bearer(ADMIN_TOKEN), "content-type": "application/json" };
  for (const [name, init] of [
    ["declared", () => ({ method: "POST", headers, body: oversized })],
    ["streamed without a length", () => ({ method: "POST", headers, body: streamed(), duplex: "half" })],
  ]) {
    // Repeated: a client still uploading must read the 400, never a reset
    // connection (it did, about one time in twenty, before the rest of the
    // body was drained).
    for (let round = 0; round < 20; round++) {
      const ours = await app("/_admin/revoke", init());
      const theirs = await standalone.fetch("/_admin/revoke", init());
      const [oursBody, theirsBody] = [await json(ours), await json(theirs)];
      assert.equal(ours.status, 400, name);
      assert.equal(ours.status, theirs.status, name);
      assert.equal(oursBody.error, theirsBody.error, name);
    }
  }
});
