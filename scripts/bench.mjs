// `npm run bench` (needs the bench build, which `npm run bench` makes):
// 1. signature verification cost per algorithm inside the worker, the
//    pure-Rust-in-wasm path and the WebCrypto path side by side;
// 2. what a gateway request costs: public (forward only) vs verified
//    (HS256 + one KV read + forward) vs refused (bad signature, 401).
// workerd's clocks stand still while code runs, so everything is timed from
// outside: N verifications in one request minus an N = 0 request.
import { SignJWT, generateKeyPair, exportJWK } from "jose";
import { startHarness, bearer } from "../tests/support/harness.mjs";
import { mint, now, SECRET, OTHER_SECRET } from "../tests/support/tokens.mjs";

const ALGS = ["HS256", "HS384", "HS512", "RS256", "PS256", "ES256", "ES384", "EdDSA"];
const REPEATS = Number(process.env.BENCH_REPEATS ?? 7);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const tokens = {};
const jwks = [];
for (const alg of ALGS) {
  if (alg.startsWith("HS")) {
    tokens[alg] = await new SignJWT({ sub: "bench" }).setProtectedHeader({ alg }).setExpirationTime(now() + 3600).sign(new TextEncoder().encode(SECRET));
    continue;
  }
  const pair = await generateKeyPair(alg, { extractable: true, ...(alg === "EdDSA" ? { crv: "Ed25519" } : {}) });
  jwks.push({ ...(await exportJWK(pair.publicKey)), kid: alg, alg });
  tokens[alg] = await new SignJWT({ sub: "bench" }).setProtectedHeader({ alg, kid: alg }).setExpirationTime(now() + 3600).sign(pair.privateKey);
}
const h = await startHarness({ gateways: { "gw-bench": { JWT_JWKS: JSON.stringify({ keys: jwks }) } } });
const gw = h.at("gw-bench");

async function timed(alg, path, n) {
  const start = process.hrtime.bigint();
  const response = await gw("/_bench/verify", { method: "POST", headers: { ...bearer(tokens[alg]), "x-bench-path": path, "x-bench-n": String(n) } });
  const text = await response.text();
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (response.status !== 200) return { error: `${response.status} ${text.slice(0, 80)}` };
  if (Number(text) !== n) throw new Error(`${alg} ${path}: only ${text} of ${n} verifications succeeded`);
  return { ms };
}

async function perVerification(alg, path) {
  // The first requests pay for warm-up (JIT, key import): probe, then size N.
  const probes = [];
  for (let i = 0; i < 4; i++) {
    const probe = await timed(alg, path, 20);
    if (probe.error) return null;
    probes.push(probe.ms - (await timed(alg, path, 0)).ms);
  }
  const perCall = Math.max(Math.min(...probes) / 20, 0.0005);
  // Aim for ~60 ms of verification per request so request overhead is noise.
  const n = Math.max(20, Math.min(50000, Math.round(60 / perCall)));
  const full = [], empty = [];
  for (let i = 0; i < REPEATS; i++) {
    full.push((await timed(alg, path, n)).ms);
    empty.push((await timed(alg, path, 0)).ms);
  }
  return ((median(full) - median(empty)) * 1000) / n;
}

console.log("Signature verification inside the worker (µs per verification, median of", REPEATS, "runs)");
console.log("alg      wasm (pure Rust)   WebCrypto   wasm/WebCrypto");
for (const alg of ALGS) {
  const wasm = await perVerification(alg, "wasm");
  const web = await perVerification(alg, "webcrypto");
  const fmt = (v) => (v === null ? "n/a" : v.toFixed(1)).padStart(10);
  console.log(`${alg.padEnd(8)} ${fmt(wasm)}         ${fmt(web)}   ${wasm && web ? (wasm / web).toFixed(1) + "x" : ""}`);
}

// Whole requests through the main gateway (release code path, bench route unused).
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1000);
const good = await mint({}, h.config);
const bad = await mint({ secret: OTHER_SECRET }, h.config);
const kinds = {
  public: () => h.fetch("/demo/bench"),
  verified: () => h.fetch("/api/bench", { headers: bearer(good) }),
  refused: () => h.fetch("/api/bench", { headers: bearer(bad) }),
};
const samples = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]));
for (let i = 0; i < 100; i++) for (const run of Object.values(kinds)) await (await run()).arrayBuffer();
for (let i = 0; i < ROUNDS; i++) {
  for (const [kind, run] of Object.entries(kinds)) {
    const start = process.hrtime.bigint();
    await (await run()).arrayBuffer();
    samples[kind].push(Number(process.hrtime.bigint() - start) / 1000);
  }
  h.takeReceived();
}
await h.close();
console.log(`\nWhole requests through Miniflare (µs wall clock, ${ROUNDS} rounds, interleaved)`);
console.log("kind       median   vs public");
const base = median(samples.public);
for (const [kind, xs] of Object.entries(samples)) {
  console.log(`${kind.padEnd(10)} ${median(xs).toFixed(0).padStart(6)}   ${(median(xs) / base).toFixed(2)}x`);
}
