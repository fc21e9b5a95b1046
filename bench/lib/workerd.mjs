// workerd from npm, one worker per process, configured by a generated capnp file.
import { writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

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
  const config = `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    ${services.join(",\n    ")}
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
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
