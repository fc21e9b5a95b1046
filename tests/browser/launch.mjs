// Starts what a browser needs: the release build (build/index.js + wasm) in
// Miniflare on a real 127.0.0.1 port, with wrangler.toml's vars, KV and
// Durable Objects, in front of the demo origin running its web application.
// The origin knows the gateway's URL, so its identity-provider button can
// send back-channel logouts to it, and its thief button can replay a spent
// refresh token. (The shared e2e harness serves through dispatchFetch only.)
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { existsSync } from "node:fs";
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
  const wrangler = wranglerOptions();
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

/** Debian's Chromium (apt-get install chromium), driven by playwright-core. */
export function launchChromium() {
  const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
  if (!existsSync(executablePath)) {
    throw new Error(`${executablePath} is missing: \`apt-get install -y chromium\` (or set CHROMIUM_PATH)`);
  }
  return chromium.launch({
    executablePath,
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
