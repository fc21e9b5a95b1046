// A real OpenID Connect provider (the npm package oidc-provider) in front of
// which the release build runs, and a user agent that signs in there the way
// a browser does.
//
//   startIdentityProvider()  oidc-provider on a 127.0.0.1 port: code + PKCE,
//                            dev login and consent pages, resource indicators
//                            (ES256 JWT access tokens, typ at+jwt), refresh
//                            tokens, RP-initiated logout, back-channel logout
//   startGateway(settings)   the release build in Miniflare on a real
//                            127.0.0.1 port, so the provider can deliver
//                            back-channel logouts to it
//   new UserAgent(idp)       a cookie jar that follows redirects and submits
//                            the provider's HTML forms
import http from "node:http";
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import Provider from "oidc-provider";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { gatewayWorker, wranglerOptions } from "./harness.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The API behind the gateway, as a resource indicator (RFC 8707): the access tokens' `aud`. */
export const RESOURCE = "https://api.tokengate.test";
export const RESOURCE_SCOPE = "api:read";
/** Where the provider sends the user agent back; the user agent stops there and never fetches it. */
export const REDIRECT_URI = "https://app.tokengate.test/callback";
export const POST_LOGOUT_REDIRECT_URI = "https://app.tokengate.test/signed-out";
export const BACKCHANNEL_PATH = "/auth/backchannel-logout";

/** A signing key as the provider's configuration takes it (private JWK with kid). */
function signingKey(kid, type, options) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: "jwk" }), kid, use: "sig" };
}

/**
 * oidc-provider, listening before it is configured: the gateways need its
 * issuer and jwks_uri, and its clients need the gateways' URLs.
 * `configure` builds a new Provider (a restarted provider with a new key
 * configuration); sessions, grants and refresh tokens live in oidc-provider's
 * in-process memory adapter and survive it.
 */
export async function startIdentityProvider() {
  let handler = (_req, res) => res.writeHead(503).end();
  const server = http.createServer((req, res) => handler(req, res));
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${server.address().port}`;

  const keys = {
    "ec-1": signingKey("ec-1", "ec", { namedCurve: "P-256" }),
    "ec-2": signingKey("ec-2", "ec", { namedCurve: "P-256" }),
    // ID tokens and logout tokens are signed RS256 (oidc-provider's default).
    "rsa-1": signingKey("rsa-1", "rsa", { modulusLength: 2048 }),
  };
  const logoutTokens = []; // every back-channel logout token the provider delivered
  let provider;

  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    logoutTokens,
    /**
     * `clients`: oidc-provider client metadata. `published`: the kids in the
     * JWKS, in order; `accessTokenKid`: the key access tokens are signed with.
     * `sidInAccessTokensFor`: client IDs whose access tokens carry the
     * session's `sid` (oidc-provider's `extraTokenClaims`).
     */
    configure({ clients, published = ["ec-1", "rsa-1"], accessTokenKid = "ec-1", sidInAccessTokensFor = [] }) {
      provider = new Provider(issuer, {
        clients,
        jwks: { keys: published.map((kid) => keys[kid]) },
        cookies: { keys: ["tokengate-e2e-cookie-key"] },
        pkce: { required: () => true },
        findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
        features: {
          // The provider's own login and consent pages (HTML forms), as a
          // user agent would see them; any login name and password sign in.
          devInteractions: { enabled: true },
          rpInitiatedLogout: { enabled: true },
          backchannelLogout: { enabled: true },
          // RFC 7009: an app signing out revokes its refresh token here.
          revocation: { enabled: true },
          // A JWT access token for the API, instead of an opaque one.
          resourceIndicators: {
            enabled: true,
            defaultResource: () => RESOURCE,
            useGrantedResource: () => true,
            getResourceServerInfo: (_ctx, resource) => {
              if (resource !== RESOURCE) throw new Provider.errors.InvalidTarget();
              return {
                scope: RESOURCE_SCOPE,
                audience: RESOURCE,
                accessTokenTTL: 600,
                accessTokenFormat: "jwt",
                jwt: { sign: { alg: "ES256", kid: accessTokenKid } },
              };
            },
          },
        },
        // The sign-in's session ID is the one the logout token names: the
        // provider keeps one `sid` per client in the session and copies it
        // onto the code, the access and the refresh tokens (for clients with
        // backchannel_logout_session_required); it just does not put it in
        // the access token's claims unless told to here.
        extraTokenClaims: (_ctx, token) =>
          token.kind === "AccessToken" && sidInAccessTokensFor.includes(token.clientId) && token.sid
            ? { sid: token.sid }
            : undefined,
        // Test only: oidc-provider refuses outbound requests to special-use
        // addresses (loopback included) by handing fetch a guarded undici
        // dispatcher. The gateways listen on 127.0.0.1, so deliveries there
        // go without it; everything else keeps the guard.
        fetch: (url, options) => {
          const target = new URL(url);
          if (target.hostname === "127.0.0.1") {
            delete options.dispatcher;
            if (target.pathname === BACKCHANNEL_PATH) logoutTokens.push(new URLSearchParams(options.body).get("logout_token"));
          }
          return globalThis.fetch(url, options);
        },
      });
      // Delivery failures would otherwise be silent: the provider logs the
      // user out whatever the relying party answered.
      provider.on("backchannel.error", (_ctx, error, client) => {
        console.error(`back-channel logout to ${client.clientId} failed: ${error.message}`);
      });
      handler = provider.callback();
      return provider;
    },
    /** The private key of `kid`, for tokens a holder of a retired key could still sign. */
    key: (kid) => keys[kid],
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * The release build in Miniflare on a real 127.0.0.1 port, with wrangler.toml's
 * vars, KV and Durable Objects, `settings` merged over them (undefined
 * removes one), in front of `originUrl`. Its own workerd: its own KV.
 */
export async function startGateway(originUrl, settings) {
  for (const file of ["build/index.js", "build/index_bg.wasm"]) {
    if (!existsSync(path.join(root, file))) throw new Error(`${file} is missing: run \`bash scripts/build.sh\` first`);
  }
  const wrangler = await wranglerOptions();
  const bindings = { ...wrangler.bindings, ORIGIN_URL: originUrl, ...settings };
  for (const [k, v] of Object.entries(bindings)) if (v === undefined) delete bindings[k];
  const mf = new Miniflare(convertV4MiniflareOptions({
    host: "127.0.0.1",
    port: 0,
    workers: [gatewayWorker(wrangler, "gateway", bindings)],
  }));
  const url = (await mf.ready).origin;
  return {
    url,
    fetch: (pathname, init = {}) => fetch(`${url}${pathname}`, { redirect: "manual", ...init }),
    close: () => mf.dispose(),
  };
}

const base64url = (bytes) => Buffer.from(bytes).toString("base64url");

/** Every <form> of an HTML page: its action, and its hidden inputs as a name -> value object. */
function forms(html) {
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)].map(([, attributes, body]) => ({
    id: attributes.match(/\bid="([^"]*)"/)?.[1],
    action: attributes.match(/\baction="([^"]*)"/)?.[1],
    fields: Object.fromEntries(
      [...body.matchAll(/<input\b[^>]*>/g)]
        .map(([input]) => [input.match(/\bname="([^"]*)"/)?.[1], input.match(/\bvalue="([^"]*)"/)?.[1] ?? ""])
        .filter(([name]) => name),
    ),
  }));
}

const decodeEntities = (value) => value.replaceAll("&amp;", "&").replaceAll("&#x2F;", "/").replaceAll("&#x3D;", "=");

/**
 * A browser's worth of HTTP against the provider: a cookie jar, redirects
 * followed by hand (so the final redirect to the app, carrying the code, is
 * seen and not fetched), forms submitted with their hidden fields.
 */
export class UserAgent {
  #cookies = new Map();

  constructor(idp) {
    this.idp = idp;
  }

  async #request(url, init = {}) {
    const headers = new Headers(init.headers);
    if (this.#cookies.size) headers.set("cookie", [...this.#cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const response = await fetch(url, { ...init, headers, redirect: "manual" });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(";");
      const name = pair.slice(0, pair.indexOf("="));
      const value = pair.slice(pair.indexOf("=") + 1);
      const expired = attributes.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a)) || value === "";
      if (expired) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
    return response;
  }

  /** Follows redirects from `url` until a page (200) or a redirect to `stopAt` (returned as a URL). */
  async #navigate(url, init, stopAt) {
    let response = await this.#request(url, init);
    for (let hops = 0; hops < 10; hops++) {
      if (response.status < 300 || response.status >= 400) {
        const body = await response.text();
        if (response.status !== 200) throw new Error(`${url}: ${response.status} ${body.slice(0, 300)}`);
        return { page: body, url };
      }
      const location = new URL(response.headers.get("location"), url).href;
      await response.arrayBuffer();
      if (location.startsWith(stopAt)) return { redirect: new URL(location) };
      url = location;
      response = await this.#request(url);
    }
    throw new Error(`too many redirects from ${url}`);
  }

  async #submit(page, pageUrl, fields, stopAt, formId) {
    const form = forms(page).find((f) => (formId ? f.id === formId : f.action));
    if (!form) throw new Error(`no form on ${pageUrl}: ${page.slice(0, 300)}`);
    const body = new URLSearchParams({ ...form.fields, ...fields });
    return this.#navigate(new URL(decodeEntities(form.action), pageUrl).href, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: body.toString(),
    }, stopAt);
  }

  /**
   * Authorization code + PKCE (S256) for `clientId` as `login`: the login
   * form, the consent form, the code at the redirect URI, then the token
   * endpoint with the code verifier. Returns the token response.
   */
  async signIn(clientId, login) {
    const verifier = base64url(randomBytes(32));
    const state = base64url(randomBytes(16));
    const authorize = new URL(`${this.idp.issuer}/auth`);
    authorize.search = new URLSearchParams({
      client_id: clientId,
      response_type: "code",
      redirect_uri: REDIRECT_URI,
      // offline_access (a refresh token) is granted only with a consent prompt.
      scope: `openid offline_access ${RESOURCE_SCOPE}`,
      prompt: "consent",
      resource: RESOURCE,
      state,
      code_challenge: base64url(createHash("sha256").update(verifier).digest()),
      code_challenge_method: "S256",
    }).toString();

    let step = await this.#navigate(authorize.href, {}, REDIRECT_URI);
    // The provider shows its login page, then its consent page (each form
    // posts back to the interaction, which redirects on): at most a few.
    for (let pages = 0; step.page && pages < 4; pages++) {
      const isLogin = /name="login"/.test(step.page);
      step = await this.#submit(step.page, step.url, isLogin ? { login, password: "any password" } : {}, REDIRECT_URI);
    }
    if (!step.redirect) throw new Error(`sign-in did not come back to ${REDIRECT_URI}: ${step.page?.slice(0, 300)}`);
    const params = step.redirect.searchParams;
    if (params.get("error")) throw new Error(`sign-in refused: ${params.get("error")} ${params.get("error_description")}`);
    if (params.get("state") !== state) throw new Error("state mismatch");

    return this.#token(clientId, {
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
      resource: RESOURCE,
    });
  }

  /** The refresh_token grant: a new access token (and, for a public client, a new refresh token). */
  refresh(clientId, refreshToken) {
    return this.#token(clientId, { grant_type: "refresh_token", refresh_token: refreshToken, resource: RESOURCE });
  }

  /** RFC 7009 token revocation at the provider (what an app does with its refresh token on sign-out). */
  async revoke(clientId, token) {
    const response = await fetch(`${this.idp.issuer}/token/revocation`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: clientId, token, token_type_hint: "refresh_token" }).toString(),
    });
    if (response.status !== 200) throw new Error(`revocation endpoint: ${response.status} ${await response.text()}`);
  }

  async #token(clientId, fields) {
    // A public client (token_endpoint_auth_method none): the client ID in the body.
    const response = await fetch(`${this.idp.issuer}/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: clientId, ...fields }).toString(),
    });
    const body = await response.json();
    if (response.status !== 200) throw Object.assign(new Error(`token endpoint: ${response.status} ${JSON.stringify(body)}`), { body });
    return body;
  }

  /**
   * RP-initiated logout: the app sends the user agent to end_session with the
   * ID token; the provider asks "Do you want to sign-out?" and the user
   * clicks "Yes, sign me out" (the form's `logout=yes`). The provider then
   * delivers back-channel logouts before it redirects to the app.
   */
  async logOutAtProvider(clientId, idToken) {
    const endSession = new URL(`${this.idp.issuer}/session/end`);
    endSession.search = new URLSearchParams({
      client_id: clientId,
      id_token_hint: idToken,
      post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI,
    }).toString();
    const confirm = await this.#navigate(endSession.href, {}, POST_LOGOUT_REDIRECT_URI);
    if (!confirm.page) throw new Error("end_session asked for no confirmation");
    const done = await this.#submit(confirm.page, confirm.url, { logout: "yes" }, POST_LOGOUT_REDIRECT_URI, "op.logoutForm");
    if (!done.redirect) throw new Error(`logout did not come back to ${POST_LOGOUT_REDIRECT_URI}: ${done.page?.slice(0, 300)}`);
  }
}

/** A public browser app at the provider, whose gateway receives its back-channel logouts. */
export function publicClient(clientId, gatewayUrl) {
  return {
    client_id: clientId,
    token_endpoint_auth_method: "none",
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    redirect_uris: [REDIRECT_URI],
    post_logout_redirect_uris: [POST_LOGOUT_REDIRECT_URI],
    backchannel_logout_uri: `${gatewayUrl}${BACKCHANNEL_PATH}`,
    // The logout token names the session (sid), and the provider records the
    // session's sid on the client's tokens.
    backchannel_logout_session_required: true,
  };
}

/** A JWT's header and payload, decoded (no verification: the gateway does that). */
export function decodeJwt(token) {
  const [header, payload] = token.split(".").slice(0, 2).map((part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8")));
  return { header, payload };
}
