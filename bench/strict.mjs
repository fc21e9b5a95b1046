#!/usr/bin/env node
// What a request on a STRICT_PATHS path costs compared with an ordinary one.
//
// Two workerd processes run Tokengate's release build (build/) with the same
// settings, except that "strict" also has STRICT_PATHS covering the timed path
// (/api/*) and the SESSIONS Durable Object binding (class SessionObject,
// in-memory storage). Both read the same in-memory KV service. Valid HS256
// tokens, not revoked, each with a `sub`: a strict request does the usual one
// KV bulk get and then one read from that user's Durable Object.
//
//   node bench/strict.mjs     about 3.5 minutes; writes bench/STRICT.md and prints its table
//
// Measured per round (both processes freshly started and checked), for each pool
// of tokens (many users: one token per user, so requests reach many objects; one
// user: every request reaches the same object), after a warm-up with that pool,
// the two contenders interleaved (order alternates by round):
//   - wrk -t1 -c8 for STRICT_SECONDS: requests/s, p50/p99 latency under full load,
//     and worker CPU per request = CPU time of the workerd process (/proc, all
//     threads) over the cell / requests answered, as bench/run.mjs measures it;
//   - a fixed-rate run (bench/lib/paced.mjs) for p50/p99 latency below saturation.
// Reported: medians over the rounds. workerd is pinned to CPU 0; wrk, the KV
// service, the origin and this script to CPU 1. A cell during which other
// processes took over 10 % of CPU 0 is measured again (see timed()).
//
// Settings (environment): STRICT_ROUNDS (5), STRICT_SECONDS (5), STRICT_USERS (1000),
// STRICT_LATENCY_SECONDS (2), STRICT_RATE (fixed rate; default half of what the
// strict contender's CPU per request allows on one core, from round 1),
// STRICT_CONNECTIONS (8), STRICT_IDLE_WAIT (120: at most this many seconds to wait, before each
// pool's cells, for other processes to leave the worker core alone), STRICT_BUILD_DIR (build/),
// STRICT_OUT (bench/STRICT.md).
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";

import { installCleanup, pinBench, start, run, cpuMicros, coreBusyMicros, freePort, request, sleep } from "./lib/proc.mjs";
import { writeConfig, workerdBinary, wranglerCompatibilityDate } from "./lib/workerd.mjs";
import { writeScript, wrk, requireWrk } from "./lib/wrk.mjs";
import { kvControl, kvQuiet } from "./lib/control.mjs";
import { makeKeys, mint, ISSUER, AUDIENCE } from "./lib/tokens.mjs";
import { median, rotate } from "./lib/stats.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const env = process.env;
const num = (name, dflt) => (env[name] !== undefined && env[name] !== "" ? Number(env[name]) : dflt);
const S = {
  rounds: num("STRICT_ROUNDS", 5),
  seconds: num("STRICT_SECONDS", 5),
  users: num("STRICT_USERS", 1000),
  latencySeconds: num("STRICT_LATENCY_SECONDS", 2),
  rate: env.STRICT_RATE ? Number(env.STRICT_RATE) : null,
  connections: num("STRICT_CONNECTIONS", 8),
  idleWait: num("STRICT_IDLE_WAIT", 120),
  buildDir: path.resolve(root, env.STRICT_BUILD_DIR ?? "build"),
  out: path.resolve(root, env.STRICT_OUT ?? "bench/STRICT.md"),
};
for (const k of ["rounds", "seconds", "users", "latencySeconds", "connections"]) {
  if (!(Number.isInteger(S[k]) && S[k] >= 1)) throw new Error(`STRICT_${k} must be a whole number >= 1`);
}

const work = path.join(here, ".work", "strict");
const COMPAT_DATE = wranglerCompatibilityDate();
const ADMIN_TOKEN = `strict-bench-admin-${randomBytes(12).toString("base64url")}`;
const TIMED_PATH = "/api/items?page=1";
const t0 = Date.now();
const log = (...a) => console.log(`[strict ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s]`, ...a);

installCleanup();

const { pinned: PIN, workerCpu: WORKER_CPU, loadCpu: LOAD_CPU } = pinBench("warning: fewer than 2 CPUs or no taskset; nothing is pinned");
requireWrk();

function fail(what, detail) {
  throw new Error(`CHECK FAILED: ${what}\n${typeof detail === "string" ? detail : JSON.stringify(detail, null, 2)}`);
}

/** build/index.js (bundled, exports SessionObject) and build/index_bg.wasm, copied so a rebuild mid-run changes nothing. */
function snapshotBuild() {
  const snap = path.join(work, "build");
  rmSync(snap, { recursive: true, force: true });
  mkdirSync(snap, { recursive: true });
  return [
    { name: "index.js", type: "esModule" },
    { name: "index_bg.wasm", type: "wasm" },
  ].map((m) => {
    const file = path.join(snap, m.name);
    copyFileSync(path.join(S.buildDir, m.name), file);
    return { ...m, file };
  });
}

// ---------------------------------------------------------------- tokens and KV entries
async function makeTokens(keys) {
  const now = Math.floor(Date.now() / 1000);
  const times = { iat: now - 60, exp: now + 4 * 3600 };
  const entries = {};
  const id = () => randomBytes(6).toString("base64url");
  // Many users, one token each; half of them have an old cut-off in KV (read and compared, still valid).
  const many = [];
  for (let i = 0; i < S.users; i++) {
    const sub = `user-${i}`;
    if (i % 2 === 0) entries[`v1:sub:${sub}`] = `${now - 3600}.000`;
    many.push(await mint(keys, "HS256", { sub, jti: `ok-${i}-${id()}`, ...times }));
  }
  // One user, 16 tokens (one object receives every request).
  const one = [];
  entries["v1:sub:solo-user"] = `${now - 3600}.000`;
  for (let i = 0; i < 16; i++) one.push(await mint(keys, "HS256", { sub: "solo-user", jti: `solo-${i}-${id()}`, ...times }));
  // For the checks: a token whose revocation will be in the object only, and one without sub.
  const checkJti = `check-${id()}`;
  const check = await mint(keys, "HS256", { sub: "check-user", jti: checkJti, ...times });
  const noSub = await new SignJWT({ scope: "read" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuer(ISSUER).setAudience(AUDIENCE)
    .setJti(`nosub-${id()}`).setIssuedAt(times.iat).setExpirationTime(times.exp)
    .sign(new TextEncoder().encode(keys.secret));
  return { pools: { many, one }, check, checkJti, noSub, entries };
}

// ---------------------------------------------------------------- processes
async function startWorkerd(c, { modules, kvPort, originUrl, vars }) {
  const port = await freePort();
  const config = writeConfig({
    dir: path.join(work, "run"), name: `${c.id}-${port}`, modules, port, compatibilityDate: COMPAT_DATE,
    vars: { ...vars, ...c.vars, ORIGIN_URL: originUrl }, kvPort, durableObjects: c.durableObjects,
  });
  const h = await start(workerdBinary(), ["serve", config], { cpu: WORKER_CPU, name: `workerd ${c.id}` });
  h.url = `http://127.0.0.1:${port}`;
  h.contender = c;
  const deadline = performance.now() + 30_000;
  for (;;) {
    if (h.child.exitCode !== null) throw new Error(`${h.name} exited (${h.child.exitCode}):\n${h.stderr()}`);
    try {
      await request(`${h.url}/ready`);
      return h;
    } catch {
      if (performance.now() > deadline) throw new Error(`${h.name} not answering:\n${h.stderr()}`);
      await sleep(5);
    }
  }
}

const errorOf = (r) => {
  try {
    return JSON.parse(r.body).error;
  } catch {
    return undefined;
  }
};
const get = (h, p, token) => request(h.url + p, { headers: { authorization: `Bearer ${token}`, "x-auth-subject": "spoofed" } });

// ---------------------------------------------------------------- checks (fail loudly, before any timing)
async function checkContender(h, t, kv) {
  const c = h.contender;
  // Valid token: 200, identity headers at the origin, the client's X-Auth-* gone. /echo/strict/ is strict in "strict".
  const token = t.pools.many[1];
  const claims = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
  const r = await get(h, "/echo/strict/x?q=1", token);
  if (r.status !== 200) fail(`${c.id}: valid token on /echo/strict/x: expected 200, got ${r.status}`, r.body);
  const seen = JSON.parse(r.body).headers;
  if (seen["x-auth-subject"] !== claims.sub || seen["x-auth-token-id"] !== claims.jti) fail(`${c.id}: identity headers at the origin`, seen);

  // One KV bulk get of 2 keys per request, strict or not, and no single gets.
  await kvQuiet(kv);
  const n = 20;
  for (let i = 0; i < n; i++) {
    const x = await get(h, TIMED_PATH, t.pools.many[i]);
    if (x.status !== 200) fail(`${c.id}: valid token on ${TIMED_PATH}: expected 200, got ${x.status}`, x.body);
  }
  const st = await kvControl(kv, "stats");
  if (st.bulkGet !== n || st.bulkKeys !== 2 * n || st.get !== 0) fail(`${c.id}: expected exactly one KV bulk get of 2 keys per request (${n} requests)`, st);

  if (!c.strict) return;
  // Strict paths need sub.
  const ns = await get(h, TIMED_PATH, t.noSub);
  if (ns.status !== 401) fail(`${c.id}: token without sub on a strict path: expected 401, got ${ns.status}`, ns.body);
  // The object is really read: revoke a token (KV and its user's object), then delete the KV entry.
  // KV no longer shows the revocation, the object does: an ordinary path forwards it, a strict one refuses it.
  const rv = await request(`${h.url}/_admin/revoke`, {
    method: "POST", headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" }, body: JSON.stringify({ token: t.check }),
  });
  if (rv.status !== 200 || JSON.parse(rv.body).revoked !== true) fail(`${c.id}: admin revoke of the check token`, rv);
  const key = `v1:jti:${t.checkJti}`;
  await request(`http://127.0.0.1:${kv.port}/${encodeURIComponent(key)}?urlencoded=true`, { method: "DELETE" });
  const plain = await get(h, "/echo/plain", t.check);
  if (plain.status !== 200) fail(`${c.id}: token revoked in the object only, on an ordinary path: expected 200 (KV shows nothing), got ${plain.status}`, plain.body);
  const strict = await get(h, TIMED_PATH, t.check);
  if (strict.status !== 401 || errorOf(strict) !== "token_revoked") fail(`${c.id}: token revoked in the object only, on a strict path: expected 401 token_revoked`, strict);
}

// ---------------------------------------------------------------- measurement cells
/**
 * Before each pool's timed cells: waits (at most STRICT_IDLE_WAIT seconds) until other processes
 * use less than 10 % of the worker core over one second, so a build or a browser test running
 * next to the benchmark does not land in the figures. Every cell also records that share.
 */
async function waitIdle() {
  const deadline = Date.now() + S.idleWait * 1000;
  for (let waited = false; ; waited = true) {
    const b0 = coreBusyMicros(WORKER_CPU);
    await sleep(1000);
    const share = b0 === null ? 0 : (coreBusyMicros(WORKER_CPU) - b0) / 1e6;
    if (share < 0.1) return waited && log(`worker core idle again (${(share * 100).toFixed(0)} % busy)`);
    if (Date.now() > deadline) return log(`warning: worker core still ${(share * 100).toFixed(0)} % busy with other processes; measuring anyway`);
    if (!waited) log(`worker core ${(share * 100).toFixed(0)} % busy with other processes; waiting up to ${S.idleWait} s`);
  }
}

/**
 * Runs one timed cell and records other processes' share of the worker core meanwhile. When that
 * share is over 10 % (a build or a browser test started next to the benchmark), the cell is thrown
 * away and run again once the core is quiet, at most twice; `redone` counts the repeats.
 */
async function timed(h, cell) {
  for (let redone = 0; ; redone++) {
    const w0 = coreBusyMicros(WORKER_CPU), c0 = cpuMicros(h.pid), t = performance.now();
    const out = await cell();
    const ownUs = cpuMicros(h.pid) - c0;
    const others = w0 === null ? 0 : Math.max(0, (coreBusyMicros(WORKER_CPU) - w0 - ownUs) / ((performance.now() - t) * 1000));
    if (others <= 0.1 || redone === 2) return { ...out, othersOnWorkerCore: others, redone };
    log(`${h.contender.id}: other processes took ${(others * 100).toFixed(0)} % of the worker core during the cell; measuring it again`);
    await waitIdle();
  }
}

function wrkCell(h, script) {
  return timed(h, async () => {
    const c0 = cpuMicros(h.pid);
    const r = await wrk({ url: `${h.url}/`, script, seconds: S.seconds, connections: S.connections, cpu: LOAD_CPU });
    const c1 = cpuMicros(h.pid);
    const sock = r.connect + r.read + r.write + r.timeout;
    if (r.status !== 0 || sock > 0 || r.requests === 0) fail(`${h.name}: expected only 200s during the timed run`, { ...r, stderr: h.stderr().slice(-2000) });
    return {
      rps: r.requests / (r.durationUs / 1e6),
      cpuUs: (c1 - c0) / r.requests,
      busy: (c1 - c0) / r.durationUs, // share of its core the workerd process used (1.0 = saturated)
      p50Ms: r.p50Us / 1000,
      p99Ms: r.p99Us / 1000,
      requests: r.requests,
    };
  });
}

function pacedCell(h, tokensFile, rate) {
  return timed(h, async () => {
    const r = await run(process.execPath, [path.join(here, "lib/paced.mjs"), JSON.stringify({
      url: `${h.url}${TIMED_PATH}`, tokensFile, rate, seconds: S.latencySeconds, warmSeconds: 0.5,
    })], { cpu: LOAD_CPU });
    if (r.code !== 0) fail(`${h.name}: paced client failed`, r.stderr);
    const out = JSON.parse(r.stdout.trim().split("\n").pop());
    if (out.failed || out.ok !== Math.round(rate * S.latencySeconds)) fail(`${h.name}: paced run expected only 200s`, out);
    return { p50Ms: out.latencyMs.p50, p99Ms: out.latencyMs.p99, lagP99Ms: out.lagMs.p99 };
  });
}

// ---------------------------------------------------------------- report
const f0 = (x) => (x === null ? "–" : Math.round(x).toLocaleString("en-US"));
const f2 = (x) => (x === null ? "–" : x.toFixed(2));
const ratio = (a, b) => (a === null || b === null ? "–" : `${(b / a).toFixed(2)}x`);

function report(results, meta) {
  const values = (pool, id, kind, field) => results.filter((x) => x.pool === pool && x.contender === id && x.kind === kind).map((x) => x[field]);
  const pick = (pool, id, kind, field) => median(values(pool, id, kind, field));
  const lines = [];
  const poolName = { many: `${S.users.toLocaleString("en-US")} users (one object each)`, one: "1 user (one object takes every request)" };
  lines.push("| valid HS256 token, medians of " + S.rounds + " interleaved rounds | ordinary path | strict path | strict / ordinary |");
  lines.push("|---|---:|---:|---:|");
  for (const pool of ["many", "one"]) {
    // withRange: the median followed by the lowest and highest round, for the figures that move most.
    const row = (label, kind, field, fmt, withRange = false) => {
      const show = (id) => {
        const v = values(pool, id, kind, field);
        return fmt(median(v)) + (withRange && v.length > 1 ? ` (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})` : "");
      };
      lines.push(`| ${label} | ${show("ordinary")} | ${show("strict")} | ${ratio(pick(pool, "ordinary", kind, field), pick(pool, "strict", kind, field))} |`);
    };
    lines.push(`| **${poolName[pool]}** | | | |`);
    row("worker CPU µs/request", "wrk", "cpuUs", f0);
    row("requests/s (wrk -c" + S.connections + ", one core)", "wrk", "rps", f0);
    row("latency p50 at full load, ms", "wrk", "p50Ms", f2);
    row("latency p99 at full load, ms (lowest–highest round)", "wrk", "p99Ms", f2, true);
    row(`latency p50 at ${meta.rate} req/s, ms`, "paced", "p50Ms", f2);
    row(`latency p99 at ${meta.rate} req/s, ms (lowest–highest round)`, "paced", "p99Ms", f2, true);
  }
  lines.push("");
  lines.push("Worker CPU µs/request per round (ordinary / strict, strict / ordinary):");
  lines.push("");
  lines.push(`| round | ${S.users.toLocaleString("en-US")} users | 1 user |`);
  lines.push("|---|---|---|");
  for (let r = 0; r < S.rounds; r++) {
    const cell = (pool) => {
      const cpu = (id) => results.find((x) => x.round === r && x.pool === pool && x.contender === id && x.kind === "wrk")?.cpuUs ?? null;
      const a = cpu("ordinary"), b = cpu("strict");
      return `${f0(a)} / ${f0(b)}, ${ratio(a, b)}`;
    };
    lines.push(`| ${r + 1} | ${cell("many")} | ${cell("one")} |`);
  }
  const others = results.map((x) => x.othersOnWorkerCore);
  const redone = results.reduce((n, x) => n + x.redone, 0);
  const table = lines.join("\n");
  const md = `# STRICT_PATHS: what a strict request costs

\`node bench/strict.mjs\` (${meta.date}, ${meta.elapsedSeconds} s wall time). Tokengate release build
built ${meta.built} (wasm sha256 \`${meta.wasmSha}\`; the tree was at commit \`${meta.git}\`${meta.dirty ? " with uncommitted changes in src/ or js/" : ""}), ${meta.workerd},
${meta.cpuModel}, ${meta.nproc} CPUs; workerd pinned to CPU ${WORKER_CPU}, wrk, KV service and origin to CPU ${LOAD_CPU}.

- **ordinary**: Tokengate as in \`bench/run.mjs\` (KV revocation list, in-memory KV service); the timed path is not strict.
- **strict**: the same build and settings plus \`STRICT_PATHS=/api/*,/echo/strict/*\` and the \`SESSIONS\`
  Durable Object binding (\`SessionObject\`, in-memory storage): each request does the one KV bulk get
  and then reads its user's object over RPC.

Timed: \`GET ${TIMED_PATH}\`, wrk -t1 -c${S.connections} for ${S.seconds} s per cell; the fixed-rate latency
rows use \`bench/lib/paced.mjs\` at ${meta.rate} req/s for ${S.latencySeconds} s. Worker CPU is the workerd
process's CPU time (/proc, all threads) over the cell divided by the requests answered. Checked before
timing, every round: 200 with identity headers, one KV bulk get of 2 keys per request on both, and on
strict a token without \`sub\` refused, and a revocation present only in the object refused on the
strict path while an ordinary path of the same process forwards it (so the object is really read).

${table}

Tail latency moves a lot from round to round (the p99 rows show the lowest and highest round);
CPU per request and requests/s are the steady figures.

Other processes' share of the worker core during the timed cells: median ${(median(others) * 100).toFixed(1)} %,
max ${(Math.max(...others) * 100).toFixed(1)} %; ${redone} of ${results.length} cells were measured again because that share
went over 10 % (load average at start ${meta.loadAtStart.map((x) => x.toFixed(2)).join(", ")}).

**What this does not show.** In workerd locally the Durable Object runs in the same process as the
Worker, so its CPU time is included in the strict figure, and the round trip to it is a local call.
In production a strict request adds one Durable Object round trip: a few milliseconds when the object
lives in or near the colo that serves the request, up to 100 ms and more when it lives on the other
side of the world (an object stays where it was first created). That latency is not in these figures.
`;
  return { md, table };
}

// ---------------------------------------------------------------- main
async function main() {
  const loadAtStart = os.loadavg();
  rmSync(path.join(work, "run"), { recursive: true, force: true });
  mkdirSync(path.join(work, "lua"), { recursive: true });
  const sh = (cmd, args) => spawnSync(cmd, args, { encoding: "utf8" }).stdout?.trim() ?? "";
  const git = sh("git", ["-C", root, "rev-parse", "--short", "HEAD"]);
  const dirty = sh("git", ["-C", root, "status", "--porcelain", "--", "src", "js", "Cargo.toml", "Cargo.lock"]) !== "";
  const built = statSync(path.join(S.buildDir, "index_bg.wasm")).mtime.toISOString().replace(/\.\d+Z$/, "Z");
  const modules = snapshotBuild();
  const keys = await makeKeys();
  const t = await makeTokens(keys);
  const vars = { JWT_SECRET: keys.secret, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, ADMIN_TOKEN };
  const contenders = [
    { id: "ordinary", strict: false, vars: {}, durableObjects: [] },
    { id: "strict", strict: true, vars: { STRICT_PATHS: "/api/*,/echo/strict/*" }, durableObjects: [{ binding: "SESSIONS", className: "SessionObject" }] },
  ];

  const origin = await start(process.execPath, [path.join(here, "lib/origin.mjs")], { cpu: LOAD_CPU, readyJson: true, name: "origin" });
  const originUrl = `http://127.0.0.1:${origin.info.port}`;
  const kv = await start(process.execPath, [path.join(here, "lib/kv-server.mjs"), JSON.stringify({ seedCount: 10_000, entries: t.entries })], {
    cpu: LOAD_CPU, readyJson: true, name: "kv-server",
  });
  kv.port = kv.info.port;
  const scripts = {
    many: writeScript(path.join(work, "lua"), "many", t.pools.many, TIMED_PATH),
    one: writeScript(path.join(work, "lua"), "one", t.pools.one, TIMED_PATH),
  };
  const tokenFiles = {};
  for (const pool of ["many", "one"]) writeFileSync((tokenFiles[pool] = path.join(work, `${pool}.json`)), JSON.stringify(t.pools[pool]));
  log(`settings ${JSON.stringify({ ...S, buildDir: path.relative(root, S.buildDir), out: path.relative(root, S.out) })}; KV ${kv.info.size} keys`);

  const results = [];
  let rate = S.rate;
  for (let r = 0; r < S.rounds; r++) {
    const inst = {};
    for (const c of contenders) inst[c.id] = await startWorkerd(c, { modules, kvPort: kv.port, originUrl, vars });
    for (const c of contenders) await checkContender(inst[c.id], t, kv);
    for (const pool of ["many", "one"]) {
      // Warm up right before this pool's cells: every user's object created and every code path
      // compiled. (Objects left without requests for ~15 s answered slowly again in a probe, so the
      // warm-up is per pool, not per round.)
      for (const c of contenders) {
        for (let sent = 0; sent < 2 * t.pools[pool].length; ) {
          sent += (await wrk({ url: `${inst[c.id].url}/`, script: scripts[pool], seconds: 2, connections: S.connections, cpu: LOAD_CPU })).requests;
        }
      }
      await waitIdle();
      for (const c of rotate(contenders, r)) {
        const cell = await wrkCell(inst[c.id], scripts[pool]);
        results.push({ round: r, pool, contender: c.id, kind: "wrk", ...cell });
      }
      const [a, b] = ["ordinary", "strict"].map((id) => results.find((x) => x.round === r && x.pool === pool && x.contender === id && x.kind === "wrk"));
      log(`round ${r + 1}/${S.rounds} ${pool}: ordinary ${f0(a.rps)} rps ${f0(a.cpuUs)} µs | strict ${f0(b.rps)} rps ${f0(b.cpuUs)} µs | ${ratio(a.cpuUs, b.cpuUs)}`);
      if (rate === null) {
        rate = Math.max(50, Math.floor(0.5e6 / Math.max(a.cpuUs, b.cpuUs) / 50) * 50);
        log(`fixed rate for latency: ${rate} req/s (half of one core at ${f0(Math.max(a.cpuUs, b.cpuUs))} µs/request)`);
      }
      // Fixed-rate latency right after, while this pool's objects are live.
      for (const c of rotate(contenders, r)) {
        const cell = await pacedCell(inst[c.id], tokenFiles[pool], rate);
        results.push({ round: r, pool, contender: c.id, kind: "paced", ...cell });
      }
    }
    for (const c of contenders) {
      const err = inst[c.id].stderr();
      if (/error|panic|misconfigured/i.test(err)) log(`note: ${c.id} stderr:\n${err.slice(-2000)}`);
      await inst[c.id].stop();
    }
  }
  await kv.stop();
  await origin.stop();

  const meta = {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    elapsedSeconds: Math.round((Date.now() - t0) / 1000),
    rate,
    built,
    wasmSha: createHash("sha256").update(readFileSync(modules[1].file)).digest("hex").slice(0, 16),
    git,
    dirty,
    workerd: sh(workerdBinary(), ["--version"]),
    cpuModel: (readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.*)$/m) ?? [])[1] ?? "unknown CPU",
    nproc: os.cpus().length,
    loadAtStart,
  };
  const { md, table } = report(results, meta);
  writeFileSync(S.out, md);
  writeFileSync(path.join(work, "results.json"), JSON.stringify({ settings: S, meta, results }, null, 1) + "\n");
  console.log("\n" + table + "\n");
  log(`done in ${meta.elapsedSeconds} s: ${path.relative(root, S.out)} (raw figures: ${path.relative(root, path.join(work, "results.json"))})`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e?.stack ?? e);
    process.exit(1);
  },
);
