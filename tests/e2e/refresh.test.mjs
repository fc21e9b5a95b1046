// Refresh-token rotation with reuse detection, and strict paths, on the
// per-user Durable Object (SESSIONS, bound from wrangler.toml as
// `wrangler dev` binds it). Refresh tokens are minted by jose, typed
// refresh+jwt (REFRESH_TYP in wrangler.toml) and sent in REFRESH_COOKIE.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import { startHarness, bearer, json } from "../support/harness.mjs";
import { mint, claimsOf, now, SECRET, ADMIN_TOKEN } from "../support/tokens.mjs";

const REFRESH = "/auth/refresh";
const STRICT = "/app/account";
// Long enough that a retry sent right after the first answer lands inside it
// on a loaded machine too (the window counts from the spend, inside the first request).
const GRACE_SECONDS = 6;

let h;
before(async () => {
  h = await startHarness({
    gateways: {
      "gw-grace": { REFRESH_REUSE_GRACE_SECONDS: String(GRACE_SECONDS) },
      "gw-no-leeway": { JWT_LEEWAY_SECONDS: "0" },
    },
    probedGateways: { "gw-stale": {} },
    unreachableObjectGateways: { "gw-objects-down": {} },
  });
});
after(async () => h?.close());
beforeEach(async () => {
  await h.probe("reset");
  h.takeReceived();
});

const freshUser = () => `user-${randomUUID()}`;
const freshSid = () => `sid-${randomUUID()}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A refresh token of `sub` (and `sid` unless null), as the issuer would mint it. */
const refreshToken = (sub, sid, claims = {}) =>
  mint({ sub, header: { typ: h.config.REFRESH_TYP }, claims: { sid: sid ?? undefined, exp: now() + 86400, ...claims } }, h.config);
const accessToken = (sub, sid) => mint({ sub, claims: { sid: sid ?? undefined } }, h.config);

/** POST REFRESH_PATH with the token in the refresh cookie. */
const refresh = (token, fetcher = h.fetch, init = {}) =>
  fetcher(REFRESH, { method: "POST", ...init, headers: { cookie: `${h.config.REFRESH_COOKIE}=${token}`, ...init.headers } });

async function outcome(response) {
  const text = await response.text();
  if (response.status === 200) return { status: 200 };
  return { status: response.status, error: JSON.parse(text).error };
}

const get = async (path, token, fetcher = h.fetch) => outcome(await fetcher(path, { headers: bearer(token) }));
const admin = (path, body) =>
  h.fetch(path, { method: "POST", headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(body) });
const forwardedRefreshes = () => h.takeReceived().filter((r) => r.url === REFRESH);

/** Delivers a back-channel logout token for `claims` (sid and/or sub), as the identity provider would. */
async function backchannelLogout(claims) {
  const logoutToken = await new SignJWT({ ...claims, events: { "http://schemas.openid.net/event/backchannel-logout": {} } })
    .setProtectedHeader({ alg: "HS256", typ: "logout+jwt" })
    .setIssuer(h.config.JWT_ISSUER)
    .setAudience(h.config.BACKCHANNEL_LOGOUT_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime("2m")
    .setJti(randomUUID())
    .sign(new TextEncoder().encode(SECRET));
  return h.fetch(h.config.BACKCHANNEL_LOGOUT_PATH, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ logout_token: logoutToken }).toString(),
  });
}

test("a refresh token is spent once; presented again it is refresh_token_reused and its session ends, not the user's other sessions", async () => {
  const sub = freshUser();
  const [sidA, sidB] = [freshSid(), freshSid()];
  const [first, second, otherSession] = await Promise.all([refreshToken(sub, sidA), refreshToken(sub, sidA), refreshToken(sub, sidB)]);
  const [accessA, accessB] = await Promise.all([accessToken(sub, sidA), accessToken(sub, sidB)]);

  assert.deepEqual(await outcome(await refresh(first)), { status: 200 });
  const [forwarded] = forwardedRefreshes();
  assert.equal(forwarded.headers["x-auth-subject"], sub, "the origin gets the refresh token's verified identity");
  assert.deepEqual(await outcome(await refresh(second)), { status: 200 }, "the rotated token works once");
  assert.equal(forwardedRefreshes().length, 1);

  const replay = await refresh(first);
  assert.equal(replay.status, 401);
  assert.match(replay.headers.get("www-authenticate"), /error="invalid_token"/);
  assert.equal((await json(replay)).error, "refresh_token_reused");
  assert.deepEqual(forwardedRefreshes(), [], "a replay never reaches the origin");
  assert.equal(JSON.parse(await h.kv.get(`v1:sid:${sidA}`)).by, "refresh_reuse", "the session is revoked in KV too");

  assert.deepEqual(await outcome(await refresh(second)), { status: 401, error: "token_revoked" }, "the family's newest token too");
  assert.deepEqual(await get("/api/x", accessA), { status: 401, error: "token_revoked" }, "and the session's access tokens");
  assert.deepEqual(await get("/api/x", accessB), { status: 200 });
  assert.deepEqual(await outcome(await refresh(otherSession)), { status: 200 }, "another session of the same user lives on");
});

test("without sid a replay ends every token of the user", async () => {
  const sub = freshUser();
  const [token, access] = await Promise.all([refreshToken(sub, null), mint({ sub, claims: { iat: Date.now() / 1000 - 1 } }, h.config)]);
  assert.deepEqual(await outcome(await refresh(token)), { status: 200 });
  assert.deepEqual(await outcome(await refresh(token)), { status: 401, error: "refresh_token_reused" });
  assert.ok(await h.kv.get(`v1:sub:${sub}`), "a user cut-off in KV");
  assert.deepEqual(await get("/api/x", access), { status: 401, error: "token_revoked" });
});

test("the refresh token comes from the cookie, else a form field or JSON member (body forwarded unchanged), else Authorization", async () => {
  const sub = freshUser();
  const tokens = await Promise.all([1, 2, 3, 4, 5, 6].map(() => refreshToken(sub, freshSid())));

  const form = `grant_type=refresh_token&refresh_token=${tokens[0]}&client_id=web%20app`;
  let response = await h.fetch(REFRESH, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form });
  assert.equal(response.status, 200);
  let [received] = forwardedRefreshes();
  assert.equal(received.body, form, "the form reaches the origin byte for byte");
  assert.equal(received.headers["x-auth-subject"], sub);

  const body = JSON.stringify({ grant_type: "refresh_token", refresh_token: tokens[1], scope: "ü" });
  response = await h.fetch(REFRESH, { method: "POST", headers: { "content-type": "application/json" }, body });
  assert.equal(response.status, 200);
  [received] = forwardedRefreshes();
  assert.equal(received.body, body);

  response = await h.fetch(REFRESH, { method: "POST", headers: bearer(tokens[2]) });
  assert.equal(response.status, 200, "Authorization when neither cookie nor body names one");
  assert.equal(forwardedRefreshes().length, 1);
  // Only a POST spends: a GET (a prefetch, a typed URL) would spend it for an answer the client never uses.
  for (const method of ["GET", "HEAD"]) {
    const refused = await refresh(tokens[3], h.fetch, { method });
    assert.equal(refused.status, 405, method);
    assert.equal(refused.headers.get("allow"), "POST");
    await refused.arrayBuffer();
  }
  assert.deepEqual(forwardedRefreshes(), []);
  assert.deepEqual(await outcome(await refresh(tokens[3])), { status: 200 }, "still unspent");
  assert.equal(forwardedRefreshes().length, 1);

  // One token, wherever it comes from: the origin reads one source, and it must be the token spent here.
  response = await refresh(tokens[4], h.fetch, { headers: { "content-type": "application/x-www-form-urlencoded" }, body: `refresh_token=${tokens[5]}` });
  assert.deepEqual(await outcome(response), { status: 401, error: "token_ambiguous" }, "cookie and body differ");
  response = await h.fetch(REFRESH, { method: "POST", headers: { ...bearer(tokens[4]), "content-type": "application/json" }, body: JSON.stringify({ Refresh_Token: tokens[5] }) });
  assert.deepEqual(await outcome(response), { status: 401, error: "token_ambiguous" }, "a member name in another case counts too");
  response = await refresh(tokens[4], h.fetch, { headers: { "content-type": "application/x-www-form-urlencoded" }, body: `refresh_token=${tokens[4]}&x=1` });
  assert.equal(response.status, 200, "cookie and body agree");
  await response.arrayBuffer();
  [received] = forwardedRefreshes();
  assert.equal(received.body, `refresh_token=${tokens[4]}&x=1`);
  // A body the gateway cannot read as an origin might is refused, never passed on unread.
  for (const [headers, what] of [
    [{ "content-type": "text/plain" }, "text/plain"],
    [{ "content-type": "multipart/form-data; boundary=x" }, "multipart"],
    [{ "content-type": "application/json", "content-encoding": "gzip" }, "an encoded body"],
    [{ "content-type": "application/json" }, "not JSON"],
  ]) {
    const refused = await h.fetch(REFRESH, { method: "POST", headers: { ...bearer(tokens[5]), ...headers }, body: `refresh_token=${tokens[0]}` });
    assert.deepEqual(await outcome(refused), { status: 400, error: "invalid_request" }, what);
  }
  assert.deepEqual(forwardedRefreshes(), []);
  assert.deepEqual(await outcome(await refresh(tokens[5])), { status: 200 }, "left unspent by every refusal");
  assert.equal(forwardedRefreshes().length, 1);

  assert.deepEqual(await outcome(await h.fetch(REFRESH, { method: "POST" })), { status: 401, error: "token_missing" });
  const huge = await h.fetch(REFRESH, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: `refresh_token=${await refreshToken(sub, null)}&pad=${"x".repeat(70 * 1024)}`,
  });
  assert.deepEqual(await outcome(huge), { status: 400, error: "invalid_request" }, "a body over 64 KiB is refused, unread past the limit");
  assert.deepEqual(forwardedRefreshes(), []);
});

test("refresh and access tokens do not cross; a refresh token needs jti and sub", async () => {
  const sub = freshUser();
  const [refreshOnly, access] = await Promise.all([refreshToken(sub, freshSid()), accessToken(sub, freshSid())]);
  assert.deepEqual(await get("/api/x", refreshOnly), { status: 401, error: "type_invalid" }, "a refresh token is no access token");
  assert.deepEqual(await get(STRICT, refreshOnly), { status: 401, error: "type_invalid" });
  assert.deepEqual(await outcome(await refresh(access)), { status: 401, error: "type_invalid" }, "an access token is no refresh token");
  const loosely = await h.fetch("/Auth//Refresh/", { method: "POST", headers: bearer(access) });
  assert.deepEqual(await outcome(loosely), { status: 401, error: "type_invalid" }, "the route is matched loosely");
  for (const missing of [{ jti: undefined }, { sub: undefined }]) {
    const token = await mint({ sub, header: { typ: h.config.REFRESH_TYP }, claims: missing }, h.config);
    assert.deepEqual(await outcome(await refresh(token)), { status: 401, error: "type_invalid" }, JSON.stringify(missing));
  }
  assert.deepEqual(forwardedRefreshes(), []);
});

test(`the grace window (${GRACE_SECONDS} s) lets the latest spent token through again, within its seconds only, never an older one`, async () => {
  const grace = h.at("gw-grace");
  const sub = freshUser();
  const sid = freshSid();
  const [r1, r2] = await Promise.all([refreshToken(sub, sid), refreshToken(sub, sid)]);
  assert.deepEqual(await outcome(await refresh(r1, grace)), { status: 200 });
  assert.deepEqual(await outcome(await refresh(r1, grace)), { status: 200 }, "a retry after a lost response");
  assert.deepEqual(await outcome(await refresh(r2, grace)), { status: 200 });
  assert.deepEqual(await outcome(await refresh(r1, grace)), { status: 401, error: "refresh_token_reused" }, "no longer the latest");

  const late = await refreshToken(sub, freshSid());
  assert.deepEqual(await outcome(await refresh(late, grace)), { status: 200 });
  await sleep((GRACE_SECONDS + 1) * 1000);
  assert.deepEqual(await outcome(await refresh(late, grace)), { status: 401, error: "refresh_token_reused" }, "after the window");
});

test("concurrent presentations of one refresh token: exactly one is forwarded", async () => {
  const token = await refreshToken(freshUser(), freshSid());
  const results = await Promise.all(Array.from({ length: 8 }, async () => outcome(await refresh(token))));
  assert.equal(results.filter((r) => r.status === 200).length, 1, JSON.stringify(results));
  for (const r of results.filter((r) => r.status !== 200)) {
    assert.equal(r.status, 401);
    assert.ok(["refresh_token_reused", "token_revoked"].includes(r.error), r.error);
  }
  assert.equal(forwardedRefreshes().length, 1);
});

test("every revocation ends refresh tokens: logout, logout-all, password change, back-channel logout, admin", async () => {
  const sub = freshUser();
  const sids = [freshSid(), freshSid(), freshSid()];
  const [rLogout, rBackchannel, rAdmin] = await Promise.all(sids.map((sid) => refreshToken(sub, sid)));

  const logout = await h.fetch("/auth/logout", { method: "POST", headers: bearer(await accessToken(sub, sids[0])) });
  assert.equal(logout.status, 200);
  const cleared = logout.headers.getSetCookie();
  assert.ok(cleared.includes(`${h.config.REFRESH_COOKIE}=; Max-Age=0; Path=${h.config.REFRESH_PATH}; Secure; HttpOnly; SameSite=Lax`), cleared.join(" | "));
  assert.deepEqual(await outcome(await refresh(rLogout)), { status: 401, error: "token_revoked" }, "logout");

  const backchannel = await backchannelLogout({ sid: sids[1], sub });
  assert.equal(backchannel.status, 200);
  assert.deepEqual(await outcome(await refresh(rBackchannel)), { status: 401, error: "token_revoked" }, "back-channel logout");

  assert.equal((await admin("/_admin/revoke", { sid: sids[2], sub })).status, 200);
  assert.deepEqual(await outcome(await refresh(rAdmin)), { status: 401, error: "token_revoked" }, "admin");

  for (const [route, headers] of [
    ["/auth/logout-all", {}],
    ["/auth/password-change", { "content-type": "application/x-www-form-urlencoded" }],
  ]) {
    const user = freshUser();
    const token = await refreshToken(user, null, { iat: Date.now() / 1000 - 1 });
    const response = await h.fetch(route, { method: "POST", headers: { ...bearer(await accessToken(user, null)), ...headers } });
    assert.equal(response.status, 200, route);
    assert.deepEqual(await outcome(await refresh(token)), { status: 401, error: "token_revoked" }, route);
  }
  assert.deepEqual(forwardedRefreshes(), []);
});

test("a back-channel logout naming only a session cannot reach the user's object: 400, revoked in KV only", async () => {
  const sid = freshSid();
  const response = await backchannelLogout({ sid });
  assert.equal(response.status, 400);
  assert.match((await json(response)).error_description, /no sub/);
  assert.ok(await h.kv.get(`v1:sid:${sid}`), "KV has it, so non-strict paths end the session");
});

test("strict paths see a revocation at once, even where the KV read still shows nothing", async () => {
  const stale = h.at("gw-stale");
  const sub = freshUser();
  const sid = freshSid();
  const [access, refreshOnly] = await Promise.all([accessToken(sub, sid), refreshToken(sub, sid)]);
  assert.deepEqual(await get(STRICT, access, stale), { status: 200 });

  await h.probe("stale-reads"); // this location's KV has not caught up, and will not during the test
  const logout = await stale("/auth/logout", { method: "POST", headers: bearer(access) });
  assert.equal(logout.status, 200);
  assert.deepEqual(await get("/api/x", access, stale), { status: 200 }, "an ordinary path trusts KV, which is stale here");
  assert.deepEqual(await get(STRICT, access, stale), { status: 401, error: "token_revoked" }, "a strict path asks the object");
  assert.deepEqual(await get(`${STRICT}/keys`, access, stale), { status: 401, error: "token_revoked" });
  assert.deepEqual(await outcome(await refresh(refreshOnly, stale)), { status: 401, error: "token_revoked" }, "so does the refresh route");
  const entries = await h.objectEntries(sub, "gw-stale");
  assert.ok(entries.some(([key]) => key === `v1:sid:${sid}`), JSON.stringify(entries));

  const anonymous = await mint({ claims: { sub: undefined } }, h.config);
  assert.deepEqual(await get(STRICT, anonymous), { status: 401, error: "type_invalid" }, "a strict path needs a token with sub");
});

test("objects unreachable: refresh and strict requests get 503 revocation_unavailable and are never forwarded; a logout reports failure", async () => {
  const down = h.at("gw-objects-down");
  const sub = freshUser();
  const sid = freshSid();
  const [access, refreshOnly] = await Promise.all([accessToken(sub, sid), refreshToken(sub, sid)]);
  assert.deepEqual(await outcome(await refresh(refreshOnly, down)), { status: 503, error: "revocation_unavailable" });
  assert.deepEqual(await get(STRICT, access, down), { status: 503, error: "revocation_unavailable" });
  assert.deepEqual(h.takeReceived().filter((r) => r.url === REFRESH || r.url.startsWith(STRICT)), []);
  assert.deepEqual(await get("/api/x", access, down), { status: 200 }, "other paths keep the one KV read");

  const logout = await down("/auth/logout", { method: "POST", headers: bearer(access) });
  assert.deepEqual(await outcome(logout), { status: 503, error: "revocation_unavailable" }, "in KV but not in the object: a failure");
  assert.ok(await h.kv.get(`v1:jti:${claimsOf(access).jti}`), "KV took it");
});

test("spent markers expire with the token", async () => {
  const noLeeway = h.at("gw-no-leeway");
  const sub = freshUser();
  // At least 4 s ahead: without leeway the refresh must reach the gateway
  // before exp, however loaded the machine.
  const exp = now() + 5;
  const token = await refreshToken(sub, null, { exp });
  assert.deepEqual(await outcome(await refresh(token, noLeeway)), { status: 200 });
  const key = `v1:spent:${claimsOf(token).jti}`;
  let entries = await h.objectEntries(sub, "gw-no-leeway");
  assert.deepEqual(entries.find(([k]) => k === key)?.[2], exp, "spent until the token's exp (+ leeway, 0 here)");
  // The object's alarm deletes what has expired: nothing is left stored.
  // The alarm is due at exp; on a loaded machine workerd may run it late, so
  // look again for a while rather than once 1.5 s after exp.
  await sleep((exp - Date.now() / 1000 + 1.5) * 1000);
  const deadline = Date.now() + 15_000;
  entries = await h.objectEntries(sub, "gw-no-leeway");
  while (entries.length > 0 && Date.now() < deadline) {
    await sleep(250);
    entries = await h.objectEntries(sub, "gw-no-leeway");
  }
  assert.deepEqual(entries, [], "nothing left once the token expired");
});
