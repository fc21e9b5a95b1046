// Starts what a browser needs: the release build (build/index.js + wasm) in
// Miniflare on a real 127.0.0.1 port, with wrangler.toml's vars, KV and
// Durable Objects, in front of the demo origin running its web application.
// The origin knows the gateway's URL, so its identity-provider button can
// send back-channel logouts to it, and its thief button can replay a spent
// refresh token. (The shared e2e harness serves through dispatchFetch only.)
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { brotliDecompressSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";
import { appOptions, startOrigin } from "../../demo/origin.mjs";
import { SECRET, ADMIN_TOKEN } from "../support/tokens.mjs";
import { gatewayWorker, wranglerOptions } from "../support/harness.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export async function startGateway() {
  for (const file of ["build/index.js", "build/index_bg.wasm"]) {
    if (!existsSync(path.join(root, file))) throw new Error(`${file} is missing: run \`bash scripts/build.sh\` first`);
  }
  const wrangler = await wranglerOptions();
  const vars = wrangler.bindings;
  const origin = await startOrigin(appOptions(vars, SECRET));
  const bindings = { ...vars, ORIGIN_URL: origin.url, JWT_SECRET: SECRET, ADMIN_TOKEN };
  const mf = new Miniflare(convertV4MiniflareOptions({
    host: "127.0.0.1",
    port: 0,
    workers: [gatewayWorker(wrangler, "gateway", bindings)],
  }));
  const url = (await mf.ready).origin;
  origin.setGatewayUrl(url);
  return {
    url,
    vars,
    origin,
    async close() {
      await mf.dispose();
      await origin.close();
    },
  };
}

// The browser comes from npm, pinned in package-lock.json: @sparticuz/chromium
// ships chrome-headless-shell for Linux x64, brotli-compressed. It is
// unpacked once into node_modules/.cache (so `npm ci` starts it afresh) and
// needs only NSS, NSPR and expat from the system; where those are missing,
// the copies the package ships (al2023.tar.br) are unpacked and used.
// CHROMIUM_PATH overrides it with any Chromium.
const CHROMIUM_PACKAGE = path.join(root, "node_modules/@sparticuz/chromium");

/** Unpacks `archive` (brotli) to `target` unless it is there; atomic, so concurrent runs agree. */
function unbrotli(archive, target) {
  if (existsSync(target)) return target;
  const partial = `${target}.${process.pid}.partial`;
  writeFileSync(partial, brotliDecompressSync(readFileSync(archive)), { mode: 0o755 });
  renameSync(partial, target);
  return target;
}

/** Libraries `binary` needs that the system does not have (ldd's "not found"). */
function missingLibraries(binary, env = process.env) {
  const out = execFileSync("ldd", [binary], { encoding: "utf8", env });
  return out.split("\n").filter((l) => l.includes("not found")).map((l) => l.trim().split(/\s/)[0]);
}

/** The npm-shipped Chromium: its path and the environment it needs. */
export function bundledChromium() {
  const bin = path.join(CHROMIUM_PACKAGE, "bin");
  if (!existsSync(path.join(bin, "chromium.br"))) {
    throw new Error(`${bin}/chromium.br is missing: run \`npm ci\` (it installs @sparticuz/chromium), or set CHROMIUM_PATH`);
  }
  const { version } = JSON.parse(readFileSync(path.join(CHROMIUM_PACKAGE, "package.json"), "utf8"));
  const dir = path.join(root, "node_modules/.cache/sparticuz-chromium", version);
  mkdirSync(dir, { recursive: true });
  const executablePath = unbrotli(path.join(bin, "chromium.br"), path.join(dir, "chromium"));
  const env = { ...process.env };
  const missing = missingLibraries(executablePath);
  if (missing.length > 0) {
    const libs = path.join(dir, "al2023");
    if (!existsSync(path.join(libs, "lib"))) {
      const tar = unbrotli(path.join(bin, "al2023.tar.br"), path.join(dir, "al2023.tar"));
      mkdirSync(libs, { recursive: true });
      execFileSync("tar", ["-xf", tar, "-C", libs]);
    }
    env.LD_LIBRARY_PATH = [path.join(libs, "lib"), process.env.LD_LIBRARY_PATH].filter(Boolean).join(":");
    const still = missingLibraries(executablePath, env);
    if (still.length > 0) throw new Error(`Chromium needs ${still.join(", ")}, which neither the system nor @sparticuz/chromium has`);
  }
  return { executablePath, env };
}

/** Headless Chromium driven by playwright-core (a fresh profile in a temporary directory each launch). */
export function launchChromium() {
  const { executablePath, env } = process.env.CHROMIUM_PATH
    ? { executablePath: process.env.CHROMIUM_PATH, env: process.env }
    : bundledChromium();
  if (!existsSync(executablePath)) throw new Error(`CHROMIUM_PATH=${executablePath} does not exist`);
  return chromium.launch({
    executablePath,
    env,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
