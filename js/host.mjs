// The I/O the Rust core asks for, written in plain JavaScript so that the
// runtime's own objects (Request, Headers, KV, crypto.subtle, caches) are
// used where they live. Every decision stays in Rust (src/); these functions
// only move bytes. wasm-bindgen imports this file into the generated glue
// (`#[wasm_bindgen(module = "/js/host.mjs")]` in src/edge/host.rs).
//
// Why JS and not web-sys calls from Rust: each Rust -> JS call crosses the
// wasm boundary and copies strings through UTF-8 <-> UTF-16; copying and
// filtering request headers, building option objects and reading KV answers
// element by element cost more than the whole signature check (docs/performance.md,
// "Where the microseconds go").

// The rules these functions apply are the Rust core's, given once per
// isolate by `configure` (src/edge/mod.rs): KV's cacheTtl (the revocation
// delay, src/revocation.rs KV_CACHE_TTL_SECONDS), the fail-closed deadlines
// (src/revocation.rs DEADLINES), the client headers stripped
// (src/headers.rs) and the origin's revocation header
// (src/origin_revoke.rs). Until then every deadline is 0 and `forward`
// refuses: a call fails closed rather than waiting forever or passing
// client identity headers on.
let kvRead = { type: "text" };
let kvReadTimeoutMs = 0;
let kvWriteTimeoutMs = 0;
let objectReadTimeoutMs = 0;
let objectWriteTimeoutMs = 0;
let spoofedIdentity = null;
let revokeHeader = "";

export function configure(kvCacheTtl, kvReadMs, kvWriteMs, objectReadMs, objectWriteMs, spoofedIdentityPattern, revokeHeaderName) {
  kvRead = { type: "text", cacheTtl: kvCacheTtl };
  kvReadTimeoutMs = kvReadMs;
  kvWriteTimeoutMs = kvWriteMs;
  objectReadTimeoutMs = objectReadMs;
  objectWriteTimeoutMs = objectWriteMs;
  spoofedIdentity = new RegExp(spoofedIdentityPattern);
  // Header names arrive lower-cased from the Headers object.
  revokeHeader = revokeHeaderName.toLowerCase();
}

// The deadline's timer is never cleared: clearTimeout cost as much as
// setTimeout (profiled: the two were 5 % of a request's CPU), and a timer
// that fires after its promise settled only rejects a promise already
// settled. workerd keeps timers with the request that set them and drops
// them when that request ends, so they do not pile up either.
function within(millis, promise, what) {
  return new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error(`${what} took longer than ${millis} ms`)), millis);
    promise.then(resolve, reject);
  });
}

/**
 * One bulk read. Fails closed: anything but a string or an explicit null for
 * a requested key is a store failure, never "not revoked".
 */
export async function kvGetMany(namespace, keys) {
  const found = await within(kvReadTimeoutMs, namespace.get(keys, kvRead), "KV bulk get");
  if (!(found instanceof Map)) throw new Error("KV bulk get did not answer a Map");
  return keys.map((key) => {
    if (!found.has(key)) throw new Error("KV bulk get left out a requested key");
    const value = found.get(key);
    if (value === null || typeof value === "string") return value;
    throw new Error("KV bulk get answered a non-string value");
  });
}

export function kvPut(namespace, key, value, expiration) {
  const written = namespace.put(key, value, expiration === undefined ? {} : { expiration });
  return within(kvWriteTimeoutMs, written, "KV put");
}

// ---- Per-user Durable Objects (SESSIONS; js/sessions.mjs) -------------------------

function userObject(namespace, user) {
  return namespace.get(namespace.idFromName(user));
}

/** One value (string or null) per key, strongly consistent. Fails closed on anything else. */
export async function objectRead(namespace, user, keys) {
  const values = await within(objectReadTimeoutMs, userObject(namespace, user).read(keys), "Durable Object read");
  const valid = Array.isArray(values) && values.length === keys.length
    && values.every((value) => value === null || typeof value === "string");
  if (!valid) throw new Error("Durable Object read answered something else than one value per key");
  return values;
}

export function objectWrite(namespace, user, key, value, expiresAt) {
  const written = userObject(namespace, user).write(key, value, expiresAt ?? null);
  return within(objectWriteTimeoutMs, written, "Durable Object write");
}

/** The object's outcome of a spend request (a list of strings), as text. */
export async function objectSpend(namespace, user, request) {
  const outcome = await within(objectReadTimeoutMs, userObject(namespace, user).spend(request), "Durable Object spend");
  if (typeof outcome !== "string") throw new Error("Durable Object spend answered no outcome");
  return outcome;
}

/** Resolves after `millis`: spacing KV write retries (one write per second per key). */
export function pause(millis) {
  return new Promise((resolve) => setTimeout(resolve, millis));
}

// ---- Signatures ------------------------------------------------------------

// Imported CryptoKeys for the life of the isolate, by the number the core
// gives each pair of key and algorithm (src/js_host.rs `start_verify`), so
// that a request hands over a number rather than the JWK's text.
const importedKeys = new Map();
const MAX_IMPORTED_KEYS = 64;

function webCryptoParams(alg, crv) {
  const hash = `SHA-${alg.slice(2)}`;
  switch (alg.slice(0, 2)) {
    case "RS":
      return [{ name: "RSASSA-PKCS1-v1_5", hash }, { name: "RSASSA-PKCS1-v1_5" }];
    // RFC 7518 3.5: the salt is as long as the hash.
    case "PS":
      return [{ name: "RSA-PSS", hash }, { name: "RSA-PSS", saltLength: Number(alg.slice(2)) / 8 }];
    case "ES":
      return [{ name: "ECDSA", namedCurve: crv }, { name: "ECDSA", hash }];
    default: // EdDSA (Ed25519; the core only hands over keys that fit the alg)
      return [{ name: "Ed25519" }, { name: "Ed25519" }];
  }
}

/** Starts importing a key for `alg` under the number `imported`. */
export function importKey(imported, alg, jwkText) {
  if (importedKeys.size >= MAX_IMPORTED_KEYS) importedKeys.clear();
  const jwk = JSON.parse(jwkText);
  const [importParams, verifyParams] = webCryptoParams(alg, jwk.crv);
  const entry = {
    verifyParams,
    pending: crypto.subtle.importKey("jwk", jwk, importParams, false, ["verify"]),
    key: null,
  };
  importedKeys.set(imported, entry);
  // A key WebCrypto refuses is dropped, so a later call can log it again.
  entry.pending.then((key) => { entry.key = key; }, () => importedKeys.delete(imported));
}

const notValid = () => false;

function check(verifyParams, key, signature, data) {
  try {
    return crypto.subtle.verify(verifyParams, key, signature, data).catch(notValid);
  } catch {
    return Promise.resolve(false);
  }
}

/**
 * Checks one public-key signature with the key imported under `imported`,
 * or answers undefined when there is none (never imported, or dropped): the
 * core then calls importKey and asks again. Resolves true/false; an
 * unparseable signature is simply not valid. A key WebCrypto cannot import
 * rejects, so the core can log it. `signature` and `data` are views into
 * wasm memory, valid until the wasm runs again. WebCrypto reads them within
 * the call (the spec copies them first; workerd's verify runs synchronously
 * and settles its promise), so they are copied only when the check has to
 * wait for the key's import.
 */
export function verifyImported(imported, signature, data) {
  const entry = importedKeys.get(imported);
  if (entry === undefined) return undefined;
  if (entry.key !== null) return check(entry.verifyParams, entry.key, signature, data);
  const [sig, input] = [signature.slice(), data.slice()];
  return entry.pending.then((key) => check(entry.verifyParams, key, sig, input));
}

// ---- Origin ------------------------------------------------------------------

/**
 * Sends the request on: same method, headers and streamed body (or the
 * `buffered` copy of a body the core had to read), client
 * `X-Auth-*` removed, the verified identity added (`identity`: header
 * lines, see `addLines`), redirects passed back rather than followed.
 * Resolves to [response, revoke]: `revoke` is the origin's
 * `Tokengate-Revoke` value (or null), and `response` never carries that
 * header. Responses from fetch have immutable headers, so a copy (same
 * status, headers and streamed body) is made only when the header is there.
 */
export async function forward(request, target, identity, withBody, buffered) {
  if (spoofedIdentity === null) throw new Error("js/host.mjs used before configure()");
  const headers = new Headers(request.headers);
  for (const name of request.headers.keys()) {
    if (spoofedIdentity.test(name)) headers.delete(name);
  }
  addLines(headers, identity, true);
  const response = await fetch(target, {
    method: request.method,
    headers,
    body: buffered ?? (withBody ? request.body : null),
    redirect: "manual",
  });
  const revoke = response.headers.get(revokeHeader);
  if (revoke === null) return [response, null];
  const stripped = new Response(response.body, response);
  stripped.headers.delete(revokeHeader);
  return [stripped, revoke];
}

/** One header of the client's request, or undefined. */
export function header(request, name) {
  return request.headers.get(name) ?? undefined;
}

/**
 * Adds header pairs given as one string, `name\nvalue\nname\nvalue...`
 * (src/headers.rs `header_lines`, which never lets a `\n` inside a name or
 * value through): one string crosses from wasm instead of two per header.
 */
function addLines(headers, lines, replace) {
  if (lines === "") return;
  const parts = lines.split("\n");
  for (let i = 0; i + 1 < parts.length; i += 2) {
    if (replace) headers.set(parts[i], parts[i + 1]);
    else headers.append(parts[i], parts[i + 1]);
  }
}

/** A response of the gateway's own; `headers`: header lines (`addLines`). */
export function reply(status, body, headers) {
  const out = new Headers();
  addLines(out, headers, false);
  // 204 and 304 must not have a body, not even an empty one.
  return new Response(status === 204 || status === 304 ? null : body, { status, headers: out });
}

/**
 * A small request body (admin API, back-channel logout, refresh route), or
 * null when it is larger than `limit`. A body refused for its size is
 * drained when it is at most `drainLimit` long and cancelled when longer
 * (form::DRAIN_LIMIT_BYTES says why).
 */
export async function readBody(request, limit, drainLimit) {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (request.body === null) return declared > limit ? null : new Uint8Array(0);
  const reader = request.body.getReader();
  if (declared > limit) {
    if (declared > drainLimit) reader.cancel().catch(() => {});
    else await discardRest(reader, 0, drainLimit);
    return null;
  }
  // Read as it streams in, and stop at the limit: a chunked body without
  // Content-Length must not be buffered whole.
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await discardRest(reader, size, drainLimit);
      return null;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

/**
 * Reads and drops what is left of a body refused for its size, up to
 * `drainLimit` bytes in all (form::DRAIN_LIMIT_BYTES says why), then cancels.
 */
async function discardRest(reader, size, drainLimit) {
  while (size <= drainLimit) {
    const { done, value } = await reader.read();
    if (done) return;
    size += value.byteLength;
  }
  reader.cancel().catch(() => {});
}

// ---- Remote key sets -----------------------------------------------------------

/**
 * GET `url` with a timeout: [status, cache-control, body]. A body over
 * `maxBytes` rejects. Redirects are not followed: a key set moved elsewhere
 * is an operator's change to make.
 */
export async function fetchText(url, timeoutMs, maxBytes) {
  const response = await fetch(url, {
    headers: { accept: "application/jwk-set+json, application/json" },
    redirect: "manual",
    signal: AbortSignal.timeout(timeoutMs),
  });
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw new Error("key set too large");
  const body = await response.text();
  if (body.length > maxBytes) throw new Error("key set too large");
  return [response.status, response.headers.get("cache-control"), body];
}

/** The colo's Cache API copy of `url`: [headerValue, body], or null. */
export async function cacheRead(url, header, maxBytes) {
  const cached = await caches.default.match(url);
  if (!cached) return null;
  const body = await cached.text();
  if (body.length > maxBytes) return null;
  return [cached.headers.get(header), body];
}

export async function cacheWrite(url, body, ttlSeconds, header, value) {
  const headers = { "cache-control": `max-age=${ttlSeconds}`, [header]: value };
  await caches.default.put(url, new Response(body, { headers }));
}

// ---- Logs ----------------------------------------------------------------------

// Nothing that looks like a JWT, and no query string, ever reaches a log
// line, including error text the runtime wrote (which may quote a URL).
const TOKEN_LIKE = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*)?/g;
const QUERY = /\?[^\s"'<>]*/g;

export function redact(text) {
  return String(text).replace(TOKEN_LIKE, "[token]").replace(QUERY, "?[query]");
}

export function log(level, message) {
  const line = redact(message);
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

// ---- Running Rust tasks (src/edge/task.rs) ----------------------------------------

/**
 * Runs a Rust task to its end: the task runs until it waits on a promise,
 * which is awaited here, natively, and its outcome handed back. This
 * replaces wasm-bindgen-futures' microtask-and-closure machinery, which
 * cost more per request than verifying the token.
 */
export async function drive(task) {
  let waiting = task.poll();
  while (waiting !== undefined) {
    let fulfilled = true;
    let value;
    try {
      value = await waiting;
    } catch (error) {
      fulfilled = false;
      value = error;
    }
    waiting = task.resume(fulfilled, value);
  }
  return task.finish();
}

/** Drives a task under ctx.waitUntil: a client hanging up cannot cancel it. */
export function inBackground(ctx, task) {
  const done = drive(task);
  ctx.waitUntil(done);
  return done;
}
