#!/usr/bin/env node
// Side-by-side whole-request benchmark: Tokengate's release build against JS
// gateways doing the same job, all in workerd from npm, plus the classic
// Node/Express + jsonwebtoken + revoked-array recipe.
//
//   node bench/run.mjs                 full run (about 20 minutes)
//   BENCH_QUICK=1 node bench/run.mjs   smoke test (about 2-3 minutes)
//
// Writes bench/RESULTS.md, bench/results.svg and bench/results.json.
// Settings (environment): BENCH_ROUNDS (5), BENCH_SECONDS (5, valid-token cells),
// BENCH_SHORT_SECONDS (2, revoked / bad-signature cells), BENCH_LATENCY_SECONDS (2),
// BENCH_RATE (fixed rate for latency; default half the slowest gateway's throughput),
// BENCH_REVOKED (10000 revoked IDs seeded in KV), BENCH_LIST_SIZES (10,10000,100000,1000000),
// BENCH_LIST_ROUNDS (3), BENCH_LIST_SECONDS (4), BENCH_COLD (7 cold starts each),
// BENCH_CONNECTIONS (8), BENCH_CONTENDERS (comma-separated ids to run a subset),
// BENCH_BUILD_DIR (Tokengate build, default build/), BENCH_OUT (output directory, default bench/),
// BENCH_TOKENGATE_VARS (JSON object of extra vars for Tokengate only),
// BENCH_TOKENGATE_DO ("BINDING=ClassName,..." Durable Object bindings for Tokengate, in-memory storage).
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync, copyFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { performance } from "node:perf_hooks";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { installCleanup, pinBench, start, run, cpuMicros, coreBusyMicros, freePort, request, sleep } from "./lib/proc.mjs";
import { writeConfig, workerdBinary, buildModules, wranglerCompatibilityDate } from "./lib/workerd.mjs";
import { writeScript, wrk, requireWrk } from "./lib/wrk.mjs";
import { kvControl, kvQuiet } from "./lib/control.mjs";
import { makeKeys, makePools, payloadOf, ALGORITHMS, ISSUER, AUDIENCE } from "./lib/tokens.mjs";
import { summary, rotate } from "./lib/stats.mjs";
import { writeReport } from "./lib/report.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const env = process.env;
const QUICK = env.BENCH_QUICK === "1" || env.BENCH_QUICK === "true";
const num = (name, full, quick) => (env[name] !== undefined && env[name] !== "" ? Number(env[name]) : QUICK ? quick : full);
const S = {
  quick: QUICK,
  rounds: num("BENCH_ROUNDS", 5, 1),
  seconds: num("BENCH_SECONDS", 5, 1),
  shortSeconds: num("BENCH_SHORT_SECONDS", 2, 1),
  latencySeconds: num("BENCH_LATENCY_SECONDS", 2, 1),
  rate: env.BENCH_RATE ? Number(env.BENCH_RATE) : null,
  revoked: num("BENCH_REVOKED", 10_000, 10_000),
  listSizes: (env.BENCH_LIST_SIZES ?? "10,10000,100000,1000000").split(",").map(Number),
  listRounds: num("BENCH_LIST_ROUNDS", 3, 1),
  listSeconds: num("BENCH_LIST_SECONDS", 4, 1),
  cold: num("BENCH_COLD", 7, 3),
  connections: num("BENCH_CONNECTIONS", 8, 8),
  warmSeconds: 1,
  only: env.BENCH_CONTENDERS ? env.BENCH_CONTENDERS.split(",") : null,
  buildDir: path.resolve(root, env.BENCH_BUILD_DIR ?? "build"),
  outDir: path.resolve(root, env.BENCH_OUT ?? "bench"),
};
for (const k of ["rounds", "seconds", "shortSeconds", "latencySeconds", "listRounds", "listSeconds", "cold"]) {
  if (!(Number.isInteger(S[k]) && S[k] >= 1)) throw new Error(`${k} must be a whole number >= 1 (wrk takes whole seconds)`);
}

const work = path.join(here, ".work");
const runDir = path.join(work, "run");
const COMPAT_DATE = wranglerCompatibilityDate();
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s]`, ...a);

installCleanup();

// ---------------------------------------------------------------- machine and pinning
// WORKER_CPU: workerd (and the classic Node server); LOAD_CPU: wrk, paced client, KV service, origin, this script.
const { ncpu, pinned: PIN, workerCpu: WORKER_CPU, loadCpu: LOAD_CPU } = pinBench(
  "warning: fewer than 2 CPUs or no taskset; nothing is pinned, CPU figures include the load generator's interference",
);
requireWrk();

// ---------------------------------------------------------------- contenders
function gz(file) {
  const buf = readFileSync(file);
  return { raw: buf.length, gzip: gzipSync(buf, { level: 9 }).length };
}

/** Tokengate's modules (lib/workerd.mjs buildModules), snapshotted: the same bytes for the whole run, even if build/ is rebuilt meanwhile. */
function tokengateModules() {
  if (!existsSync(path.join(S.buildDir, "index.js"))) {
    throw new Error(`${S.buildDir}/index.js is missing: build Tokengate first (npm run build)`);
  }
  return buildModules(S.buildDir, path.join(work, "tokengate-build"));
}

async function bundleJs(id) {
  const out = path.join(work, "js", `${id}.mjs`);
  const r = await run(path.join(root, "node_modules/.bin/esbuild"), [
    path.join(here, "contenders", `${id}.mjs`), "--bundle", "--format=esm", "--platform=neutral",
    "--conditions=workerd,worker,browser", "--main-fields=module,main", "--target=es2022",
    `--outfile=${out}`, "--log-level=warning",
  ]);
  if (r.code !== 0) throw new Error(`esbuild ${id}: ${r.stderr}`);
  return out;
}

function lockVersion(name) {
  const lock = readFileSync(path.join(root, "Cargo.lock"), "utf8");
  return lock.match(new RegExp(`name = "${name}"\\nversion = "([^"]+)"`))?.[1];
}

async function buildRustFloor() {
  const want = lockVersion("wasm-bindgen");
  const cli = path.join(env.CARGO_INSTALL_ROOT ?? path.join(os.homedir(), ".cargo"), "bin", "wasm-bindgen");
  const have = spawnSync(cli, ["--version"], { encoding: "utf8" }).stdout?.trim().split(" ").pop();
  if (have !== want) return { skipped: `wasm-bindgen CLI ${want} not found at ${cli} (have: ${have ?? "none"}); run npm run build once to install it` };
  // Built from a copy that takes Tokengate's Cargo.lock, so wasm-bindgen, js-sys and
  // wasm-bindgen-futures are exactly Tokengate's versions (and the CLI's).
  const crate = path.join(here, "rust-floor");
  const src = path.join(work, "rust-floor-src");
  rmSync(src, { recursive: true, force: true });
  mkdirSync(path.join(src, "src"), { recursive: true });
  copyFileSync(path.join(crate, "Cargo.toml"), path.join(src, "Cargo.toml"));
  copyFileSync(path.join(crate, "src/lib.rs"), path.join(src, "src/lib.rs"));
  copyFileSync(path.join(root, "Cargo.lock"), path.join(src, "Cargo.lock"));
  const b = await run("cargo", ["build", "--release", "--target", "wasm32-unknown-unknown", "--manifest-path", path.join(src, "Cargo.toml")], {
    env: { ...env, CARGO_TARGET_DIR: path.join(crate, "target") },
  });
  if (b.code !== 0) return { skipped: `cargo build failed: ${b.stderr.slice(-800)}` };
  const outDir = path.join(work, "rust-floor");
  const wb = await run(cli, ["--target", "web", "--out-dir", outDir, "--out-name", "rust_floor", "--no-typescript",
    path.join(crate, "target/wasm32-unknown-unknown/release/rust_floor.wasm")]);
  if (wb.code !== 0) return { skipped: `wasm-bindgen failed: ${wb.stderr.slice(-800)}` };
  const wasm = path.join(outDir, "rust_floor_bg.wasm");
  // Same post-processing as Tokengate's build (scripts/build.sh): wasm-opt, names stripped.
  const o = await run(path.join(root, "node_modules/.bin/wasm-opt"), [wasm, "-Oz", "-o", wasm, "--strip-debug", "--strip-producers",
    "--enable-mutable-globals", "--enable-sign-ext", "--enable-nontrapping-float-to-int", "--enable-bulk-memory",
    "--enable-multivalue", "--enable-reference-types", "--enable-exception-handling"]);
  if (o.code !== 0) return { skipped: `wasm-opt failed: ${o.stderr.slice(-800)}` };
  return {
    modules: [
      { name: "worker.mjs", type: "esModule", file: path.join(crate, "worker.mjs") },
      { name: "rust_floor.js", type: "esModule", file: path.join(outDir, "rust_floor.js") },
      { name: "rust_floor_bg.wasm", type: "wasm", file: wasm },
    ],
  };
}

// ---------------------------------------------------------------- services
async function startKv(seedCount, entries) {
  const kv = await start(process.execPath, [path.join(here, "lib/kv-server.mjs"), JSON.stringify({ seedCount, entries })], {
    cpu: LOAD_CPU, readyJson: true, name: "kv-server", timeoutMs: 120_000,
  });
  kv.port = kv.info.port;
  return kv;
}

async function startWorkerd(c, { kvPort, originUrl, vars, port }) {
  port ??= await freePort();
  const config = writeConfig({
    dir: runDir, name: `${c.id}-${port}`, modules: c.modules, port, compatibilityDate: COMPAT_DATE,
    vars: { ...vars, ...c.extraVars, ORIGIN_URL: originUrl }, kvPort, durableObjects: c.durableObjects,
  });
  const t = performance.now();
  const h = await start(workerdBinary(), ["serve", config], { cpu: WORKER_CPU, name: `workerd ${c.id}` });
  h.spawnedAt = t;
  h.url = `http://127.0.0.1:${port}`;
  h.contender = c;
  return h;
}

async function waitReady(h, { timeoutMs = 30_000, token } = {}) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (h.child.exitCode !== null) throw new Error(`${h.name} exited (${h.child.exitCode}):\n${h.stderr()}`);
    try {
      const r = await request(`${h.url}/ready`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
      return r;
    } catch {
      if (performance.now() > deadline) throw new Error(`${h.name} not answering after ${timeoutMs} ms:\n${h.stderr()}`);
      await sleep(1);
    }
  }
}

// ---------------------------------------------------------------- checks (fail loudly)
function fail(what, detail) {
  throw new Error(`CHECK FAILED: ${what}\n${typeof detail === "string" ? detail : JSON.stringify(detail, null, 2)}`);
}

async function checkValid(h, token, alg) {
  const claims = payloadOf(token);
  const p = `/echo/check/${alg}?q=1&r=two`;
  const r = await request(h.url + p, {
    headers: { authorization: `Bearer ${token}`, "x-auth-subject": "spoofed", "X-Auth-Role": "admin", "x_auth_token_id": "spoofed" },
  });
  if (r.status !== 200) fail(`${h.contender.id} ${alg} valid token: expected 200, got ${r.status}`, r.body);
  let echo;
  try {
    echo = JSON.parse(r.body);
  } catch {
    fail(`${h.contender.id} ${alg} valid token: the origin's echo did not come back`, r.body);
  }
  if (echo.url !== p) fail(`${h.contender.id}: path/query not preserved`, { sent: p, got: echo.url });
  const got = echo.headers;
  if (!h.contender.floor) {
    if (got["x-auth-role"] !== undefined || got["x_auth_token_id"] !== undefined) fail(`${h.contender.id}: client X-Auth-* header reached the origin`, got);
    const want = {
      "x-auth-subject": claims.sub,
      "x-auth-token-id": claims.jti,
      "x-auth-issuer": claims.iss,
      "x-auth-claims": token.split(".")[1],
    };
    for (const [k, v] of Object.entries(want)) if (got[k] !== v) fail(`${h.contender.id} ${alg}: origin got ${k}=${got[k]}, expected ${v}`, got);
  } else if (got["x-auth-subject"] !== "spoofed") {
    // A floor forwards headers untouched (it does no auth at all); just make sure it forwarded.
    fail(`${h.contender.id}: headers not forwarded`, got);
  }
}

async function check401(h, token, alg, kind, code) {
  const r = await request(`${h.url}/api/items`, { headers: { authorization: `Bearer ${token}` } });
  let body = {};
  try {
    body = JSON.parse(r.body);
  } catch {}
  if (r.status !== 401 || (code && body.error !== code)) fail(`${h.contender.id} ${alg} ${kind}: expected 401${code ? " " + code : ""}, got ${r.status}`, r.body);
}

async function checkContender(h, pools, kv, algs = ALGORITHMS) {
  const c = h.contender;
  if (c.floor) {
    await checkValid(h, pools.HS256.valid[0], "any");
    return;
  }
  if (kv) await kvQuiet(kv);
  let kvReads = 0;
  for (const alg of algs) {
    const p = pools[alg];
    await checkValid(h, p.valid[1], alg);
    await checkValid(h, p.valid[0], alg); // even index: user has an old cut-off, still valid
    await check401(h, p.revoked[2], alg, "revoked", "token_revoked");
    await check401(h, p.cutoff[0], alg, "user cut-off", "token_revoked");
    kvReads += 4;
    if (c.verifies) await check401(h, p.badsig[3], alg, "bad signature", c.id === "tokengate" ? "signature_invalid" : null);
  }
  if (kv && c.kv) {
    const st = await kvControl(kv, "stats");
    if (st.bulkGet !== kvReads || st.get !== 0 || st.bulkKeys !== 2 * kvReads) {
      fail(`${c.id}: expected exactly one KV bulk get of 2 keys per checked request (${kvReads} requests), and no single gets`, st);
    }
  }
}

// ---------------------------------------------------------------- measurement cells
/** Other processes' share of the worker core, and how busy the load core was, over a cell. */
function coreProbe() {
  const w0 = coreBusyMicros(WORKER_CPU), l0 = coreBusyMicros(LOAD_CPU);
  return (ownUs, durationUs) => {
    if (w0 === null || l0 === null) return {};
    return {
      workerCoreOthers: Math.max(0, (coreBusyMicros(WORKER_CPU) - w0 - ownUs) / durationUs),
      loadCoreBusy: (coreBusyMicros(LOAD_CPU) - l0) / durationUs,
    };
  };
}

async function wrkCell(h, script, seconds, expect) {
  const probe = coreProbe();
  const c0 = cpuMicros(h.pid);
  const r = await wrk({ url: `${h.url}/`, script, seconds, connections: S.connections, cpu: LOAD_CPU });
  const c1 = cpuMicros(h.pid);
  const cores = probe(c1 - c0, r.durationUs);
  const sock = r.connect + r.read + r.write + r.timeout;
  const okStatus = expect === 200 ? r.status === 0 : r.status === r.requests;
  if (!okStatus || sock > r.requests * 0.001 || r.requests === 0) {
    fail(`${h.name}: during the timed run expected every answer to be ${expect}`, r);
  }
  // busy: share of its core the serving process used during the cell (1.0 = saturated).
  return { rps: r.requests / (r.durationUs / 1e6), cpuUs: (c1 - c0) / r.requests, busy: (c1 - c0) / r.durationUs, ...cores, requests: r.requests, p50Us: r.p50Us, p99Us: r.p99Us, socketErrors: sock };
}

async function pacedCell(h, tokens, rate, seconds) {
  const probe = coreProbe();
  const w0 = performance.now();
  const c0 = cpuMicros(h.pid);
  const r = await run(process.execPath, [path.join(here, "lib/paced.mjs"), JSON.stringify({ url: `${h.url}/api/items?page=1`, tokens, rate, seconds, warmSeconds: 0.5 })], { cpu: LOAD_CPU });
  const c1 = cpuMicros(h.pid);
  if (r.code !== 0) fail(`${h.name}: paced client failed`, r.stderr);
  const out = JSON.parse(r.stdout.trim().split("\n").pop());
  if (out.failed || out.ok !== Math.round(rate * seconds)) fail(`${h.name}: paced run expected only 200s`, out);
  // CPU includes the 0.5 s warm phase's requests too.
  return { ...out, ...probe(c1 - c0, (performance.now() - w0) * 1000), cpuUs: (c1 - c0) / (out.sent + Math.max(1, Math.round(rate * 0.5))) };
}

// ---------------------------------------------------------------- main
async function main() {
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const loadAtStart = os.loadavg();
  const gitAtStart = spawnSync("git", ["-C", root, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).stdout?.trim();
  const dirtyAtStart = spawnSync("git", ["-C", root, "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock", "scripts/build.sh"], { encoding: "utf8" }).stdout?.trim() !== "";
  log(`settings: ${JSON.stringify({ ...S, buildDir: path.relative(root, S.buildDir), outDir: path.relative(root, S.outDir) })}`);
  log(`pinning: ${PIN ? `workerd -> CPU ${WORKER_CPU}; wrk, KV, origin, clients -> CPU ${LOAD_CPU}` : "none"}`);

  // Contenders.
  const wanted = (id) => !S.only || S.only.includes(id);
  const tgModules = wanted("tokengate") ? tokengateModules() : [];
  if (tgModules.length) log(`tokengate build: ${tgModules.map((m) => `${m.name} (${m.type})`).join(", ")}`);
  const rust = wanted("rust-floor") ? await buildRustFloor() : { skipped: "not selected (BENCH_CONTENDERS)" };
  if (rust.skipped) log(`rust floor skipped: ${rust.skipped}`);
  const js = {};
  for (const id of ["forwarder", "noverify", "subtle", "jose"]) js[id] = await bundleJs(id);
  const jsMod = (id) => [{ name: "worker.mjs", type: "esModule", file: js[id] }];
  let contenders = [
    { id: "forwarder", label: "JS forwarder (no verify, no KV)", floor: true, modules: jsMod("forwarder"), color: "#afb8c1" },
    ...(rust.skipped ? [] : [{ id: "rust-floor", label: "Rust/wasm forwarder (no verify, no KV)", floor: true, modules: rust.modules, color: "#6e7781" }]),
    { id: "noverify", label: "JS gateway, no verification", kv: true, verifies: false, modules: jsMod("noverify"), color: "#54aeff" },
    { id: "subtle", label: "JS gateway, crypto.subtle (cached keys)", kv: true, verifies: true, modules: jsMod("subtle"), color: "#2da44e" },
    { id: "jose", label: "JS worker on jose", kv: true, verifies: true, modules: jsMod("jose"), color: "#bf8700" },
    { id: "tokengate", label: "Tokengate (Rust/wasm release build)", kv: true, verifies: true, modules: tgModules, color: "#cf222e",
      extraVars: env.BENCH_TOKENGATE_VARS ? JSON.parse(env.BENCH_TOKENGATE_VARS) : {},
      durableObjects: (env.BENCH_TOKENGATE_DO ?? "").split(",").filter(Boolean).map((p) => {
        const [binding, className] = p.split("=");
        return { binding, className };
      }) },
  ];
  if (S.only) contenders = contenders.filter((c) => S.only.includes(c.id));
  const gateways = contenders.filter((c) => !c.floor);

  // Keys, tokens, services.
  const keys = await makeKeys();
  const { pools, entries } = await makePools(keys);
  const vars = { JWT_SECRET: keys.secret, JWT_JWKS: JSON.stringify(keys.jwks), JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE };
  const origin = await start(process.execPath, [path.join(here, "lib/origin.mjs")], { cpu: LOAD_CPU, readyJson: true, name: "origin" });
  const originUrl = `http://127.0.0.1:${origin.info.port}`;
  const kv = await startKv(S.revoked, entries);
  log(`origin ${originUrl}; KV service on ${kv.port} with ${kv.info.size} keys (${S.revoked} seeded revoked IDs + token pools)`);

  mkdirSync(path.join(work, "lua"), { recursive: true });
  const scripts = {};
  for (const alg of ALGORITHMS) for (const kind of ["valid", "revoked", "badsig"]) scripts[`${alg}/${kind}`] = writeScript(path.join(work, "lua"), `${alg}-${kind}`, pools[alg][kind]);
  const mixed = ALGORITHMS.flatMap((a) => [...pools[a].valid.slice(0, 4), ...pools[a].revoked.slice(0, 2), ...pools[a].badsig.slice(0, 2)]);
  scripts.mixed = writeScript(path.join(work, "lua"), "mixed", mixed);

  const results = {
    settings: { ...S, buildDir: path.relative(root, S.buildDir), outDir: path.relative(root, S.outDir), pinned: PIN, workerCpu: WORKER_CPU, loadCpu: LOAD_CPU, compatibilityDate: COMPAT_DATE },
    contenders: contenders.map(({ id, label, floor, kv: k, verifies, color }) => ({ id, label, floor: !!floor, kv: !!k, verifies: !!verifies, color })),
    skipped: rust.skipped ? [{ id: "rust-floor", reason: rust.skipped }] : [],
    throughput: [], latency: [], list: [], cold: [], sizes: {}, env: {},
  };

  // ------------------------------------------------ rounds: throughput and latency
  let rate = S.rate;
  for (let r = 0; r < S.rounds; r++) {
    log(`round ${r + 1}/${S.rounds}: starting ${contenders.length} workerd processes`);
    const inst = {};
    for (const c of contenders) inst[c.id] = await startWorkerd(c, { kvPort: c.kv ? kv.port : null, originUrl, vars });
    // Every check before any load, so no other contender's traffic reaches the KV counters.
    for (const c of contenders) {
      await waitReady(inst[c.id]);
      await checkContender(inst[c.id], pools, kv);
    }
    for (const c of contenders) {
      await wrk({ url: `${inst[c.id].url}/`, script: scripts.mixed, seconds: S.warmSeconds, connections: S.connections, cpu: LOAD_CPU });
    }
    log(`round ${r + 1}: all contenders passed their checks (valid -> 200 with identity headers, revoked/cut-off -> 401 token_revoked, bad signature -> 401, one KV bulk get)`);
    for (const alg of ALGORITHMS) {
      for (const kind of ["valid", "revoked", "badsig"]) {
        let who = contenders.filter((c) => (c.floor ? alg === "HS256" && kind === "valid" : kind !== "badsig" || c.verifies));
        for (const c of rotate(who, r)) {
          const seconds = kind === "valid" ? S.seconds : S.shortSeconds;
          const cell = await wrkCell(inst[c.id], scripts[`${alg}/${kind}`], seconds, kind === "valid" ? 200 : 401);
          results.throughput.push({ round: r, contender: c.id, alg: c.floor ? "any" : alg, kind, ...cell });
        }
      }
      const line = contenders.map((c) => {
        const x = results.throughput.find((t) => t.round === r && t.contender === c.id && t.kind === "valid" && (t.alg === alg || (c.floor && alg === "HS256")));
        return x ? `${c.id} ${Math.round(x.rps)} rps ${Math.round(x.cpuUs)} µs` : null;
      }).filter(Boolean).join(" | ");
      log(`round ${r + 1} ${alg} valid: ${line}`);
    }
    if (rate === null) {
      // Half of what the most expensive gateway could serve on a whole core, from its CPU
      // per request (robust against other processes stealing the core during round 1).
      const worst = Math.max(...results.throughput.filter((t) => t.round === 0 && t.kind === "valid" && !contenders.find((c) => c.id === t.contender).floor).map((t) => t.cpuUs));
      rate = Math.max(50, Math.floor((0.5 * 1e6) / worst / 50) * 50);
      log(`fixed rate for latency: ${rate} req/s (half the capacity implied by the most expensive gateway cell in round 1, ${Math.round(worst)} µs CPU/request)`);
    }
    for (const alg of ALGORITHMS) {
      for (const c of rotate(gateways, r)) {
        const cell = await pacedCell(inst[c.id], pools[alg].valid, rate, S.latencySeconds);
        results.latency.push({ round: r, contender: c.id, alg, rate, ...cell });
      }
    }
    for (const c of contenders) await inst[c.id].stop();
  }
  results.settings.rate = rate;

  // ------------------------------------------------ revoked-list size: classic vs Tokengate
  const tokengate = contenders.find((c) => c.id === "tokengate");
  const hs = pools.HS256;
  for (let r = 0; r < S.listRounds; r++) {
    for (const n of rotate(S.listSizes, r)) {
      log(`list round ${r + 1}/${S.listRounds}: ${n.toLocaleString("en-US")} revoked`);
      const lkv = await startKv(n, entries);
      const classic = await start(process.execPath, [path.join(here, "classic/server.mjs"), JSON.stringify({
        secret: keys.secret, issuer: ISSUER, audience: AUDIENCE, originUrl, seedCount: n, revoked: hs.revoked,
      })], { cpu: WORKER_CPU, readyJson: true, name: "classic", timeoutMs: 180_000 });
      classic.url = `http://127.0.0.1:${classic.info.port}`;
      classic.contender = { id: "classic", verifies: true };
      const members = [{ id: "classic", h: classic }];
      if (tokengate) {
        const tg = await startWorkerd(tokengate, { kvPort: lkv.port, originUrl, vars });
        await waitReady(tg);
        await checkContender(tg, pools, lkv, ["HS256"]);
        members.push({ id: "tokengate", h: tg });
      }
      await checkValid(classic, hs.valid[1], "HS256");
      await check401(classic, hs.revoked[0], "HS256", "revoked (first of the pool)", "token_revoked");
      await check401(classic, hs.badsig[0], "HS256", "bad signature", "signature_invalid");
      for (const m of members) await wrk({ url: `${m.h.url}/`, script: scripts["HS256/valid"], seconds: S.warmSeconds, connections: S.connections, cpu: LOAD_CPU });
      for (const m of rotate(members, r)) {
        const cell = await wrkCell(m.h, scripts["HS256/valid"], S.listSeconds, 200);
        results.list.push({ round: r, contender: m.id, revoked: n, listSize: m.id === "classic" ? classic.info.listSize : lkv.info.size, ...cell });
        log(`  ${m.id}: ${Math.round(cell.rps)} rps, ${Math.round(cell.cpuUs)} µs CPU/request`);
      }
      for (const m of members) await m.h.stop();
      await lkv.stop();
    }
  }

  // ------------------------------------------------ cold start
  log(`cold starts: ${S.cold} per contender`);
  for (let i = 0; i < S.cold; i++) {
    for (const c of rotate(contenders, i)) {
      const h = await startWorkerd(c, { kvPort: c.kv ? kv.port : null, originUrl, vars });
      let status;
      for (;;) {
        const resp = await waitReady(h, { token: pools.HS256.valid[0] });
        status = resp.status;
        if (status === 200) break;
        if (performance.now() - h.spawnedAt > 30_000) fail(`${c.id}: no 200 within 30 s of spawn`, resp.body);
        await sleep(1);
      }
      results.cold.push({ round: i, contender: c.id, ms: performance.now() - h.spawnedAt });
      await h.stop();
    }
  }

  // ------------------------------------------------ sizes and environment
  for (const c of contenders) {
    const files = c.modules.map((m) => ({ name: m.name, type: m.type, ...gz(m.file) }));
    results.sizes[c.id] = {
      files,
      wasm: files.filter((f) => f.type === "wasm").reduce((a, f) => ({ raw: a.raw + f.raw, gzip: a.gzip + f.gzip }), { raw: 0, gzip: 0 }),
      total: files.reduce((a, f) => ({ raw: a.raw + f.raw, gzip: a.gzip + f.gzip }), { raw: 0, gzip: 0 }),
    };
  }
  const sh = (cmd, args) => spawnSync(cmd, args, { encoding: "utf8" }).stdout?.trim() ?? "";
  const pkgVersion = (name) => JSON.parse(readFileSync(path.join(root, "node_modules", name, "package.json"), "utf8")).version;
  const wasmFile = tgModules.find((m) => m.type === "wasm")?.file;
  results.env = {
    date: new Date().toISOString(),
    nproc: ncpu,
    cpuModel: (readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.*)$/m) ?? [])[1] ?? os.cpus()[0]?.model,
    kernel: os.release(),
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    workerd: sh(workerdBinary(), ["--version"]),
    workerdNpm: pkgVersion("workerd"),
    wrk: (() => {
      const r = spawnSync("wrk", ["-v"], { encoding: "utf8" });
      const v = `${r.stdout}${r.stderr}`.match(/wrk\s+(\S+)/);
      return v ? `wrk ${v[1]}` : "wrk";
    })(),
    jose: pkgVersion("jose"),
    jsonwebtoken: pkgVersion("jsonwebtoken"),
    express: pkgVersion("express"),
    rustc: sh("rustc", ["--version"]),
    git: gitAtStart,
    gitDirty: dirtyAtStart,
    build: tgModules.map((m) => ({ name: m.name, mtime: m.mtime })),
    wasmSha256: wasmFile ? createHash("sha256").update(readFileSync(wasmFile)).digest("hex").slice(0, 16) : null,
    loadavg: os.loadavg(),
    loadavgAtStart: loadAtStart,
    elapsedSeconds: Math.round((Date.now() - t0) / 1000),
  };

  await kv.stop();
  await origin.stop();
  mkdirSync(S.outDir, { recursive: true });
  writeFileSync(path.join(S.outDir, "results.json"), JSON.stringify(results, null, 1) + "\n");
  writeReport(results, S.outDir);
  log(`done in ${results.env.elapsedSeconds} s: ${path.relative(root, path.join(S.outDir, "RESULTS.md"))}, results.svg, results.json`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e?.stack ?? e);
    process.exit(1);
  },
);
