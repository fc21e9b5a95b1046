#!/usr/bin/env node
// Where Tokengate's microseconds go. Two tools on the bench's own setup
// (workerd from npm pinned to CPU 0, in-memory KV service, local origin, wrk
// on CPU 1; see bench/README.md):
//
//   node bench/profile.mjs ab DIR_A DIR_B [DIR_C ...]
//       worker CPU µs per valid HS256 (BENCH_ALG) request for each build directory,
//       interleaved rounds (BENCH_ROUNDS, default 5), medians: A/B builds; and
//       the median of the per-round ratios to DIR_A ("paired"), which holds
//       up better on a host whose speed drifts.
//   node bench/profile.mjs icount DIR_A [DIR_B ...]
//       instructions per valid request under valgrind's callgrind, whole
//       process, after BENCH_WARM uncounted requests: a measure that barely
//       moves with the host's load (bench/README.md says how to read it).
//       BENCH_STARTUP=1: each of BENCH_ROUNDS fresh processes from its start
//       until its socket listens (workerd reading its configuration and the
//       modules it embeds), the part of a cold start before any request.
//       BENCH_FIRST=1: the first request of each of BENCH_ROUNDS fresh
//       processes instead, counted from the moment the socket listens: the
//       CPU work of a cold start (workerd builds the worker on its first
//       request: the modules' compilation, wasm validated whole and
//       compiled lazily function by function, the request itself).
//   node bench/profile.mjs cpu DIR
//       V8's sampling CPU profiler through workerd's inspector during
//       BENCH_SECONDS of load; prints self time by function and by part
//       (wasm, JS glue, js/host.mjs, runtime builtins, GC, idle).
//       Build DIR with wasm names kept to see Rust functions by name.
//   node bench/profile.mjs cold DIR_A DIR_B [DIR_C ...]
//       process start to the first verified 200 (BENCH_COLD starts each,
//       default 9, interleaved), medians: A/B of cold start; and how much
//       of it is the answering request alone (the rest is workerd starting
//       to listen, within the 1 ms poll).
//   node bench/profile.mjs first DIR
//       the V8 profile of a fresh process's first request (what a cold
//       start runs once the module is loaded), by function.
//
// A build directory holds index.js and index_bg.wasm (scripts/build.sh's
// build/), or the old worker-build layout.
import { mkdirSync, readdirSync } from "node:fs";
import path from "node:path";
import net from "node:net";
import { installCleanup, start, run, cpuTimes, freePort, request, sleep } from "./lib/proc.mjs";
import { writeConfig, workerdBinary } from "./lib/workerd.mjs";
import { writeScript, wrk } from "./lib/wrk.mjs";
import { makeKeys, mint, ISSUER, AUDIENCE } from "./lib/tokens.mjs";
import { median } from "./lib/stats.mjs";

const [mode, ...dirs] = process.argv.slice(2);
if (!["ab", "icount", "cpu", "cold", "first"].includes(mode) || dirs.length === 0) {
  console.error("usage: node bench/profile.mjs ab DIR... | icount DIR... | cpu DIR | cold DIR... | first DIR");
  process.exit(2);
}
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
// BENCH_KIND=revoked: every token's ID is revoked in KV, so each request is
// refused with 401 token_revoked (and logs its one refusal line).
const REVOKED = process.env.BENCH_KIND === "revoked";
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
// BENCH_CACHE_SIM=1 (icount): callgrind also simulates the caches and the
// branch predictor, and reports misses and mispredicts per request: where
// the same instruction count takes longer, they are a candidate.
const CACHE_SIM = Boolean(process.env.BENCH_CACHE_SIM);
// BENCH_FIRST=1 (icount): count a fresh process's first request instead
// (ROUNDS processes): the instructions a cold start costs.
const FIRST = Boolean(process.env.BENCH_FIRST);
// BENCH_STARTUP=1 (icount): count a fresh process from its start until its
// socket listens instead (ROUNDS processes): the cold start's part before
// the first request, which `cold` reports as the time to listen.
const STARTUP = Boolean(process.env.BENCH_STARTUP);
// BENCH_REFUSAL_LOG_PER_SECOND=N: the gateway's REFUSAL_LOG_PER_SECOND.
// Under callgrind requests are slow enough that every refusal is logged
// (default limit 100/s), which wrk's rates never allow; 1 counts a refusal
// whose line is past the limit, as most are under load.
const REFUSAL_LOG = process.env.BENCH_REFUSAL_LOG_PER_SECOND
  ? { REFUSAL_LOG_PER_SECOND: process.env.BENCH_REFUSAL_LOG_PER_SECOND }
  : {};
const work = path.resolve("bench/.work/profile");
mkdirSync(work, { recursive: true });
installCleanup();

const keys = await makeKeys();
const now = Math.floor(Date.now() / 1000);
const tokens = [];
// BENCH_ALG: the tokens' algorithm (HS256, RS256, ES256 or EdDSA; default HS256).
const ALG = process.env.BENCH_ALG ?? "HS256";
for (let i = 0; i < 16; i++) tokens.push(await mint(keys, ALG, { sub: `user-${i}`, jti: `p-${i}`, iat: now - 60, exp: now + 86400 }));

const revokedEntries = Object.fromEntries(
  REVOKED ? tokens.map((_, i) => [`v1:jti:p-${i}`, JSON.stringify({ at: now, by: "logout" })]) : [],
);
const kv = await start(process.execPath, ["bench/lib/kv-server.mjs", JSON.stringify({ seedCount: 10000, entries: revokedEntries })], { cpu: 1, readyJson: true, name: "kv" });
const origin = await start(process.execPath, ["bench/lib/origin.mjs"], { cpu: 1, readyJson: true, name: "origin" });
const originUrl = `http://127.0.0.1:${origin.info.port}`;
const script = writeScript(work, "profile-hs256", tokens);

function modulesOf(dir) {
  const files = readdirSync(dir);
  const js = files.includes("index.js") ? "index.js" : files.find((f) => f.endsWith(".js"));
  return [
    { name: js, type: "esModule", file: path.join(dir, js) },
    ...files.filter((f) => f.endsWith(".wasm")).map((f) => ({ name: f, type: "wasm", file: path.join(dir, f) })),
  ];
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function accepts(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function startGateway(dir, extraArgs = [], beforeFirst = async () => {}) {
  const port = await freePort();
  const config = writeConfig({
    dir: work,
    name: `gw-${path.basename(dir)}-${port}`,
    modules: modulesOf(path.resolve(dir)),
    vars: { JWT_SECRET: keys.secret, JWT_JWKS: JSON.stringify(keys.jwks), JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, ORIGIN_URL: originUrl, ...REFUSAL_LOG },
    kvPort: kv.info.port,
    port,
    compatibilityDate: "2026-11-01",
  });
  const spawnedAt = performance.now();
  const serve = [workerdBinary(), "serve", config, "--experimental", ...extraArgs];
  // icount: under callgrind, counting nothing until `callgrind_control -i on`
  // (with STARTUP, counting from the first instruction).
  const [cmd, ...args] = mode === "icount"
    ? ["valgrind", "--tool=callgrind", `--instr-atstart=${STARTUP ? "yes" : "no"}`, `--callgrind-out-file=${work}/callgrind.%p`,
        ...(CACHE_SIM ? ["--cache-sim=yes", "--branch-sim=yes"] : []), ...serve]
    : serve;
  const h = await start(cmd, args, { cpu: 0, name: dir });
  const url = `http://127.0.0.1:${port}`;
  await beforeFirst();
  if (mode === "cold" || mode === "first") {
    // Poll every millisecond: the figure is the first verified answer.
    for (;;) {
      const sentAt = performance.now();
      const r = await request(`${url}/api/items?page=1`, { headers: { authorization: `Bearer ${tokens[0]}` } }).catch(() => null);
      const doneAt = performance.now();
      // firstMs: the answering request alone, which the socket accepted, so
      // coldMs - firstMs is (within the 1 ms poll) the time to listen.
      if (r?.status === 200) return { h, url, coldMs: doneAt - spawnedAt, firstMs: doneAt - sentAt };
      if (performance.now() - spawnedAt > 30_000) throw new Error(`${dir}: no 200 within 30 s`);
      await sleep(1);
    }
  }
  if (mode === "icount" && (FIRST || STARTUP)) {
    // The first request is the one to count (or, with STARTUP, everything
    // before it): wait for the socket only.
    for (let i = 0; !(await accepts(port)); i++) {
      if (i > 1200) throw new Error(`${dir}: not listening after 2 minutes`);
      await sleep(100);
    }
    return { h, url };
  }
  for (let i = 0; ; i++) {
    try {
      const r = await request(`${url}/api/items?page=1`, { headers: { authorization: `Bearer ${tokens[0]}` } });
      const expected = REVOKED ? 401 : 200;
      if (r.status !== expected) throw new Error(`${dir}: expected ${expected}, got ${r.status} ${r.body.slice(0, 200)}`);
      break;
    } catch (e) {
      if (i > (mode === "icount" ? 1200 : 100) || /expected \d+/.test(e.message)) throw e;
      await sleep(100);
    }
  }
  return { h, url };
}

// BENCH_PERF=1 (ab): also count the worker's system calls, context switches
// and page faults per request with `perf stat` (kernel tracepoints; root or
// perf_event_paranoid <= 1). Kernel time is invisible to `icount`, so this
// is where a gap between time and instruction count can show.
const PERF_EVENTS = "raw_syscalls:sys_enter,context-switches,page-faults";

async function cpuPerRequest(gw) {
  const before = cpuTimes(gw.h.pid);
  const perf = process.env.BENCH_PERF
    ? run("perf", ["stat", "-x,", "-e", PERF_EVENTS, "-p", String(gw.h.pid), "--", "sleep", String(SECONDS)])
    : null;
  const r = await wrk({ url: gw.url, script, seconds: SECONDS, cpu: 1 });
  if (r.status && !REVOKED) throw new Error(`${r.status} non-2xx answers`);
  const after = cpuTimes(gw.h.pid);
  const m = {
    us: (after.user + after.sys - before.user - before.sys) / r.requests,
    sysUs: (after.sys - before.sys) / r.requests,
    rps: (r.requests * 1e6) / r.durationUs,
  };
  if (perf) {
    // perf counts over its own SECONDS, started a moment before wrk's:
    // per request is its count over wrk's rate times that span.
    const { stderr } = await perf;
    const count = (event) => Number(stderr.split("\n").find((l) => l.includes(event))?.split(",")[0]);
    const requests = m.rps * SECONDS;
    m.syscalls = count("raw_syscalls:sys_enter") / requests;
    m.switches = count("context-switches") / requests;
    m.faults = count("page-faults") / requests;
  }
  return m;
}

if (mode === "ab") {
  const gateways = [];
  for (const dir of dirs) gateways.push({ dir, gw: await startGateway(dir), us: [], sysUs: [], rps: [], syscalls: [], switches: [], faults: [] });
  for (const g of gateways) await wrk({ url: g.gw.url, script, seconds: 1, cpu: 1 }); // warm up
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order each round so drift in machine load spreads evenly.
    for (let k = 0; k < gateways.length; k++) {
      const g = gateways[(k + round) % gateways.length];
      const m = await cpuPerRequest(g.gw);
      for (const field of Object.keys(m)) g[field].push(m[field]);
    }
  }
  const base = median(gateways[0].us);
  console.log(`\nworker CPU per ${REVOKED ? "revoked (refused)" : "valid"} ${ALG} request, ${ROUNDS} interleaved rounds of ${SECONDS} s (median, min-max):`);
  // "paired": the median of each round's own ratio to the first build (with
  // its quartiles). The host's speed drifts by more than the differences
  // sought, but within one round the builds ran seconds apart, so the
  // per-round ratio cancels most of the drift that the two medians keep.
  const firstUs = gateways[0].us;
  for (const g of gateways) {
    const m = median(g.us);
    const ratios = g.us.map((us, i) => us / firstUs[i]).sort((x, y) => x - y);
    const q = (f) => ratios[Math.min(ratios.length - 1, Math.floor(f * ratios.length))];
    console.log(
      `  ${g.dir.padEnd(40)} ${m.toFixed(0).padStart(5)} µs (${Math.min(...g.us).toFixed(0)}-${Math.max(...g.us).toFixed(0)})  ` +
        `${(m / base).toFixed(2)}x  paired ${median(ratios).toFixed(2)}x (quartiles ${q(0.25).toFixed(2)}-${q(0.75).toFixed(2)})  ` +
        `${median(g.rps).toFixed(0)} req/s  kernel ${median(g.sysUs).toFixed(0)} µs` +
        (g.syscalls.length ? `  ${median(g.syscalls).toFixed(1)} syscalls, ${median(g.switches).toFixed(2)} context switches, ${median(g.faults).toFixed(2)} page faults` : ""),
    );
  }
  process.exit(0);
}

if (mode === "icount") {
  // Instructions per request, counted by callgrind: unlike CPU time, the
  // count barely depends on what else the host runs, so builds that differ
  // by 1-2 % can be told apart. It is a proxy: an instruction of the
  // runtime's C++ and one of JIT-compiled code are not the same time.
  // Each build: BENCH_WARM requests uncounted (the JIT tiers up), then
  // ROUNDS times BENCH_COUNT requests, one at a time, counted.
  const warm = Number(process.env.BENCH_WARM ?? 3000);
  const count = Number(process.env.BENCH_COUNT ?? 300);
  const { execFileSync } = await import("node:child_process");
  const { readFileSync } = await import("node:fs");
  const control = (pid, ...args) => execFileSync("callgrind_control", [...args, String(pid)], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const expected = REVOKED ? 401 : 200;
  // BENCH_CONCURRENCY (default 1): requests kept in flight, as wrk's
  // connections do; 1 counts each request on its own.
  const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 1);
  const send = async (url, n) => {
    let sent = 0;
    const lane = async () => {
      while (sent < n) {
        const i = sent++;
        const r = await request(`${url}/api/items?page=1`, { headers: { authorization: `Bearer ${tokens[i % tokens.length]}` } });
        if (r.status !== expected) throw new Error(`expected ${expected}, got ${r.status}`);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
  };
  // Reads the counters callgrind dumped for `pid` last, per request of `n`.
  const dumpPerRequest = (pid, n) => {
    const dumped = control(pid, "-d");
    const files = readdirSync(work).filter((f) => f.startsWith(`callgrind.${pid}.`));
    const latest = files.sort((a, b) => Number(a.split(".").pop()) - Number(b.split(".").pop())).pop();
    const text = readFileSync(path.join(work, latest), "utf8");
    const totals = text.match(/^(?:totals|summary):((?: \d+)+)/m);
    if (!totals) throw new Error(`no totals in ${latest}: ${dumped}`);
    const values = totals[1].trim().split(" ").map(Number);
    const names = text.match(/^events: (.*)$/m)[1].split(" ");
    return { count: values[0] / n, events: Object.fromEntries(names.map((e, i) => [e, (values[i] ?? 0) / n])) };
  };
  const results = [];
  for (const dir of dirs) {
    const counts = [];
    const events = [];
    if (FIRST || STARTUP) {
      // A fresh process per round. FIRST: counted from the moment its
      // socket listens: workerd builds the worker on its first request, so
      // this is the cold start's CPU work (module compile and validation,
      // the wasm compiled lazily function by function, the request itself).
      // STARTUP: counted from the process's first instruction (callgrind's
      // instrumentation on from the start) until its socket accepts a
      // connection; the probe's accept is in the count, as for every
      // contender.
      for (let round = 0; round < ROUNDS; round++) {
        const gw = await startGateway(dir);
        if (FIRST) {
          control(gw.h.pid, "-i", "on");
          await send(gw.url, 1);
        }
        const dumped = dumpPerRequest(gw.h.pid, 1);
        counts.push(dumped.count);
        events.push(dumped.events);
        await gw.h.stop();
      }
      results.push({ dir, counts, events });
      continue;
    }
    const gw = await startGateway(dir);
    await send(gw.url, warm);
    control(gw.h.pid, "-i", "on");
    for (let round = 0; round < ROUNDS; round++) {
      control(gw.h.pid, "-z");
      await send(gw.url, count);
      const dumped = dumpPerRequest(gw.h.pid, count);
      counts.push(dumped.count);
      events.push(dumped.events);
    }
    await gw.h.stop();
    results.push({ dir, counts, events });
  }
  const base = median(results[0].counts);
  // callgrind_annotate's cycle estimate (its documented weights): an
  // instruction, 10 per first-level miss or mispredicted branch, 100 per
  // last-level miss. A model's figure, for comparing builds.
  const cycleEstimate = (e) =>
    e.Ir + 10 * (e.I1mr + e.D1mr + e.D1mw + e.Bcm + e.Bim) + 100 * (e.ILmr + e.DLmr + e.DLmw);
  const what = `${REVOKED ? "revoked (refused)" : "valid"} ${ALG} request`;
  console.log(STARTUP
    ? `\ninstructions of a fresh process from its start until ${FIRST ? `it answers its first ${what}` : "it listens"} (callgrind, whole process), ${ROUNDS} processes (median, min-max):`
    : FIRST
    ? `\ninstructions of a fresh process's first ${what}, from listening to the answer (callgrind, whole process), ${ROUNDS} processes (median, min-max):`
    : `\ninstructions per ${what} (callgrind, whole process), ${ROUNDS} rounds of ${count} after ${warm} uncounted (median, min-max):`);
  for (const { dir, counts, events } of results) {
    const m = median(counts);
    const cache = CACHE_SIM
      ? "  misses: " + ["I1mr", "D1mr", "D1mw", "DLmw", "Bcm", "Bim"].map((e) => `${e} ${median(events.map((x) => x[e])).toFixed(0)}`).join(", ") +
        `; cycle estimate ${(median(events.map(cycleEstimate)) / median(results[0].events.map(cycleEstimate))).toFixed(3)}x`
      : "";
    const [unit, scale] = FIRST || STARTUP ? ["M", 1e6] : ["k", 1e3];
    const shown = (x) => (x / scale).toFixed(1);
    console.log(`  ${dir.padEnd(40)} ${shown(m).padStart(8)} ${unit} (${shown(Math.min(...counts))}-${shown(Math.max(...counts))})  ${(m / base).toFixed(3)}x${cache}`);
  }
  process.exit(0);
}

if (mode === "cold") {
  const starts = Number(process.env.BENCH_COLD ?? 9);
  const ms = dirs.map(() => []);
  const firstMs = dirs.map(() => []);
  for (let round = 0; round < starts; round++) {
    for (let k = 0; k < dirs.length; k++) {
      const i = (k + round) % dirs.length;
      const gw = await startGateway(dirs[i]);
      ms[i].push(gw.coldMs);
      firstMs[i].push(gw.firstMs);
      await gw.h.stop();
    }
  }
  const base = median(ms[0]);
  console.log(`\ncold start (process start to the first verified 200), ${starts} interleaved starts (median, min-max):`);
  dirs.forEach((dir, i) => {
    const m = median(ms[i]);
    const f = median(firstMs[i]);
    console.log(`  ${dir.padEnd(40)} ${m.toFixed(1).padStart(6)} ms (${Math.min(...ms[i]).toFixed(1)}-${Math.max(...ms[i]).toFixed(1)})  ${(m - base >= 0 ? "+" : "")}${(m - base).toFixed(1)} ms;  first request ${f.toFixed(1)} ms`);
  });
  process.exit(0);
}

// Modes "cpu" and "first": V8's sampling profiler over the inspector protocol.
async function inspector(port) {
  let targets;
  for (let i = 0; ; i++) {
    try {
      targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
      if (targets.length > 0) break;
      await sleep(1);
    } catch (e) {
      if (i > 3000) throw e;
      await sleep(1);
    }
  }
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let nextId = 1;
  const pending = new Map();
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    pending.get(message.id)?.(message);
  };
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: mode === "first" ? 20 : 50 });
  return { ws, send };
}

const inspectorPort = await freePort();
let session;
let load;
let result;
if (mode === "first") {
  await startGateway(dirs[0], [`--inspector-addr=127.0.0.1:${inspectorPort}`], async () => {
    session = await inspector(inspectorPort);
    await session.send("Profiler.start");
  });
  ({ result } = await session.send("Profiler.stop"));
  load = { requests: 1 };
} else {
  const gw = await startGateway(dirs[0], [`--inspector-addr=127.0.0.1:${inspectorPort}`]);
  session = await inspector(inspectorPort);
  await wrk({ url: gw.url, script, seconds: 1, cpu: 1 });
  await session.send("Profiler.start");
  load = await wrk({ url: gw.url, script, seconds: SECONDS, cpu: 1 });
  ({ result } = await session.send("Profiler.stop"));
}
session.ws.close();

const profile = result.profile;
const self = new Map();
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const counts = new Map();
for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
const total = profile.samples.length;
function part(frame) {
  const { functionName: fn, url } = frame;
  if (fn === "(garbage collector)") return "GC";
  if (fn === "(idle)") return "idle";
  if (fn === "(program)") return "runtime (C++, outside JS)";
  if (fn === "(root)") return "runtime (C++, outside JS)";
  if (url.startsWith("wasm://") || /^\$?(wasm-function|func)/.test(fn)) return "wasm (Rust core + adapter)";
  if (url.includes("index.js")) return "JS (worker.mjs, glue, host.mjs)";
  if (!url) return "runtime builtins";
  return `other: ${url}`;
}
const parts = new Map();
for (const [id, n] of counts) {
  const node = byId.get(id);
  const key = `${node.callFrame.functionName || "(anonymous)"}  ${node.callFrame.url.split("/").pop()}`;
  self.set(key, (self.get(key) ?? 0) + n);
  const p = part(node.callFrame);
  parts.set(p, (parts.get(p) ?? 0) + n);
}
const perReq = (n) => ((n / total) * (profile.endTime - profile.startTime)) / load.requests;
console.log(`\n${load.requests} requests${mode === "first" ? " (the first)" : ` in ${SECONDS} s`}; ${total} samples; µs of wall time per request by part (idle included):`);
for (const [p, n] of [...parts].sort((a, b) => b[1] - a[1])) console.log(`  ${perReq(n).toFixed(1).padStart(7)} µs  ${((100 * n) / total).toFixed(1).padStart(5)} %  ${p}`);
console.log("\ntop functions by self time:");
for (const [k, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.BENCH_TOP ?? 40))) console.log(`  ${perReq(n).toFixed(2).padStart(7)} µs  ${((100 * n) / total).toFixed(1).padStart(5)} %  ${k}`);
process.exit(0);
