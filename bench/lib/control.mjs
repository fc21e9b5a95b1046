// Bench controls of the KV service and the origin: requests with the header
// `x-bench-admin` (see lib/kv-server.mjs and lib/origin.mjs), never seen by a worker.
import { request, sleep } from "./proc.mjs";

/** `what` ("stats" or "reset") of the service at `url`; its JSON answer. */
export const benchControl = (url, what) => request(`${url}/${what}`, { headers: { "x-bench-admin": "1" } }).then((r) => JSON.parse(r.body));

/** benchControl for a started kv-server.mjs handle with `port` set. */
export const kvControl = (kv, what) => benchControl(`http://127.0.0.1:${kv.port}`, what);

/** Waits until no KV request has arrived for 200 ms (earlier traffic drained), then zeroes the counters. */
export async function kvQuiet(kv) {
  let last = JSON.stringify(await kvControl(kv, "stats"));
  for (let i = 0; i < 100; i++) {
    await sleep(200);
    const now = JSON.stringify(await kvControl(kv, "stats"));
    if (now === last) break;
    last = now;
  }
  await kvControl(kv, "reset");
}
