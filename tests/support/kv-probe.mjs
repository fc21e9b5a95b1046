// A stand-in for the REVOCATIONS binding that forwards to a real (Miniflare)
// KV namespace and counts what the gateway asks of it, or fails on demand.
// The gateway reaches it over RPC with the same calls it makes on real KV:
// get([...keys], options) and put(key, value, options).
import { WorkerEntrypoint } from "cloudflare:workers";

const stats = { gets: 0, keysRead: 0, puts: 0 };
const failing = { reads: false, writes: false };

export class ProbedKv extends WorkerEntrypoint {
  async get(keys, options) {
    stats.gets += 1;
    stats.keysRead += Array.isArray(keys) ? keys.length : 1;
    if (failing.reads) throw new Error("injected KV outage (reads)");
    return this.env.STORE.get(keys, options);
  }
  async put(key, value, options) {
    stats.puts += 1;
    if (failing.writes) throw new Error("injected KV outage (writes)");
    return this.env.STORE.put(key, value, options);
  }
}

export default {
  async fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === "/stats") return Response.json(stats);
    if (pathname === "/reset") {
      Object.assign(stats, { gets: 0, keysRead: 0, puts: 0 });
      Object.assign(failing, { reads: false, writes: false });
      return Response.json(stats);
    }
    if (pathname === "/fail-reads") failing.reads = true;
    if (pathname === "/fail-writes") failing.writes = true;
    if (pathname.startsWith("/fail")) return Response.json(failing);
    return new Response("not found", { status: 404 });
  },
};
