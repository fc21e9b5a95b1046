// Sessions (the OIDC sid claim): logout revokes the token's session, one
// bulk get reads token, user and session, tokens of a session older than
// SESSION_LIFETIME_SECONDS are refused, the admin API revokes a session.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { startHarness, bearer, json } from "../support/harness.mjs";
import { mint, claimsOf, now, ADMIN_TOKEN } from "../support/tokens.mjs";

let h;
before(async () => (h = await startHarness({
  gateways: { "gw-short-sessions": { SESSION_LIFETIME_SECONDS: "600" }, "gw-require-sid": { REQUIRE_SID: "true" } },
})));
after(async () => h?.close());
beforeEach(async () => h.probe("reset"));

const DEFAULT_LIFETIME = 2592000;
const freshSid = () => `sid-${randomUUID()}`;
const freshUser = () => `user-${randomUUID()}`;

async function status(fetcher, token, path = "/api/resource") {
  const response = await fetcher(path, { headers: bearer(token) });
  const text = await response.text();
  return { status: response.status, error: response.status === 200 ? undefined : JSON.parse(text).error };
}

const admin = (path, body) =>
  h.fetch(path, {
    method: "POST",
    headers: { ...bearer(ADMIN_TOKEN), "content-type": "application/json" },
    body: JSON.stringify(body),
  });

test("logout with sid revokes every token of that session, and only that session", async () => {
  const sub = freshUser();
  const sid = freshSid();
  const access = await mint({ sub, claims: { sid } }, h.config);
  const refreshLike = await mint({ sub, claims: { sid } }, h.config);
  const otherSession = await mint({ sub, claims: { sid: freshSid() } }, h.config);
  const noSession = await mint({ sub }, h.config);
  for (const token of [access, refreshLike, otherSession, noSession]) assert.equal((await status(h.fetch, token)).status, 200);

  const before = Math.floor(Date.now() / 1000);
  const logout = await h.fetch("/auth/logout", { method: "POST", headers: bearer(access) });
  const body = await json(logout);
  const after = Math.ceil(Date.now() / 1000);
  assert.equal(logout.status, 200);
  assert.deepEqual(body, { status: "logged_out", token_id: claimsOf(access).jti, sid }, "the reply reports the session");

  assert.deepEqual(await status(h.fetch, access), { status: 401, error: "token_revoked" });
  assert.deepEqual(await status(h.fetch, refreshLike), { status: 401, error: "token_revoked" }, "same sid");
  assert.equal((await status(h.fetch, otherSession)).status, 200, "another session of the same user");
  assert.equal((await status(h.fetch, noSession)).status, 200, "a token without sid");

  // A token of that session minted after the logout is refused too: the session is over.
  const later = await mint({ sub, claims: { sid, iat: Date.now() / 1000 } }, h.config);
  assert.deepEqual(await status(h.fetch, later), { status: 401, error: "token_revoked" });

  // KV: v1:sid:<sid> = {"at","by"}, expiring SESSION_LIFETIME_SECONDS + leeway after the write; and the token's ID.
  const entry = JSON.parse(await h.kv.get(`v1:sid:${sid}`));
  assert.equal(entry.by, "logout");
  assert.ok(entry.at >= before && entry.at <= after, JSON.stringify(entry));
  const { keys } = await h.kv.list({ prefix: `v1:sid:${sid}` });
  const leeway = Number(h.config.JWT_LEEWAY_SECONDS);
  assert.ok(
    keys[0].expiration >= before + DEFAULT_LIFETIME + leeway && keys[0].expiration <= after + DEFAULT_LIFETIME + leeway,
    `expiration ${keys[0].expiration}`,
  );
  assert.equal(JSON.parse(await h.kv.get(`v1:jti:${claimsOf(access).jti}`)).by, "logout");
});

test("logout without sid revokes the token and cuts off its user: a token refreshed from that sign-in fails too", async () => {
  // An identity provider's access tokens often carry no sid: the token
  // refreshed from the same sign-in cannot be told apart from the user's
  // others, so all of the user's tokens issued until the logout go.
  const sub = freshUser();
  const t = Math.floor(Date.now() / 1000);
  const presented = await mint({ sub, claims: { iat: t - 60 } }, h.config);
  const refreshed = await mint({ sub, claims: { iat: t - 1 } }, h.config);
  const otherUser = await mint({ sub: freshUser(), claims: { iat: t - 60 } }, h.config);
  const body = await json(await h.fetch("/auth/logout", { method: "POST", headers: bearer(presented) }));
  assert.equal(body.status, "logged_out");
  assert.equal(body.token_id, claimsOf(presented).jti);
  assert.equal(body.sub, sub);
  assert.equal(body.sid, undefined);
  assert.equal(Number(await h.kv.get(`v1:sub:${sub}`)), body.revoked_before);
  assert.deepEqual(await status(h.fetch, presented), { status: 401, error: "token_revoked" });
  assert.deepEqual(await status(h.fetch, refreshed), { status: 401, error: "token_revoked" });
  assert.equal((await status(h.fetch, otherUser)).status, 200, "another user");
  // A sign-in after the logout (its iat in a later second) works.
  const later = await mint({ sub, claims: { iat: Math.floor(body.revoked_before) + 1 } }, h.config);
  assert.equal((await status(h.fetch, later)).status, 200);
  // A retry of the logout moves nothing: the later sign-in survives it.
  await json(await h.fetch("/auth/logout", { method: "POST", headers: bearer(presented) }));
  assert.equal(Number(await h.kv.get(`v1:sub:${sub}`)), body.revoked_before);
  assert.equal((await status(h.fetch, later)).status, 200);
});

test("REQUIRE_SID: a token without sid is refused 401 sid_required; logout ends that session only", async () => {
  const strict = h.at("gw-require-sid");
  const sub = freshUser();
  assert.deepEqual(await status(strict, await mint({ sub }, h.config)), { status: 401, error: "sid_required" });
  const sid = freshSid();
  const access = await mint({ sub, claims: { sid } }, h.config);
  const otherSession = await mint({ sub, claims: { sid: freshSid() } }, h.config);
  const body = await json(await strict("/auth/logout", { method: "POST", headers: bearer(access) }));
  assert.deepEqual(body, { status: "logged_out", token_id: claimsOf(access).jti, sid });
  assert.deepEqual(await status(strict, access), { status: 401, error: "token_revoked" });
  assert.equal((await status(strict, otherSession)).status, 200, "the user's other session");
  assert.equal(await h.kv.get(`v1:sub:${sub}`), null, "no user cut-off");
});

test("one KV round trip per request: 3 keys with sid, 2 without", async () => {
  const withSid = await mint({ sub: freshUser(), claims: { sid: freshSid() } }, h.config);
  const withoutSid = await mint({ sub: freshUser() }, h.config);
  await h.probe("reset");
  assert.equal((await status(h.probed, withSid)).status, 200);
  let stats = await h.probe("stats");
  assert.deepEqual([stats.gets, stats.keysRead, stats.puts], [1, 3, 0], "token ID, user and session in one get()");
  await h.probe("reset");
  assert.equal((await status(h.probed, withoutSid)).status, 200);
  stats = await h.probe("stats");
  assert.deepEqual([stats.gets, stats.keysRead, stats.puts], [1, 2, 0], "token ID and user");

  // A logout with sid: the same one read, then the token's ID and the session written.
  await h.probe("reset");
  const response = await h.probed("/auth/logout", { method: "POST", headers: bearer(withSid) });
  assert.equal(response.status, 200);
  await response.arrayBuffer();
  stats = await h.probe("stats");
  assert.deepEqual([stats.gets, stats.keysRead, stats.puts], [1, 3, 2]);
  // Idempotent: the same logout again reads once and writes nothing.
  await h.probe("reset");
  const again = await h.probed("/auth/logout", { method: "POST", headers: bearer(withSid) });
  assert.equal(again.status, 200);
  await again.arrayBuffer();
  stats = await h.probe("stats");
  assert.deepEqual([stats.gets, stats.puts], [1, 0]);
});

test("a failed session write on logout is a 503, and a retry finishes it", async () => {
  const sid = freshSid();
  const token = await mint({ sub: freshUser(), claims: { sid } }, h.config);
  await h.probe("fail-writes");
  const failed = await h.probed("/auth/logout", { method: "POST", headers: bearer(token) });
  assert.equal(failed.status, 503);
  assert.equal((await json(failed)).error, "revocation_unavailable");
  assert.equal(await h.kv.get(`v1:sid:${sid}`), null);
  await h.probe("reset");
  const retried = await h.probed("/auth/logout", { method: "POST", headers: bearer(token) });
  assert.equal(retried.status, 200);
  assert.equal((await json(retried)).sid, sid);
  assert.equal(JSON.parse(await h.kv.get(`v1:sid:${sid}`)).by, "logout");
});

test("a token with sid older than SESSION_LIFETIME_SECONDS, or without iat, is refused", async () => {
  const sid = freshSid();
  const leeway = Number(h.config.JWT_LEEWAY_SECONDS);
  const refused = async (fetcher, token) => {
    const response = await fetcher("/api/resource", { headers: bearer(token) });
    const body = await json(response);
    assert.equal(response.status, 401);
    assert.equal(body.error, "token_expired");
    assert.match(body.error_description, /session.*older than SESSION_LIFETIME_SECONDS/);
    assert.match(response.headers.get("www-authenticate"), /error="invalid_token"/);
  };
  // The default: 30 days.
  const old = await mint({ claims: { sid, iat: now() - DEFAULT_LIFETIME - leeway - 5 } }, h.config);
  await refused(h.fetch, old);
  const young = await mint({ claims: { sid, iat: now() - DEFAULT_LIFETIME + 60 } }, h.config);
  assert.equal((await status(h.fetch, young)).status, 200);
  await refused(h.fetch, await mint({ claims: { sid, iat: undefined } }, h.config));
  // Without sid the same age is fine (no JWT_MAX_TOKEN_AGE_SECONDS configured).
  const oldNoSid = await mint({ claims: { iat: now() - DEFAULT_LIFETIME - leeway - 5 } }, h.config);
  assert.equal((await status(h.fetch, oldNoSid)).status, 200);

  // SESSION_LIFETIME_SECONDS = 600 (+ 30 s leeway).
  const short = h.at("gw-short-sessions");
  await refused(short, await mint({ claims: { sid, iat: now() - 640 } }, h.config));
  assert.equal((await status(short, await mint({ claims: { sid, iat: now() - 600 } }, h.config))).status, 200);
});

test("admin API: {sid} revokes a session; introspection says revoked_by session", async () => {
  const sid = freshSid();
  const sub = freshUser();
  const token = await mint({ sub, claims: { sid } }, h.config);
  const other = await mint({ sub, claims: { sid: freshSid() } }, h.config);

  const live = await json(await admin("/_admin/introspect", { token }));
  assert.equal(live.active, true);
  assert.equal(live.sid, sid);

  const response = await admin("/_admin/revoke", { sid, sub });
  const body = await json(response);
  assert.equal(response.status, 200);
  assert.equal(body.revoked, true);
  assert.equal(body.sid, sid);
  assert.ok(body.expires_at > now() + DEFAULT_LIFETIME - 5);
  assert.equal(JSON.parse(await h.kv.get(`v1:sid:${sid}`)).by, "admin");

  assert.deepEqual(await status(h.fetch, token), { status: 401, error: "token_revoked" });
  assert.equal((await status(h.fetch, other)).status, 200);
  const why = await json(await admin("/_admin/introspect", { token }));
  assert.deepEqual([why.active, why.error, why.revoked_by], [false, "token_revoked", "session"]);

  // Without sub: no Durable Object to reach (SESSIONS is in use), so refused.
  for (const bad of [{ sid: "" }, { sid }, { sid, jti: "x" }, { sid: 5 }]) {
    const refused = await admin("/_admin/revoke", bad);
    assert.equal(refused.status, 400, JSON.stringify(bad));
    assert.equal((await json(refused)).error, "invalid_request");
  }
});

test("a session logout through the cookie clears it and kills the session's bearer tokens", async () => {
  const sid = freshSid();
  const cookieToken = await mint({ claims: { sid } }, h.config);
  const bearerToken = await mint({ claims: { sid } }, h.config);
  const response = await h.fetch("/auth/logout", { method: "POST", headers: { cookie: `${h.config.TOKEN_COOKIE}=${cookieToken}` } });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("set-cookie"), new RegExp(`^${h.config.TOKEN_COOKIE}=; Max-Age=0`));
  assert.equal((await json(response)).sid, sid);
  assert.deepEqual(await status(h.fetch, bearerToken), { status: 401, error: "token_revoked" });
});
