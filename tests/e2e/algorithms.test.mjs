// Every JWS algorithm through WebCrypto (HMAC in Rust), tokens minted by
// jose; known-answer vectors from RFC 7515, RFC 7520 and RFC 8037; RFC 8725
// hardening (algorithm confusion, embedded keys, typ).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { SignJWT, generateKeyPair, exportJWK, exportSPKI, importJWK } from "jose";
import { startHarness, bearer, json } from "../support/harness.mjs";
import { startJwksServer } from "../support/jwks-server.mjs";
import { now } from "../support/tokens.mjs";

const ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];
const ISS = "https://issuer.tokengate.test";
const AUD = "tokengate-demo";

let h;
let idp;
const pairs = {}; // alg -> { good, wrong } key pairs
const publicJwks = [];

async function keyPair(alg) {
  return generateKeyPair(alg, { extractable: true, ...(alg === "EdDSA" ? { crv: "Ed25519" } : {}) });
}

before(async () => {
  for (const alg of ASYMMETRIC) {
    pairs[alg] = { good: await keyPair(alg), wrong: await keyPair(alg) };
    publicJwks.push({ ...(await exportJWK(pairs[alg].good.publicKey)), kid: alg, alg, use: "sig" });
  }
  idp = await startJwksServer();
  const vectors = [
    // RFC 7515 A.2 (RS256) and A.3 (ES256); no kid, as in the RFC.
    { kty: "RSA", e: "AQAB", n: "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ" },
    { kty: "EC", crv: "P-256", x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" },
    // RFC 8037 A.2 (Ed25519 public key).
    { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
    // RFC 7520 3.5 (the HMAC key of 4.4).
    { kty: "oct", kid: "018c0ae5-4d9b-471b-bfd6-eef314bc7037", use: "sig", alg: "HS256", k: "hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg" },
  ];
  const es256Other = { ...(await exportJWK((await keyPair("ES256")).publicKey)), kid: "b-key" };
  idp.serve("/b/jwks.json", [es256Other]);
  h = await startHarness({
    gateways: {
      "gw-keys": { JWT_JWKS: JSON.stringify({ keys: publicJwks }) },
      "gw-public-only": { JWT_JWKS: JSON.stringify({ keys: publicJwks }), JWT_SECRET: undefined },
      "gw-typed": { JWT_JWKS: JSON.stringify({ keys: publicJwks }), JWT_TYP: "at+jwt" },
      "gw-vectors": {
        JWT_JWKS: JSON.stringify({ keys: vectors }),
        JWT_SECRET: undefined,
        JWT_ISSUER: undefined,
        JWT_AUDIENCE: undefined,
        JWT_LEEWAY_SECONDS: "0",
      },
      "gw-multi": {
        JWT_ISSUER: undefined,
        JWT_AUDIENCE: undefined,
        JWT_ISSUERS: JSON.stringify([
          { issuer: "https://a.example", audience: ["api"], jwks: { keys: [publicJwks.find((k) => k.kid === "ES256")] } },
          { issuer: "https://b.example", audience: "api", jwks_url: idp.url("/b/jwks.json"), algorithms: ["ES256"] },
        ]),
      },
    },
  });
});
after(async () => {
  await h?.close();
  await idp?.close();
});

function mintWith(privateKey, alg, { kid = alg, header = {}, claims = {} } = {}) {
  return new SignJWT({ sub: `user-${alg}`, jti: crypto.randomUUID(), ...claims })
    .setProtectedHeader({ alg, ...(kid ? { kid } : {}), ...header })
    .setIssuer(claims.iss ?? ISS)
    .setAudience(claims.aud ?? AUD)
    .setIssuedAt()
    .setExpirationTime(now() + 600)
    .sign(privateKey);
}

async function outcome(gateway, token) {
  const response = await h.at(gateway)("/api/resource", { headers: bearer(token) });
  const text = await response.text();
  return response.status === 200 ? 200 : `${response.status} ${JSON.parse(text).error}`;
}

test("every asymmetric algorithm: jose-minted tokens verify, the wrong key fails", async () => {
  h.takeReceived();
  for (const alg of ASYMMETRIC) {
    const good = await mintWith(pairs[alg].good.privateKey, alg);
    assert.equal(await outcome("gw-keys", good), 200, alg);
    const wrong = await mintWith(pairs[alg].wrong.privateKey, alg);
    assert.equal(await outcome("gw-keys", wrong), "401 signature_invalid", alg);
  }
  const subjects = h.takeReceived().map((r) => r.headers["x-auth-subject"]);
  assert.deepEqual(subjects, ASYMMETRIC.map((alg) => `user-${alg}`));
});

test("HMAC still verifies beside public keys", async () => {
  const secret = new TextEncoder().encode(h.config.JWT_SECRET);
  for (const alg of ["HS256", "HS384", "HS512"]) {
    assert.equal(await outcome("gw-keys", await mintWith(secret, alg, { kid: null })), 200, alg);
  }
});

test("unknown kid, no kid, and a key bound to another algorithm", async () => {
  assert.equal(await outcome("gw-keys", await mintWith(pairs.ES256.good.privateKey, "ES256", { kid: "nope" })), "401 unknown_key");
  assert.equal(await outcome("gw-keys", await mintWith(pairs.ES256.good.privateKey, "ES256", { kid: null })), 200);
  // The RS256 key is published with alg RS256: a PS256 token naming it finds no key.
  const rsaAsPss = await importJWK(await exportJWK(pairs.RS256.good.privateKey), "PS256");
  assert.equal(await outcome("gw-keys", await mintWith(rsaAsPss, "PS256", { kid: "RS256" })), "401 unknown_key");
});

test("algorithm confusion: HS256 signed with the RSA public key (PEM or JWK) is refused", async () => {
  const pem = await exportSPKI(pairs.RS256.good.publicKey);
  const jwk = JSON.stringify(publicJwks.find((k) => k.kid === "RS256"));
  for (const secret of [pem, jwk]) {
    const forged = await mintWith(new TextEncoder().encode(secret), "HS256", { kid: "RS256" });
    assert.equal(await outcome("gw-keys", forged), "401 signature_invalid");
    assert.equal(await outcome("gw-public-only", forged), "401 algorithm_not_allowed");
  }
});

test("embedded jwk and jku headers are never trusted or fetched", async () => {
  const attacker = await keyPair("ES256");
  const attackerJwk = await exportJWK(attacker.publicKey);
  idp.serve("/evil/jwks.json", [{ ...attackerJwk, kid: "ES256" }]);
  const withJwk = await mintWith(attacker.privateKey, "ES256", { header: { jwk: attackerJwk } });
  const withJku = await mintWith(attacker.privateKey, "ES256", { header: { jku: idp.url("/evil/jwks.json") } });
  const withX5u = await mintWith(attacker.privateKey, "ES256", { header: { x5u: idp.url("/evil/cert.pem") } });
  for (const token of [withJwk, withJku, withX5u]) assert.equal(await outcome("gw-keys", token), "401 signature_invalid");
  assert.equal(idp.fetches("/evil/jwks.json") + idp.fetches("/evil/cert.pem"), 0);
});

test("a logged-out ES256 token without jti stays revoked when its signature is rewritten (s -> n - s)", async () => {
  // No sub either: a logout without sid would cut off the user, and the
  // twin would then be revoked by that rather than by its token ID.
  const token = await mintWith(pairs.ES256.good.privateKey, "ES256", { claims: { jti: undefined, sub: undefined } });
  const logout = await h.at("gw-keys")("/auth/logout", { method: "POST", headers: bearer(token) });
  assert.equal(logout.status, 200);
  await logout.arrayBuffer();
  // The same signature in its other valid form: (r, s) -> (r, n - s) on P-256.
  const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
  const [head, payload, sig] = token.split(".");
  const bytes = Buffer.from(sig, "base64url");
  const s = BigInt(`0x${bytes.subarray(32).toString("hex")}`);
  const flipped = Buffer.concat([bytes.subarray(0, 32), Buffer.from((n - s).toString(16).padStart(64, "0"), "hex")]);
  const twin = `${head}.${payload}.${flipped.toString("base64url")}`;
  assert.notEqual(twin, token);
  assert.equal(await outcome("gw-keys", twin), "401 token_revoked");
});

test("JWT_TYP requires the token type (RFC 8725 3.11)", async () => {
  const key = pairs.ES256.good.privateKey;
  assert.equal(await outcome("gw-typed", await mintWith(key, "ES256", { header: { typ: "at+jwt" } })), 200);
  assert.equal(await outcome("gw-typed", await mintWith(key, "ES256", { header: { typ: "application/at+JWT" } })), 200);
  assert.equal(await outcome("gw-typed", await mintWith(key, "ES256", { header: { typ: "JWT" } })), "401 type_invalid");
  assert.equal(await outcome("gw-typed", await mintWith(key, "ES256")), "401 type_invalid");
});

test("known-answer vectors: RFC 7515 A.2, A.3, RFC 8037 A.4, RFC 7520 4.4", async () => {
  // The vectors' signatures are good; what follows the signature check then
  // decides: A.2/A.3 expired in 2011, the RFC 8037 and 7520 payloads are text, not claims.
  const vectors = {
    "RFC 7515 A.2 RS256": ["eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw", "401 token_expired"],
    "RFC 7515 A.3 ES256": ["eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q", "401 token_expired"],
    "RFC 8037 A.4 Ed25519": ["eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg", "401 token_malformed"],
    "RFC 7520 4.4 HS256": ["eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0", "401 token_malformed"],
  };
  for (const [name, [token, expected]] of Object.entries(vectors)) {
    assert.equal(await outcome("gw-vectors", token), expected, name);
    // One character of the signature changed: now it must be the signature that fails.
    const [head, payload, signature] = token.split(".");
    const flipped = signature.slice(0, 10) + (signature[10] === "A" ? "B" : "A") + signature.slice(11);
    assert.equal(await outcome("gw-vectors", `${head}.${payload}.${flipped}`), "401 signature_invalid", name);
  }
});

test("several issuers, each with its own keys", async () => {
  const a = await mintWith(pairs.ES256.good.privateKey, "ES256", { claims: { iss: "https://a.example", aud: "api" } });
  assert.equal(await outcome("gw-multi", a), 200);
  // a's key is not one of b's keys, whatever the kid says.
  const aAsB = await mintWith(pairs.ES256.good.privateKey, "ES256", { claims: { iss: "https://b.example", aud: "api" } });
  assert.equal(await outcome("gw-multi", aAsB), "401 unknown_key");
  const stranger = await mintWith(pairs.ES256.good.privateKey, "ES256", { claims: { iss: "https://c.example", aud: "api" } });
  assert.equal(await outcome("gw-multi", stranger), "401 issuer_invalid");
  const wrongAudience = await mintWith(pairs.ES256.good.privateKey, "ES256", { claims: { iss: "https://a.example", aud: "web" } });
  assert.equal(await outcome("gw-multi", wrongAudience), "401 audience_invalid");
});
