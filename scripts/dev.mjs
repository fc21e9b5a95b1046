// `npm run dev`: Tokengate under `wrangler dev` (local KV) in front of the
// demo origin. Open http://127.0.0.1:8787/demo/signin: sign in, then sign out,
// change the password or send a back-channel logout, and replay the old token;
// or refresh the access token and replay the spent refresh token.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { appOptions, startOrigin } from "../demo/origin.mjs";

const GATEWAY_PORT = Number(process.env.PORT ?? 8787);

// Local secrets live in .dev.vars (git-ignored), made once with random values.
if (!existsSync(".dev.vars")) {
  const secret = randomBytes(32).toString("base64url");
  const admin = randomBytes(24).toString("base64url");
  writeFileSync(".dev.vars", `JWT_SECRET="${secret}"\nADMIN_TOKEN="${admin}"\n`, { mode: 0o600 });
  console.log("dev: wrote .dev.vars with a random JWT_SECRET and ADMIN_TOKEN");
}
const devVars = Object.fromEntries(
  readFileSync(".dev.vars", "utf8")
    .split("\n")
    .map((line) => line.match(/^\s*([A-Z_]+)\s*=\s*"?(.*?)"?\s*$/))
    .filter(Boolean)
    .map((m) => [m[1], m[2]]),
);
const vars = unstable_getMiniflareWorkerOptions("wrangler.toml").workerOptions.bindings;
const originPort = Number(new URL(vars.ORIGIN_URL).port);

const gatewayUrl = `http://127.0.0.1:${GATEWAY_PORT}`;

// The origin doubles as the identity provider: its back-channel logouts go
// to the gateway, as does its refresh-token replay.
const origin = await startOrigin({ port: originPort, ...appOptions(vars, devVars.JWT_SECRET), gatewayUrl });
console.log(`dev: demo origin on ${origin.url}`);

const wrangler = spawn(
  process.execPath,
  ["node_modules/wrangler/bin/wrangler.js", "dev", "--ip", "127.0.0.1", "--port", String(GATEWAY_PORT)],
  {
    stdio: "inherit",
    env: {
      // No usage metrics, and no download of request.cf data from
      // workers.cloudflare.com (Miniflare uses built-in placeholder values).
      WRANGLER_SEND_METRICS: "false",
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      ...process.env,
    },
  },
);
console.log(`
dev: Tokengate will listen on ${gatewayUrl} once wrangler has built it.
     Browser: ${gatewayUrl}/demo/signin  (the demo app: sign in as any name; the first
              sign-in sets that name's password; two browsers = two devices)
              ${gatewayUrl}/demo         (dev tokens: /demo/mint?sub=alice&ttl=600)
     curl:    TOKEN=$(curl -s '${gatewayUrl}/demo/mint?sub=alice' | node -pe 'JSON.parse(require("fs").readFileSync(0)).token')
              curl -H "Authorization: Bearer $TOKEN" ${gatewayUrl}/hello
              curl -X POST -H "Authorization: Bearer $TOKEN" ${gatewayUrl}/auth/logout
     Admin:   ADMIN_TOKEN is in .dev.vars
     Offline? wrangler may print network errors such as "getaddrinfo ENOTFOUND
              workers.cloudflare.com" or a failed update check: harmless, the
              gateway runs entirely locally.
`);

const stop = async (code) => {
  wrangler.kill("SIGINT");
  await origin.close();
  process.exit(code);
};
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));
wrangler.on("exit", (code) => stop(code ?? 0));
