// Revocation at the edge: logout, logout-all, password change, fail-closed,
// KV schema and expirations. One KV round trip per request with thousands of
// revoked IDs stored: revocation-bulk.test.mjs (its own namespace, filled
// while the other files run).
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startHarness, bearer, json } from "../support/harness.mjs";
import { mint, claimsOf } from "../support/tokens.mjs";

let h;
before(async () => (h = await startHarness()));
after(async () => h?.close());
beforeEach(async () => h.probe("reset"));

let users = 0;
const freshUser = () => `user-${++users}-${Date.now()}`;

async function status(fetcher, token, path = "/api/resource") {
  const response = await fetcher(path, { headers: bearer(token) });
  const text = await response.text();
  return { status: response.status, error: response.status === 200 ? undefined : JSON.parse(text).error };
}

const sleepUntilNextSecond = () => new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 20));
/** Waits until the clock reads at least `ms` (at once if it does already). */
const sleepUntil = async (ms) => {
  while (Date.now() < ms) await new Promise((r) => setTimeout(r, ms - Date.now() + 1));
};

test("logout revokes the token; reuse gives 401 token_revoked; logout is idempotent", async () => {
  const token = await mint({ sub: freshUser() }, h.config);
  assert.equal((await status(h.fetch, token)).status, 200);

  const logout = await h.fetch("/auth/logout", { method: "POST", headers: bearer(token) });
  assert.equal(logout.status, 200);
  assert.equal((await json(logout)).status, "logged_out");
  // The token cookie, and the refresh cookie with the path it is scoped to.
  assert.deepEqual(logout.headers.getSetCookie(), [
    `${h.config.TOKEN_COOKIE}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax`,
    `${h.config.REFRESH_COOKIE}=; Max-Age=0; Path=${h.config.REFRESH_PATH}; Secure; HttpOnly; SameSite=Lax`,
  ]);

  h.takeReceived();
  const reuse = await h.fetch("/api/resource", { headers: bearer(token) });
  assert.equal(reuse.status, 401);
  assert.match(reuse.headers.get("www-authenticate"), /error="invalid_token"/);
  assert.equal((await json(reuse)).error, "token_revoked");
  assert.equal(h.takeReceived().length, 0);

  const again = await h.fetch("/auth/logout", { method: "POST", headers: bearer(token) });
  assert.equal(again.status, 200, "a second logout is still a success");
  await again.arrayBuffer();
});

test("logout needs POST and a valid token", async () => {
  const token = await mint({}, h.config);
  const get = await h.fetch("/auth/logout", { headers: bearer(token) });
  assert.equal(get.status, 405);
  assert.equal(get.headers.get("allow"), "POST");
  await get.arrayBuffer();
  assert.equal((await json(await h.fetch("/auth/logout", { method: "POST" }))).error, "token_missing");
});

test("a revoked-ID entry expires with the token (exp + leeway), never sooner than 60 s", async () => {
  const leeway = Number(h.config.JWT_LEEWAY_SECONDS);
  const exp = Math.floor(Date.now() / 1000) + 3600;
  // One user each: a logout without sid also cuts off its user, and a token
  // revoked that way needs no entry of its own.
  const long = await mint({ sub: "expiry-long", claims: { exp } }, h.config);
  const short = await mint({ sub: "expiry-short", claims: { exp: Math.floor(Date.now() / 1000) + 5 } }, h.config);
  const noJti = await mint({ sub: "expiry-no-jti", claims: { jti: undefined } }, h.config);
  const logOut = async (token) => {
    const response = await h.fetch("/auth/logout", { method: "POST", headers: bearer(token) });
    assert.equal(response.status, 200);
    await response.arrayBuffer();
  };
  await logOut(long);
  // The short token's entry expires 60 s after the gateway's clock (whole
  // seconds, rounded up) during its own logout: bounded by clock reads taken
  // right before and right after that one request, however slow the others.
  const before = Math.ceil(Date.now() / 1000);
  await logOut(short);
  const after = Math.ceil(Date.now() / 1000);
  await logOut(noJti);
  const listed = new Map((await h.kv.list({ prefix: "v1:jti:" })).keys.map((k) => [k.name, k]));

  const longEntry = listed.get(`v1:jti:${claimsOf(long).jti}`);
  assert.equal(longEntry.expiration, exp + leeway);
  const shortEntry = listed.get(`v1:jti:${claimsOf(short).jti}`);
  assert.ok(shortEntry.expiration >= before + 60 && shortEntry.expiration <= after + 60, `${shortEntry.expiration} not in [${before + 60}, ${after + 60}]`);

  // Without a jti the ID is the base64url SHA-256 of header.payload: the raw token is never stored.
  const signed = noJti.slice(0, noJti.lastIndexOf("."));
  const digest = Buffer.from(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(signed))).toString("base64url");
  assert.ok(listed.has(`v1:jti:${digest}`));
  for (const [name] of listed) assert.ok(!name.includes(noJti.split(".")[2]), "raw token stored");
  const value = JSON.parse(await h.kv.get(`v1:jti:${digest}`));
  assert.equal(value.by, "logout");
});

test("logout-all: both devices of the user fail, another user's token still works", async () => {
  const sub = freshUser();
  const phone = await mint({ sub }, h.config);
  const laptop = await mint({ sub }, h.config);
  const other = await mint({ sub: freshUser() }, h.config);
  await sleepUntilNextSecond(); // the devices' whole-second iat is now before the cut-off's second

  const response = await h.fetch("/auth/logout-all", { method: "POST", headers: bearer(phone) });
  const body = await json(response);
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.equal(body.sub, sub);

  assert.deepEqual(await status(h.fetch, phone), { status: 401, error: "token_revoked" });
  assert.deepEqual(await status(h.fetch, laptop), { status: 401, error: "token_revoked" });
  assert.equal((await status(h.fetch, other)).status, 200);
  assert.equal(Number(await h.kv.get(`v1:sub:${sub}`)), body.revoked_before);
});

test("the cut-off's own second: fractional iat is ordered exactly, whole-second iat is refused", async () => {
  const sub = freshUser();
  const session = await mint({ sub }, h.config);
  await sleepUntilNextSecond();
  const body = await json(await h.fetch("/auth/logout-all", { method: "POST", headers: bearer(session) }));
  const cutOff = body.revoked_before;
  const second = Math.floor(cutOff);

  const fractionalBefore = await mint({ sub, claims: { iat: cutOff - 0.001 } }, h.config);
  const fractionalAt = await mint({ sub, claims: { iat: cutOff } }, h.config);
  const fractionalAfter = await mint({ sub, claims: { iat: cutOff + 0.001 } }, h.config);
  const wholeSameSecond = await mint({ sub, claims: { iat: second } }, h.config);
  const wholeNextSecond = await mint({ sub, claims: { iat: second + 1 } }, h.config);
  const noIat = await mint({ sub, claims: { iat: undefined } }, h.config);

  assert.deepEqual(await status(h.fetch, fractionalBefore), { status: 401, error: "token_revoked" });
  assert.equal((await status(h.fetch, fractionalAt)).status, 200);
  assert.equal((await status(h.fetch, fractionalAfter)).status, 200);
  if (cutOff !== second) {
    assert.deepEqual(await status(h.fetch, wholeSameSecond), { status: 401, error: "token_revoked" });
  }
  assert.equal((await status(h.fetch, wholeNextSecond)).status, 200);
  assert.deepEqual(await status(h.fetch, noIat), { status: 401, error: "token_revoked" });
});

test("password change: on origin 2xx every older token of the user fails, a new one works", async () => {
  const sub = freshUser();
  const phone = await mint({ sub }, h.config);
  const laptop = await mint({ sub }, h.config);
  const other = await mint({ sub: freshUser() }, h.config);
  await sleepUntilNextSecond();

  h.takeReceived();
  const change = await h.fetch(h.config.PASSWORD_CHANGE_PATH, {
    method: "POST",
    headers: { ...bearer(laptop), "content-type": "application/json" },
    body: JSON.stringify({ old: "hunter2", new: "correct horse" }),
  });
  assert.equal(change.status, 200);
  await change.arrayBuffer();
  const [seen] = h.takeReceived();
  assert.equal(seen.body, JSON.stringify({ old: "hunter2", new: "correct horse" }), "forwarded to the origin");
  assert.equal(seen.headers["x-auth-subject"], sub);

  const cutOff = Number(await h.kv.get(`v1:sub:${sub}`));
  assert.ok(cutOff > 0);
  assert.deepEqual(await status(h.fetch, phone), { status: 401, error: "token_revoked" });
  assert.deepEqual(await status(h.fetch, laptop), { status: 401, error: "token_revoked" });
  assert.equal((await status(h.fetch, other)).status, 200);

  // The issuer mints after the change: with fractional iat at once, with whole-second iat from the next second.
  // (A gateway clock on a whole second makes the cut-off the end of that
  // second, cut_off_after: "at once" is then from the cut-off on.)
  await sleepUntil(cutOff * 1000);
  const fresh = await mint({ sub, claims: { iat: Date.now() / 1000 } }, h.config);
  assert.equal((await status(h.fetch, fresh)).status, 200);
  await sleepUntilNextSecond();
  const freshWhole = await mint({ sub, claims: { iat: Math.floor(Date.now() / 1000) } }, h.config);
  assert.equal((await status(h.fetch, freshWhole)).status, 200);
});

test("the password-change route cannot be dodged by spelling it the way an origin would still route it", async () => {
  const base = h.config.PASSWORD_CHANGE_PATH;
  for (const path of [`${base}/`, base.toUpperCase(), `/${base}`, base.replace("/", "//").replace(/\/(?=[^/]*$)/, "//"), `${base};jsessionid=1`, `${base}.json`]) {
    const sub = freshUser();
    const token = await mint({ sub }, h.config);
    const change = await h.fetch(path, { method: "POST", headers: bearer(token) });
    assert.equal(change.status, 200, path);
    await change.arrayBuffer();
    assert.ok(Number(await h.kv.get(`v1:sub:${sub}`)) > 0, `${path}: cut-off recorded`);
  }
});

test("password change refused by the origin revokes nothing; GET never revokes", async () => {
  const sub = freshUser();
  const token = await mint({ sub }, h.config);
  const refused = await h.fetch(h.config.PASSWORD_CHANGE_PATH, {
    method: "POST",
    headers: { ...bearer(token), "x-origin-status": "400" },
  });
  assert.equal(refused.status, 400);
  await refused.arrayBuffer();
  const form = await h.fetch(h.config.PASSWORD_CHANGE_PATH, { headers: bearer(token) });
  assert.equal(form.status, 200);
  await form.arrayBuffer();
  assert.equal(await h.kv.get(`v1:sub:${sub}`), null);
  assert.equal((await status(h.fetch, token)).status, 200);
});

test("password change whose cut-off cannot be written: the client is told, not given success", async () => {
  const token = await mint({ sub: freshUser() }, h.config);
  await h.probe("fail-writes");
  const response = await h.probed(h.config.PASSWORD_CHANGE_PATH, { method: "POST", headers: bearer(token) });
  const body = await json(response);
  assert.equal(response.status, 503);
  assert.equal(body.error, "sessions_not_revoked");
  assert.match(body.error_description, /logout-all/);
  const stats = await h.probe("stats");
  assert.equal(stats.puts, 3, "bounded retry: three attempts");
});

test("a failed write on logout is reported as a failure", async () => {
  const token = await mint({}, h.config);
  await h.probe("fail-writes");
  const response = await h.probed("/auth/logout", { method: "POST", headers: bearer(token) });
  assert.equal(response.status, 503);
  assert.equal((await json(response)).error, "revocation_unavailable");
  await h.probe("reset");
  assert.equal((await status(h.probed, token)).status, 200, "the token was not revoked, and the client knows it");
});

test("unreadable KV: 503 revocation_unavailable and the origin receives nothing", async () => {
  const token = await mint({}, h.config);
  await h.probe("fail-reads");
  h.takeReceived();
  for (const [path, init] of [
    ["/api/resource", {}],
    [h.config.PASSWORD_CHANGE_PATH, { method: "POST" }],
    ["/auth/logout-all", { method: "POST" }],
  ]) {
    const response = await h.probed(path, { ...init, headers: bearer(token) });
    assert.equal(response.status, 503, path);
    assert.equal((await json(response)).error, "revocation_unavailable");
  }
  assert.equal(h.takeReceived().length, 0);
});
