// Shared by the JS gateway contenders (bundled into each by esbuild):
// token extraction, the one-round-trip KV check, 401 answers and forwarding
// with identity headers. The same job Tokengate does per request.

const decoder = new TextDecoder();

export function bearer(request) {
  const h = request.headers.get("authorization");
  if (!h || h.length < 8 || h.slice(0, 7).toLowerCase() !== "bearer ") return null;
  return h.slice(7).trim();
}

export function b64urlBytes(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function decodeJson(segment) {
  return JSON.parse(decoder.decode(b64urlBytes(segment)));
}

export function unauthorized(code, description = code) {
  const body = JSON.stringify({ error: code, error_description: description });
  return new Response(body, {
    status: 401,
    headers: {
      "content-type": "application/json",
      "cache-control": "no-store",
      "www-authenticate": `Bearer realm="bench", error="invalid_token", error_description="${description}"`,
    },
  });
}

export function unavailable() {
  return new Response(JSON.stringify({ error: "revocation_unavailable" }), {
    status: 503,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}

/** Registered-claim checks (exp required, nbf, iss, aud). Returns an error code or null. */
export function checkClaims(claims, env, now = Date.now() / 1000) {
  if (typeof claims.exp !== "number" || claims.exp <= now) return "token_expired";
  if (typeof claims.nbf === "number" && claims.nbf > now) return "token_not_yet_valid";
  if (env.JWT_ISSUER && claims.iss !== env.JWT_ISSUER) return "issuer_invalid";
  if (env.JWT_AUDIENCE) {
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes(env.JWT_AUDIENCE)) return "audience_invalid";
  }
  return null;
}

/**
 * One KV bulk get for the token ID and the user cut-off.
 * Returns "token_revoked", null (not revoked), or throws (fail closed).
 */
export async function revoked(env, claims, tokenId) {
  const keys = ["v1:jti:" + tokenId];
  if (typeof claims.sub === "string") keys.push("v1:sub:" + claims.sub);
  const values = await env.REVOCATIONS.get(keys, { type: "text", cacheTtl: 30 });
  if (values.get(keys[0]) != null) return "token_revoked";
  if (keys.length > 1) {
    const cut = values.get(keys[1]);
    if (cut != null) {
      const c = Number(cut);
      if (!Number.isFinite(c)) throw new Error("unreadable cut-off");
      if (typeof claims.iat !== "number" || claims.iat < c) return "token_revoked";
    }
  }
  return null;
}

/** The token ID: `jti`, else base64url SHA-256 of header.payload (as Tokengate). */
export async function tokenId(claims, token) {
  if (typeof claims.jti === "string") return claims.jti;
  const signed = token.slice(0, token.lastIndexOf("."));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(signed)));
  let bin = "";
  for (const b of digest) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const SAFE = /^[\x21-\x24\x26-\x7e]*$/; // visible ASCII except '%'
const headerValue = (s) => (SAFE.test(s) ? s : encodeURIComponent(s));

/** Forwards the request to ORIGIN_URL + path + query with identity headers; client X-Auth-* removed. */
export function forward(request, env, identity) {
  const url = new URL(request.url);
  const headers = new Headers();
  for (const [name, value] of request.headers) {
    if (name.startsWith("x-auth-") || name.startsWith("x_auth_")) continue;
    headers.append(name, value);
  }
  if (identity) {
    if (identity.sub !== undefined) headers.set("X-Auth-Subject", headerValue(String(identity.sub)));
    headers.set("X-Auth-Token-Id", headerValue(identity.tokenId));
    if (identity.iss !== undefined) headers.set("X-Auth-Issuer", headerValue(String(identity.iss)));
    headers.set("X-Auth-Claims", identity.claimsSegment);
  }
  return fetch(env.ORIGIN_URL + url.pathname + url.search, {
    method: request.method,
    headers,
    body: request.body,
    redirect: "manual",
  });
}

/** After verification: KV check, then forward. */
export async function admit(request, env, token, claims) {
  const id = await tokenId(claims, token);
  let verdict;
  try {
    verdict = await revoked(env, claims, id);
  } catch {
    return unavailable();
  }
  if (verdict) return unauthorized(verdict, "the token has been revoked");
  const claimsSegment = token.slice(token.indexOf(".") + 1, token.lastIndexOf("."));
  return forward(request, env, { sub: claims.sub, iss: claims.iss, tokenId: id, claimsSegment });
}
