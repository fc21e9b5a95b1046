// Tokens minted by jose, an independent JOSE implementation, so every
// end-to-end test is also an interoperability test.
import { SignJWT, base64url } from "jose";
import { randomUUID } from "node:crypto";

export const SECRET = "e2e-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
export const OTHER_SECRET = "e2e-other-secret-0123456789-abcdefghijklmnopqrst";
export const ADMIN_TOKEN = "e2e-admin-token-0123456789";
const encoder = new TextEncoder();

export const now = () => Math.floor(Date.now() / 1000);

/**
 * Mints a token valid for the gateway's wrangler.toml issuer and audience
 * unless told otherwise. `claims` overrides or removes (undefined) claims.
 */
export async function mint({ sub = "alice", alg = "HS256", secret = SECRET, header = {}, claims = {} } = {}, config) {
  const payload = {
    sub,
    iss: config.JWT_ISSUER,
    aud: config.JWT_AUDIENCE,
    jti: randomUUID(),
    iat: now(),
    exp: now() + 600,
    ...claims,
  };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return new SignJWT(payload).setProtectedHeader({ alg, ...header }).sign(encoder.encode(secret));
}

/** An ES256 token for "alice" signed with `privateKey` under `kid`, for the gateway's issuer and audience. */
export function es256Token(privateKey, kid, config) {
  return new SignJWT({ sub: "alice" })
    .setProtectedHeader({ alg: "ES256", kid })
    .setIssuer(config.JWT_ISSUER)
    .setAudience(config.JWT_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(now() + 600)
    .sign(privateKey);
}

/** A token whose header and payload are exactly what we say, signature by jose's key. */
export function claimsOf(token) {
  return JSON.parse(new TextDecoder().decode(base64url.decode(token.split(".")[1])));
}
