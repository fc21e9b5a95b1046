// The attack corpus (tests/fixtures/attacks.json), end to end against the
// release build in Miniflare. One subtest per case, grouped by category.
// For every case: the expected 4xx status and `error` code, never a 5xx, and
// nothing at the origin (nor at the attacker's key server). Controls (the
// untouched recipes) must pass, so each case fails for what it changes.
//
// The recipes are data; this file only interprets them (see the fixture's
// `format` member). Tokens are built and signed here with node:crypto, not
// jose, because many are deliberately invalid JOSE that jose refuses to make.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import http from "node:http";
import { readFileSync } from "node:fs";
import { startHarness } from "../support/harness.mjs";
import { OTHER_SECRET, ADMIN_TOKEN } from "../support/tokens.mjs";
import { text as generated } from "../fixtures/make-attacks.mjs";

const fixtureUrl = new URL("../fixtures/attacks.json", import.meta.url);
const fixtureText = readFileSync(fixtureUrl, "utf8");
const corpus = JSON.parse(fixtureText);

let h;
let attacker; // the attacker's key server: jku/x5u point here; it must never be asked
let now;
const keys = {}; // name -> { privateKey, publicKey, alg, x5c }
const results = { run: 0, passed: 0, failed: [], byCategory: {} };

// ---------------------------------------------------------------------------
// keys

const b64 = (bytes) => Buffer.from(bytes).toString("base64url");

function publicJwk(name) {
  return keys[name].publicKey.export({ format: "jwk" });
}
/** The JWK exactly as published in JWT_JWKS. */
function publishedJwk(name) {
  return { ...publicJwk(name), kid: name, alg: keys[name].alg, use: "sig" };
}
function hmacKey(spec) {
  if (spec === "secret") return Buffer.from(h.config.JWT_SECRET);
  if (spec === "other-secret") return Buffer.from(OTHER_SECRET);
  if (spec === "empty") return Buffer.alloc(0);
  if (spec.startsWith("text:")) return Buffer.from(spec.slice(5));
  const dot = spec.lastIndexOf(".");
  const [name, form] = [spec.slice(0, dot), spec.slice(dot + 1)];
  const key = keys[name];
  assert.ok(key, `unknown key ${spec}`);
  const jwk = publicJwk(name);
  switch (form) {
    case "spki-pem":
      return Buffer.from(key.publicKey.export({ type: "spki", format: "pem" }));
    case "pkcs1-pem":
      return Buffer.from(key.publicKey.export({ type: "pkcs1", format: "pem" }));
    case "spki-der":
      return key.publicKey.export({ type: "spki", format: "der" });
    case "jwk":
      return Buffer.from(JSON.stringify(publishedJwk(name)));
    case "jwk-bare": {
      // RFC 7638 required members, in lexicographic order.
      const members = { RSA: ["e", "kty", "n"], EC: ["crv", "kty", "x", "y"], OKP: ["crv", "kty", "x"] }[jwk.kty];
      return Buffer.from(JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]]))));
    }
    case "raw":
      if (jwk.kty === "RSA") return Buffer.from(jwk.n, "base64url");
      if (jwk.kty === "EC") return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, "base64url"), Buffer.from(jwk.y, "base64url")]);
      return Buffer.from(jwk.x, "base64url");
    default:
      throw new Error(`unknown key form ${spec}`);
  }
}

function signBytes(alg, key, input, sigEncoding) {
  const hash = { 256: "sha256", 384: "sha384", 512: "sha512" }[alg.slice(-3)];
  if (alg.startsWith("HS")) return crypto.createHmac(hash, hmacKey(key)).update(input).digest();
  const privateKey = keys[key]?.privateKey;
  assert.ok(privateKey, `unknown signing key ${key}`);
  if (alg.startsWith("RS")) return crypto.sign(hash, input, privateKey);
  if (alg.startsWith("PS")) {
    return crypto.sign(hash, input, {
      key: privateKey,
      padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
      saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST,
    });
  }
  if (alg.startsWith("ES")) return crypto.sign(hash, input, { key: privateKey, dsaEncoding: sigEncoding === "der" ? "der" : "ieee-p1363" });
  if (alg === "EdDSA") return crypto.sign(null, input, privateKey);
  throw new Error(`cannot sign ${alg}`);
}

// ---------------------------------------------------------------------------
// recipes

function resolve(value, ctx) {
  if (value === "{jti}") return ctx.jti;
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => resolve(v, ctx));
  const [only, ...more] = Object.keys(value);
  if (more.length === 0 && only?.startsWith("$")) {
    const arg = value[only];
    const cert = (name) => Buffer.from(keys[name].x5c[0], "base64");
    switch (only) {
      case "$now":
        return now + arg;
      case "$string":
        return String(resolve(arg, ctx));
      case "$repeat":
        return arg[0].repeat(arg[1]);
      case "$nest": {
        let nested = resolve(arg[1], ctx);
        for (let i = 0; i < arg[0]; i++) nested = [nested];
        return nested;
      }
      case "$jwk":
        return publicJwk(arg);
      case "$x5c":
        return keys[arg].x5c;
      case "$x5t":
        return b64(crypto.createHash("sha1").update(cert(arg)).digest());
      case "$x5tS256":
        return b64(crypto.createHash("sha256").update(cert(arg)).digest());
      case "$url":
        return `${attacker.url}${arg}`;
      case "$jwks":
        return JSON.stringify({ keys: arg.map(publishedJwk) });
      case "$jwkSet":
        return { keys: arg.map(publishedJwk) };
      case "$json":
        return JSON.stringify(resolve(arg, ctx));
      // Anything else ({$ne: ""}, ...) is attack data, taken literally.
    }
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, ctx)]));
}

function claimsFor(overrides = {}, ctx, base = true) {
  const claims = base ? resolve(corpus.baseClaims, ctx) : {};
  for (const [name, value] of Object.entries(overrides)) {
    if (value === "$delete") delete claims[name];
    else claims[name] = resolve(value, ctx);
  }
  return claims;
}

function template(text, ctx) {
  return text.replace(/\{now(?:([+-]\d+))?\}|\{base((?:-[a-z]+)*)\}|\{jti\}/g, (match, offset, without) => {
    if (match.startsWith("{now")) return String(now + Number(offset ?? 0));
    if (match === "{jti}") return ctx.jti;
    const claims = claimsFor({}, ctx);
    for (const name of (without ?? "").split("-").filter(Boolean)) delete claims[name];
    return JSON.stringify(claims).slice(1, -1);
  });
}

function rawBytes(spec, ctx) {
  return Buffer.concat(
    (Array.isArray(spec) ? spec : [spec]).map((part) => {
      if (typeof part === "string") return Buffer.from(template(part, ctx));
      if (part.hex !== undefined) return Buffer.from(part.hex, "hex");
      if (part.repeat) return Buffer.from(part.repeat[0].repeat(part.repeat[1]));
      if (part.utf16le !== undefined) return Buffer.from(template(part.utf16le, ctx), "utf16le");
      throw new Error(`unknown text part ${JSON.stringify(part)}`);
    }),
  );
}

function segment(spec, ctx) {
  if (typeof spec === "string") return spec;
  if ("json" in spec) return b64(JSON.stringify(resolve(spec.json, ctx)));
  if ("text" in spec) return b64(rawBytes(spec.text, ctx));
  if ("claims" in spec) return b64(JSON.stringify(claimsFor(spec.claims, ctx)));
  throw new Error(`unknown segment ${JSON.stringify(spec)}`);
}

function buildToken(spec, ctx) {
  let token;
  if (typeof spec === "string") token = spec;
  else if ("value" in spec) token = String(resolve(spec.value, ctx));
  else if (spec.segments) token = spec.segments.map((s) => segment(s, ctx)).join(".");
  else if (spec.sign) {
    const s = spec.sign;
    const header = s.headerJson !== undefined ? rawBytes(s.headerJson, ctx) : Buffer.from(JSON.stringify({ alg: s.alg, ...resolve(s.header ?? {}, ctx) }));
    const payload = s.claimsJson !== undefined ? rawBytes(s.claimsJson, ctx) : Buffer.from(JSON.stringify(claimsFor(s.claims, ctx, s.base !== false)));
    const input = `${b64(header)}.${b64(payload)}`;
    token = `${input}.${b64(signBytes(s.alg, s.key, Buffer.from(input), s.sigEncoding))}`;
  } else throw new Error(`unknown token recipe ${JSON.stringify(spec)}`);
  for (const edit of spec.edit ?? []) {
    const before = token;
    token = applyEdit(token, edit, ctx);
    assert.notEqual(token, before, `edit ${JSON.stringify(edit)} changed nothing`);
  }
  return token;
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function applyEdit(token, edit, ctx) {
  const segs = token.split(".");
  const at = (index) => {
    assert.ok(index < segs.length, `edit ${edit.op}: no segment ${index}`);
    return segs[index];
  };
  switch (edit.op) {
    case "set-segment":
      at(edit.index);
      segs[edit.index] = segment(edit.value, ctx);
      break;
    case "drop-segment":
      at(edit.index);
      segs.splice(edit.index, 1);
      break;
    case "append":
      return token + edit.value;
    case "prepend":
      return edit.value + token;
    case "insert": {
      const seg = at(edit.index);
      const offset = edit.at === "end" ? seg.length : edit.at;
      segs[edit.index] = seg.slice(0, offset) + edit.value + seg.slice(offset);
      break;
    }
    case "replace":
      if (edit.index === undefined) return token.replaceAll(edit.from, edit.to);
      segs[edit.index] = at(edit.index).replaceAll(edit.from, edit.to);
      break;
    case "pad": {
      const seg = at(edit.index);
      segs[edit.index] = seg + (seg.length % 4 === 0 ? "==" : "=".repeat(4 - (seg.length % 4)));
      break;
    }
    case "sig-bytes": {
      let bytes = Buffer.from(at(2), "base64url");
      if (edit.do === "flip-first-bit") bytes[0] ^= 1;
      else if (edit.do === "drop-last-byte") bytes = bytes.subarray(0, -1);
      else if (edit.do === "zero") bytes = Buffer.alloc(bytes.length);
      else if (edit.do === "double") bytes = Buffer.concat([bytes, bytes]);
      else if (edit.do === "empty") bytes = Buffer.alloc(0);
      else throw new Error(`unknown sig-bytes ${edit.do}`);
      segs[2] = b64(bytes);
      break;
    }
    case "resign-claims":
      at(1);
      segs[1] = b64(JSON.stringify(claimsFor(edit.claims, ctx)));
      break;
    case "signature-of":
      at(2);
      segs[2] = buildToken(edit.token, { jti: `${ctx.jti}:other` }).split(".")[2];
      break;
    case "noncanonical-last-char": {
      const seg = at(edit.index);
      assert.ok(seg.length % 4 === 2 || seg.length % 4 === 3, "the segment must end in a partial group");
      const value = ALPHABET.indexOf(seg.at(-1));
      assert.equal(value & 1, 0, "canonical encodings leave the unused bits zero");
      segs[edit.index] = seg.slice(0, -1) + ALPHABET[value | 1];
      break;
    }
    default:
      throw new Error(`unknown edit ${edit.op}`);
  }
  return segs.join(".");
}

function fill(text, ctx) {
  return text.replace(/\{(token2?|token:basic|cookie|cookie:upper|admin|admin:upper|admin:truncated|admin:basic)\}/g, (_, name) => {
    switch (name) {
      case "token":
        return ctx.token;
      case "token2":
        return ctx.token2;
      case "token:basic":
        return Buffer.from(`${ctx.token}:`).toString("base64");
      case "cookie":
        return h.config.TOKEN_COOKIE;
      case "cookie:upper":
        return h.config.TOKEN_COOKIE.toUpperCase();
      case "admin":
        return ADMIN_TOKEN;
      case "admin:upper":
        return ADMIN_TOKEN.toUpperCase();
      case "admin:truncated":
        return ADMIN_TOKEN.slice(0, -1);
      case "admin:basic":
        return Buffer.from(`${ADMIN_TOKEN}:`).toString("base64");
    }
  });
}

function send(entry, ctx) {
  const request = entry.request ?? {};
  const headers = new Headers();
  const authorization = "authorization" in request ? request.authorization : ctx.token !== undefined ? "Bearer {token}" : null;
  for (const value of [authorization].flat()) if (value !== null) headers.append("authorization", fill(value, ctx));
  if (request.cookie !== undefined) headers.set("cookie", fill(request.cookie, ctx));
  for (const [name, value] of Object.entries(request.headers ?? {})) headers.set(name, fill(value, ctx));
  const init = { method: request.method ?? "GET", headers };
  if (request.body !== undefined) init.body = fill(request.body, ctx);
  const path = fill(request.path ?? "/api/resource", ctx);
  const gateway = entry.gateway ?? "gateway";
  return gateway === "gateway" ? h.fetch(path, init) : h.at(gateway)(path, init);
}

function prepare(entry, jti) {
  const ctx = { jti };
  if (entry.token !== undefined) ctx.token = buildToken(entry.token, ctx);
  if (entry.token2 !== undefined) ctx.token2 = buildToken(entry.token2, { jti: `${jti}:2` });
  return ctx;
}

// ---------------------------------------------------------------------------

before(async () => {
  const requests = [];
  const evil = {};
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const body = evil[new URL(req.url, "http://attacker").pathname];
    res.writeHead(body ? 200 : 404, { "content-type": "application/json", "cache-control": "max-age=600" }).end(body ?? "");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  attacker = { url: `http://127.0.0.1:${server.address().port}`, requests, close: () => new Promise((done) => server.close(done)) };

  for (const [name, { alg, pkcs8, x5c }] of Object.entries(corpus.keys)) {
    const privateKey = crypto.createPrivateKey(pkcs8);
    keys[name] = { alg, privateKey, publicKey: crypto.createPublicKey(privateKey), x5c };
  }
  // Were the gateway to follow jku/x5u, it would find the attacker's keys
  // under the trusted kids; it must not even ask.
  const attackerEc = publicJwk("attacker-ec256");
  evil["/evil/jwks.json"] = JSON.stringify({ keys: [{ ...attackerEc, kid: "ec256" }, { ...attackerEc, kid: "attacker-ec256" }] });
  evil["/evil/rsa.json"] = JSON.stringify({ keys: [{ ...publicJwk("attacker-rsa"), kid: "rsa" }] });
  evil["/evil/oct.json"] = JSON.stringify({ keys: [{ kty: "oct", k: b64("attacker-secret") }] });
  evil["/evil/cert.pem"] = `-----BEGIN CERTIFICATE-----\n${keys["attacker-ec256"].x5c[0]}\n-----END CERTIFICATE-----\n`;

  const gateways = {};
  for (const [name, settings] of Object.entries(corpus.gateways)) {
    gateways[name] = Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, v === null ? undefined : resolve(v, {})]));
  }
  h = await startHarness({ gateways });
  // The corpus was written against wrangler.toml's settings.
  assert.equal(h.config.JWT_ISSUER, corpus.baseClaims.iss);
  assert.equal(h.config.JWT_AUDIENCE, corpus.baseClaims.aud);
  assert.equal(h.config.JWT_LEEWAY_SECONDS, "30");
  assert.ok(h.config.TOKEN_COOKIE, "wrangler.toml names TOKEN_COOKIE");
  assert.ok(h.config.PUBLIC_PATHS.split(",").includes("/demo/*"), "wrangler.toml makes /demo/* public");
});

after(async () => {
  await h?.close();
  await attacker?.close();
});

describe("fixture", () => {
  it("is what its generator writes", () => {
    assert.ok(generated === fixtureText, "tests/fixtures/attacks.json is stale: run node tests/fixtures/make-attacks.mjs");
  });
  it("has at least 150 well-formed cases with unique names and 4xx expectations", () => {
    assert.ok(corpus.cases.length >= 150, `${corpus.cases.length} cases`);
    const names = new Set();
    for (const c of corpus.cases) {
      assert.ok(!names.has(c.name), `duplicate name ${c.name}`);
      names.add(c.name);
      for (const field of ["category", "name", "made"]) assert.equal(typeof c[field], "string", `${c.name}: ${field}`);
      assert.ok(!c.made.includes("\n"), `${c.name}: 'made' is one line`);
      assert.ok(c.expect.status >= 400 && c.expect.status < 500, `${c.name}: expects a 4xx`);
      if (c.expect.error === null) {
        // Only for a request the runtime itself refuses before the gateway.
        assert.ok([400, 431].includes(c.expect.status), `${c.name}: error null only with 400 or 431`);
      } else {
        assert.match(c.expect.error, /^[a-z_]+$/, `${c.name}: expects an error code`);
      }
      assert.ok(!c.gateway || c.gateway in corpus.gateways, `${c.name}: unknown gateway ${c.gateway}`);
    }
  });
});

describe("controls: the untouched recipes reach the origin", () => {
  for (const control of corpus.controls) {
    it(control.name, async () => {
      now = Math.floor(Date.now() / 1000);
      const ctx = prepare(control, `control:${control.name}`);
      h.takeReceived();
      const response = await send(control, ctx);
      const text = await response.text();
      assert.equal(response.status, 200, `${response.status} ${text.slice(0, 300)}`);
      assert.equal(h.takeReceived().length, 1, "the origin receives the request once");
    });
  }
});

const categories = [...new Set(corpus.cases.map((c) => c.category))];
for (const category of categories) {
  describe(`attacks: ${category}`, () => {
    for (const entry of corpus.cases.filter((c) => c.category === category)) {
      it(entry.name, async () => {
        results.run += 1;
        const tally = (results.byCategory[category] ??= { run: 0, passed: 0 });
        tally.run += 1;
        try {
          await runCase(entry);
          results.passed += 1;
          tally.passed += 1;
        } catch (error) {
          results.failed.push(`${category} / ${entry.name}`);
          throw error;
        }
      });
    }
  });
}

async function runCase(entry) {
  now = Math.floor(Date.now() / 1000);
  const ctx = prepare(entry, `attack:${entry.name}`);
  if (entry.setup === "logout") {
    const logout = await send({ gateway: entry.gateway, request: { method: "POST", path: "/auth/logout" } }, ctx);
    const text = await logout.text();
    assert.equal(logout.status, 200, `setup logout: ${logout.status} ${text}`);
  }
  h.takeReceived();
  const attackerSeen = attacker.requests.length;
  let response;
  try {
    response = await send(entry, ctx);
  } catch (error) {
    assert.fail(`the request could not be made: ${error.message}`);
  }
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const seen = h.takeReceived().map((r) => `${r.method} ${r.url}`);
  const got = `${response.status} ${body?.error ?? (entry.expect.error === null ? null : `(no JSON error: ${text.slice(0, 120)})`)}`;
  assert.ok(response.status < 500, `a 5xx: ${got}`);
  assert.deepEqual(seen, [], `the origin received the request (gateway answered ${got})`);
  assert.deepEqual(attacker.requests.slice(attackerSeen), [], "the gateway contacted the attacker's server");
  assert.equal(got, `${entry.expect.status} ${entry.expect.error}`);
}

describe("summary", () => {
  it("prints the tally", (t) => {
    const lines = [
      `attack corpus: ${results.run} cases run, ${results.passed} passed, ${results.run - results.passed} failed`,
      ...Object.entries(results.byCategory).map(([c, { run, passed }]) => `  ${c}: ${passed}/${run}`),
      ...results.failed.map((name) => `  FAILED ${name}`),
    ];
    for (const line of lines) t.diagnostic(line);
  });
});
