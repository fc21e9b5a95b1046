// `npm run bench`: what verification and the revocation check add to a
// request, measured on the release build in Miniflare (workerd).
//
// Three kinds of request go through the same gateway to the same origin,
// interleaved so that machine noise hits them alike:
//   public     forwarded without a token (routing + forwarding only)
//   verified   HS256 token verified, one KV read, forwarded
//   refused    HS256 token with a bad signature, answered 401 by the gateway
// The figures are wall-clock per request, including Miniflare's own HTTP
// hop; compare them with each other, not with production latency.
import { startHarness, bearer } from "../tests/support/harness.mjs";
import { mint, OTHER_SECRET } from "../tests/support/tokens.mjs";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2000);
const h = await startHarness();
const good = await mint({}, h.config);
const bad = await mint({ secret: OTHER_SECRET }, h.config);
const kinds = {
  public: () => h.fetch("/demo/bench"),
  verified: () => h.fetch("/api/bench", { headers: bearer(good) }),
  refused: () => h.fetch("/api/bench", { headers: bearer(bad) }),
};
const samples = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]));

for (let i = 0; i < 200; i++) for (const run of Object.values(kinds)) await (await run()).arrayBuffer();
for (let i = 0; i < ROUNDS; i++) {
  for (const [kind, run] of Object.entries(kinds)) {
    const start = process.hrtime.bigint();
    const response = await run();
    await response.arrayBuffer();
    samples[kind].push(Number(process.hrtime.bigint() - start) / 1000);
  }
  h.takeReceived();
}
await h.close();

const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p90 = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length * 0.9)];
const base = median(samples.public);
console.log(`rounds: ${ROUNDS} per kind, wasm: build/index_bg.wasm`);
console.log("kind       median µs   p90 µs   vs public");
for (const [kind, xs] of Object.entries(samples)) {
  const m = median(xs);
  console.log(`${kind.padEnd(10)} ${m.toFixed(0).padStart(9)} ${p90(xs).toFixed(0).padStart(8)}   ${(m / base).toFixed(2)}x`);
}
