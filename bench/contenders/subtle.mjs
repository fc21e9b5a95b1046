// JS gateway with hand-written crypto.subtle verification, keys imported once
// per isolate and cached (the practical limit for JS on Workers).
import { bearer, b64urlBytes, decodeJson, unauthorized, checkClaims, admit } from "./common.mjs";

const encoder = new TextEncoder();
const ALGS = {
  HS256: { verify: { name: "HMAC" } },
  RS256: { import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, verify: { name: "RSASSA-PKCS1-v1_5" }, kty: "RSA" },
  ES256: { import: { name: "ECDSA", namedCurve: "P-256" }, verify: { name: "ECDSA", hash: "SHA-256" }, kty: "EC" },
  EdDSA: { import: { name: "Ed25519" }, verify: { name: "Ed25519" }, kty: "OKP" },
};

let jwks = null; // parsed once per isolate
const cache = new Map(); // alg + kid -> Promise<CryptoKey>

function key(env, alg, kid) {
  const id = alg + "|" + (kid ?? "");
  let k = cache.get(id);
  if (k) return k;
  if (alg === "HS256") {
    k = crypto.subtle.importKey("raw", encoder.encode(env.JWT_SECRET), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
  } else {
    jwks ??= JSON.parse(env.JWT_JWKS).keys;
    const spec = ALGS[alg];
    const jwk = jwks.find((j) => j.kty === spec.kty && (kid === undefined || j.kid === kid) && (!j.alg || j.alg === alg));
    if (!jwk) return null;
    const { kty, n, e, crv, x, y } = jwk;
    k = crypto.subtle.importKey("jwk", { kty, n, e, crv, x, y }, spec.import, false, ["verify"]);
  }
  cache.set(id, k);
  return k;
}

export default {
  async fetch(request, env) {
    const token = bearer(request);
    if (!token) return unauthorized("token_missing");
    const parts = token.split(".");
    if (parts.length !== 3) return unauthorized("token_malformed");
    let header, claims;
    try {
      header = decodeJson(parts[0]);
      claims = decodeJson(parts[1]);
    } catch {
      return unauthorized("token_malformed");
    }
    const spec = ALGS[header.alg];
    if (!spec) return unauthorized("algorithm_not_allowed");
    const cryptoKey = key(env, header.alg, header.kid);
    if (!cryptoKey) return unauthorized("unknown_key");
    let ok;
    try {
      ok = await crypto.subtle.verify(
        spec.verify,
        await cryptoKey,
        b64urlBytes(parts[2]),
        encoder.encode(parts[0] + "." + parts[1]),
      );
    } catch {
      ok = false;
    }
    if (!ok) return unauthorized("signature_invalid");
    const bad = checkClaims(claims, env);
    if (bad) return unauthorized(bad);
    return admit(request, env, token, claims);
  },
};
