// Remote JWKS against a local identity provider: key rotation on demand,
// removed keys refused, provider outages, and no refetch storms.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPair, exportJWK } from "jose";
import { startHarness, bearer } from "../support/harness.mjs";
import { startJwksServer } from "../support/jwks-server.mjs";
import { es256Token, now } from "../support/tokens.mjs";

let h;
let idp;
const keys = {};

const SCENARIOS = ["rotate", "down", "hammer", "empty", "hang", "shared-a", "shared-b", "shared-c", "private-a", "private-b"];
// Cache API copies are shared only under JWKS_CACHE_KEY, sealed with it.
const CACHE_KEYS = { "shared-a": "a".repeat(32), "shared-b": "a".repeat(32), "shared-c": "c".repeat(32) };

before(async () => {
  for (const kid of ["k1", "k2", "k3"]) {
    const pair = await generateKeyPair("ES256", { extractable: true });
    keys[kid] = { ...pair, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg: "ES256" } };
  }
  idp = await startJwksServer();
  const gateways = {};
  for (const name of SCENARIOS) {
    // shared-* and private-* are workers (isolates) on one key set each.
    const path = name.match(/^(shared|private)/) ? `/${name.split("-")[0]}/jwks.json` : `/${name}/jwks.json`;
    gateways[`gw-${name}`] = { JWT_SECRET: undefined, JWT_JWKS_URL: idp.url(path), JWKS_CACHE_KEY: CACHE_KEYS[name] };
  }
  h = await startHarness({ gateways });
});
after(async () => {
  await h?.close();
  await idp?.close();
});

// An unknown kid is signed with k1's key: only the kid decides which key the gateway looks for.
const token = (kid) => es256Token(keys[kid]?.privateKey ?? keys.k1.privateKey, kid, h.config);

async function outcome(scenario, kid) {
  const response = await h.at(`gw-${scenario}`)("/api/resource", { headers: bearer(await token(kid)) });
  const body = await response.text();
  return response.status === 200 ? 200 : `${response.status} ${JSON.parse(body).error}`;
}

test("rotation: a new kid is picked up on demand, a removed key is refused after the refresh", async () => {
  idp.serve("/rotate/jwks.json", [keys.k1.jwk]);
  assert.equal(await outcome("rotate", "k1"), 200);
  assert.equal(await outcome("rotate", "k1"), 200);
  assert.equal(idp.fetches("/rotate/jwks.json"), 1, "cached after the first fetch");

  idp.serve("/rotate/jwks.json", [keys.k2.jwk]); // k1 retired, k2 introduced
  assert.equal(await outcome("rotate", "k2"), 200, "unknown kid triggers a refetch");
  assert.equal(idp.fetches("/rotate/jwks.json"), 2);
  assert.equal(await outcome("rotate", "k1"), "401 unknown_key", "removed key no longer verifies");
});

test("provider down while keys are cached: tokens still verify", async () => {
  idp.serve("/down/jwks.json", [keys.k1.jwk]);
  assert.equal(await outcome("down", "k1"), 200);
  idp.setDown(true);
  try {
    // An unknown kid forces a refresh, which fails; the cached keys stay.
    assert.equal(await outcome("down", "k3"), "401 unknown_key");
    assert.equal(await outcome("down", "k1"), 200);
    assert.equal(idp.fetches("/down/jwks.json"), 2);
  } finally {
    idp.setDown(false);
  }
});

/** UNKNOWN_KID_COOLDOWN_SECONDS in src/keyring.rs. */
const COOLDOWN_MS = 30_000;

test("a flood of unknown kids makes at most one refetch per cooldown", async () => {
  idp.serve("/hammer/jwks.json", [keys.k1.jwk]);
  assert.equal(await outcome("hammer", "k1"), 200);
  const before = idp.fetches("/hammer/jwks.json");
  const start = Date.now();
  for (let i = 0; i < 40; i++) {
    assert.equal(await outcome("hammer", `made-up-${i}`), "401 unknown_key");
  }
  // One refetch, for the first unknown kid; another only if the flood
  // outlasted a cooldown (a very slow machine).
  const cooldowns = 1 + Math.floor((Date.now() - start) / COOLDOWN_MS);
  const refetches = idp.fetches("/hammer/jwks.json") - before;
  assert.ok(refetches >= 1 && refetches <= cooldowns, `${refetches} refetches in ${cooldowns} cooldown(s)`);
  assert.equal(await outcome("hammer", "k1"), 200, "real tokens unaffected");
});

test("no keys ever fetched: 503 keys_unavailable, not a bad-token 401", async () => {
  // /empty/jwks.json is never served (404).
  assert.equal(await outcome("empty", "k1"), "503 keys_unavailable");
});

test("a provider that never answers costs one 5 s timeout, then 503 keys_unavailable", async () => {
  idp.hang("/hang/jwks.json");
  const start = Date.now();
  assert.equal(await outcome("hang", "k1"), "503 keys_unavailable");
  const waited = Date.now() - start;
  assert.ok(waited >= 4500 && waited < 15000, `waited ${waited} ms`);
  // The failure is remembered: the next request does not wait again (that
  // would cost another 5 s timeout; below it is machine speed).
  const again = Date.now();
  assert.equal(await outcome("hang", "k1"), "503 keys_unavailable");
  assert.ok(Date.now() - again < 4000, `waited ${Date.now() - again} ms`);
});

test("a second isolate takes the key set from the Cache API, not from the provider", async () => {
  idp.serve("/shared/jwks.json", [keys.k1.jwk]);
  assert.equal(await outcome("shared-a", "k1"), 200);
  assert.equal(await outcome("shared-b", "k1"), 200);
  assert.equal(idp.fetches("/shared/jwks.json"), 1);
  // A copy sealed under another key (another Worker on the zone, or a
  // planted one) fails the seal check: shared-c goes to the provider.
  assert.equal(await outcome("shared-c", "k1"), 200);
  assert.equal(idp.fetches("/shared/jwks.json"), 2);
});

test("without JWKS_CACHE_KEY the key set is not shared through the Cache API", async () => {
  idp.serve("/private/jwks.json", [keys.k1.jwk]);
  assert.equal(await outcome("private-a", "k1"), 200);
  assert.equal(await outcome("private-b", "k1"), 200);
  assert.equal(idp.fetches("/private/jwks.json"), 2);
});
