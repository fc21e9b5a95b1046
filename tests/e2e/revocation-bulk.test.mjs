// One KV round trip per request, however many revocations are stored: with
// 2,500 revoked IDs in the namespace (more than two pages of a KV list, so
// anything that listed or scanned would show) a request still makes one
// get() for the token ID and the user cut-off. (It was 10,000: the same
// proof, at four times the workerd time, which made it the suite's
// longest file.) A file of its own, with its own
// Miniflare and namespace, so that filling it (seconds of workerd time)
// runs beside the other files rather than before them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startHarness, bearer } from "../support/harness.mjs";
import { mint } from "../support/tokens.mjs";

const BULK = 2_500;

let h;
before(async () => (h = await startHarness()));
after(async () => h?.close());

async function status(fetcher, token, path = "/api/resource") {
  const response = await fetcher(path, { headers: bearer(token) });
  const text = await response.text();
  return { status: response.status, error: response.status === 200 ? undefined : JSON.parse(text).error };
}

test("with 2,500 revoked IDs in the namespace a request still costs one KV round trip", async () => {
  const expiration = Math.floor(Date.now() / 1000) + 3600;
  // Written from inside workerd into the namespace the gateways read (see kv-probe.mjs, /fill).
  const filled = await h.probe("fill", { prefix: "v1:jti:bulk-", count: BULK, value: '{"at":0,"by":"admin"}', expiration });
  assert.equal(filled.written, BULK);
  const listed = await h.kv.list({ prefix: "v1:jti:bulk-" });
  assert.equal(listed.keys.length, 1000, "a first page of 1,000");
  assert.equal(listed.list_complete, false, "and more");
  assert.ok(await h.kv.get(`v1:jti:bulk-${BULK - 1}`), "the last one too");
  const revoked = await mint({ claims: { jti: `bulk-${BULK - 1}` } }, h.config);
  const live = await mint({ claims: { jti: "not-in-the-list" } }, h.config);

  await h.probe("reset");
  assert.deepEqual(await status(h.probed, revoked), { status: 401, error: "token_revoked" });
  assert.equal((await status(h.probed, live)).status, 200);
  const stats = await h.probe("stats");
  assert.equal(stats.gets, 2, "one get() per request");
  assert.equal(stats.keysRead, 4, "each get() covers the token ID and the user cut-off");
  assert.equal(stats.puts, 0);
});
