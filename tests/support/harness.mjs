// Runs the real release build (build/index.js + wasm) in Miniflare, with the
// vars and KV bindings read from wrangler.toml, in front of a real origin
// process that records what it received.
//
// One Miniflare (one workerd) holds several workers:
//   object-probe     a SESSIONS class whose every call fails (objects unreachable)
//   gateway          wrangler.toml as is, plus test secrets
//   gateway-probed   the same, but REVOCATIONS goes through kv-probe, which
//                    counts round trips and can simulate a KV outage
//   gateway-no-admin the same without ADMIN_TOKEN
//   gateway-broken   an invalid setting, to see `misconfigured`
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { startOrigin } from "../../demo/origin.mjs";
import { SECRET, ADMIN_TOKEN } from "./tokens.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * wrangler.toml as Miniflare worker options (bindings, KV, Durable Objects,
 * compatibility), read by wrangler itself. Importing wrangler costs every
 * test process about 1.5 s of CPU, so its answer is kept in
 * build/wrangler-options.json, keyed by wrangler.toml's bytes and wrangler's
 * version, and read from there while neither changed.
 */
export async function wranglerOptions() {
  const toml = path.join(root, "wrangler.toml");
  const { version } = JSON.parse(readFileSync(path.join(root, "node_modules/wrangler/package.json"), "utf8"));
  const key = createHash("sha256").update(`wrangler ${version}\n`).update(readFileSync(toml)).digest("hex");
  const cache = path.join(root, "build/wrangler-options.json");
  try {
    const kept = JSON.parse(readFileSync(cache, "utf8"));
    if (kept.key === key) return kept.workerOptions;
  } catch {
    // not written yet, or unreadable: ask wrangler
  }
  const { unstable_getMiniflareWorkerOptions } = await import("wrangler");
  const { workerOptions } = unstable_getMiniflareWorkerOptions(toml);
  mkdirSync(path.dirname(cache), { recursive: true });
  const partial = `${cache}.${process.pid}.partial`;
  writeFileSync(partial, JSON.stringify({ key, workerOptions }));
  renameSync(partial, cache);
  return JSON.parse(readFileSync(cache, "utf8")).workerOptions;
}

/**
 * A gateway worker running the release build exactly as `wrangler deploy`
 * would upload it, with wrangler.toml's KV and Durable Object bindings (each
 * gateway worker gets its own objects, of its own class); `extra` overrides.
 */
export function gatewayWorker(wrangler, name, bindings, extra = {}) {
  return {
    name,
    modules: [
      { type: "ESModule", path: path.join(root, "build/index.js") },
      { type: "CompiledWasm", path: path.join(root, "build/index_bg.wasm") },
    ],
    compatibilityDate: wrangler.compatibilityDate,
    compatibilityFlags: wrangler.compatibilityFlags,
    bindings,
    kvNamespaces: wrangler.kvNamespaces,
    durableObjects: wrangler.durableObjects,
    ...extra,
  };
}

/** A gateway worker whose REVOCATIONS goes through kv-probe (counted, failing on demand). */
export function probedGatewayWorker(wrangler, name, bindings) {
  const [kvBinding] = Object.keys(wrangler.kvNamespaces);
  const { kvNamespaces: _real, ...worker } = gatewayWorker(wrangler, name, bindings);
  return { ...worker, serviceBindings: { [kvBinding]: { name: "kv-probe", entrypoint: "ProbedKv" } } };
}

/** kv-probe, reading and writing the very namespace the gateways use. */
export function kvProbeWorker(wrangler) {
  const [kvBinding] = Object.keys(wrangler.kvNamespaces);
  return {
    name: "kv-probe",
    modules: true,
    scriptPath: path.join(root, "tests/support/kv-probe.mjs"),
    compatibilityDate: wrangler.compatibilityDate,
    kvNamespaces: { STORE: wrangler.kvNamespaces[kvBinding] },
  };
}

/** `base` with `overrides` applied; an override of `undefined` removes that setting. */
function overridden(base, overrides) {
  const bindings = { ...base, ...overrides };
  for (const [k, v] of Object.entries(bindings)) if (v === undefined) delete bindings[k];
  return bindings;
}

/**
 * `gateways`: extra gateway workers, name -> settings merged over the main
 * gateway's (a value of `undefined` removes the setting). Reach them with
 * `h.at(name)(path, init)`.
 * `probedGateways`: the same, but their REVOCATIONS goes through kv-probe
 * (like gateway-probed: counted, and failing on demand with `h.probe(...)`).
 * `unreachableObjectGateways`: the same as `gateways`, but their SESSIONS
 * binding points at object-probe, whose objects throw on every call.
 */
export async function startHarness({ gateways = {}, probedGateways = {}, unreachableObjectGateways = {} } = {}) {
  const origin = await startOrigin();
  const wrangler = await wranglerOptions();
  const config = { ...wrangler.bindings, ORIGIN_URL: origin.url, JWT_SECRET: SECRET, ADMIN_TOKEN };
  const [kvBinding] = Object.keys(wrangler.kvNamespaces);
  const [objectBinding] = Object.keys(wrangler.durableObjects);
  const { ADMIN_TOKEN: _omit, ...noAdmin } = config;
  const unreachableObjects = {
    durableObjects: { [objectBinding]: { className: "UnreachableSessions", scriptName: "object-probe" } },
  };

  // Miniflare 5 takes a new option shape; wrangler still speaks the v4 one,
  // and Miniflare ships the converter wrangler itself uses.
  const mf = new Miniflare(convertV4MiniflareOptions({
    workers: [
      gatewayWorker(wrangler, "gateway", config),
      probedGatewayWorker(wrangler, "gateway-probed", config),
      gatewayWorker(wrangler, "gateway-no-admin", noAdmin),
      gatewayWorker(wrangler, "gateway-broken", { ...config, JWT_LEEWAY_SECONDS: "soon" }),
      ...Object.entries(gateways).map(([name, o]) => gatewayWorker(wrangler, name, overridden(config, o))),
      ...Object.entries(probedGateways).map(([name, o]) => probedGatewayWorker(wrangler, name, overridden(config, o))),
      ...Object.entries(unreachableObjectGateways).map(([name, o]) =>
        gatewayWorker(wrangler, name, overridden(config, o), unreachableObjects),
      ),
      {
        name: "object-probe",
        modules: true,
        scriptPath: path.join(root, "tests/support/object-probe.mjs"),
        compatibilityDate: wrangler.compatibilityDate,
        durableObjects: { UNUSED: "UnreachableSessions" },
      },
      kvProbeWorker(wrangler),
    ],
  }));
  await mf.ready;
  const workers = {};
  const extra = [...Object.keys(gateways), ...Object.keys(probedGateways), ...Object.keys(unreachableObjectGateways)];
  for (const name of ["gateway-probed", "gateway-no-admin", "gateway-broken", "kv-probe", ...extra]) {
    workers[name] = await mf.getWorker(name);
  }
  const kv = await mf.getKVNamespace(kvBinding, "gateway");

  const call = (worker) => (pathname, init = {}) => worker.fetch(`https://gateway.test${pathname}`, { redirect: "manual", ...init });
  return {
    config,
    origin,
    kv,
    /**
     * What `user`'s Durable Object (SESSIONS) of gateway worker `worker`
     * holds: [key, value, expiresAt] for every live entry.
     */
    async objectEntries(user, worker = "gateway") {
      const namespace = await mf.getDurableObjectNamespace("SESSIONS", worker);
      return namespace.get(namespace.idFromName(user)).entries();
    },
    /** Request through the main gateway. */
    fetch: (pathname, init = {}) => mf.dispatchFetch(`https://gateway.test${pathname}`, { redirect: "manual", ...init }),
    probed: call(workers["gateway-probed"]),
    noAdmin: call(workers["gateway-no-admin"]),
    broken: call(workers["gateway-broken"]),
    at: (name) => call(workers[name]),
    probe: async (action, body) =>
      (await workers["kv-probe"].fetch(`https://probe.test/${action}`, body && { method: "POST", body: JSON.stringify(body) })).json(),
    /** What the origin received since the last call. */
    takeReceived() {
      return origin.received.splice(0);
    },
    async close() {
      await mf.dispose();
      await origin.close();
    },
  };
}

export const bearer = (token) => ({ authorization: `Bearer ${token}` });

export async function json(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`expected JSON, got ${response.status}: ${text.slice(0, 300)}`);
  }
}
