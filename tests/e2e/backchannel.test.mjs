// OpenID Connect Back-Channel Logout 1.0: the identity provider POSTs a
// logout token; Tokengate validates it as section 2.6 says and revokes the
// session (sid) or the user's tokens issued before the logout token's iat.
// Logout tokens are minted by jose with the gateway's issuer and secret.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import { startHarness, bearer, json } from "../support/harness.mjs";
import { mint, now, SECRET, OTHER_SECRET, ADMIN_TOKEN } from "../support/tokens.mjs";

const PATH = "/idp/backchannel-logout";
const CLIENT_ID = "bc-client";
const EVENT = "http://schemas.openid.net/event/backchannel-logout";
const FORM = { "content-type": "application/x-www-form-urlencoded" };
// Without refresh rotation and strict paths the per-user Durable Objects
// are not used, and a logout token may name a session alone (sid without
// sub). With them, see refresh.test.mjs.
const NO_OBJECTS = { REFRESH_PATH: undefined, REFRESH_COOKIE: undefined, REFRESH_TYP: undefined, STRICT_PATHS: undefined };
const BACKCHANNEL = { BACKCHANNEL_LOGOUT_PATH: PATH, BACKCHANNEL_LOGOUT_AUDIENCE: CLIENT_ID, ...NO_OBJECTS };

let h;
let bc; // a gateway with back-channel logout at PATH for CLIENT_ID
let probed; // the same, KV through kv-probe
before(async () => {
  h = await startHarness({
    gateways: {
      "gw-bc": { ...BACKCHANNEL, PUBLIC_PATHS: "/idp/*,/demo/*" },
      "gw-bc-typed": { ...BACKCHANNEL, JWT_TYP: "at+jwt" },
      "gw-bc-sid": { ...BACKCHANNEL, REQUIRE_SID: "true" },
      "gw-bc-off": { BACKCHANNEL_LOGOUT_PATH: undefined, BACKCHANNEL_LOGOUT_AUDIENCE: undefined, ...NO_OBJECTS },
      "gw-bc-no-audience": { BACKCHANNEL_LOGOUT_PATH: PATH, BACKCHANNEL_LOGOUT_AUDIENCE: undefined, ...NO_OBJECTS },
    },
    probedGateways: { "gw-bc-probed": BACKCHANNEL },
  });
  bc = h.at("gw-bc");
  probed = h.at("gw-bc-probed");
});
after(async () => h?.close());
beforeEach(async () => h.probe("reset"));

const encoder = new TextEncoder();
const freshSid = () => `sid-${randomUUID()}`;
const freshUser = () => `user-${randomUUID()}`;

/** A logout token; `claims` overrides or removes (undefined) claims, `header` likewise. */
async function logoutToken({ claims = {}, header = {}, secret = SECRET } = {}) {
  const payload = {
    iss: h.config.JWT_ISSUER,
    aud: CLIENT_ID,
    iat: now(),
    exp: now() + 120,
    jti: randomUUID(),
    events: { [EVENT]: {} },
    ...claims,
  };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  const protectedHeader = { alg: "HS256", typ: "logout+jwt", ...header };
  for (const [k, v] of Object.entries(protectedHeader)) if (v === undefined) delete protectedHeader[k];
  return new SignJWT(payload).setProtectedHeader(protectedHeader).sign(encoder.encode(secret));
}

const form = (token) => new URLSearchParams({ logout_token: token }).toString();
const deliver = (fetcher, token, path = PATH) => fetcher(path, { method: "POST", headers: FORM, body: form(token) });

async function status(fetcher, token) {
  const response = await fetcher("/api/resource", { headers: bearer(token) });
  const text = await response.text();
  return { status: response.status, error: response.status === 200 ? undefined : JSON.parse(text).error };
}

async function accepted(response) {
  const text = await response.text();
  assert.equal(response.status, 200, text);
  assert.equal(response.headers.get("cache-control"), "no-store");
  assert.equal(text, "{}\n");
}

async function invalid(response, what) {
  const body = await json(response);
  assert.equal(response.status, 400, `${what}: ${JSON.stringify(body)}`);
  assert.equal(body.error, "invalid_request", what);
  assert.equal(typeof body.error_description, "string", what);
  assert.equal(response.headers.get("cache-control"), "no-store", what);
  return body.error_description;
}

test("a logout token with sid and sub revokes that session and, by default, the user's tokens issued before it", async () => {
  // Many providers put sid in logout tokens but not in access tokens: the
  // session alone would leave the signed-out user's access tokens working.
  const sub = freshUser();
  const sid = freshSid();
  const t = now();
  const access = await mint({ sub, claims: { sid, iat: t - 30 } }, h.config);
  const noSession = await mint({ sub, claims: { iat: t - 30 } }, h.config);
  const sameSecond = await mint({ sub, claims: { iat: t - 10 } }, h.config);
  const otherUser = await mint({ sub: freshUser(), claims: { iat: t - 30 } }, h.config);
  const token = await logoutToken({ claims: { sub, sid, iat: t - 10 } });
  await accepted(await deliver(bc, token));
  assert.deepEqual(await status(bc, access), { status: 401, error: "token_revoked" });
  assert.deepEqual(await status(bc, noSession), { status: 401, error: "token_revoked" }, "no sid: cut off");
  assert.deepEqual(await status(bc, sameSecond), { status: 401, error: "token_revoked" }, "the logout token's own second");
  assert.equal(Number(await h.kv.get(`v1:sub:${sub}`)), t - 9, "the end of the logout token's iat second");
  const after = await mint({ sub, claims: { iat: t - 9 } }, h.config);
  assert.equal((await status(bc, after)).status, 200, "issued in the next second");
  assert.equal((await status(bc, otherUser)).status, 200);
});

test("REQUIRE_SID: a logout token with sid revokes that session only: 200, Cache-Control: no-store", async () => {
  const perSession = h.at("gw-bc-sid");
  const sub = freshUser();
  const sid = freshSid();
  const access = await mint({ sub, claims: { sid } }, h.config);
  const sameSession = await mint({ sub, claims: { sid } }, h.config);
  const otherSession = await mint({ sub, claims: { sid: freshSid() } }, h.config);

  const token = await logoutToken({ claims: { sub, sid } });
  await accepted(await deliver(perSession, token));

  assert.deepEqual(await status(perSession, access), { status: 401, error: "token_revoked" });
  assert.deepEqual(await status(perSession, sameSession), { status: 401, error: "token_revoked" });
  assert.equal((await status(perSession, otherSession)).status, 200, "another session");
  assert.equal(JSON.parse(await h.kv.get(`v1:sid:${sid}`)).by, "backchannel");
  assert.equal(await h.kv.get(`v1:sub:${sub}`), null, "sid given: the session only, not the user");
  // The logout token's jti is recorded as spent, until its exp + leeway.
  const { jti, exp } = JSON.parse(Buffer.from(token.split(".")[1], "base64url"));
  const { keys } = await h.kv.list({ prefix: `v1:jti:${jti}` });
  assert.equal(keys[0].expiration, exp + Number(h.config.JWT_LEEWAY_SECONDS));
  // Introspection names the session.
  const why = await json(
    await perSession("/_admin/introspect", {
      method: "POST",
      headers: { ...bearer(ADMIN_TOKEN), "content-type": "application/json" },
      body: JSON.stringify({ token: sameSession }),
    }),
  );
  assert.equal(why.revoked_by, "session");
});

test("sid without sub is enough; percent-encoded and plus-encoded forms are decoded", async () => {
  const sid = freshSid();
  const access = await mint({ claims: { sid } }, h.config);
  const token = await logoutToken({ claims: { sid } });
  // Every character escaped, the parameter name too, among other parameters.
  const escaped = [...token].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join("");
  const response = await bc(PATH, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded; charset=UTF-8" },
    body: `state=a+b&logout%5Ftoken=${escaped}&x=%20`,
  });
  await accepted(response);
  assert.deepEqual(await status(bc, access), { status: 401, error: "token_revoked" });
});

test("sub only: tokens issued before the end of the logout token's iat second are revoked, later ones still work", async () => {
  const sub = freshUser();
  const t = Date.now() / 1000;
  const second = Math.floor(t - 10);
  const older = await mint({ sub, claims: { iat: t - 20 } }, h.config);
  const sameSecond = await mint({ sub, claims: { iat: second } }, h.config);
  const newer = await mint({ sub, claims: { iat: second + 1 } }, h.config);
  const otherUser = await mint({ sub: freshUser(), claims: { iat: t - 20 } }, h.config);

  await accepted(await deliver(bc, await logoutToken({ claims: { sub, iat: second } })));

  assert.deepEqual(await status(bc, older), { status: 401, error: "token_revoked" });
  assert.deepEqual(
    await status(bc, sameSecond),
    { status: 401, error: "token_revoked" },
    "the logout token's own second: the token may be from just before the logout",
  );
  assert.equal((await status(bc, newer)).status, 200, "issued in the second after the logout token's iat");
  assert.equal((await status(bc, otherUser)).status, 200);
  assert.equal(Number(await h.kv.get(`v1:sub:${sub}`)), second + 1, "the cut-off is the end of the logout token's iat second");
});

test("a replayed logout token never revokes a token issued after the original logout", async () => {
  const sub = freshUser();
  const original = await logoutToken({ claims: { sub, iat: now() - 10 } });
  await accepted(await deliver(bc, original));
  const fresh = await mint({ sub, claims: { iat: Date.now() / 1000 } }, h.config);
  const cutOff = await h.kv.get(`v1:sub:${sub}`);

  // Replayed as is: 200 (the provider's retry gets the same answer), nothing written.
  await h.probe("reset");
  await accepted(await deliver(probed, original));
  const stats = await h.probe("stats");
  assert.deepEqual([stats.gets, stats.puts], [1, 0], "a spent jti: one read, no write");
  assert.equal((await status(bc, fresh)).status, 200);

  // Even once its spent-jti entry is gone, the cut-off stays at its iat.
  const { jti } = JSON.parse(Buffer.from(original.split(".")[1], "base64url"));
  await h.kv.delete(`v1:jti:${jti}`);
  await accepted(await deliver(bc, original));
  assert.equal((await status(bc, fresh)).status, 200);
  assert.equal(await h.kv.get(`v1:sub:${sub}`), cutOff);
});

test("a logout token never lowers a newer cut-off", async () => {
  const sub = freshUser();
  const session = await mint({ sub, claims: { iat: Date.now() / 1000 - 30 } }, h.config);
  const all = await json(await bc("/auth/logout-all", { method: "POST", headers: bearer(session) }));
  const stored = await h.kv.get(`v1:sub:${sub}`);
  assert.equal(Number(stored), all.revoked_before);
  const tooEarly = await mint({ sub, claims: { iat: all.revoked_before - 20 } }, h.config);

  await accepted(await deliver(bc, await logoutToken({ claims: { sub, iat: now() - 60 } })));
  assert.equal(await h.kv.get(`v1:sub:${sub}`), stored, "the logout-all cut-off stays");
  assert.deepEqual(await status(bc, tooEarly), { status: 401, error: "token_revoked" });
});

test("every invalid logout token of section 2.6 is 400 invalid_request, no-store, and revokes nothing", async () => {
  const sub = freshUser();
  const sid = freshSid();
  const victim = await mint({ sub, claims: { sid, iat: Date.now() / 1000 - 30 } }, h.config);
  const t = now();
  const variants = {
    "aud is JWT_AUDIENCE, not BACKCHANNEL_LOGOUT_AUDIENCE": { claims: { aud: h.config.JWT_AUDIENCE } },
    "aud missing": { claims: { aud: undefined } },
    "aud a list without the client": { claims: { aud: ["x", "y"] } },
    "iss unknown": { claims: { iss: "https://evil.example" } },
    "iss missing": { claims: { iss: undefined } },
    "iat missing": { claims: { iat: undefined } },
    "iat in the future": { claims: { iat: t + 300 } },
    "exp missing": { claims: { exp: undefined } },
    "exp passed": { claims: { iat: t - 600, exp: t - 300 } },
    "nbf in the future": { claims: { nbf: t + 300 } },
    "jti missing": { claims: { jti: undefined } },
    "events missing": { claims: { events: undefined } },
    "events without the logout member": { claims: { events: { "http://schemas.openid.net/event/other": {} } } },
    "events member not an object": { claims: { events: { [EVENT]: "yes" } } },
    "events member an array": { claims: { events: { [EVENT]: [] } } },
    "events an array": { claims: { events: [EVENT] } },
    "events a string": { claims: { events: EVENT } },
    "nonce present": { claims: { nonce: "n-0S6_WzA2Mj" } },
    "nonce null": { claims: { nonce: null } },
    "neither sub nor sid": { claims: { sub: undefined, sid: undefined } },
    "typ at+jwt": { header: { typ: "at+jwt" } },
    "typ application/at+jwt": { header: { typ: "application/at+jwt" } },
    "typ something else": { header: { typ: "secevent+jwt" } },
    "signed with another key": { secret: OTHER_SECRET },
  };
  for (const [what, options] of Object.entries(variants)) {
    const claims = { sub, sid, ...options.claims };
    const token = await logoutToken({ ...options, claims });
    await invalid(await deliver(bc, token), what);
  }
  const bodies = {
    "not a JWT": form("not.a.jwt"),
    "alg none": form(`${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(JSON.stringify({ sub, sid })).toString("base64url")}.`),
    "no logout_token parameter": "token=abc",
    "empty logout_token": "logout_token=",
    "empty body": "",
    "two logout_token parameters": `${form(await logoutToken({ claims: { sub, sid } }))}&${form(await logoutToken({ claims: { sub, sid } }))}`,
    "broken escape": "logout_token=%zz",
    "larger than 64 KiB": `logout_token=${"a".repeat(70_000)}`,
  };
  for (const [what, body] of Object.entries(bodies)) {
    await invalid(await bc(PATH, { method: "POST", headers: FORM, body }), what);
  }
  const good = form(await logoutToken({ claims: { sub, sid } }));
  for (const contentType of ["application/json", "text/plain", "multipart/form-data; boundary=x"]) {
    await invalid(await bc(PATH, { method: "POST", headers: { "content-type": contentType }, body: good }), contentType);
  }
  await invalid(await bc(PATH, { method: "POST", body: new Blob([good]) }), "no content type");

  assert.equal((await status(bc, victim)).status, 200, "nothing was revoked");
  assert.equal(await h.kv.get(`v1:sid:${sid}`), null);
  assert.equal(await h.kv.get(`v1:sub:${sub}`), null);
});

test("typ: logout+jwt, JWT or none are accepted; the access tokens' JWT_TYP never is", async () => {
  const typed = h.at("gw-bc-typed");
  for (const typ of ["logout+jwt", "application/logout+jwt", "JWT", undefined]) {
    await accepted(await deliver(typed, await logoutToken({ header: { typ }, claims: { sid: freshSid() } })));
  }
  for (const typ of ["at+jwt", "application/AT+JWT"]) {
    const description = await invalid(await deliver(typed, await logoutToken({ header: { typ }, claims: { sid: freshSid() } })), typ);
    assert.match(description, /typ/);
  }
});

test("a logout token is never accepted as an access token: 401 type_invalid on every other route", async () => {
  const sub = freshUser();
  // Valid in every other way for access: the gateway's own audience.
  const token = await logoutToken({ claims: { sub, aud: h.config.JWT_AUDIENCE } });
  const untyped = await logoutToken({ claims: { sub, aud: h.config.JWT_AUDIENCE }, header: { typ: undefined } });
  h.takeReceived();
  for (const t of [token, untyped]) {
    for (const [path, method] of [
      ["/api/resource", "GET"],
      ["/auth/logout", "POST"],
      ["/auth/logout-all", "POST"],
      [h.config.PASSWORD_CHANGE_PATH, "POST"],
    ]) {
      for (const headers of [bearer(t), { cookie: `${h.config.TOKEN_COOKIE}=${t}` }]) {
        const response = await bc(path, { method, headers });
        const body = await json(response);
        assert.equal(response.status, 401, `${path} ${JSON.stringify(body)}`);
        assert.equal(body.error, "type_invalid", path);
      }
    }
  }
  assert.equal(h.takeReceived().length, 0, "nothing reached the origin");
  assert.equal(await h.kv.get(`v1:sub:${sub}`), null);
});

test("POST only; the path is matched loosely and wins over PUBLIC_PATHS", async () => {
  h.takeReceived();
  for (const method of ["GET", "PUT", "DELETE"]) {
    const response = await bc(PATH, { method });
    assert.equal(response.status, 405, method);
    assert.equal(response.headers.get("allow"), "POST");
    assert.equal((await json(response)).error, "method_not_allowed");
  }
  const preflight = await bc(PATH, { method: "OPTIONS", headers: { "access-control-request-method": "POST" } });
  assert.equal(preflight.status, 405);
  await preflight.arrayBuffer();
  // /idp/* is public on gw-bc, yet every spelling of the route is the gateway's.
  const sid = freshSid();
  const access = await mint({ claims: { sid } }, h.config);
  await accepted(await deliver(bc, await logoutToken({ claims: { sid } }), "/IDP//Backchannel-Logout/"));
  for (const path of ["/idp/x/..;/backchannel-logout", "/idp/backchannel%2Dlogout", "/idp/backchannel-logout;jsessionid=1"]) {
    await invalid(await bc(path, { method: "POST", headers: FORM, body: "x=1" }), path);
  }
  assert.equal(h.takeReceived().length, 0, "never forwarded");
  assert.deepEqual(await status(bc, access), { status: 401, error: "token_revoked" });
});

test("unset BACKCHANNEL_LOGOUT_PATH: the path is an ordinary protected one; without the audience: misconfigured", async () => {
  const token = await logoutToken({ claims: { sid: freshSid() } });
  const off = await deliver(h.at("gw-bc-off"), token, "/auth/backchannel-logout");
  assert.equal(off.status, 401);
  assert.equal((await json(off)).error, "token_missing");
  const broken = await deliver(h.at("gw-bc-no-audience"), token);
  assert.equal(broken.status, 500);
  assert.equal((await json(broken)).error, "misconfigured");
});

test("KV failing: 503 revocation_unavailable, never 200, nothing revoked; the retry succeeds", async () => {
  const sid = freshSid();
  const access = await mint({ claims: { sid } }, h.config);
  const token = await logoutToken({ claims: { sid } });

  await h.probe("fail-writes");
  const writeFailed = await deliver(probed, token);
  assert.equal(writeFailed.status, 503);
  assert.equal((await json(writeFailed)).error, "revocation_unavailable");
  assert.equal(await h.kv.get(`v1:sid:${sid}`), null);

  await h.probe("reset");
  await h.probe("fail-reads");
  const readFailed = await deliver(probed, token);
  assert.equal(readFailed.status, 503);
  assert.equal((await json(readFailed)).error, "revocation_unavailable");

  await h.probe("reset");
  assert.equal((await status(probed, access)).status, 200, "nothing was revoked");
  await accepted(await deliver(probed, token));
  assert.deepEqual(await status(probed, access), { status: 401, error: "token_revoked" });
});
