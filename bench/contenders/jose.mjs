// JS worker on `jose`: jwtVerify with keys imported once per isolate
// (HMAC key imported up front, public keys through createLocalJWKSet, which
// caches its imports). Bundled into one module by esbuild.
import { jwtVerify, createLocalJWKSet } from "jose";
import { bearer, unauthorized, admit } from "./common.mjs";

let state = null;

function setup(env) {
  const hmac = crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(env.JWT_SECRET),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  const jwks = createLocalJWKSet(JSON.parse(env.JWT_JWKS));
  return {
    getKey: (header, token) => (header.alg === "HS256" ? hmac : jwks(header, token)),
    options: {
      issuer: env.JWT_ISSUER,
      audience: env.JWT_AUDIENCE,
      algorithms: ["HS256", "RS256", "ES256", "EdDSA"],
      requiredClaims: ["exp"],
    },
  };
}

const CODES = {
  ERR_JWS_SIGNATURE_VERIFICATION_FAILED: "signature_invalid",
  ERR_JWT_EXPIRED: "token_expired",
  ERR_JWKS_NO_MATCHING_KEY: "unknown_key",
  ERR_JOSE_ALG_NOT_ALLOWED: "algorithm_not_allowed",
};

export default {
  async fetch(request, env) {
    state ??= setup(env);
    const token = bearer(request);
    if (!token) return unauthorized("token_missing");
    let payload;
    try {
      ({ payload } = await jwtVerify(token, state.getKey, state.options));
    } catch (error) {
      return unauthorized(CODES[error?.code] ?? "token_invalid");
    }
    return admit(request, env, token, payload);
  },
};
