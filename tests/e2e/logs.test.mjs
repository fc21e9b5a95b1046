// What the gateway writes to its logs: never a token, never a query string,
// not even inside error text the runtime wrote; and one structured line per
// refused request, with its error code.
//
// The workers here are the release build, built by tests/support/harness.mjs's helpers,
// in a Miniflare of their own whose workerd output (the workers' console,
// stdout and stderr) is captured with `handleStructuredLogs` (Miniflare 5's
// name for what Miniflare 3 called `handleRuntimeStdio`).
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { startOrigin } from "../../demo/origin.mjs";
import { bearer, kvProbeWorker, probedGatewayWorker, wranglerOptions } from "../support/harness.mjs";
import { closedPortUrl } from "../support/closed-port.mjs";
import { mint, SECRET, OTHER_SECRET, ADMIN_TOKEN } from "../support/tokens.mjs";

const SECRET_PARAM = "s3cr3t";

/** Every line workerd wrote, as { level, message }. */
const captured = [];
let mf;
let origin;
let config;
let live; // gateway in front of a live origin, KV through kv-probe
let deadOrigin; // gateway in front of a closed port, KV through kv-probe
let probe;
let limited; // gateway allowed three refusal lines per second (REFUSAL_LOG_PER_SECOND)
/** Every token a request carried; none may show up in a log line. */
const tokens = new Set();

before(async () => {
  origin = await startOrigin();
  const wrangler = await wranglerOptions();
  config = { ...wrangler.bindings, ORIGIN_URL: origin.url, JWT_SECRET: SECRET, ADMIN_TOKEN };
  mf = new Miniflare(
    convertV4MiniflareOptions({
      handleStructuredLogs: ({ level, message }) => captured.push({ level, message }),
      workers: [
        probedGatewayWorker(wrangler, "gw-live", config),
        probedGatewayWorker(wrangler, "gw-dead-origin", { ...config, ORIGIN_URL: await closedPortUrl() }),
        probedGatewayWorker(wrangler, "gw-limited", { ...config, REFUSAL_LOG_PER_SECOND: "3" }),
        kvProbeWorker(wrangler),
      ],
    }),
  );
  await mf.ready;
  const call = (worker) => (pathname, init = {}) => worker.fetch(`https://gateway.test${pathname}`, { redirect: "manual", ...init });
  live = call(await mf.getWorker("gw-live"));
  deadOrigin = call(await mf.getWorker("gw-dead-origin"));
  limited = call(await mf.getWorker("gw-limited"));
  const probeWorker = await mf.getWorker("kv-probe");
  probe = async (action) => (await probeWorker.fetch(`https://probe.test/${action}`)).json();
});
after(async () => {
  await mf?.dispose();
  await origin?.close();
});
beforeEach(async () => probe("reset"));

async function token(options = {}) {
  const minted = await mint(options, config);
  tokens.add(minted);
  return minted;
}

/** A query string that carries the token and a secret. */
const leakyQuery = (jwt) => `?access_token=${jwt}&secret=${SECRET_PARAM}&password=hunter2`;

/**
 * Lines captured since `mark`, once `done(lines)` holds (or after 15 s: workerd's
 * output reaches this process through a pipe, late on a loaded machine).
 */
async function linesSince(mark, done = (lines) => lines.length > 0) {
  const since = () => captured.slice(mark).map((l) => l.message);
  const deadline = Date.now() + 15_000;
  while (!done(since()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  // workerd writes asynchronously: give a straggler a moment.
  await new Promise((r) => setTimeout(r, 150));
  return since();
}

/** The structured `{"tokengate":"refused",...}` lines among `lines`, parsed. */
function refusedLines(lines) {
  const found = [];
  for (const line of lines) {
    const start = line.indexOf("{");
    if (start < 0 || !line.includes('"tokengate"')) continue;
    try {
      const parsed = JSON.parse(line.slice(start));
      if (parsed.tokengate === "refused") found.push({ line, parsed });
    } catch {
      // not a JSON line
    }
  }
  return found;
}

async function send(fetcher, pathname, init) {
  const response = await fetcher(pathname, init);
  const text = await response.text();
  return { status: response.status, error: response.status >= 400 ? JSON.parse(text).error : undefined };
}

test("an unreachable origin: the runtime's error is logged without the query string or the token", async () => {
  const jwt = await token();
  const mark = captured.length;
  const verified = await send(deadOrigin, `/api/orders${leakyQuery(jwt)}`, {
    headers: { ...bearer(jwt), cookie: `${config.TOKEN_COOKIE}=${jwt}` },
  });
  assert.deepEqual(verified, { status: 502, error: "origin_unreachable" });
  const publicPath = await send(deadOrigin, `/demo/page${leakyQuery(jwt)}`, { headers: bearer(jwt) });
  assert.deepEqual(publicPath, { status: 502, error: "origin_unreachable" });
  // Each 502 logs "origin unreachable", then its refused line: wait for both
  // refused lines too, so that none arrives during the next test (which
  // counts refused lines).
  const lines = await linesSince(
    mark,
    (l) => l.filter((m) => m.includes("origin unreachable")).length >= 2 && refusedLines(l).length >= 2,
  );
  assert.equal(lines.filter((m) => m.includes("origin unreachable")).length, 2, `the failure is logged: ${lines.join("\n")}`);
});

test("a refused token: one structured line with the error code, without the token", async () => {
  const cases = [
    ["token_expired", await token({ claims: { exp: Math.floor(Date.now() / 1000) - 3600, iat: Math.floor(Date.now() / 1000) - 7200 } })],
    ["signature_invalid", await token({ secret: OTHER_SECRET })],
    ["token_malformed", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9"], // two segments
  ];
  tokens.add(cases[2][1]);
  for (const [code, jwt] of cases) {
    const mark = captured.length;
    const outcome = await send(live, `/api/resource${leakyQuery(jwt)}`, { headers: bearer(jwt) });
    assert.deepEqual(outcome, { status: 401, error: code });
    const lines = await linesSince(mark, (l) => refusedLines(l).length > 0);
    const refused = refusedLines(lines);
    assert.equal(refused.length, 1, `${code}: one "tokengate":"refused" JSON line; got:\n${lines.join("\n") || "(nothing logged)"}`);
    assert.ok(refused[0].line.includes('"tokengate":"refused"'), refused[0].line);
    assert.ok(Object.values(refused[0].parsed).includes(code), `${code} in ${refused[0].line}`);
  }
});

test("a flood of refusals: at most REFUSAL_LOG_PER_SECOND lines a second, and one line counting the rest", async () => {
  const forged = await token({ secret: OTHER_SECRET });
  const mark = captured.length;
  const flood = 12;
  const startedAt = Date.now();
  const answers = await Promise.all(
    Array.from({ length: flood }, (_, i) => send(limited, `/flood/${i}`, { headers: bearer(forged) })),
  );
  // The seconds the flood touched (the worker's clock is this machine's).
  const seconds = Math.floor(Date.now() / 1000) - Math.floor(startedAt / 1000) + 1;
  for (const answer of answers) assert.deepEqual(answer, { status: 401, error: "signature_invalid" }, "every request is still refused");
  // A request in a later second reports the count (here a forwarded one).
  await new Promise((r) => setTimeout(r, 1_100));
  const valid = await token();
  assert.equal((await limited("/api/after-flood", { headers: bearer(valid) })).status, 200);
  const counted = (lines) => lines
    .filter((m) => m.includes('"refusals_not_logged"'))
    .map((m) => JSON.parse(m.slice(m.indexOf("{"))));
  const logged = (lines) => refusedLines(lines).filter((r) => r.parsed.path.startsWith("/flood/"));
  const lines = await linesSince(mark, (l) => logged(l).length + counted(l).reduce((n, c) => n + c.count, 0) >= flood);
  const written = logged(lines).length;
  const summaries = counted(lines);
  // Three lines in each second the flood touched, at most.
  assert.ok(written >= 3 && written <= 3 * seconds, `3 to ${3 * seconds} refusal lines over ${seconds} s, got ${written}:\n${lines.join("\n")}`);
  if (written < flood) assert.ok(summaries.length >= 1, `a refusals_not_logged line:\n${lines.join("\n")}`);
  for (const s of summaries) assert.equal(s.limit_per_second, 3);
  assert.equal(written + summaries.reduce((n, s) => n + s.count, 0), flood, "every refusal is either logged or counted");
});

test("a KV outage on a request: logged without the query string or the token", async () => {
  const jwt = await token();
  await probe("fail-reads");
  const mark = captured.length;
  assert.deepEqual(await send(live, `/api/resource${leakyQuery(jwt)}`, { headers: bearer(jwt) }), {
    status: 503,
    error: "revocation_unavailable",
  });
  const lines = await linesSince(mark, (l) => l.some((m) => m.includes("KV bulk get failed")));
  assert.ok(lines.some((m) => m.includes("KV bulk get failed")), `the outage is logged: ${lines.join("\n")}`);
});

test("a password change whose cut-off cannot be recorded: logged without the query string, the token or the body", async () => {
  const jwt = await token({ sub: `logs-${Date.now()}` });
  await probe("fail-writes");
  const mark = captured.length;
  const outcome = await send(live, `${config.PASSWORD_CHANGE_PATH}${leakyQuery(jwt)}`, {
    method: "POST",
    headers: { ...bearer(jwt), "content-type": "application/json" },
    body: JSON.stringify({ old: "hunter2", new: SECRET_PARAM }),
  });
  assert.deepEqual(outcome, { status: 503, error: "sessions_not_revoked" });
  const lines = await linesSince(mark, (l) => l.some((m) => m.includes("could not be recorded")));
  assert.ok(lines.some((m) => m.includes("could not be recorded")), `the failure is logged: ${lines.join("\n")}`);
});

test("logout and admin revoke failing to write: logged without the token", async () => {
  const jwt = await token();
  await probe("fail-writes");
  const mark = captured.length;
  // Both at once: each spends 3.3 s in write retries.
  const [logout, admin] = await Promise.all([
    send(live, `/auth/logout${leakyQuery(jwt)}`, { method: "POST", headers: bearer(jwt) }),
    send(live, "/_admin/revoke", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ token: jwt }),
    }),
  ]);
  assert.deepEqual(logout, { status: 503, error: "revocation_unavailable" });
  assert.deepEqual(admin, { status: 503, error: "revocation_unavailable" });
  const lines = await linesSince(mark, (l) => l.filter((m) => m.includes("KV put failed")).length >= 6);
  assert.ok(lines.some((m) => m.includes("KV put failed")), `the failures are logged: ${lines.join("\n")}`);
});

// Last: checks everything the tests above made the gateway write.
test("nothing captured carries a token, a JWT-looking string, a query string or a secret", async () => {
  assert.ok(captured.length > 0, "the capture works");
  const all = captured.map((l) => l.message).join("\n");
  const forbidden = [
    ["eyJ (anything JWT-looking)", "eyJ"],
    [SECRET_PARAM, SECRET_PARAM],
    ["?access_token", "?access_token"],
    ["access_token=", "access_token="],
    ["password=hunter2", "hunter2"],
    ["JWT_SECRET", SECRET],
    ["ADMIN_TOKEN", ADMIN_TOKEN],
  ];
  for (const jwt of tokens) {
    forbidden.push(["a token", jwt]);
    // Each segment alone, too: a log line may have cut the token apart.
    for (const segment of jwt.split(".")) if (segment.length >= 16) forbidden.push(["a token segment", segment]);
  }
  for (const [what, needle] of forbidden) {
    const at = all.indexOf(needle);
    assert.equal(at, -1, `${what} in the logs: …${all.slice(Math.max(0, at - 120), at + 120)}…`);
  }
});
