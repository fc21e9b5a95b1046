// wrk with a Lua script rotating through a token pool; results as JSON.
import { writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { run } from "./proc.mjs";

const lua = (s) => `"${String(s).replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;

/**
 * Writes the Lua script for one token pool. Requests are formatted once in
 * init(); each request carries a client-sent X-Auth-Subject that the gateway
 * must strip. done() prints one JSON line.
 */
export function writeScript(dir, name, tokens, pathAndQuery = "/api/items?page=1") {
  const file = path.join(dir, `${name}.lua`);
  writeFileSync(
    file,
    `local tokens = { ${tokens.map(lua).join(",\n  ")} }
local reqs = {}
local i = 0
init = function(args)
  for k = 1, #tokens do
    reqs[k] = wrk.format("GET", ${lua(pathAndQuery)}, {
      ["Host"] = "gateway.bench.test",
      ["Authorization"] = "Bearer " .. tokens[k],
      ["X-Auth-Subject"] = "spoofed-by-client",
      ["Accept"] = "application/json",
    })
  end
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%d,"durationUs":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50Us":%d,"p99Us":%d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`,
  );
  return file;
}

/** Exits (status 2) with an install hint when wrk is not installed. */
export function requireWrk() {
  if (spawnSync("wrk", ["-v"]).error) {
    console.error("wrk is not installed (Debian/Ubuntu: apt-get install -y wrk)");
    process.exit(2);
  }
}

/** Runs wrk pinned to `cpu`; returns the parsed JSON from done(). */
export async function wrk({ url, script, seconds, connections = 8, threads = 1, cpu }) {
  const { code, stdout, stderr } = await run("wrk", [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, "--timeout", "5s", "-s", script, url], { cpu });
  const line = stdout.split("\n").find((l) => l.startsWith("BENCHJSON "));
  if (code !== 0 || !line) throw new Error(`wrk failed (${code}): ${stderr}\n${stdout}`);
  return JSON.parse(line.slice("BENCHJSON ".length));
}
