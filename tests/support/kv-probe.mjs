// A stand-in for the REVOCATIONS binding that forwards to a real (Miniflare)
// KV namespace and counts what the gateway asks of it, or fails on demand.
// The gateway reaches it over RPC with the same calls it makes on real KV:
// get([...keys], options) and put(key, value, options).
//
// Fault modes (GET https://probe.test/<mode>; /reset clears them all):
//   /fail-reads, /fail-writes   the call throws (a KV error)
//   /hang-reads, /hang-writes   the call never answers (a hanging namespace)
//   /stale-reads                reads answer "nothing stored" while writes go
//                               through: another location, before KV's
//                               propagation reached it
// Set-up (POST https://probe.test/fill, JSON {prefix, count, value,
// expiration}): writes keys prefix0 .. prefix<count-1> into the namespace
// from inside workerd, uncounted. That is about a third of
// the CPU that as many puts from Node cost (one round trip each).
import { WorkerEntrypoint } from "cloudflare:workers";

const stats = { gets: 0, keysRead: 0, puts: 0 };
const failing = { reads: false, writes: false };
const hanging = { reads: false, writes: false };
const stale = { reads: false };
// A pending timer, not a bare pending promise: workerd cancels an
// invocation that waits on nothing at all ("will never generate a
// response"), which would turn a hang into a quick failure.
const never = () => new Promise((_, reject) => setTimeout(() => reject(new Error("injected KV hang ended")), 10 * 60_000));

export class ProbedKv extends WorkerEntrypoint {
  async get(keys, options) {
    stats.gets += 1;
    stats.keysRead += Array.isArray(keys) ? keys.length : 1;
    if (failing.reads) throw new Error("injected KV outage (reads)");
    if (hanging.reads) return never();
    if (stale.reads) return Array.isArray(keys) ? new Map(keys.map((key) => [key, null])) : null;
    return this.env.STORE.get(keys, options);
  }
  async put(key, value, options) {
    stats.puts += 1;
    if (failing.writes) throw new Error("injected KV outage (writes)");
    if (hanging.writes) return never();
    return this.env.STORE.put(key, value, options);
  }
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === "/stats") return Response.json(stats);
    if (pathname === "/fill" && request.method === "POST") {
      const { prefix, count, value, expiration } = await request.json();
      for (let i = 0; i < count; i += 500) {
        const batch = Array.from({ length: Math.min(500, count - i) }, (_, j) => `${prefix}${i + j}`);
        await Promise.all(batch.map((key) => env.STORE.put(key, value, { expiration })));
      }
      return Response.json({ written: count });
    }
    if (pathname === "/reset") {
      Object.assign(stats, { gets: 0, keysRead: 0, puts: 0 });
      Object.assign(failing, { reads: false, writes: false });
      Object.assign(hanging, { reads: false, writes: false });
      stale.reads = false;
      return Response.json(stats);
    }
    if (pathname === "/fail-reads") failing.reads = true;
    if (pathname === "/fail-writes") failing.writes = true;
    if (pathname.startsWith("/fail")) return Response.json(failing);
    if (pathname === "/hang-reads") hanging.reads = true;
    if (pathname === "/hang-writes") hanging.writes = true;
    if (pathname.startsWith("/hang")) return Response.json(hanging);
    if (pathname === "/stale-reads") {
      stale.reads = true;
      return Response.json(stale);
    }
    return new Response("not found", { status: 404 });
  },
};
