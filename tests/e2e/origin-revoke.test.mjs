// Origin-directed revocation: an origin answering a verified request adds
// `Tokengate-Revoke: token | session | user`; Tokengate records it before the
// response goes on, removes the header, and answers 503 sessions_not_revoked
// instead of the origin's response when it cannot be recorded. Unverified
// requests (public paths, preflights) lose the header and revoke nothing.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { randomUUID } from "node:crypto";
import { startHarness, bearer, json } from "../support/harness.mjs";
import { mint, claimsOf } from "../support/tokens.mjs";

const MARKER = "origin-body-7f3a";

/**
 * An origin that answers what the request asks for: `x-revoke` becomes its
 * Tokengate-Revoke header (a `|` separates several header lines), `x-status`
 * its status, `x-size` the length of a longer body.
 */
function startRevokingOrigin() {
  const received = [];
  const server = http.createServer(async (req, res) => {
    for await (const _ of req);
    received.push({ method: req.method, url: req.url, headers: req.headers });
    const headers = { "content-type": "application/json", "x-origin": "yes" };
    if (req.headers["x-revoke"] !== undefined) headers["Tokengate-Revoke"] = req.headers["x-revoke"].split("|");
    const size = Number(req.headers["x-size"] ?? 0);
    res.writeHead(Number(req.headers["x-status"] ?? 200), headers);
    res.end(JSON.stringify({ marker: MARKER, url: req.url, padding: "p".repeat(size) }));
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({ url: `http://127.0.0.1:${server.address().port}`, received, close: () => new Promise((r) => server.close(r)) }),
    ),
  );
}

let h;
let origin;
let gw; // in front of the revoking origin
let probed; // the same, KV through kv-probe
before(async () => {
  origin = await startRevokingOrigin();
  h = await startHarness({
    gateways: { "gw-revoking": { ORIGIN_URL: origin.url, PUBLIC_PATHS: "/public,/public/*" } },
    probedGateways: { "gw-revoking-probed": { ORIGIN_URL: origin.url, PUBLIC_PATHS: "/public,/public/*" } },
  });
  gw = h.at("gw-revoking");
  probed = h.at("gw-revoking-probed");
});
after(async () => {
  await h?.close();
  await origin?.close();
});
beforeEach(async () => h.probe("reset"));

const freshSid = () => `sid-${randomUUID()}`;
const freshUser = () => `user-${randomUUID()}`;

async function status(fetcher, token) {
  const response = await fetcher("/api/check", { headers: bearer(token) });
  const text = await response.text();
  return { status: response.status, error: response.status === 200 ? undefined : JSON.parse(text).error };
}

/** A request whose answer carries `Tokengate-Revoke: revoke`; the origin's answer, checked for the header. */
async function revoking(fetcher, token, revoke, init = {}) {
  const response = await fetcher(init.path ?? "/api/account", {
    method: init.method ?? "GET",
    headers: { ...(token ? bearer(token) : {}), "x-revoke": revoke, ...init.headers },
  });
  assert.equal(response.headers.get("tokengate-revoke"), null, "the header never reaches the client");
  return response;
}

async function passedOn(response, expectedStatus = 200) {
  const body = await json(response);
  assert.equal(response.status, expectedStatus, JSON.stringify(body).slice(0, 200));
  assert.equal(body.marker, MARKER, "the origin's own body");
  assert.equal(response.headers.get("x-origin"), "yes", "the origin's other headers are kept");
  return body;
}

test("token: the presented token's ID is revoked, until its exp + leeway", async () => {
  const sub = freshUser();
  const sid = freshSid();
  const token = await mint({ sub, claims: { sid } }, h.config);
  const sameSession = await mint({ sub, claims: { sid } }, h.config);
  await passedOn(await revoking(gw, token, "token"));

  assert.deepEqual(await status(gw, token), { status: 401, error: "token_revoked" });
  assert.equal((await status(gw, sameSession)).status, 200, "only the token");
  const { jti, exp } = claimsOf(token);
  assert.equal(JSON.parse(await h.kv.get(`v1:jti:${jti}`)).by, "origin");
  const { keys } = await h.kv.list({ prefix: `v1:jti:${jti}` });
  assert.equal(keys[0].expiration, exp + Number(h.config.JWT_LEEWAY_SECONDS));
});

test("session: every token of the sid is revoked; without sid the token itself", async () => {
  const sub = freshUser();
  const sid = freshSid();
  const token = await mint({ sub, claims: { sid } }, h.config);
  const sameSession = await mint({ sub, claims: { sid } }, h.config);
  const otherSession = await mint({ sub, claims: { sid: freshSid() } }, h.config);
  await passedOn(await revoking(gw, token, "Session"));
  assert.deepEqual(await status(gw, token), { status: 401, error: "token_revoked" });
  assert.deepEqual(await status(gw, sameSession), { status: 401, error: "token_revoked" });
  assert.equal((await status(gw, otherSession)).status, 200);
  assert.equal(JSON.parse(await h.kv.get(`v1:sid:${sid}`)).by, "origin");

  const lone = await mint({ sub }, h.config);
  const sibling = await mint({ sub }, h.config);
  await passedOn(await revoking(gw, lone, " session "));
  assert.deepEqual(await status(gw, lone), { status: 401, error: "token_revoked" });
  assert.equal((await status(gw, sibling)).status, 200);
});

test("user: every token of the sub issued before the origin answered is revoked", async () => {
  const sub = freshUser();
  const t = Date.now() / 1000;
  const token = await mint({ sub, claims: { iat: t - 10 } }, h.config);
  const laptop = await mint({ sub, claims: { iat: t - 5, sid: freshSid() } }, h.config);
  const other = await mint({ sub: freshUser(), claims: { iat: t - 10 } }, h.config);
  await passedOn(await revoking(gw, token, "USER"));
  const answered = Date.now() / 1000;
  const cutOff = Number(await h.kv.get(`v1:sub:${sub}`));
  // The gateway's clock when the origin answered (stored rounded up to the
  // millisecond) or, if that clock read a whole second, the end of that
  // second (cut_off_after in src/revocation.rs).
  const readBetween = (clock) => clock >= t && clock <= answered + 0.001;
  assert.ok(readBetween(cutOff) || (Number.isInteger(cutOff) && readBetween(cutOff - 1)), `cut-off ${cutOff} read after the origin answered`);

  assert.deepEqual(await status(gw, token), { status: 401, error: "token_revoked" });
  assert.deepEqual(await status(gw, laptop), { status: 401, error: "token_revoked" });
  assert.equal((await status(gw, other)).status, 200);
  // Issued after the cut-off: at once, unless the cut-off is the end of a
  // whole second still running (then from that second's end on).
  while (Date.now() < cutOff * 1000) await new Promise((r) => setTimeout(r, cutOff * 1000 - Date.now() + 1));
  const fresh = await mint({ sub, claims: { iat: Date.now() / 1000 } }, h.config);
  assert.equal((await status(gw, fresh)).status, 200, "issued after the origin's answer");
});

test("several members, header lines, spaces and case; unknown members are ignored", async () => {
  const sub = freshUser();
  const sid = freshSid();
  const token = await mint({ sub, claims: { sid, iat: Date.now() / 1000 - 5 } }, h.config);
  await passedOn(await revoking(gw, token, " Token ,everything, SESSION|user"));
  assert.ok(await h.kv.get(`v1:jti:${claimsOf(token).jti}`));
  assert.ok(await h.kv.get(`v1:sid:${sid}`));
  assert.ok(await h.kv.get(`v1:sub:${sub}`));

  // Only unknown members: the response is passed on, nothing is written.
  const untouched = await mint({ sub: freshUser() }, h.config);
  await h.probe("reset");
  await passedOn(await revoking(probed, untouched, "everything, , nonsense"));
  assert.equal((await h.probe("stats")).puts, 0);
  assert.equal((await status(gw, untouched)).status, 200);
});

test("the origin's status and body are passed on as they were, whatever the status", async () => {
  const token = await mint({ sub: freshUser() }, h.config);
  const body = await passedOn(await revoking(gw, token, "token", { headers: { "x-status": "403", "x-size": "200000" } }), 403);
  assert.equal(body.padding.length, 200000, "the streamed body arrives whole");
  assert.deepEqual(await status(gw, token), { status: 401, error: "token_revoked" });
  // A response without the header is the origin's own object, untouched.
  const plain = await mint({ sub: freshUser() }, h.config);
  const response = await gw("/api/plain", { headers: bearer(plain) });
  await passedOn(response);
});

test("public paths and preflights: the header is removed and nothing is revoked", async () => {
  const sub = freshUser();
  const sid = freshSid();
  const token = await mint({ sub, claims: { sid } }, h.config);
  await h.probe("reset");
  for (const path of ["/public", "/public/page"]) {
    await passedOn(await revoking(probed, token, "token, session, user", { path }));
  }
  const preflight = await revoking(probed, null, "token, session, user", {
    method: "OPTIONS",
    path: "/api/account",
    headers: { "access-control-request-method": "POST" },
  });
  assert.equal(preflight.status, 200);
  assert.equal((await json(preflight)).marker, MARKER);
  const stats = await h.probe("stats");
  assert.deepEqual([stats.gets, stats.puts], [0, 0], "not even read");
  assert.equal((await status(gw, token)).status, 200);
  assert.equal(await h.kv.get(`v1:sid:${sid}`), null);
  assert.equal(await h.kv.get(`v1:sub:${sub}`), null);
});

test("KV failing: 503 sessions_not_revoked instead of the origin's response", async () => {
  const sid = freshSid();
  const token = await mint({ sub: freshUser(), claims: { sid } }, h.config);
  await h.probe("fail-writes");
  for (const revoke of ["token", "session", "user"]) {
    await h.probe("reset");
    await h.probe("fail-writes");
    const response = await revoking(probed, token, revoke);
    const text = await response.text();
    assert.equal(response.status, 503, `${revoke}: ${text}`);
    assert.equal(JSON.parse(text).error, "sessions_not_revoked", revoke);
    assert.ok(!text.includes(MARKER), `${revoke}: the origin's body is not passed on`);
    assert.equal(response.headers.get("x-origin"), null, `${revoke}: nor its headers`);
    assert.equal(response.headers.get("cache-control"), "no-store");
    assert.equal((await h.probe("stats")).puts, 3, `${revoke}: three attempts`);
  }
  await h.probe("reset");
  assert.equal((await status(probed, token)).status, 200, "nothing was recorded, and the client was told");
});

test("user for a token without sub: refused, the origin's response withheld", async () => {
  const anonymous = await mint({ claims: { sub: undefined } }, h.config);
  const response = await revoking(gw, anonymous, "user");
  const text = await response.text();
  assert.equal(response.status, 400);
  assert.equal(JSON.parse(text).error, "invalid_request");
  assert.match(JSON.parse(text).error_description, /no sub/);
  assert.ok(!text.includes(MARKER));
});

test("the password-change route: the origin's revocation comes on top of the cut-off", async () => {
  const sub = freshUser();
  const sid = freshSid();
  const token = await mint({ sub, claims: { sid, iat: Date.now() / 1000 - 5 } }, h.config);
  await passedOn(await revoking(gw, token, "session", { method: "POST", path: h.config.PASSWORD_CHANGE_PATH }));
  assert.ok(Number(await h.kv.get(`v1:sub:${sub}`)) > 0, "the password change's cut-off");
  assert.equal(JSON.parse(await h.kv.get(`v1:sid:${sid}`)).by, "origin");
});

test("an origin-directed revocation reaches the user's Durable Object before the response goes on", async () => {
  const sub = freshUser();
  const sid = freshSid();
  const token = await mint({ sub, claims: { sid } }, h.config);
  const refreshToken = await mint({ sub, header: { typ: h.config.REFRESH_TYP }, claims: { sid } }, h.config);
  const response = await gw("/account/settings", { method: "POST", headers: { ...bearer(token), "x-revoke": "session" } });
  assert.equal(response.status, 200);
  await response.arrayBuffer();
  const entries = await h.objectEntries(sub, "gw-revoking");
  assert.ok(entries.some(([key]) => key === `v1:sid:${sid}`), JSON.stringify(entries));
  const refresh = await gw(h.config.REFRESH_PATH, { method: "POST", headers: { cookie: `${h.config.REFRESH_COOKIE}=${refreshToken}` } });
  assert.equal(refresh.status, 401);
  assert.equal((await json(refresh)).error, "token_revoked");
});
