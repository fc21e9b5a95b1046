// workerd from npm, one worker per process, configured by a generated capnp file.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** wrangler.toml's compatibility_date, so workerd runs the worker as deployed. */
export function wranglerCompatibilityDate() {
  return (readFileSync(path.join(root, "wrangler.toml"), "utf8").match(/^compatibility_date\s*=\s*"([^"]+)"/m) ?? [])[1] ?? "2026-11-01";
}

/**
 * A build's modules: every .js/.mjs/.wasm at the top of buildDir, plus whatever
 * they import (relative imports, followed recursively, e.g. wasm-bindgen
 * snippets/). Subdirectories nothing imports (wrangler dry-run output, build
 * staging) are not part of the worker and are left out. The files are copied
 * to snapDir (emptied first), so a run uses the same bytes even if buildDir is
 * rebuilt meanwhile. index.js comes first (the main module).
 * An imported file that is missing: missing "throw" throws, "null" returns null (mid-rebuild).
 * Returns [{ name, type, file (the copy), source, mtime }].
 */
export function buildModules(buildDir, snapDir, { missing = "throw" } = {}) {
  const typeOf = (f) => (/\.m?js$/.test(f) ? "esModule" : /\.wasm$/.test(f) ? "wasm" : null);
  const queue = readdirSync(buildDir, { withFileTypes: true })
    .filter((e) => e.isFile() && typeOf(e.name) && !e.name.startsWith("."))
    .map((e) => path.join(buildDir, e.name));
  const seen = new Set();
  const importRe = /(?:\bimport|\bexport)\s*(?:[\w*${}\s,]*?\bfrom\s*)?["'](\.{1,2}\/[^"']+)["']|\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;
  while (queue.length) {
    const file = queue.shift();
    if (seen.has(file)) continue;
    if (!existsSync(file)) {
      if (missing === "null") return null;
      throw new Error(`${path.relative(root, file)} is imported by the build but missing`);
    }
    seen.add(file);
    if (typeOf(file) !== "esModule") continue;
    for (const m of readFileSync(file, "utf8").matchAll(importRe)) queue.push(path.resolve(path.dirname(file), m[1] ?? m[2]));
  }
  rmSync(snapDir, { recursive: true, force: true });
  const mods = [...seen].filter(typeOf).map((f) => {
    const name = path.relative(buildDir, f).split(path.sep).join("/");
    const copy = path.join(snapDir, name);
    mkdirSync(path.dirname(copy), { recursive: true });
    copyFileSync(f, copy);
    return { name, type: typeOf(f), file: copy, source: f, mtime: statSync(f).mtime.toISOString() };
  });
  mods.sort((a, b) => (a.name === "index.js" ? -1 : b.name === "index.js" ? 1 : a.name.localeCompare(b.name)));
  return mods;
}

/** Path of the native workerd binary that npm installed (not a wrapper script). */
export function workerdBinary() {
  // The `workerd` package's bin is the native executable, copied there by its
  // install script; its main module exports the same path.
  const pkgDir = path.dirname(require.resolve("workerd/package.json"));
  return path.join(pkgDir, "bin", "workerd");
}

/** A capnp text literal. Only printable ASCII is accepted, so JSON's escapes are capnp's. */
function text(value) {
  const s = String(value);
  if (!/^[\x20-\x7e]*$/.test(s)) throw new Error(`non-ASCII or control character in a capnp text binding: ${s.slice(0, 40)}`);
  return JSON.stringify(s);
}

/**
 * Writes a workerd config and returns its path.
 * modules: [{ name, type: "esModule" | "wasm", file }] (first = main module)
 * vars: { NAME: "text" }; kvPort: the KV service, bound as REVOCATIONS (or null);
 * port: the socket the worker listens on.
 */
export function writeConfig({ dir, name, modules, vars = {}, kvPort, port, compatibilityDate, durableObjects = [] }) {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.capnp`);
  const rel = (p) => path.relative(dir, p);
  const mods = modules
    .map((m) => `(name = ${text(m.name)}, ${m.type} = embed ${text(rel(m.file))})`)
    .join(",\n      ");
  const bindings = Object.entries(vars).map(([k, v]) => `(name = ${text(k)}, text = ${text(v)})`);
  if (kvPort) bindings.push(`(name = "REVOCATIONS", kvNamespace = "kv")`);
  // Durable Object bindings (in-memory storage), e.g. [{ binding: "SESSIONS", className: "UserSessions" }].
  for (const d of durableObjects) bindings.push(`(name = ${text(d.binding)}, durableObjectNamespace = (className = ${text(d.className)}))`);
  const doConfig = durableObjects.length
    ? `\n  durableObjectNamespaces = [ ${durableObjects.map((d) => `(className = ${text(d.className)}, uniqueKey = ${text(`bench-${d.className}`)})`).join(", ")} ],\n  durableObjectStorage = (inMemory = void),`
    : "";
  const services = [
    `(name = "main", worker = .mainWorker)`,
    // Outbound fetch() may reach loopback only (the local origin).
    `(name = "loopback", network = (allow = ["local"]))`,
  ];
  if (kvPort) services.push(`(name = "kv", external = (address = "127.0.0.1:${kvPort}", http = ()))`);
  // BENCH_V8_FLAGS (space-separated): V8 flags for diagnosis only, e.g. to see
  // what wasm compilation costs at cold start. Never set for reported figures.
  const flags = (process.env.BENCH_V8_FLAGS ?? "").split(" ").filter(Boolean);
  const v8Flags = flags.length ? `\n  v8Flags = [ ${flags.map(text).join(", ")} ],` : "";
  const config = `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    ${services.join(",\n    ")}
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],${v8Flags}
);

const mainWorker :Workerd.Worker = (
  modules = [
      ${mods}
  ],
  compatibilityDate = ${text(compatibilityDate)},
  bindings = [
    ${bindings.join(",\n    ")}
  ],
  globalOutbound = "loopback",${doConfig}
);
`;
  writeFileSync(file, config);
  return file;
}
