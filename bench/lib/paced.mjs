// Open-loop load generator at a fixed rate (wrk has no fixed-rate mode and
// Debian has no wrk2). Requests are sent on a schedule whether or not earlier
// ones have answered (up to `connections` sockets in flight), so a slow server
// cannot slow the generator down.
//
//   node bench/lib/paced.mjs '<json>'   {url, tokens, rate, seconds, connections, warmSeconds}
//   (or tokensFile: a JSON array of tokens in a file, for pools too large for one argument)
// Prints one JSON line: {sent, ok, failed, statuses, latencyMs: {p50, p90, p99, max},
//   lagMs: {p50, p99, max}} where latency runs from the moment the request was written
// and lag is how late the send was against its schedule (timer granularity ~1 ms; a
// large lag would mean the generator could not keep up).
import http from "node:http";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

const { url, tokens: inline, tokensFile, rate, seconds, connections = 64, warmSeconds = 0.5, headers: extra = {} } = JSON.parse(process.argv[2]);
const tokens = tokensFile ? JSON.parse(readFileSync(tokensFile, "utf8")) : inline;
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: connections });

function quantile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function phase(durationS, record) {
  return new Promise((resolve) => {
    const total = Math.max(1, Math.round(rate * durationS));
    const interval = 1000 / rate;
    const lat = [], lag = [];
    const statuses = {};
    let sent = 0, done = 0, failed = 0, i = 0;
    const start = performance.now();
    const finish = () => {
      if (done === total) {
        lat.sort((a, b) => a - b);
        lag.sort((a, b) => a - b);
        resolve({ sent, ok: statuses["200"] ?? 0, failed, statuses,
          latencyMs: { p50: quantile(lat, 0.5), p90: quantile(lat, 0.9), p99: quantile(lat, 0.99), max: lat.at(-1) ?? null },
          lagMs: { p50: quantile(lag, 0.5), p99: quantile(lag, 0.99), max: lag.at(-1) ?? null } });
      }
    };
    const fire = (due) => {
      const token = tokens[i++ % tokens.length];
      const t0 = performance.now();
      if (record) lag.push(t0 - due);
      const req = http.request({ host: target.hostname, port: target.port, path: target.pathname + target.search,
        method: "GET", agent, headers: { authorization: `Bearer ${token}`, ...extra } }, (res) => {
        res.resume();
        res.on("end", () => {
          if (record) {
            lat.push(performance.now() - t0);
            statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
          }
          done++;
          finish();
        });
      });
      req.on("error", () => { failed++; done++; finish(); });
      req.end();
    };
    const tick = () => {
      const now = performance.now();
      while (sent < total && start + sent * interval <= now) {
        fire(start + sent * interval);
        sent++;
      }
      if (sent < total) setTimeout(tick, Math.max(0, start + sent * interval - performance.now()));
    };
    tick();
  });
}

if (warmSeconds > 0) await phase(warmSeconds, false);
const result = await phase(seconds, true);
process.stdout.write(JSON.stringify(result) + "\n");
agent.destroy();
