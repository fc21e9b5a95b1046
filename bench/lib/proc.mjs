// Child processes: pinned with taskset, tracked, all killed on exit or error.
import { spawn, spawnSync } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import { basename, join } from "node:path";

const children = new Set();
const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function killAll(signal = "SIGKILL") {
  for (const child of children) {
    try {
      process.kill(child.pid, signal);
    } catch {}
  }
  children.clear();
}

let installed = false;
/** Kill every child on any way out of this process. */
export function installCleanup() {
  if (installed) return;
  installed = true;
  process.on("exit", () => killAll());
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
  process.on("uncaughtException", (e) => {
    console.error(e);
    killAll();
    process.exit(1);
  });
  process.on("unhandledRejection", (e) => {
    console.error(e);
    killAll();
    process.exit(1);
  });
}

/** CPU list for taskset, e.g. "0". Null disables pinning (fewer than 2 CPUs). */
export function pinArgs(cpu, cmd, args) {
  if (cpu === null || cpu === undefined) return [cmd, args];
  return ["taskset", ["-c", String(cpu), cmd, ...args]];
}

/**
 * The bench's two cores: workerd on CPU 0; load generators, services and this
 * process on CPU 1 (pinned here, all its threads). With fewer than 2 CPUs or no
 * taskset nothing is pinned, both CPUs are null, and `warning` is printed.
 */
export function pinBench(warning) {
  const ncpu = os.availableParallelism?.() ?? os.cpus().length;
  const pinned = ncpu >= 2 && spawnSync("taskset", ["-V"]).status === 0;
  const workerCpu = pinned ? 0 : null;
  const loadCpu = pinned ? 1 : null;
  if (pinned) spawnSync("taskset", ["-a", "-p", "-c", String(loadCpu), String(process.pid)], { stdio: "ignore" });
  else console.warn(warning);
  return { ncpu, pinned, workerCpu, loadCpu };
}

/**
 * Spawns a pinned child. With `readyJson`, resolves once the child printed a
 * JSON line on stdout (its port, ...); output after that is discarded.
 */
export function start(cmd, args, { cpu, readyJson = false, env, cwd, name = cmd, timeoutMs = 60_000 } = {}) {
  const [c, a] = pinArgs(cpu, cmd, args);
  // taskset execs the command, so the pid is the command's own pid.
  const child = spawn(c, a, { stdio: ["ignore", "pipe", "pipe"], env: env ?? process.env, cwd });
  children.add(child);
  let stderr = "";
  child.stderr.on("data", (d) => {
    if (stderr.length < 20_000) stderr += d;
  });
  child.on("exit", () => children.delete(child));
  const handle = {
    child,
    pid: child.pid,
    name,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 2000);
      await gone;
      clearTimeout(t);
    },
  };
  if (!readyJson) {
    // BENCH_CHILD_OUTPUT=DIR keeps what a child prints (say, V8's
    // --trace-wasm-compilation-times list on workerd's stdout) in
    // DIR/<name>-<pid>.out; by default it is discarded.
    if (process.env.BENCH_CHILD_OUTPUT) {
      mkdirSync(process.env.BENCH_CHILD_OUTPUT, { recursive: true });
      child.stdout.pipe(createWriteStream(join(process.env.BENCH_CHILD_OUTPUT, `${basename(name)}-${child.pid}.out`)));
    } else child.stdout.resume();
    return Promise.resolve(handle);
  }
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${timeoutMs} ms\n${stderr}`)), timeoutMs);
    const onData = (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      child.stdout.off("data", onData);
      child.stdout.resume();
      try {
        handle.info = JSON.parse(out.slice(0, nl));
        resolve(handle);
      } catch (e) {
        reject(new Error(`${name} printed no JSON: ${out.slice(0, 200)}`));
      }
    };
    child.stdout.on("data", onData);
    child.once("exit", (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? sig}) before it was ready\n${stderr}`));
    });
  });
}

/** Runs a command to completion (pinned), returns {code, stdout, stderr}. */
export function run(cmd, args, { cpu, env, cwd } = {}) {
  const [c, a] = pinArgs(cpu, cmd, args);
  return new Promise((resolve, reject) => {
    const child = spawn(c, a, { stdio: ["ignore", "pipe", "pipe"], env: env ?? process.env, cwd });
    children.add(child);
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("exit", (code) => {
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** User and kernel CPU time of a process (all its threads, live and exited), in microseconds. */
export function cpuTimes(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return { user: (Number(fields[11]) * 1e6) / CLK_TCK, sys: (Number(fields[12]) * 1e6) / CLK_TCK };
}

/** utime + stime of a process, in microseconds. */
export function cpuMicros(pid) {
  const { user, sys } = cpuTimes(pid);
  return user + sys;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** One HTTP request without keep-alive: {status, headers, body}. */
export function request(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers, agent: false }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    if (body) req.write(body);
    req.end();
  });
}

/** Busy time of one CPU (all processes: user, nice, system, irq, softirq, steal), in microseconds. */
export function coreBusyMicros(cpu) {
  if (cpu === null || cpu === undefined) return null;
  const line = readFileSync("/proc/stat", "utf8").split("\n").find((l) => l.startsWith(`cpu${cpu} `));
  if (!line) return null;
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return ((user + nice + system + irq + softirq + (steal || 0)) * 1e6) / CLK_TCK;
}
