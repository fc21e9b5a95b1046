// In-memory Workers KV service for workerd's `kvNamespace` binding.
//
// workerd implements the binding as HTTP requests to the bound service (the
// same protocol Miniflare's KV simulator answers, see
// node_modules/miniflare/dist/src/workers/kv/namespace.worker.js):
//   GET    /<key>[?urlencoded=true][&cache_ttl=N]   value, 404 if missing
//   POST   /bulk/get  {"keys":[...],"type":"text"|"json","withMetadata":bool,"cacheTtl":N}
//                     -> {"<key>": value | null, ...}
//   PUT    /<key>?[urlencoded=true][&expiration=S|&expiration_ttl=S]  body = value,
//                     CF-KV-Metadata header = JSON metadata
//   DELETE /<key>
//   GET    /?prefix=&key_count_limit=&cursor=                  list
// Answers come from a Map, nothing is written to disk: this is the stand-in for
// an edge-cached KV read, not Miniflare's SQLite simulator.
//
// Run as its own process (bench/run.mjs pins it to the load-generator core):
//   node bench/lib/kv-server.mjs '<json options>'
// options: {"seedCount": N, "seedPrefix": "v1:jti:seed-", "entries": {"key": "value", ...}}
// Prints {"port": N} on stdout once listening. Requests carrying the header
// `x-bench-admin` are bench controls (stats), never KV operations; workerd
// never sends that header.
import http from "node:http";

const options = JSON.parse(process.argv[2] ?? "{}");
const store = new Map(); // key -> { value: string, expiration?: number, metadata?: string }
const stats = { bulkGet: 0, bulkKeys: 0, get: 0, put: 0, delete: 0, list: 0, other: 0 };

const seededAt = Math.floor(Date.now() / 1000);
const seedValue = JSON.stringify({ at: seededAt, by: "logout" });
const seedCount = options.seedCount ?? 0;
const seedPrefix = options.seedPrefix ?? "v1:jti:seed-";
for (let i = 0; i < seedCount; i++) store.set(seedPrefix + i, { value: seedValue });
for (const [key, value] of Object.entries(options.entries ?? {})) store.set(key, { value });

const now = () => Math.floor(Date.now() / 1000);

function live(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiration !== undefined && entry.expiration <= now()) {
    store.delete(key);
    return undefined;
  }
  return entry;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

function keyOf(url) {
  const raw = url.pathname.slice(1);
  // workerd sends `?urlencoded=true` and a percent-encoded key; older
  // versions sent the key raw. Decode only when told to.
  return url.searchParams.get("urlencoded")?.toLowerCase() === "true" ? decodeURIComponent(raw) : raw;
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, "http://kv");
    if (req.headers["x-bench-admin"]) {
      if (url.pathname === "/stats") return send(res, 200, JSON.stringify({ ...stats, size: store.size }));
      if (url.pathname === "/reset") {
        for (const k of Object.keys(stats)) stats[k] = 0;
        return send(res, 200, "{}");
      }
      return send(res, 404, "no such control");
    }
    if (req.method === "POST" && url.pathname === "/bulk/get") {
      stats.bulkGet++;
      const body = JSON.parse(await readBody(req));
      const keys = body.keys;
      if (!Array.isArray(keys) || keys.length < 1 || keys.length > 100) {
        return send(res, 400, "You can request between 1 and 100 keys");
      }
      stats.bulkKeys += keys.length;
      const type = body.type ?? "text";
      if (type !== "text" && type !== "json") return send(res, 400, `"${type}" is not a valid type`);
      const out = {};
      for (const key of keys) {
        const entry = live(key);
        let value = entry ? entry.value : null;
        if (value !== null && type === "json") value = JSON.parse(value);
        out[key] = value !== null && body.withMetadata
          ? { value, metadata: entry.metadata ? JSON.parse(entry.metadata) : null }
          : value;
      }
      return send(res, 200, JSON.stringify(out), { "content-type": "application/json" });
    }
    if (req.method === "GET" && url.pathname === "/") {
      stats.list++;
      const prefix = url.searchParams.get("prefix") ?? "";
      const limit = Number(url.searchParams.get("key_count_limit") ?? 1000);
      const keys = [];
      for (const [name, entry] of store) {
        if (!name.startsWith(prefix) || !live(name)) continue;
        keys.push({ name, expiration: entry.expiration, metadata: entry.metadata });
        if (keys.length >= limit) break;
      }
      return send(res, 200, JSON.stringify({ keys, list_complete: true, cacheStatus: null }));
    }
    const key = keyOf(url);
    if (req.method === "GET") {
      stats.get++;
      const entry = live(key);
      if (!entry) return send(res, 404, "Not Found");
      const headers = {};
      if (entry.expiration !== undefined) headers["CF-Expiration"] = String(entry.expiration);
      if (entry.metadata !== undefined) headers["CF-KV-Metadata"] = entry.metadata;
      return send(res, 200, entry.value, headers);
    }
    if (req.method === "PUT") {
      stats.put++;
      const value = await readBody(req);
      const entry = { value };
      const ttl = url.searchParams.get("expiration_ttl");
      const exp = url.searchParams.get("expiration");
      if (ttl !== null) entry.expiration = now() + parseInt(ttl, 10);
      else if (exp !== null) entry.expiration = parseInt(exp, 10);
      if (req.headers["cf-kv-metadata"]) entry.metadata = req.headers["cf-kv-metadata"];
      store.set(key, entry);
      return send(res, 200, "");
    }
    if (req.method === "DELETE") {
      stats.delete++;
      store.delete(key);
      return send(res, 200, "");
    }
    stats.other++;
    return send(res, 405, "Method Not Allowed");
  } catch (error) {
    send(res, 500, String(error?.message ?? error));
  }
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port, size: store.size }) + "\n");
});
