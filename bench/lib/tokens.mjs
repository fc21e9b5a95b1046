// Keys, configuration and token pools for the benchmark, minted with jose.
import { generateKeyPair, exportJWK, SignJWT } from "jose";
import { randomBytes } from "node:crypto";

export const ALGORITHMS = ["HS256", "RS256", "ES256", "EdDSA"];
export const ISSUER = "https://issuer.bench.test";
export const AUDIENCE = "bench-api";
export const POOL = 16; // tokens per (algorithm, kind); wrk rotates through them

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** Fresh keys: an HMAC secret and RSA-2048, P-256 and Ed25519 key pairs. */
export async function makeKeys() {
  const secret = b64url(randomBytes(32)); // 43 ASCII characters, used as UTF-8 bytes
  const pairs = {};
  const jwks = { keys: [] };
  for (const [alg, opts] of [["RS256", { modulusLength: 2048 }], ["ES256", {}], ["EdDSA", { crv: "Ed25519" }]]) {
    const { publicKey, privateKey } = await generateKeyPair(alg, { ...opts, extractable: true });
    const jwk = await exportJWK(publicKey);
    const kid = `bench-${alg.toLowerCase()}`;
    jwks.keys.push({ ...jwk, kid, alg, use: "sig" });
    pairs[alg] = { privateKey, kid };
  }
  return { secret, pairs, jwks };
}

/** The signing key and protected header for one algorithm. */
function signer(keys, alg) {
  if (alg === "HS256") return { key: new TextEncoder().encode(keys.secret), header: { alg, typ: "JWT" } };
  const { privateKey, kid } = keys.pairs[alg];
  return { key: privateKey, header: { alg, typ: "JWT", kid } };
}

export async function mint(keys, alg, { sub, jti, iat, exp }) {
  const { key, header } = signer(keys, alg);
  return new SignJWT({ scope: "read write" })
    .setProtectedHeader(header)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(sub)
    .setJti(jti)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(key);
}

/** Replaces one character near the start of the signature: the same length, a wrong signature. */
export function tamper(token) {
  const dot = token.lastIndexOf(".");
  const i = dot + 3;
  const c = token[i] === "A" ? "B" : "A";
  return token.slice(0, i) + c + token.slice(i + 1);
}

/**
 * Token pools per algorithm and kind, plus the KV entries they need:
 *  valid   - unrevoked; half of the users have an old cut-off (before iat), so the
 *            cut-off value is read and compared, not just absent
 *  revoked - jti present in KV (`v1:jti:<id>` = {"at":...,"by":"logout"})
 *  badsig  - a valid token with one signature character changed
 *  cutoff  - (checked, not timed) user has a cut-off after the token's iat
 */
export async function makePools(keys) {
  const now = Math.floor(Date.now() / 1000);
  const iat = now - 60;
  const exp = now + 4 * 3600;
  const entries = {};
  const revokedValue = JSON.stringify({ at: now - 30, by: "logout" });
  const pools = {};
  for (const alg of ALGORITHMS) {
    const a = alg.toLowerCase();
    const valid = [], revoked = [], badsig = [];
    for (let i = 0; i < POOL; i++) {
      const sub = `user-${a}-${i}`;
      if (i % 2 === 0) entries[`v1:sub:${sub}`] = `${now - 3600}.000`;
      valid.push(await mint(keys, alg, { sub, jti: `ok-${a}-${i}-${b64url(randomBytes(6))}`, iat, exp }));
      const rjti = `rv-${a}-${i}-${b64url(randomBytes(6))}`;
      entries[`v1:jti:${rjti}`] = revokedValue;
      revoked.push(await mint(keys, alg, { sub: `gone-${a}-${i}`, jti: rjti, iat, exp }));
    }
    for (const t of valid) badsig.push(tamper(t));
    const cutSub = `cut-${a}`;
    entries[`v1:sub:${cutSub}`] = `${now + 1}.500`;
    const cutoff = [await mint(keys, alg, { sub: cutSub, jti: `cut-${a}-${b64url(randomBytes(6))}`, iat, exp })];
    pools[alg] = { valid, revoked, badsig, cutoff };
  }
  return { pools, entries };
}

/** Decoded payload of a compact JWS. */
export function payloadOf(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
}
