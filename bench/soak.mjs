#!/usr/bin/env node
// Soak test: Tokengate's release build in workerd under a steady mixed load
// for SOAK_SECONDS (default 75), with tokens revoked while the load runs.
// Every answer is checked, so the client is Node (keep-alive, SOAK_CONCURRENCY
// requests in flight, default 8), not wrk.
//
//   node bench/soak.mjs                    75 s; writes bench/SOAK.md and prints it
//   SOAK_SECONDS=15 node bench/soak.mjs    quick smoke
//
// Exit status: 0 = pass; 1 = a wrong decision, a 5xx, a transport error, an
// unexpected refusal code, an identity-header mismatch, a failed revocation,
// a forwarded-count mismatch at the origin, or workerd died; 2 = could not set up.
//
// Settings (environment): SOAK_SECONDS (75), SOAK_CONCURRENCY (8),
// SOAK_USERS (240 users with live tokens; every third has two), SOAK_REVOKED
// (10000 revoked IDs seeded in KV besides the test's own), SOAK_REVOKE_MS
// ("1000-2000": pause between revocations), SOAK_PUBLIC_PATHS ("/echo/public/*";
// empty: no public paths), SOAK_LEEWAY (5, JWT_LEEWAY_SECONDS), SOAK_BUILD_DIR
// (build/), SOAK_OUT (bench/SOAK.md), SOAK_SEED (random).
//
// bench/lib is imported read-only: workerd config, KV service, origin,
// process helpers and key material are the benchmark's own.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";

import { installCleanup, pinBench, start, cpuMicros, coreBusyMicros, freePort, request, sleep } from "./lib/proc.mjs";
import { writeConfig, workerdBinary, buildModules, wranglerCompatibilityDate } from "./lib/workerd.mjs";
import { benchControl } from "./lib/control.mjs";
import { makeKeys, tamper, ALGORITHMS, ISSUER, AUDIENCE } from "./lib/tokens.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const env = process.env;
const num = (name, dflt) => (env[name] !== undefined && env[name] !== "" ? Number(env[name]) : dflt);

const S = {
  seconds: num("SOAK_SECONDS", 75),
  concurrency: num("SOAK_CONCURRENCY", 8),
  users: num("SOAK_USERS", 240),
  seededRevoked: num("SOAK_REVOKED", 10_000),
  revokeMs: (env.SOAK_REVOKE_MS ?? "1000-2000").split("-").map(Number),
  publicPaths: env.SOAK_PUBLIC_PATHS ?? "/echo/public/*",
  leeway: num("SOAK_LEEWAY", 5),
  buildDir: path.resolve(root, env.SOAK_BUILD_DIR ?? "build"),
  out: path.resolve(root, env.SOAK_OUT ?? "bench/SOAK.md"),
  seed: num("SOAK_SEED", Math.floor(Math.random() * 2 ** 31)),
};
if (S.revokeMs.length === 1) S.revokeMs.push(S.revokeMs[0]);
for (const [k, ok] of [
  ["SOAK_SECONDS", S.seconds >= 5],
  ["SOAK_CONCURRENCY", Number.isInteger(S.concurrency) && S.concurrency >= 1],
  ["SOAK_USERS", Number.isInteger(S.users) && S.users >= 8],
  ["SOAK_REVOKE_MS", S.revokeMs.every((x) => x >= 50) && S.revokeMs[0] <= S.revokeMs[1]],
  ["SOAK_LEEWAY", Number.isInteger(S.leeway) && S.leeway >= 0 && S.leeway <= 60],
]) {
  if (!ok) {
    console.error(`soak: bad ${k}`);
    process.exit(2);
  }
}

const work = path.join(here, ".work", "soak");
const COMPAT_DATE = wranglerCompatibilityDate();
const ADMIN_TOKEN = `soak-admin-${randomBytes(12).toString("base64url")}`;
const ORIGIN_BODY = "ok: origin reached\n"; // bench/lib/origin.mjs's answer outside /echo
const t0 = performance.now();
const log = (...a) => console.log(`[soak ${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s]`, ...a);

installCleanup();

// Deterministic choices (mix, picks) for a given SOAK_SEED; token bytes stay random.
let rngState = S.seed >>> 0 || 1;
const rand = () => {
  rngState ^= rngState << 13;
  rngState >>>= 0;
  rngState ^= rngState >>> 17;
  rngState ^= rngState << 5;
  rngState >>>= 0;
  return rngState / 2 ** 32;
};
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

// ---------------------------------------------------------------- pinning
const { ncpu, pinned: PIN, workerCpu: WORKER_CPU, loadCpu: LOAD_CPU } = pinBench("soak: fewer than 2 CPUs or no taskset; nothing is pinned");

// ---------------------------------------------------------------- the build
/** Waits for a complete build in build/ (others may be rebuilding it), then snapshots it. */
async function snapshotBuild() {
  const index = path.join(S.buildDir, "index.js");
  const deadline = performance.now() + 15 * 60_000;
  let said = false;
  for (;;) {
    const files = existsSync(S.buildDir) ? readdirSync(S.buildDir).filter((f) => /\.(m?js|wasm)$/.test(f)) : [];
    const stable = () => files.map((f) => {
      try {
        return `${f}:${statSync(path.join(S.buildDir, f)).mtimeMs}:${statSync(path.join(S.buildDir, f)).size}`;
      } catch {
        return `${f}:gone`;
      }
    }).join("|");
    if (existsSync(index) && files.some((f) => f.endsWith(".wasm"))) {
      const before = stable();
      await sleep(1500);
      if (stable() === before) {
        const mods = buildModules(S.buildDir, path.join(work, "build"), { missing: "null" }); // null: mid-rebuild
        if (mods && mods.every((m) => m.type !== "wasm" || WebAssembly.validate(readFileSync(m.file)))) return mods;
      }
    }
    if (performance.now() > deadline) throw new Error(`no complete build in ${S.buildDir} after 15 minutes`);
    if (!said) log(`waiting for a complete build in ${path.relative(root, S.buildDir)}/ (polling every 5 s)`);
    said = true;
    await sleep(5000);
  }
}

// ---------------------------------------------------------------- tokens
const b64 = (x) => Buffer.from(typeof x === "string" ? x : JSON.stringify(x)).toString("base64url");
const nowS = () => Date.now() / 1000;

function signer(keys, alg) {
  if (alg === "HS256") return { key: new TextEncoder().encode(keys.secret), header: { alg, typ: "JWT" } };
  const { privateKey, kid } = keys.pairs[alg];
  return { key: privateKey, header: { alg, typ: "JWT", kid } };
}

/** A token with any claims; `header` overrides, `key` replaces the signing key. */
async function sign(keys, alg, claims, { header = {}, key } = {}) {
  const s = signer(keys, alg);
  return new SignJWT({ scope: "read write", ...claims }).setProtectedHeader({ ...s.header, ...header }).sign(key ?? s.key);
}

const jtiOf = (prefix) => `${prefix}-${randomBytes(9).toString("base64url")}`;

/**
 * One token the soak presents. `expect(sentAt)` gives the answers allowed for a
 * request sent at `sentAt` (wall seconds), as a list of "200" / "401 <code>".
 * Revocable tokens (live users) follow `state`: live -> revoking -> revoked.
 */
function tokenRecord(raw, fields) {
  return { raw, alg: "HS256", state: "static", revocationIssuedAt: -1, presentedAfterAck: 0, ...fields };
}

async function makeTokens(keys) {
  const now = Math.floor(nowS());
  const iat = now - 120;
  const exp = now + 4 * 3600;
  const kvEntries = {};
  const users = new Map(); // sub -> [token records]
  const live = [];
  const algOf = (i) => ALGORITHMS[i % ALGORITHMS.length];
  for (let i = 0; i < S.users; i++) {
    const sub = `soak-user-${i}`;
    // Half the users have an old cut-off (before their tokens' iat): read, compared, still valid.
    if (i % 2 === 0) kvEntries[`v1:sub:${sub}`] = `${now - 3600}.250`;
    const devices = i % 3 === 0 ? 2 : 1;
    for (let d = 0; d < devices; d++) {
      const alg = algOf(i + d);
      const jti = jtiOf(`live-${i}-${d}`);
      const t = tokenRecord(await sign(keys, alg, { iss: ISSUER, aud: AUDIENCE, sub, jti, iat: iat + d, exp }), {
        kind: "valid", alg, sub, jti, iat: iat + d, exp, state: "live",
      });
      live.push(t);
      users.set(sub, [...(users.get(sub) ?? []), t]);
    }
  }
  const statics = {};
  const add = (kind, code, raw) => (statics[kind] ??= []).push(tokenRecord(raw, { kind, code }));
  const revokedValue = JSON.stringify({ at: now - 30, by: "logout" });
  for (let i = 0; i < 16; i++) {
    const alg = algOf(i);
    // Revoked before the run: by ID, and by a user cut-off after the token's iat.
    const rjti = jtiOf(`pre-${i}`);
    kvEntries[`v1:jti:${rjti}`] = revokedValue;
    add("pre-revoked (ID)", "token_revoked", await sign(keys, alg, { iss: ISSUER, aud: AUDIENCE, sub: `pre-user-${i}`, jti: rjti, iat, exp }));
    const csub = `pre-cut-${i}`;
    kvEntries[`v1:sub:${csub}`] = `${iat + 1}.500`;
    add("pre-revoked (user cut-off)", "token_revoked", await sign(keys, alg, { iss: ISSUER, aud: AUDIENCE, sub: csub, jti: jtiOf("precut"), iat, exp }));
    // Expired well beyond the leeway.
    add("expired", "token_expired", await sign(keys, alg, { iss: ISSUER, aud: AUDIENCE, sub: `old-${i}`, jti: jtiOf("exp"), iat: now - 7200, exp: now - 3600 }));
    // Hostile.
    const good = { iss: ISSUER, aud: AUDIENCE, sub: `mallory-${i}`, jti: jtiOf("evil"), iat, exp };
    add("bad signature", "signature_invalid", tamper(await sign(keys, alg, good)));
    add("bad signature", "signature_invalid", await sign(keys, "HS256", good, { key: new TextEncoder().encode(`not-the-secret-${i}-${randomBytes(8).toString("hex")}`) }));
    add("alg none", "algorithm_not_allowed", `${b64({ alg: "none", typ: "JWT" })}.${b64(good)}.`);
    add("wrong issuer", "issuer_invalid", await sign(keys, alg, { ...good, iss: "https://evil.example" }));
    add("wrong audience", "audience_invalid", await sign(keys, alg, { ...good, aud: "somebody-else" }));
    add("not yet valid (nbf)", "token_not_yet_valid", await sign(keys, alg, { ...good, nbf: now + 3600 }));
    if (alg !== "HS256") add("unknown kid", "unknown_key", await sign(keys, alg, good, { header: { kid: `nope-${i}` } }));
  }
  for (const g of ["garbage", "eyJhbGciOiJIUzI1NiJ9", "a.b.c", `${b64({ alg: "HS256" })}.%%%.${"A".repeat(43)}`,
    `${b64("not json")}.${b64({ sub: "x" })}.${"A".repeat(43)}`, "Bearer", "....", `${"x".repeat(40)}.${"y".repeat(40)}.${"z".repeat(40)}`]) {
    add("garbage", "token_malformed", g);
  }
  return { live, users, statics, kvEntries };
}

/** Tokens whose exp + leeway falls in the middle of the soak: 200 before, token_expired after. Minted just before it starts. */
async function mintExpiring(keys, world) {
  const now = Math.floor(nowS());
  const exp = now + Math.round(S.seconds / 2) - S.leeway;
  const list = (world.statics["expiring during the run"] = []);
  for (let i = 0; i < 8; i++) {
    const alg = ALGORITHMS[i % ALGORITHMS.length];
    const sub = `short-${i}`;
    const jti = jtiOf("short");
    const raw = await sign(keys, alg, { iss: ISSUER, aud: AUDIENCE, sub, jti, iat: now - 60, exp });
    list.push(tokenRecord(raw, { kind: "expiring during the run", alg, sub, jti, exp }));
  }
}

// ---------------------------------------------------------------- HTTP client
const trafficAgent = new http.Agent({ keepAlive: true, maxSockets: S.concurrency });
const controlAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function send(base, { path: p, method = "GET", headers = {}, body, agent = trafficAgent }) {
  return new Promise((resolve) => {
    const u = new URL(base);
    const t = performance.now();
    const req = http.request({ host: u.hostname, port: u.port, path: p, method, headers, agent }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: data, ms: performance.now() - t }));
      res.on("error", (e) => resolve({ status: 0, error: String(e?.message ?? e), ms: performance.now() - t }));
    });
    req.on("error", (e) => resolve({ status: 0, error: String(e?.message ?? e), ms: performance.now() - t }));
    req.setTimeout(15_000, () => req.destroy(new Error("timeout after 15 s")));
    if (body) req.write(body);
    req.end();
  });
}

const codeOf = (r) => {
  try {
    return JSON.parse(r.body).error ?? null;
  } catch {
    return null;
  }
};
const answerOf = (r) => (r.status === 200 ? "200" : r.status === 0 ? `transport error` : `${r.status} ${codeOf(r) ?? "?"}`);

// ---------------------------------------------------------------- accounting
const stats = new Map(); // kind -> {requests, answers: {answer: n}, wrongForward, wrongRefusal, wrongCode, s5xx, transport, races, identityChecked, identityBad}
const problems = []; // first examples of every failure, for the report
const latencies = [];
let forwardedAnswers = 0; // 200s for requests the gateway forwards (everything but its own routes)
const kindStats = (kind) => {
  if (!stats.has(kind)) stats.set(kind, { requests: 0, answers: {}, expected: new Set(), wrongForward: 0, wrongRefusal: 0, wrongCode: 0, s5xx: 0, transport: 0, races: 0, identityChecked: 0, identityBad: 0, postAck: 0 });
  return stats.get(kind);
};
const problem = (what, detail) => {
  if (problems.length < 40) problems.push(`${what}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`.slice(0, 600));
};

/**
 * Judges one answer. `allowed`: answers that are right; `race`: answers also
 * right because a revocation or an expiry was under way (counted apart).
 */
function judge(kind, r, allowed, race, context) {
  const st = kindStats(kind);
  st.requests++;
  const a = answerOf(r);
  st.answers[a] = (st.answers[a] ?? 0) + 1;
  for (const x of allowed) st.expected.add(x);
  latencies.push(r.ms);
  if (r.status === 200) forwardedAnswers++;
  if (allowed.includes(a)) return true;
  if (race.includes(a)) {
    st.races++;
    return true;
  }
  if (r.status === 0) {
    st.transport++;
    problem(`${kind}: transport error`, r.error);
  } else if (r.status >= 500) {
    st.s5xx++;
    problem(`${kind}: ${a}`, r.body.slice(0, 300));
  } else if (r.status === 200) {
    st.wrongForward++;
    problem(`WRONG DECISION ${kind}: 200 where ${allowed.join(" / ")} was due`, context);
  } else if (allowed.includes("200")) {
    st.wrongRefusal++;
    problem(`WRONG DECISION ${kind}: ${a} for a token that must be served`, context);
  } else {
    st.wrongCode++;
    problem(`${kind}: ${a} where ${allowed.join(" / ")} was due`, context);
  }
  return false;
}

/** The origin's view of a forwarded request (echo paths): identity headers right, client X-Auth-* stripped. */
function checkEcho(kind, r, token) {
  const st = kindStats(kind);
  st.identityChecked++;
  let echo;
  try {
    echo = JSON.parse(r.body);
  } catch {
    st.identityBad++;
    return problem(`${kind}: the origin's echo did not come back`, r.body.slice(0, 200));
  }
  const h = echo.headers ?? {};
  const want = token
    ? { "x-auth-subject": token.sub, "x-auth-token-id": token.jti, "x-auth-issuer": ISSUER, "x-auth-claims": token.raw.split(".")[1] }
    : {};
  const bad = [];
  for (const [k, v] of Object.entries(want)) if (h[k] !== v) bad.push(`${k}=${h[k]} (expected ${v})`);
  for (const k of Object.keys(h)) {
    if (/^x[-_]auth[-_]/i.test(k) && !(k in want)) bad.push(`${k} reached the origin`);
  }
  if (bad.length) {
    st.identityBad++;
    problem(`${kind}: identity headers wrong at the origin`, bad.join("; "));
  }
}

function checkOriginBody(kind, r) {
  if (r.body !== ORIGIN_BODY) {
    kindStats(kind).identityBad++;
    problem(`${kind}: a 200 whose body is not the origin's`, r.body.slice(0, 200));
  }
}

// ---------------------------------------------------------------- traffic
const MIX = [
  ["valid", 46],
  ["revoked during the run", 14],
  ["pre-revoked (ID)", 4],
  ["pre-revoked (user cut-off)", 3],
  ["expired", 5],
  ["expiring during the run", 3],
  ["bad signature", 4],
  ["alg none", 3],
  ["garbage", 3],
  ["wrong issuer", 3],
  ["wrong audience", 3],
  ["not yet valid (nbf)", 2],
  ["unknown kid", 2],
  ["no token", 2],
  ["public path", 3],
];

function makeTraffic(base, world) {
  const mix = MIX.filter(([k]) => k !== "public path" || world.publicOn);
  const total = mix.reduce((a, [, w]) => a + w, 0);
  let n = 0;
  const chooseKind = () => {
    let x = rand() * total;
    for (const [k, w] of mix) if ((x -= w) < 0) return k;
    return mix[0][0];
  };
  const spoof = { "x-auth-subject": "spoofed", "X-Auth-Role": "admin", x_auth_token_id: "spoofed" };

  /** Sends one request for `token` (a revocable one) and judges it against its state when it was sent. */
  async function presentRevocable(kind, token, { echo = false } = {}) {
    const sentState = token.state;
    const sentAt = performance.now();
    const p = echo ? `/echo/api/items/${n}?soak=1` : `/api/items?page=${n % 97}`;
    const r = await send(base, { path: p, headers: { authorization: `Bearer ${token.raw}`, ...(echo ? spoof : {}) } });
    let allowed = ["200"], race = [];
    if (sentState === "revoked") {
      // Sent after the acknowledgement: must be refused.
      allowed = ["401 token_revoked"];
      token.presentedAfterAck++;
      kindStats(kind).postAck++;
    } else if (sentState === "unknown") {
      allowed = ["200", "401 token_revoked"]; // its revocation was not acknowledged
    } else if (sentState === "revoking") {
      allowed = [];
      race = ["200", "401 token_revoked"]; // sent between the revocation request and its acknowledgement
    } else if (token.revocationIssuedAt > sentAt) {
      race = ["401 token_revoked"]; // the revocation was sent while this request was in flight
    }
    const ok = judge(kind, r, allowed, race, { sub: token.sub, jti: token.jti, sentState, nowState: token.state, path: p });
    if (ok && r.status === 200) echo ? checkEcho(kind, r, token) : checkOriginBody(kind, r);
    return r;
  }

  async function one() {
    n++;
    let kind = chooseKind();
    if (kind === "revoked during the run" && !world.revoked.length) kind = "valid";
    if ((kind === "valid" || kind === "revoked during the run") && world.hot.length && rand() < 0.3) {
      // The token being revoked right now: requests with it run across the acknowledgement.
      const t = pick(world.hot);
      return presentRevocable(t.state === "revoked" ? "revoked during the run" : "valid", t);
    }
    if (kind === "valid") {
      if (!world.live.length) return sleep(1);
      return presentRevocable(kind, pick(world.live), { echo: n % 20 === 0 });
    }
    if (kind === "revoked during the run") return presentRevocable(kind, pick(world.revoked));
    if (kind === "public path") {
      const p = `/echo/public/page-${n % 13}?n=${n}`;
      const r = await send(base, { path: p, headers: spoof });
      if (judge(kind, r, ["200"], [], { path: p }) && r.status === 200) checkEcho(kind, r, null);
      return;
    }
    if (kind === "no token") {
      const r = await send(base, { path: `/api/items?page=${n % 97}`, headers: spoof });
      judge(kind, r, ["401 token_missing"], [], {});
      return;
    }
    const t = pick(world.statics[kind]);
    const echo = n % 10 === 0; // if one were forwarded, see what the origin got
    const p = echo ? `/echo/api/${n}` : `/api/items?page=${n % 97}`;
    const r = await send(base, { path: p, headers: { authorization: `Bearer ${t.raw}`, ...spoof } });
    if (kind === "expiring during the run") {
      const edge = t.exp + S.leeway; // refused once now >= exp + leeway
      const sent = nowS();
      const margin = 1.5; // the worker's clock (its last I/O) against ours
      const allowed = sent < edge - margin ? ["200"] : sent > edge + margin ? ["401 token_expired"] : [];
      if (judge(kind, r, allowed, ["200", "401 token_expired"], { sub: t.sub, exp: t.exp, sentAt: sent }) && r.status === 200) {
        echo ? checkEcho(kind, r, t) : checkOriginBody(kind, r);
      }
      return;
    }
    judge(kind, r, [`401 ${t.code}`], [], { token: t.raw.slice(0, 60), path: p });
  }

  return { one, presentRevocable };
}

// ---------------------------------------------------------------- revocations
const METHODS = ["logout", "admin-jti", "logout-all", "admin-sub"];

function makeRevoker(base, world, keys, traffic) {
  const done = []; // {method, sub, jti, tokens, issuedAt, ackAt, ackMs, status}
  let i = 0;

  async function reLogin(sub, cutOff) {
    // A new sign-in after the cut-off: iat >= cut-off, so it must be served.
    const iat = Math.ceil(cutOff);
    const alg = pick(ALGORITHMS);
    const jti = jtiOf("relogin");
    const exp = iat + 4 * 3600;
    const t = tokenRecord(await sign(keys, alg, { iss: ISSUER, aud: AUDIENCE, sub, jti, iat, exp }), {
      kind: "valid", alg, sub, jti, iat, exp, state: "live", relogin: true,
    });
    world.users.get(sub).push(t);
    world.live.push(t);
    world.relogins++;
  }

  async function revokeOne() {
    const candidates = world.live.filter((t) => t.state === "live");
    if (!candidates.length) return;
    const token = pick(candidates);
    const method = METHODS[i++ % METHODS.length];
    const byUser = method === "logout-all" || method === "admin-sub";
    const affected = byUser ? world.users.get(token.sub).filter((t) => t.state === "live") : [token];
    // Make it busy first: ~30 % of the valid-token traffic uses it from 300 ms before the
    // revocation until 1 s after the acknowledgement.
    world.hot = affected;
    await sleep(300);
    for (const t of affected) {
      t.state = "revoking";
      t.revocationIssuedAt = performance.now();
    }
    const issuedAt = performance.now();
    let r;
    if (method === "logout" || method === "logout-all") {
      r = await send(base, { path: method === "logout" ? "/auth/logout" : "/auth/logout-all", method: "POST", agent: controlAgent,
        headers: { authorization: `Bearer ${token.raw}`, "content-length": "0" } });
    } else {
      const body = JSON.stringify(method === "admin-jti" ? { jti: token.jti, exp: token.exp } : { sub: token.sub });
      r = await send(base, { path: "/_admin/revoke", method: "POST", agent: controlAgent, body,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) } });
    }
    const ackAt = performance.now();
    const rec = { method, sub: token.sub, jti: token.jti, tokens: affected.length, status: r.status, ackMs: ackAt - issuedAt, at: (issuedAt - world.startedAt) / 1000 };
    done.push(rec);
    let body = {};
    try {
      body = JSON.parse(r.body);
    } catch {}
    const acknowledged = r.status === 200 && (method.startsWith("admin") ? body.revoked === true : /^logged_out/.test(body.status ?? ""));
    if (!acknowledged) {
      // Unknown whether it was written: neither answer can be held against the gateway.
      for (const t of affected) t.state = "unknown";
      world.hot = [];
      world.revokeFailures++;
      if (r.status >= 500) world.revoke5xx++;
      problem(`revocation ${method} not acknowledged`, { status: r.status, body: (r.body ?? r.error ?? "").slice(0, 300) });
      return;
    }
    // Acknowledged: from now on these tokens must never be forwarded.
    const cutOff = byUser ? Number(body.revoked_before) : null;
    if (byUser && !Number.isFinite(cutOff)) problem(`revocation ${method}: no revoked_before in the answer`, r.body);
    const revoked = byUser ? world.users.get(token.sub).filter((t) => t.state === "revoking" && t.iat < cutOff) : affected;
    for (const t of affected) if (!revoked.includes(t)) t.state = "live"; // not covered by the cut-off
    for (const t of revoked) {
      t.state = "revoked";
      world.revoked.push(t);
    }
    world.live = world.live.filter((t) => t.state !== "revoked");
    rec.revokedTokens = revoked.length;
    // Present each one at once, right after the acknowledgement.
    await Promise.all(revoked.map((t) => traffic.presentRevocable("revoked during the run", t)));
    setTimeout(() => {
      if (world.hot === affected) world.hot = [];
    }, 1000);
    if (byUser && Number.isFinite(cutOff)) await reLogin(token.sub, cutOff);
  }

  return { done, revokeOne };
}

// ---------------------------------------------------------------- memory and CPU
function memOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k) => Number((status.match(new RegExp(`^${k}:\\s+(\\d+) kB`, "m")) ?? [])[1]);
  return { rssKiB: kb("VmRSS"), hwmKiB: kb("VmHWM") };
}
const mib = (kib) => (kib / 1024).toFixed(1);

// ---------------------------------------------------------------- main
async function main() {
  const loadAtStart = os.loadavg();
  log(`settings: ${JSON.stringify({ ...S, buildDir: path.relative(root, S.buildDir), out: path.relative(root, S.out) })}`);
  log(`pinning: ${PIN ? `workerd -> CPU ${WORKER_CPU}; client, KV, origin -> CPU ${LOAD_CPU}` : "none"}; load average ${loadAtStart.map((x) => x.toFixed(2)).join(" ")}`);
  mkdirSync(work, { recursive: true });
  const modules = await snapshotBuild();
  log(`build: ${modules.map((m) => `${m.name} (${m.type}, ${m.mtime})`).join(", ")}`);

  const keys = await makeKeys();
  const world = await makeTokens(keys);
  Object.assign(world, { hot: [], revoked: [], relogins: 0, revokeFailures: 0, revoke5xx: 0, publicOn: S.publicPaths.trim() !== "" });

  const origin = await start(process.execPath, [path.join(here, "lib/origin.mjs")], { cpu: LOAD_CPU, readyJson: true, name: "origin" });
  const originUrl = `http://127.0.0.1:${origin.info.port}`;
  const kv = await start(process.execPath, [path.join(here, "lib/kv-server.mjs"), JSON.stringify({ seedCount: S.seededRevoked, entries: world.kvEntries })], {
    cpu: LOAD_CPU, readyJson: true, name: "kv-server", timeoutMs: 120_000,
  });
  const kvUrl = `http://127.0.0.1:${kv.info.port}`;

  const port = await freePort();
  const vars = {
    JWT_SECRET: keys.secret, JWT_JWKS: JSON.stringify(keys.jwks), JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE,
    JWT_LEEWAY_SECONDS: String(S.leeway), ADMIN_TOKEN, ORIGIN_URL: originUrl,
    ...(world.publicOn ? { PUBLIC_PATHS: S.publicPaths } : {}),
  };
  const config = writeConfig({ dir: work, name: "soak", modules, port, compatibilityDate: COMPAT_DATE, vars, kvPort: kv.info.port });
  const wd = await start(workerdBinary(), ["serve", config], { cpu: WORKER_CPU, name: "workerd" });
  const base = `http://127.0.0.1:${port}`;
  for (let tries = 0; ; tries++) {
    if (wd.child.exitCode !== null) throw new Error(`workerd exited (${wd.child.exitCode}):\n${wd.stderr()}`);
    try {
      await request(`${base}/ready`);
      break;
    } catch {
      if (tries > 3000) throw new Error(`workerd not answering after 30 s:\n${wd.stderr()}`);
      await sleep(10);
    }
  }
  const memIdle = memOf(wd.pid);
  log(`workerd pid ${wd.pid} on ${base}; KV ${kvUrl} (${kv.info.size} keys); origin ${originUrl}; RSS idle ${mib(memIdle.rssKiB)} MiB`);

  // Pre-flight: one of each kind, so a broken build fails here, clearly, not as thousands of errors.
  const traffic = makeTraffic(base, world);
  const pre = [];
  const v = world.live[1];
  const echo = await send(base, { path: "/echo/preflight?x=1", headers: { authorization: `Bearer ${v.raw}`, "x-auth-subject": "spoofed" } });
  if (echo.status !== 200) pre.push(`valid token: ${answerOf(echo)} ${echo.body?.slice(0, 200)}`);
  else {
    const h = JSON.parse(echo.body).headers;
    if (h["x-auth-subject"] !== v.sub || h["x-auth-token-id"] !== v.jti) pre.push(`valid token: identity headers ${JSON.stringify(h)}`);
  }
  for (const [kind, list] of Object.entries(world.statics)) {
    if (kind === "expiring during the run") continue;
    for (const t of list) {
      const r = await send(base, { path: "/api/preflight", headers: { authorization: `Bearer ${t.raw}` } });
      if (answerOf(r) !== `401 ${t.code}`) pre.push(`${kind} (${t.raw.slice(0, 40)}...): ${answerOf(r)}, expected 401 ${t.code}`);
    }
  }
  if (world.publicOn) {
    const r = await send(base, { path: "/echo/public/preflight", headers: { "x-auth-subject": "spoofed" } });
    if (r.status !== 200) pre.push(`public path without a token: ${answerOf(r)}`);
    else if (Object.keys(JSON.parse(r.body).headers).some((k) => /^x[-_]auth/i.test(k))) pre.push(`public path: client X-Auth-* reached the origin`);
  }
  if (pre.length) {
    console.error(`soak: pre-flight failed, nothing measured:\n  ${pre.join("\n  ")}`);
    await wd.stop();
    process.exit(2);
  }
  // Warm-up (not counted): every live token once.
  for (const t of world.live) await send(base, { path: "/api/warm", headers: { authorization: `Bearer ${t.raw}` } });
  await mintExpiring(keys, world);
  await benchControl(originUrl, "reset");
  await benchControl(kvUrl, "reset");
  stats.clear();
  latencies.length = 0;
  forwardedAnswers = 0;
  log(`pre-flight passed (valid, ${Object.keys(world.statics).length - 1} refused kinds, a public path); soak starts: ${S.seconds} s, ${S.concurrency} in flight`);

  // ------------------------------------------------ the soak
  const mem = [{ t: 0, ...memOf(wd.pid) }];
  const cpu0 = cpuMicros(wd.pid);
  const core0 = coreBusyMicros(WORKER_CPU);
  world.startedAt = performance.now();
  const startWall = new Date();
  const endAt = world.startedAt + S.seconds * 1000;
  let running = true;
  let died = null;
  let stopping = false;
  wd.child.once("exit", (code, sig) => {
    if (stopping) return;
    died = `workerd exited (${code ?? sig}) during the run`;
    running = false;
  });

  const loops = Array.from({ length: S.concurrency }, async () => {
    while (running && performance.now() < endAt) await traffic.one();
  });
  const revoker = makeRevoker(base, world, keys, traffic);
  const revocations = (async () => {
    while (running) {
      const pause = S.revokeMs[0] + rand() * (S.revokeMs[1] - S.revokeMs[0]);
      if (performance.now() + pause > endAt - 500) break;
      await sleep(pause);
      await revoker.revokeOne();
    }
  })();
  const sampleEvery = Math.max(1000, Math.min(10_000, (S.seconds * 1000) / 8));
  const sampler = (async () => {
    let last = 0;
    while (running && performance.now() < endAt) {
      await sleep(250);
      const t = performance.now() - world.startedAt;
      if (t - last >= sampleEvery && performance.now() < endAt - 500 && !died) {
        last = t;
        const m = memOf(wd.pid);
        mem.push({ t: t / 1000, ...m });
        const reqs = [...stats.values()].reduce((a, s) => a + s.requests, 0);
        log(`${(t / 1000).toFixed(0)} s: ${reqs} requests, ${revoker.done.length} revocations, RSS ${mib(m.rssKiB)} MiB`);
      }
    }
  })();
  await Promise.all([...loops, revocations, sampler]);
  running = false;
  const soakSeconds = (performance.now() - world.startedAt) / 1000;
  const cpu1 = died ? cpu0 : cpuMicros(wd.pid);
  const core1 = coreBusyMicros(WORKER_CPU);
  if (!died) mem.push({ t: soakSeconds, ...memOf(wd.pid) });

  // ------------------------------------------------ final sweep: every revoked token once more, every live one
  let sweep = 0;
  if (!died) {
    const all = [...world.revoked, ...world.live];
    for (let k = 0; k < all.length; k += S.concurrency) {
      await Promise.all(all.slice(k, k + S.concurrency).map((t) => traffic.presentRevocable(t.state === "revoked" ? "final sweep: revoked" : "final sweep: live", t)));
    }
    sweep = all.length;
  }
  const memEnd = died ? null : memOf(wd.pid);
  const originStats = await benchControl(originUrl, "stats");
  const kvStats = await benchControl(kvUrl, "stats");
  const workerdErr = wd.stderr();
  stopping = true;
  await wd.stop();
  await kv.stop();
  await origin.stop();
  trafficAgent.destroy();
  controlAgent.destroy();

  // ------------------------------------------------ figures
  const all = [...stats.values()];
  const sum = (f) => all.reduce((a, s) => a + f(s), 0);
  const totalRequests = sum((s) => s.requests);
  const soakRequests = totalRequests - [...stats.entries()].filter(([k]) => k.startsWith("final sweep")).reduce((a, [, s]) => a + s.requests, 0);
  const wrongForward = sum((s) => s.wrongForward);
  const wrongRefusal = sum((s) => s.wrongRefusal);
  const wrongCode = sum((s) => s.wrongCode);
  const s5xx = sum((s) => s.s5xx) + world.revoke5xx;
  const transport = sum((s) => s.transport);
  const identityBad = sum((s) => s.identityBad);
  const identityChecked = sum((s) => s.identityChecked);
  const originMismatch = originStats.served !== forwardedAnswers;
  const wrongDecisions = wrongForward + wrongRefusal + (originMismatch ? Math.abs(originStats.served - forwardedAnswers) : 0);
  const postAck = sum((s) => s.postAck);
  // One bulk get per request whose token passed verification (served, or refused as revoked), and one
  // per logout / logout-all; none for tokens refused before (hostile, expired, missing) or public paths.
  const kvExpected = [...stats.entries()].filter(([k]) => k !== "public path")
    .reduce((a, [, s]) => a + (s.answers["200"] ?? 0) + (s.answers["401 token_revoked"] ?? 0), 0)
    + revoker.done.filter((d) => d.status === 200 && (d.method === "logout" || d.method === "logout-all")).length;
  const revocationRaces = [...stats.entries()].filter(([k]) => k !== "expiring during the run").reduce((a, [, s]) => a + s.races, 0);
  const revokedTokens = world.revoked.length;
  const byMethod = Object.fromEntries(METHODS.map((m) => [m, revoker.done.filter((d) => d.method === m && d.status === 200).length]));
  const ackMs = revoker.done.filter((d) => d.status === 200).map((d) => d.ackMs).sort((a, b) => a - b);
  const q = (xs, p) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] : NaN);
  latencies.sort((a, b) => a - b);
  const pass = !died && wrongDecisions === 0 && s5xx === 0 && transport === 0 && wrongCode === 0 && identityBad === 0 && world.revokeFailures === 0 && revoker.done.length > 0;

  const sh = (cmd, args) => spawnSync(cmd, args, { encoding: "utf8" }).stdout?.trim() ?? "";
  const wasm = modules.find((m) => m.type === "wasm");
  const machine = {
    cpu: (readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.*)$/m) ?? [])[1] ?? os.cpus()[0]?.model,
    nproc: ncpu, memGiB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(), node: process.version,
    workerd: sh(workerdBinary(), ["--version"]), git: sh("git", ["-C", root, "rev-parse", "--short", "HEAD"]),
    dirty: sh("git", ["-C", root, "status", "--porcelain", "--", "src", "js", "Cargo.toml", "Cargo.lock"]) !== "",
  };
  const cmd = `${S.seconds === 75 && !env.SOAK_SECONDS ? "" : `SOAK_SECONDS=${S.seconds} `}node bench/soak.mjs`;
  const fmt = (x) => x.toLocaleString("en-US");
  const order = [...MIX.map(([k]) => k), "final sweep: revoked", "final sweep: live"];
  const rows = [...stats.entries()].sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0])).map(([kind, s]) => {
    const answers = Object.entries(s.answers).sort((a, b) => b[1] - a[1]).map(([a, n]) => `${a}: ${fmt(n)}`).join(", ");
    const exp = [...s.expected].join(" / ") || "either (in flight)";
    const wrong = s.wrongForward + s.wrongRefusal;
    return `| ${kind} | ${fmt(s.requests)} | ${exp} | ${answers} | ${wrong} | ${s.wrongCode} | ${s.s5xx} | ${s.races} |`;
  });
  const memRows = [{ t: "idle, before traffic", ...memIdle }, ...mem.map((m) => ({ ...m, t: `${m.t.toFixed(0)} s` })), ...(memEnd ? [{ t: "end (after the final sweep)", ...memEnd }] : [])]
    .map((m) => `| ${m.t} | ${mib(m.rssKiB)} | ${mib(m.hwmKiB)} |`);
  const rssStart = mem[0].rssKiB, rssEnd = (memEnd ?? mem.at(-1)).rssKiB;
  // The sample nearest the middle of the soak against the last one taken during it.
  const mid = mem.reduce((b, m) => (Math.abs(m.t - soakSeconds / 2) < Math.abs(b.t - soakSeconds / 2) ? m : b), mem[0]);
  const lastDuring = mem.at(-1);
  const secondHalf = lastDuring.rssKiB - mid.rssKiB;
  const cpuUs = (cpu1 - cpu0) / Math.max(1, soakRequests + revoker.done.length);
  const others = core0 !== null && !died ? Math.max(0, (core1 - core0 - (cpu1 - cpu0)) / (soakSeconds * 1e6)) : null;

  const md = `# Soak test: Tokengate under mixed traffic with revocations during the run

Generated by \`bench/soak.mjs\`; do not edit by hand.

**Verdict: ${pass ? "PASS" : "FAIL"}** — ${fmt(wrongDecisions)} wrong decisions, ${fmt(s5xx)} 5xx, ${fmt(transport)} transport errors, ${fmt(wrongCode)} refusals with an unexpected code, ${fmt(identityBad)} identity-header problems, ${fmt(world.revokeFailures)} failed revocations${died ? `, ${died}` : ""}.

| | |
|---|---|
| date | ${startWall.toISOString()} |
| command | \`${cmd}\` (Node ${process.version}) |
| duration | ${soakSeconds.toFixed(1)} s of traffic (SOAK_SECONDS=${S.seconds}), then a final sweep of ${fmt(sweep)} requests |
| machine | ${machine.cpu}, ${machine.nproc} CPUs, ${machine.memGiB} GiB, Linux ${machine.kernel}; load average ${loadAtStart.map((x) => x.toFixed(2)).join(" ")} at start, ${os.loadavg().map((x) => x.toFixed(2)).join(" ")} at end |
| pinning | ${PIN ? `workerd on CPU ${WORKER_CPU}; this client, the KV service and the origin on CPU ${LOAD_CPU}` : "none (fewer than 2 CPUs)"}${others !== null ? `; other processes used ${(others * 100).toFixed(0)} % of CPU ${WORKER_CPU} during the run` : ""} |
| worker | Tokengate release build (${modules.map((m) => m.name).join(", ")}; wasm sha256 ${wasm ? createHash("sha256").update(readFileSync(wasm.file)).digest("hex").slice(0, 16) : "-"}, built ${wasm?.mtime ?? "?"}), git ${machine.git}${machine.dirty ? " (src/ had uncommitted changes)" : ""}, ${machine.workerd} |
| client | Node, keep-alive, ${S.concurrency} requests in flight; every answer checked; a revocation every ${S.revokeMs[0] / 1000}-${S.revokeMs[1] / 1000} s on its own connection |
| KV | \`bench/lib/kv-server.mjs\`, in memory, ${fmt(S.seededRevoked)} seeded revoked IDs plus the test's entries; JWT_LEEWAY_SECONDS=${S.leeway}${world.publicOn ? `; PUBLIC_PATHS=${S.publicPaths}` : ""} |

## Figures

| | |
|---|---|
| requests served during the soak | ${fmt(soakRequests)} (${(soakRequests / soakSeconds).toFixed(0)} per second), ${fmt(totalRequests)} with the final sweep |
| **wrong decisions** | **${fmt(wrongDecisions)}** (forwarded when it must be refused: ${fmt(wrongForward)}; refused when it must be served: ${fmt(wrongRefusal)}; origin count off by ${fmt(Math.abs(originStats.served - forwardedAnswers))}) |
| **5xx** | **${fmt(s5xx)}** |
| transport errors (reset, timeout) | ${fmt(transport)} |
| refusals with an unexpected code | ${fmt(wrongCode)} |
| revocations during the run | ${fmt(revoker.done.length)} acknowledged ${fmt(ackMs.length)} (${METHODS.map((m) => `${m} ${byMethod[m]}`).join(", ")}), covering ${fmt(revokedTokens)} tokens; ${world.relogins} re-logins after a user cut-off joined the live pool; acknowledgement p50 ${q(ackMs, 0.5).toFixed(1)} ms, max ${(ackMs.at(-1) ?? NaN).toFixed(1)} ms |
| revoked tokens presented after their acknowledgement | ${fmt(postAck)} (every one must be 401 token_revoked; each is presented at once after its acknowledgement, then at random, then in the final sweep) |
| requests in flight while their token was being revoked | ${fmt(revocationRaces)} (sent before the acknowledgement, answered after the revocation was sent: either answer is right; the table's last column) |
| origin | ${fmt(originStats.served)} requests reached it; the client got ${fmt(forwardedAnswers)} forwarded 200s (must be equal) |
| identity headers checked at the origin | ${fmt(identityChecked)} echoed requests (X-Auth-Subject, -Token-Id, -Issuer, -Claims; client-sent X-Auth-* stripped), ${fmt(identityBad)} wrong |
| KV | ${fmt(kvStats.bulkGet)} bulk gets (${fmt(kvStats.bulkKeys)} keys), ${fmt(kvStats.get)} single gets, ${fmt(kvStats.put)} writes; expected ${fmt(kvExpected)} bulk gets (one per request whose token verified, none for hostile, expired or missing tokens)${kvStats.bulkGet === kvExpected ? "" : " — differs (informational)"} |
| latency (client, all requests) | p50 ${q(latencies, 0.5).toFixed(2)} ms, p99 ${q(latencies, 0.99).toFixed(2)} ms, max ${(latencies.at(-1) ?? NaN).toFixed(1)} ms |
| workerd CPU | ${(cpuUs).toFixed(0)} µs per request (utime + stime over the soak) |
| **worker memory (VmRSS)** | **${mib(rssStart)} MiB at the start of the soak, ${mib(rssEnd)} MiB at the end** (${rssEnd >= rssStart ? "+" : ""}${mib(rssEnd - rssStart)} MiB); peak (VmHWM) ${mib((memEnd ?? mem.at(-1)).hwmKiB)} MiB; second half of the run (${mid.t.toFixed(0)} s → ${lastDuring.t.toFixed(0)} s): ${secondHalf >= 0 ? "+" : ""}${mib(secondHalf)} MiB |

### Per kind

| kind | requests | expected | answers | wrong decisions | unexpected code | 5xx | in flight during a revocation or expiry |
|---|---:|---|---|---:|---:|---:|---:|
${rows.join("\n")}

### Worker memory over the run

| when | VmRSS MiB | VmHWM MiB |
|---|---:|---:|
${memRows.join("\n")}
${problems.length ? `\n### Problems (first ${problems.length})\n\n${problems.map((p) => `- ${p.replace(/\|/g, "\\|")}`).join("\n")}\n` : ""}
## What is checked

- **Traffic** (chosen at random per request, seed ${S.seed}): valid tokens of ${S.users} users (every third user has two tokens, one per
  "device"; HS256, RS256, ES256 and EdDSA; half the users carry an old user cut-off that must not revoke them) → 200, the body must
  be the origin's, and 1 in 20 goes to \`/echo\` with spoofed \`X-Auth-*\` headers so the origin's copy of the identity headers is
  compared with the token's claims. Tokens revoked during the run, by ID before the run, and by a user cut-off before the run
  → 401 \`token_revoked\`; expired → \`token_expired\`; tokens expiring mid-run → 200 until \`exp\` + leeway, \`token_expired\`
  after (±1.5 s around the edge either answer counts); hostile → bad signature (tampered, wrong HMAC secret)
  \`signature_invalid\`, \`alg: none\` \`algorithm_not_allowed\`, garbage \`token_malformed\`, wrong issuer \`issuer_invalid\`,
  wrong audience \`audience_invalid\`, \`nbf\` in the future \`token_not_yet_valid\`, unknown \`kid\` \`unknown_key\`, no token
  \`token_missing\`${world.publicOn ? `; public paths (\`${S.publicPaths}\`) → 200 without a token, and no client-sent \`X-Auth-*\` at the origin` : ""}.
- **Revocations during the run**, every ${S.revokeMs[0] / 1000}-${S.revokeMs[1] / 1000} s, rotating over \`POST /auth/logout\` (with the token),
  \`POST /_admin/revoke {"jti","exp"}\`, \`POST /auth/logout-all\` (with the token) and \`POST /_admin/revoke {"sub"}\`; a random live
  token is picked, and about 30 % of the valid-token traffic uses it from 300 ms before the revocation until 1 s after the
  acknowledgement, so requests with it cross the acknowledgement. A user revocation covers every token of that user with \`iat\` before the \`revoked_before\` the gateway
  answered (both "devices"); afterwards the user signs in again (a token with \`iat\` = the cut-off, rounded up) and that token
  must be served. The moment the 200 arrives is the acknowledgement: a request sent after it with a covered token that is
  answered 200 is a **wrong decision**. Requests already in flight when the revocation was sent may get either answer.
- **Wrong decisions** = a 200 where a refusal was due (revoked after acknowledgement, revoked before the run, invalid, expired
  or hostile), plus a refusal of a token that must be served, plus any difference between the origin's request count and
  the number of forwarded 200s the client saw (a refused request that reached the origin anyway). 5xx must be 0: no faults
  are injected.
- **Memory**: VmRSS of the workerd process (\`/proc/<pid>/status\`), sampled about every ${(sampleEvery / 1000).toFixed(0)} s. It includes
  workerd itself, the V8 heap of the isolate (which grows until the garbage collector's limits are reached, then levels off)
  and the wasm instance's linear memory (which never shrinks). A leak shows as growth that goes on through the second half
  of the run; a level that holds there does not. Not part of the verdict.
- **Consistency**: the in-memory KV service is strongly consistent (a write is visible to the next read), so the expected
  number of wrong decisions here is exactly 0. Production Workers KV is eventually consistent: a revocation written at one
  location is visible at other locations only after their cached copies expire (up to about 60 s; Tokengate reads with
  \`cacheTtl: 30\`), so there a revoked token can still be accepted elsewhere for that long after the acknowledgement.
  This test checks the gateway's logic and its steadiness over time, not KV's propagation.
`;
  mkdirSync(path.dirname(S.out), { recursive: true });
  writeFileSync(S.out, md);
  console.log("\n" + md);
  if (workerdErr && !pass) console.error(`workerd stderr (last 2000 characters):\n${workerdErr.slice(-2000)}`);
  log(`${pass ? "PASS" : "FAIL"}; wrote ${path.relative(root, S.out)}`);
  return pass ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e?.stack ?? e);
    process.exit(2);
  },
);
