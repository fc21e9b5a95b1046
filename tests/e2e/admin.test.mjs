// The admin API: only with ADMIN_TOKEN, constant-time checked, RFC 7009 /
// RFC 7662 shaped answers.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startHarness, bearer, json } from "../support/harness.mjs";
import { mint, claimsOf, now, ADMIN_TOKEN, OTHER_SECRET } from "../support/tokens.mjs";

let h;
before(async () => (h = await startHarness()));
after(async () => h?.close());

const admin = (path, body, token = ADMIN_TOKEN) =>
  h.fetch(path, {
    method: "POST",
    headers: { ...(token ? bearer(token) : {}), "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

async function api(path, token) {
  const response = await h.fetch(path, { headers: bearer(token) });
  await response.arrayBuffer();
  return response.status;
}

test("without ADMIN_TOKEN the admin API does not exist (404)", async () => {
  for (const path of ["/_admin/revoke", "/_admin/introspect"]) {
    const response = await h.noAdmin(path, { method: "POST", headers: bearer(ADMIN_TOKEN), body: "{}" });
    assert.equal(response.status, 404);
    assert.equal((await json(response)).error, "not_found");
  }
});

test("a missing or wrong admin token is refused with 401", async () => {
  for (const token of [null, "wrong-admin-token-0000000", ADMIN_TOKEN + "x", ADMIN_TOKEN.slice(0, -1)]) {
    for (const path of ["/_admin/revoke", "/_admin/introspect"]) {
      const response = await admin(path, { sub: "victim" }, token);
      assert.equal(response.status, 401, `${path} with ${token}`);
      assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="tokengate-admin"');
      assert.equal((await json(response)).error, "unauthorized");
    }
  }
  assert.equal(await h.kv.get("v1:sub:victim"), null, "nothing was written");
});

test("revoke by token, by jti and by user; introspect says why", async () => {
  const byToken = await mint({ sub: "dora" }, h.config);
  const byJti = await mint({ sub: "erin" }, h.config);
  const userToken = await mint({ sub: "fred", claims: { iat: Date.now() / 1000 - 5 } }, h.config);
  const active = await mint({ sub: "gina" }, h.config);

  let response = await admin("/_admin/revoke", { token: byToken });
  assert.deepEqual((await json(response)).revoked, true);
  // With SESSIONS in use the user is named too, so its object sees it at once.
  response = await admin("/_admin/revoke", { jti: claimsOf(byJti).jti, exp: claimsOf(byJti).exp, sub: "erin" });
  assert.equal((await json(response)).token_id, claimsOf(byJti).jti);
  response = await admin("/_admin/revoke", { sub: "fred" });
  assert.equal((await json(response)).sub, "fred");

  for (const token of [byToken, byJti, userToken]) assert.equal(await api("/api/x", token), 401);
  assert.equal(await api("/api/x", active), 200);

  const why = async (token) => json(await admin("/_admin/introspect", { token }));
  assert.deepEqual(
    { active: (await why(byToken)).active, error: (await why(byToken)).error, by: (await why(byToken)).revoked_by },
    { active: false, error: "token_revoked", by: "admin" },
  );
  assert.equal((await why(userToken)).revoked_by, "user_cut_off");
  const live = await why(active);
  assert.equal(live.active, true);
  assert.equal(live.sub, "gina");
  assert.equal(live.jti, claimsOf(active).jti);
  // RFC 7662 times are integers, rounded to the safe side; JSON answers end with a newline.
  const fractional = await mint({ sub: "hana", claims: { iat: now() - 0.25, exp: now() + 600.75 } }, h.config);
  const text = await (await admin("/_admin/introspect", { token: fractional })).text();
  assert.ok(text.endsWith("}\n"), text);
  const times = JSON.parse(text);
  assert.ok(Number.isInteger(times.exp) && Number.isInteger(times.iat), text);
  assert.equal(times.exp, Math.floor(claimsOf(fractional).exp));
  assert.equal(times.iat, Math.floor(claimsOf(fractional).iat));
  assert.equal(live.aud, h.config.JWT_AUDIENCE);
  const forged = await why(await mint({ secret: OTHER_SECRET }, h.config));
  assert.deepEqual([forged.active, forged.error], [false, "signature_invalid"]);
});

test("revoking an unknown or forged token answers 200 and revokes nothing (RFC 7009)", async () => {
  const victim = await mint({ sub: "hank" }, h.config);
  const forged = await mint({ sub: "hank", secret: OTHER_SECRET, claims: { jti: claimsOf(victim).jti } }, h.config);
  for (const token of ["garbage", forged]) {
    const response = await admin("/_admin/revoke", { token });
    assert.equal(response.status, 200);
    assert.equal((await json(response)).revoked, false);
  }
  assert.equal(await api("/api/x", victim), 200, "a forged token cannot knock out a real jti");
});

test("bad admin requests are 400 invalid_request, never 5xx", async () => {
  for (const body of ["not json", "{}", '{"jti":"x"}', '{"sub":""}', '{"token":"a","sub":"b"}', '{"foo":1}', "[1]"]) {
    const response = await admin("/_admin/revoke", body);
    assert.equal(response.status, 400, body);
    assert.equal((await json(response)).error, "invalid_request");
  }
  const huge = await admin("/_admin/introspect", { token: "x".repeat(70_000) });
  assert.equal(huge.status, 400);
  await huge.arrayBuffer();
});
