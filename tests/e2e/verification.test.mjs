// Every token failure: status, RFC 6750 challenge, JSON code, and nothing
// forwarded. Tokens are minted by jose.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startHarness, bearer, json } from "../support/harness.mjs";
import { mint, now, OTHER_SECRET } from "../support/tokens.mjs";

let h;
before(async () => (h = await startHarness()));
after(async () => h?.close());

async function expectRefused(headers, code, { challenge = "invalid_token", status = 401 } = {}) {
  h.takeReceived();
  const response = await h.fetch("/api/resource", { headers });
  const body = await json(response);
  assert.equal(response.status, status, `${code}: ${JSON.stringify(body)}`);
  assert.equal(body.error, code);
  assert.equal(typeof body.error_description, "string");
  const www = response.headers.get("www-authenticate");
  if (challenge === null) {
    assert.equal(www, 'Bearer realm="tokengate"');
  } else {
    assert.match(www, new RegExp(`^Bearer realm="tokengate", error="${challenge}", error_description="[^"]+"$`));
  }
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.equal(h.takeReceived().length, 0, `${code}: the origin must receive nothing`);
}

test("every HMAC algorithm minted by jose verifies", async () => {
  for (const alg of ["HS256", "HS384", "HS512"]) {
    const token = await mint({ alg, sub: `user-${alg}` }, h.config);
    const response = await h.fetch("/api/resource", { headers: bearer(token) });
    assert.equal(response.status, 200, alg);
    await response.arrayBuffer();
  }
  const seen = h.takeReceived().map((r) => r.headers["x-auth-subject"]);
  assert.deepEqual(seen, ["user-HS256", "user-HS384", "user-HS512"]);
});

test("no token: 401 token_missing without an error attribute", async () => {
  await expectRefused({}, "token_missing", { challenge: null });
  await expectRefused({ authorization: "Basic dXNlcjpwYXNz" }, "token_missing", { challenge: null });
});

test("malformed, oversized and ambiguous tokens", async () => {
  await expectRefused(bearer("not-a-jwt"), "token_malformed");
  await expectRefused(bearer("a.b.c"), "token_malformed");
  await expectRefused(bearer("x".repeat(8193)), "token_too_large");
  const a = await mint({ sub: "a" }, h.config);
  const b = await mint({ sub: "b" }, h.config);
  await expectRefused({ ...bearer(a), cookie: `${h.config.TOKEN_COOKIE}=${b}` }, "token_ambiguous");
});

test("algorithm none and algorithms without a key are refused", async () => {
  const header = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
  const payload = Buffer.from(
    JSON.stringify({ sub: "root", iss: h.config.JWT_ISSUER, aud: h.config.JWT_AUDIENCE, exp: now() + 600 }),
  ).toString("base64url");
  await expectRefused(bearer(`${header}.${payload}.`), "algorithm_not_allowed");
  const rsHeader = Buffer.from(JSON.stringify({ alg: "RS256" })).toString("base64url");
  await expectRefused(bearer(`${rsHeader}.${payload}.c2ln`), "algorithm_not_allowed");
});

test("wrong key: signature_invalid", async () => {
  await expectRefused(bearer(await mint({ secret: OTHER_SECRET }, h.config)), "signature_invalid");
});

test("time claims, with the configured leeway", async () => {
  const leeway = Number(h.config.JWT_LEEWAY_SECONDS);
  assert.ok(leeway > 5, "wrangler.toml sets a leeway");
  await expectRefused(bearer(await mint({ claims: { exp: now() - leeway - 5 } }, h.config)), "token_expired");
  await expectRefused(bearer(await mint({ claims: { exp: undefined } }, h.config)), "token_expired");
  await expectRefused(bearer(await mint({ claims: { nbf: now() + leeway + 60 } }, h.config)), "token_not_yet_valid");
  // Inside the leeway both still pass.
  for (const claims of [{ exp: now() - leeway + 10 }, { nbf: now() + leeway - 10 }]) {
    const response = await h.fetch("/api/resource", { headers: bearer(await mint({ claims }, h.config)) });
    assert.equal(response.status, 200, JSON.stringify(claims));
    await response.arrayBuffer();
  }
});

test("issuer and audience (string or array)", async () => {
  await expectRefused(bearer(await mint({ claims: { iss: "https://evil.example" } }, h.config)), "issuer_invalid");
  await expectRefused(bearer(await mint({ claims: { aud: "someone-else" } }, h.config)), "audience_invalid");
  await expectRefused(bearer(await mint({ claims: { aud: undefined } }, h.config)), "audience_invalid");
  const many = await mint({ claims: { aud: ["other", h.config.JWT_AUDIENCE] } }, h.config);
  const response = await h.fetch("/api/resource", { headers: bearer(many) });
  assert.equal(response.status, 200);
  await response.arrayBuffer();
});

test("a bad setting answers 500 misconfigured and says nothing more", async () => {
  const token = await mint({}, h.config);
  h.takeReceived();
  const response = await h.broken("/api/resource", { headers: bearer(token) });
  assert.equal(response.status, 500);
  assert.deepEqual(await json(response), { error: "misconfigured", error_description: "the gateway is misconfigured" });
  assert.equal(h.takeReceived().length, 0);
});
