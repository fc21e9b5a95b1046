// The demo origin: a tiny HTTP server behind Tokengate.
//
// Without settings (the end-to-end tests) it only records and echoes what
// reached it: method, URL, headers including the X-Auth-* identity, body.
// With `mint` settings (`npm run dev`, the browser tests) it is also a small
// web application that shows what the gateway does with sessions:
//
//   /demo             public: this overview and the dev-token form (/demo/mint)
//   /demo/signin      public: user name + password; mints an access token
//                     with a fresh `sid` (TOKEN_COOKIE cookie) and a refresh
//                     token of the same `sid` (REFRESH_COOKIE cookie, sent
//                     only to REFRESH_PATH)
//   /app              protected: who you are, which token and session you hold
//   /app/whoami       protected: the same as JSON
//   /app/account      protected, and a STRICT_PATHS path: the gateway also
//                     checks it against the user's Durable Object
//   /auth/refresh     POST, reached only after the gateway spent the refresh
//                     token (REFRESH_PATH): a new access token and a new
//                     refresh token of the same session
//   /app/refresh-replay protected POST: plays a thief who copied the previous
//                     (spent) refresh token and presents it to the gateway,
//                     which revokes the whole session (refresh_token_reused)
//   /app/password     protected POST: changes the password and answers with
//                     `Tokengate-Revoke: user` (every token of the user)
//   /app/idp-logout   protected POST: plays the identity provider and sends an
//                     OpenID Connect back-channel logout for your session to
//                     the gateway's BACKCHANNEL_LOGOUT_PATH
//   /demo/signed-out  public: replays the old token to show it is refused
//
//   node demo/origin.mjs            (needs JWT_SECRET, see `npm run dev`)

import http from "node:http";
import { randomBytes, randomUUID, scryptSync, timingSafeEqual } from "node:crypto";
import { SignJWT } from "jose";

// Demo only: the last token this browser signed in with, readable by the
// /demo pages' script (not HttpOnly) so the signed-out page can replay it.
// A real application never exposes its token to JavaScript like this.
const LAST_TOKEN_COOKIE = "tg_demo_last_token";
const SIGN_IN_TTL_SECONDS = 3600;
// Refresh tokens live longer than access tokens; each is spent once.
const REFRESH_TTL_SECONDS = 86400;
// Sessions whose refresh tokens the origin remembers (oldest forgotten first).
const MAX_REMEMBERED_SESSIONS = 10000;

/**
 * The web application's `mint` and `backchannel` options for a gateway with
 * these vars (wrangler.toml's), signing with `secret` (its JWT_SECRET).
 */
export function appOptions(vars, secret) {
  return {
    mint: {
      secret,
      issuer: vars.JWT_ISSUER,
      audience: vars.JWT_AUDIENCE,
      cookie: vars.TOKEN_COOKIE,
      refreshCookie: vars.REFRESH_COOKIE,
      refreshPath: vars.REFRESH_PATH,
      refreshTyp: vars.REFRESH_TYP,
    },
    backchannel: { path: vars.BACKCHANNEL_LOGOUT_PATH, audience: vars.BACKCHANNEL_LOGOUT_AUDIENCE },
  };
}

/**
 * Starts the origin. Every request is recorded in `received`.
 *
 * - `mint` ({ secret, issuer, audience, cookie, refreshCookie, refreshPath,
 *   refreshTyp }) enables /demo/mint and the web application (sign-in, /app,
 *   refresh, password change, back-channel logout). `cookie` is the gateway's
 *   TOKEN_COOKIE; `refreshCookie`, `refreshPath` and `refreshTyp` its
 *   REFRESH_COOKIE, REFRESH_PATH and REFRESH_TYP (defaults "tg_refresh",
 *   "/auth/refresh", "refresh+jwt").
 * - `backchannel` ({ path, audience }): the gateway's BACKCHANNEL_LOGOUT_PATH
 *   and BACKCHANNEL_LOGOUT_AUDIENCE, for /app/idp-logout.
 * - `gatewayUrl`: where the origin reaches the gateway (for the back-channel
 *   call and the refresh-token replay); may also be set later with
 *   `setGatewayUrl`.
 *
 * A request header `x-origin-status: NNN` makes the echo answer NNN,
 * so tests can play an origin that refuses (say) a password change.
 */
export function startOrigin({ port = 0, host = "127.0.0.1", mint, backchannel, gatewayUrl } = {}) {
  const received = [];
  const app = mint ? createApp({ mint, backchannel, gatewayUrl }) : undefined;
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const record = {
      method: req.method,
      url: req.url,
      headers: req.headers,
      body: Buffer.concat(chunks).toString("utf8"),
    };
    received.push(record);
    const url = new URL(req.url, "http://origin");
    try {
      if (url.pathname === "/demo" || url.pathname === "/demo/") {
        return send(res, 200, HTML, demoPage(mint?.cookie ?? "tg_token"));
      }
      if (app && (await app.handle(req, res, url, record))) return;
      const status = Number(req.headers["x-origin-status"] ?? 200);
      send(res, status >= 200 && status <= 599 ? status : 200, "application/json", JSON.stringify(record, null, 2));
    } catch (error) {
      send(res, 500, "text/plain", String(error));
    }
  });
  return new Promise((resolve) => {
    server.listen(port, host, () => {
      resolve({
        url: `http://${host}:${server.address().port}`,
        received,
        setGatewayUrl: (value) => app?.setGatewayUrl(value),
        close: () => new Promise((done) => server.close(done)),
      });
    });
  });
}

const HTML = "text/html; charset=utf-8";

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { "content-type": type, ...headers });
  res.end(body);
}

function redirect(res, location, headers = {}) {
  res.writeHead(303, { location, "content-type": "text/plain", ...headers });
  res.end(`See ${location}\n`);
}

// ---------------------------------------------------------------- the app

function createApp({ mint, backchannel, gatewayUrl }) {
  const key = new TextEncoder().encode(mint.secret);
  const refresh = {
    cookie: mint.refreshCookie ?? "tg_refresh",
    path: mint.refreshPath ?? "/auth/refresh",
    typ: mint.refreshTyp ?? "refresh+jwt",
  };
  // Demo users live in memory: the first sign-in with a name sets its password.
  const users = new Map();
  const hash = (password, salt = randomBytes(16)) => ({ salt, digest: scryptSync(password, salt, 32) });
  const passwordMatches = (user, password) => timingSafeEqual(hash(password, user.salt).digest, user.digest);
  // The refresh tokens issued per session (sid -> { sub, latest, previous },
  // each { jti, token }): `latest` is the one the browser holds, `previous`
  // the one it spent to get it, kept so /app can offer to replay it.
  const sessions = new Map();

  const tokenCookie = (value, maxAge) =>
    `${mint.cookie}=${value}; Max-Age=${maxAge}; Path=/; Secure; HttpOnly; SameSite=Lax`;
  // Scoped to the refresh route: the refresh token is never sent anywhere else.
  const refreshCookie = (value, maxAge) =>
    `${refresh.cookie}=${value}; Max-Age=${maxAge}; Path=${refresh.path}; Secure; HttpOnly; SameSite=Strict`;
  const lastTokenCookie = (value) => `${LAST_TOKEN_COOKIE}=${value}; Max-Age=86400; Path=/demo; Secure; SameSite=Lax`;

  /** An access token and a refresh token for session `sid`, as cookies. */
  async function issue(sub, sid) {
    const now = Date.now() / 1000;
    const jwt = (typ, jti, ttl) =>
      new SignJWT({ sid })
        .setProtectedHeader({ alg: "HS256", typ })
        .setSubject(sub)
        .setIssuer(mint.issuer)
        .setAudience(mint.audience)
        .setJti(jti)
        // Fractional iat: ordered exactly against cut-offs made in the same second.
        .setIssuedAt(now)
        .setExpirationTime(Math.floor(now) + ttl)
        .sign(key);
    const access = await jwt("JWT", randomUUID(), SIGN_IN_TTL_SECONDS);
    const latest = { jti: randomUUID() };
    latest.token = await jwt(refresh.typ, latest.jti, REFRESH_TTL_SECONDS);
    return {
      latest,
      cookies: [tokenCookie(access, SIGN_IN_TTL_SECONDS), refreshCookie(latest.token, REFRESH_TTL_SECONDS), lastTokenCookie(access)],
    };
  }

  function remember(sid, sub, latest, previous) {
    sessions.delete(sid);
    sessions.set(sid, { sub, latest, previous });
    while (sessions.size > MAX_REMEMBERED_SESSIONS) sessions.delete(sessions.keys().next().value);
  }

  const appView = (identity, error = "") => appPage(identity, backchannel, refresh, sessions.get(identity.claims.sid), error);

  async function signIn(res, form) {
    const name = (form.get("user") ?? "").trim();
    const password = form.get("password") ?? "";
    if (!/^[\w.@-]{1,64}$/.test(name) || password.length === 0) {
      return send(res, 400, HTML, signInPage("Enter a user name (letters, digits, . _ @ -) and a password."));
    }
    const user = users.get(name);
    if (!user) users.set(name, hash(password));
    else if (!passwordMatches(user, password)) {
      return send(res, 401, HTML, signInPage(`Wrong password for ${name}.`, name));
    }
    const sid = randomBytes(12).toString("base64url");
    const { latest, cookies } = await issue(name, sid);
    remember(sid, name, latest, null);
    redirect(res, "/app", { "set-cookie": cookies });
  }

  // REFRESH_PATH: the gateway verified the refresh token (typ, signature,
  // iss, aud, exp, not revoked) and spent it in the user's Durable Object
  // before forwarding; the identity headers are the refresh token's. The
  // origin checks the token is one it issued for that session, so that this
  // route never extends an access token if the gateway's REFRESH_PATH were
  // unset (then an access token would reach it as on any protected path).
  async function rotate(res, identity) {
    const sid = identity.claims.sid;
    const known = sid === undefined ? undefined : sessions.get(sid);
    const presented = [known?.latest, known?.previous].find((t) => t?.jti === identity.tokenId);
    if (!known || known.sub !== identity.sub || !presented) {
      return send(res, 403, "application/json", JSON.stringify({
        error: "unknown_refresh_token",
        error_description: "this origin did not issue that refresh token for that session (or it restarted since)",
      }) + "\n");
    }
    const { latest, cookies } = await issue(identity.sub, sid);
    remember(sid, identity.sub, latest, presented);
    redirect(res, "/app", { "set-cookie": cookies });
  }

  // Plays a thief who copied this session's previous refresh token (already
  // spent by the refresh that replaced it) and presents it to the gateway's
  // REFRESH_PATH in the refresh cookie, as a browser would.
  async function replayRefresh(res, identity) {
    const known = sessions.get(identity.claims.sid);
    if (!gatewayUrl) return send(res, 501, HTML, appView(identity, "The demo origin was started without a gateway URL."));
    if (!known?.previous) return send(res, 409, HTML, appView(identity, "No previous refresh token yet: refresh the access token first."));
    const target = new URL(refresh.path, gatewayUrl).href;
    let answer;
    try {
      const response = await fetch(target, {
        method: "POST",
        headers: { cookie: `${refresh.cookie}=${known.previous.token}` },
        redirect: "manual",
        signal: AbortSignal.timeout(5000),
      });
      answer = { status: response.status, body: await response.text() };
    } catch (error) {
      answer = { status: 0, body: String(error) };
    }
    send(res, 200, HTML, refreshReplayPage(target, refresh.cookie, identity, known.previous, answer));
  }

  async function changePassword(res, identity, form) {
    const user = users.get(identity.sub);
    const next = form.get("new") ?? "";
    if (!user || !passwordMatches(user, form.get("current") ?? "")) {
      return send(res, 403, HTML, appView(identity, "The current password is wrong; nothing changed."));
    }
    if (next.length === 0) return send(res, 400, HTML, appView(identity, "Enter a new password."));
    users.set(identity.sub, hash(next));
    // The gateway revokes every token of this user before passing this on.
    redirect(res, "/demo/signed-out?reason=password", {
      "tokengate-revoke": "user",
      "set-cookie": [tokenCookie("", 0), refreshCookie("", 0)],
    });
  }

  // Plays the identity provider: a logout token (OpenID Connect Back-Channel
  // Logout 1.0, section 2.4) for this session, POSTed to the gateway.
  async function idpLogout(res, identity) {
    if (!backchannel?.path || !gatewayUrl) {
      return send(res, 501, HTML, appView(identity, "The demo origin was started without a gateway URL or BACKCHANNEL_LOGOUT_PATH."));
    }
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: mint.issuer,
      aud: backchannel.audience,
      iat: now,
      exp: now + 120,
      jti: randomUUID(),
      sub: identity.sub,
      sid: identity.claims.sid,
      events: { "http://schemas.openid.net/event/backchannel-logout": {} },
    };
    const logoutToken = await new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "logout+jwt" }).sign(key);
    const target = new URL(backchannel.path, gatewayUrl).href;
    let answer;
    try {
      const response = await fetch(target, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ logout_token: logoutToken }),
        signal: AbortSignal.timeout(5000),
      });
      answer = { status: response.status, body: await response.text() };
    } catch (error) {
      answer = { status: 0, body: String(error) };
    }
    send(res, 200, HTML, idpLogoutPage(target, claims, answer));
  }

  return {
    setGatewayUrl(value) {
      gatewayUrl = value;
    },
    /** Answers the app's routes; false for anything else (echoed). */
    async handle(req, res, url, record) {
      const route = `${req.method} ${url.pathname}`;
      if (route === "GET /demo/mint") return mintToken(res, url, mint, key, tokenCookie), true;
      if (route === "GET /demo/signin") return send(res, 200, HTML, signInPage()), true;
      if (route === "POST /demo/signin") return await signIn(res, new URLSearchParams(record.body)), true;
      if (route === "GET /demo/signed-out") return send(res, 200, HTML, signedOutPage(url.searchParams.get("reason"))), true;
      if (route === "GET /favicon.ico") return send(res, 204, "image/x-icon", ""), true;
      const refreshRoute = url.pathname === refresh.path;
      if (!refreshRoute && url.pathname !== "/app" && !url.pathname.startsWith("/app/")) return false;

      const identity = identityOf(req.headers);
      if (!identity) {
        send(res, 401, HTML, page("Not through the gateway", `<h1>No identity</h1>
<p>This request carries no <code>X-Auth-Subject</code>: it did not come through Tokengate, or
<code>${escape(url.pathname)}</code> is listed in <code>PUBLIC_PATHS</code>.</p>`));
        return true;
      }
      if (refreshRoute) {
        if (req.method === "POST") await rotate(res, identity);
        // The gateway answers other methods itself (405) without spending
        // anything; this is only reached if it did not.
        else send(res, 405, "application/json", JSON.stringify({
          error: "method_not_allowed",
          error_description: "POST only",
        }) + "\n", { allow: "POST" });
        return true;
      }
      if (route === "GET /app" || route === "GET /app/") send(res, 200, HTML, appView(identity));
      else if (route === "GET /app/account") send(res, 200, HTML, accountPage(identity));
      else if (route === "POST /app/refresh-replay") await replayRefresh(res, identity);
      else if (route === "GET /app/whoami") {
        const { sub, tokenId, issuer, claims } = identity;
        send(res, 200, "application/json", JSON.stringify({ sub, token_id: tokenId, issuer, sid: claims.sid ?? null }, null, 2));
      } else if (route === "POST /app/password") await changePassword(res, identity, new URLSearchParams(record.body));
      else if (route === "POST /app/idp-logout") await idpLogout(res, identity);
      else send(res, 404, HTML, page("Not found", `<h1>Not found</h1><p><a href="/app">Back</a></p>`));
      return true;
    },
  };
}

/** The identity Tokengate attached, or undefined. */
function identityOf(headers) {
  const subject = headers["x-auth-subject"];
  if (subject === undefined) return undefined;
  const decode = (value) => {
    try {
      return decodeURIComponent(value ?? "");
    } catch {
      return value;
    }
  };
  let claims = {};
  try {
    claims = JSON.parse(Buffer.from(headers["x-auth-claims"] ?? "", "base64url").toString("utf8"));
  } catch {
    // Shown as no claims; the gateway always sends valid JSON.
  }
  return { sub: decode(subject), tokenId: decode(headers["x-auth-token-id"]), issuer: decode(headers["x-auth-issuer"]), claims };
}

async function mintToken(res, url, { issuer, audience }, key, tokenCookie) {
  const sub = url.searchParams.get("sub") || "alice";
  const ttl = Math.min(Number(url.searchParams.get("ttl")) || 600, 86400);
  const token = await new SignJWT({ name: sub })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(sub)
    .setIssuer(issuer)
    .setAudience(audience)
    .setJti(randomUUID())
    // Fractional iat: ordered exactly against logout-all cut-offs.
    .setIssuedAt(Date.now() / 1000)
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
    .sign(key);
  // The same cookie Tokengate reads (TOKEN_COOKIE) and clears on logout.
  send(res, 200, "application/json", JSON.stringify({ sub, ttl, token, try: `curl -H 'Authorization: Bearer ${token}' http://127.0.0.1:8787/hello` }, null, 2), {
    "set-cookie": tokenCookie(token, ttl),
  });
}

// ---------------------------------------------------------------- pages

const escape = (value) =>
  String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const STYLE = `
:root{--fg:#1f2430;--muted:#5d6679;--line:#dde1e8;--soft:#f4f6f9;--accent:#2456d3;--bad:#b42318;--good:#067647}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,sans-serif;color:var(--fg);max-width:46rem;margin:0 auto;padding:1.5rem 1rem 3rem}
header{display:flex;justify-content:space-between;align-items:baseline;border-bottom:1px solid var(--line);margin-bottom:1.5rem}
header a{color:var(--fg);font-weight:600;text-decoration:none}
header span{color:var(--muted);font-size:13px}
h1{font-size:1.5rem;margin:.5rem 0 1rem}
h2{font-size:1.1rem;margin:2rem 0 .5rem}
a{color:var(--accent)}
code{background:var(--soft);padding:0 .25rem;border-radius:3px}
pre{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:.75rem 1rem;white-space:pre-wrap;word-break:break-all;font-size:13px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem;margin:0}
dt{color:var(--muted)}
dd{margin:0;font-family:ui-monospace,monospace;font-size:13px;word-break:break-all}
form{margin:0}
label{display:block;margin:.5rem 0 .2rem;color:var(--muted);font-size:13px}
input{font:inherit;padding:.4rem .5rem;border:1px solid var(--line);border-radius:4px;width:100%;max-width:18rem}
button{font:inherit;padding:.45rem .9rem;border:1px solid var(--accent);border-radius:4px;background:var(--accent);color:#fff;cursor:pointer}
button.secondary{background:#fff;color:var(--accent)}
.row{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}
.card>:first-child{margin-top:0}
.card{border:1px solid var(--line);border-radius:8px;padding:1rem 1.25rem;margin:1rem 0}
.note{color:var(--muted);font-size:13px}
.bad{color:var(--bad)} .good{color:var(--good)}
pre.bad{border-color:var(--bad)} pre.good{border-color:var(--good)}
`;

function page(title, body, script = "") {
  return `<!doctype html>
<html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escape(title)} · Tokengate demo</title>
<style>${STYLE}</style>
<header><a href="/demo">Tokengate demo</a><span>origin behind the gateway</span></header>
${body}
${script ? `<script>${script}</script>` : ""}
</html>`;
}

function signInPage(error = "", user = "") {
  return page("Sign in", `<h1>Sign in</h1>
${error ? `<p class="bad" role="alert">${escape(error)}</p>` : ""}
<form method="post" action="/demo/signin" class="card">
  <label for="user">User name</label><input id="user" name="user" value="${escape(user)}" autocomplete="username" required>
  <label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
  <p class="row"><button type="submit">Sign in</button></p>
</form>
<p class="note">Demo users live in the origin's memory: the first sign-in with a name sets its password.
Each sign-in starts a new session: the access token gets a fresh <code>sid</code> and goes into an HttpOnly cookie,
and a refresh token of the same session into another, sent only to the refresh route.</p>`);
}

const time = (seconds) => (typeof seconds === "number" ? new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z") : "none");

/** `refresh`: the gateway's refresh settings; `known`: this session's refresh tokens, if the origin issued any. */
function appPage(identity, backchannel, refresh, known, error = "") {
  const { sub, tokenId, issuer, claims } = identity;
  return page("Signed in", `<h1>Signed in as <span id="subject">${escape(sub)}</span></h1>
${error ? `<p class="bad" role="alert">${escape(error)}</p>` : ""}
<div class="card"><dl>
  <dt>Subject</dt><dd>${escape(sub)}</dd>
  <dt>Token</dt><dd id="token-id">${escape(tokenId)}</dd>
  <dt>Session</dt><dd id="session-id">${escape(claims.sid ?? "none (token without sid)")}</dd>
  <dt>Issuer</dt><dd>${escape(issuer)}</dd>
  <dt>Issued</dt><dd>${time(claims.iat)}</dd>
  <dt>Expires</dt><dd>${time(claims.exp)}</dd>
</dl>
<p class="note">From the headers Tokengate added after verifying your token: <code>X-Auth-Subject</code>,
<code>X-Auth-Token-Id</code>, and <code>sid</code> from <code>X-Auth-Claims</code>.</p>
<p class="row"><a href="/app/account" id="account-link">Your account</a> <span class="note">(a strict path: checked against your user's Durable Object too)</span></p></div>

<h2>Refresh token</h2>
<div class="card">
<dl>
  <dt>Refresh token</dt><dd id="refresh-id">${escape(known?.latest.jti ?? "none known to this origin")}</dd>
  <dt>Previous (spent)</dt><dd id="previous-refresh-id">${escape(known?.previous?.jti ?? "none yet")}</dd>
</dl>
<div class="row" style="margin-top:.75rem">
  <form method="post" action="${escape(refresh.path)}"><button id="refresh">Refresh the access token</button></form>
  <form method="post" action="/app/refresh-replay"><button id="replay-refresh" class="secondary"${known?.previous ? "" : " disabled"}>Replay the previous refresh token (a thief)</button></form>
</div>
<p class="note">The refresh token (<code>typ: ${escape(refresh.typ)}</code>, same <code>sid</code>) lives in the
<code>${escape(refresh.cookie)}</code> cookie, <code>Path=${escape(refresh.path)}</code>: the browser sends it to that route only.
The gateway spends it once, in your user's Durable Object, before the origin mints a new pair.
Presenting a spent one again is a theft: the gateway answers <code>refresh_token_reused</code> and ends the whole session.</p>
</div>

<h2>Sign out</h2>
<div class="row">
  <form method="post" action="/auth/logout" data-reason="logout"><button id="logout">Sign out</button></form>
  <form method="post" action="/auth/logout-all" data-reason="logout-all"><button id="logout-all" class="secondary">Sign out everywhere</button></form>
</div>
<p class="note"><code>POST /auth/logout</code> revokes this session; <code>POST /auth/logout-all</code> every token of ${escape(sub)}, on every device.</p>

<h2>Change password</h2>
<form method="post" action="/app/password" class="card" id="password-form">
  <label for="current">Current password</label><input id="current" name="current" type="password" autocomplete="current-password" required>
  <label for="new">New password</label><input id="new" name="new" type="password" autocomplete="new-password" required>
  <p class="row"><button id="change-password">Change password</button></p>
  <p class="note">The origin answers with <code>Tokengate-Revoke: user</code>: the gateway revokes every token of ${escape(sub)} before passing the answer on.</p>
</form>

<h2>Identity provider</h2>
<form method="post" action="/app/idp-logout" class="card">
  <p class="row"><button id="idp-logout" class="secondary">Back-channel logout at the identity provider</button></p>
  <p class="note">The demo origin plays the identity provider: it signs a logout token for session
  <code>${escape(claims.sid ?? "?")}</code> of ${escape(sub)} and POSTs it to the gateway's <code>${escape(backchannel?.path ?? "BACKCHANNEL_LOGOUT_PATH")}</code>.
  Without <code>REQUIRE_SID</code> the gateway ends every session of ${escape(sub)} signed in before it: a provider's access tokens may carry no <code>sid</code>.</p>
</form>`, `
// Sign-out buttons: show the gateway's JSON answer on the signed-out page.
// (Without JavaScript the form posts still work; the browser shows the JSON.)
for (const form of document.querySelectorAll("form[data-reason]")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch(form.action, { method: "POST" });
    sessionStorage.setItem("gateway-answer", "POST " + new URL(form.action).pathname + " -> " + response.status + "\\n" + await response.text());
    location.href = "/demo/signed-out?reason=" + form.dataset.reason;
  });
}`);
}

function accountPage(identity) {
  const { sub, tokenId, claims } = identity;
  return page("Your account", `<h1>Account of <span id="account-subject">${escape(sub)}</span></h1>
<div class="card"><dl>
  <dt>User</dt><dd>${escape(sub)}</dd>
  <dt>Session</dt><dd id="account-session">${escape(claims.sid ?? "none (token without sid)")}</dd>
  <dt>Token</dt><dd>${escape(tokenId)}</dd>
  <dt>Expires</dt><dd>${time(claims.exp)}</dd>
</dl>
<p class="note" id="strict-note">This page is under <code>STRICT_PATHS</code>: on every request the gateway checks your
token against your user's Durable Object as well as KV, so a sign-out anywhere in the world is seen here at once.</p></div>
<p><a href="/app">Back to /app</a></p>`);
}

function refreshReplayPage(target, cookie, identity, previous, answer) {
  const reused = answer.status === 401 && answer.body.includes("refresh_token_reused");
  return page("Refresh token replayed", `<h1>A thief replayed your previous refresh token</h1>
<p>The demo origin sent this session's previous refresh token <code>${escape(previous.jti)}</code>, spent already, to
<code>POST ${escape(target)}</code> in the <code>${escape(cookie)}</code> cookie. The gateway answered:</p>
<pre id="refresh-replay-answer" class="${answer.status >= 200 && answer.status < 300 ? "good" : "bad"}">${escape(answer.status)}\n${escape(answer.body)}</pre>
<p>${reused
    ? `The gateway saw a spent refresh token again and revoked its whole family: session <code>${escape(identity.claims.sid)}</code>.
Your access token and your newer refresh token are refused from now on; ${escape(identity.sub)}'s other sessions are untouched.`
    : "The gateway did not report a reuse."}</p>
<p class="row"><a href="/app">Open /app again</a> · <a href="/app/account">Open /app/account</a> · <a href="/demo/signin">Sign in again</a></p>`);
}

function idpLogoutPage(target, claims, answer) {
  const ok = answer.status === 200;
  return page("Back-channel logout", `<h1>Back-channel logout sent</h1>
<p>The identity provider POSTed a logout token for session <code>${escape(claims.sid)}</code> to
<code>${escape(target)}</code>. The gateway answered:</p>
<pre id="backchannel-answer" class="${ok ? "good" : "bad"}">${escape(answer.status)}\n${escape(answer.body)}</pre>
<p>${ok ? "This browser's session is revoked: its next request is refused." : "The gateway did not accept the logout token."}</p>
<p class="row"><a href="/app">Open /app again</a> · <a href="/demo/signed-out?reason=backchannel">Replay the old token</a></p>
<h2>Logout token claims</h2>
<pre>${escape(JSON.stringify(claims, null, 2))}</pre>`);
}

const REASONS = {
  logout: "You signed out: the gateway revoked this session.",
  "logout-all": "You signed out everywhere: the gateway revoked every token of your user.",
  password: "Your password was changed: the gateway revoked every token of your user, on every device.",
  backchannel: "The identity provider logged this session out over the back channel.",
};

function signedOutPage(reason) {
  return page("Signed out", `<h1>Signed out</h1>
<p id="reason">${escape(REASONS[reason] ?? "You are signed out.")}</p>
<pre id="gateway-answer" hidden></pre>
<h2>Replay the old token</h2>
<p>Your browser kept the token it held (a demo-only cookie). Send it again, as
<code>Authorization: Bearer</code>, to the protected <code>GET /app/whoami</code>:</p>
<pre id="old-token">no old token in this browser</pre>
<p class="row"><button id="replay" disabled>Replay old token</button></p>
<pre id="replay-answer" hidden></pre>
<p><a href="/demo/signin">Sign in again</a></p>`, `
const old = document.cookie.split("; ").find((c) => c.startsWith("${LAST_TOKEN_COOKIE}="))?.slice(${LAST_TOKEN_COOKIE.length + 1});
const answer = sessionStorage.getItem("gateway-answer");
if (answer) {
  sessionStorage.removeItem("gateway-answer");
  Object.assign(document.getElementById("gateway-answer"), { hidden: false, textContent: "The gateway answered " + answer });
}
if (old) {
  const claims = JSON.parse(atob(old.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  document.getElementById("old-token").textContent = old + "\\n\\nsub " + claims.sub + ", token " + claims.jti + ", session " + (claims.sid ?? "none");
  const button = document.getElementById("replay");
  button.disabled = false;
  button.addEventListener("click", async () => {
    // credentials: "omit": only the old token, not whatever cookie is left.
    const response = await fetch("/app/whoami", { headers: { authorization: "Bearer " + old }, credentials: "omit" });
    const out = document.getElementById("replay-answer");
    out.hidden = false;
    out.className = response.ok ? "good" : "bad";
    out.textContent = "GET /app/whoami -> " + response.status + "\\n" + await response.text();
  });
}`);
}

function demoPage(cookie) {
  return page("Overview", `<h1>Tokengate demo</h1>
<p>Tokengate verifies the JWT on every request and checks it against its revocation list before this
origin sees it. Pages under <code>/demo</code> are public (<code>PUBLIC_PATHS</code>); everything else
needs a valid token.</p>
<p class="row"><a href="/demo/signin">Sign in to the demo app</a> · <a href="/app">/app</a> (protected)</p>

<h2>Dev tokens</h2>
<form id="mint" class="row">
  <label for="sub">sub</label><input id="sub" name="sub" value="alice" style="width:8rem">
  <label for="ttl">ttl (s)</label><input id="ttl" name="ttl" value="600" style="width:6rem">
  <button>Mint</button>
</form>
<p class="note"><code>GET /demo/mint?sub=alice&amp;ttl=600</code> mints an HS256 token for <code>sub</code>, valid
for <code>ttl</code> seconds (default 600, at most 86400), without <code>sid</code>; it answers the token as JSON
and sets it as the <code>${escape(cookie)}</code> cookie.</p>
<p class="row"><button onclick="go('GET','/hello')">GET /hello</button>
<button onclick="go('POST','/auth/logout')" class="secondary">POST /auth/logout</button>
<button onclick="go('POST','/auth/logout-all')" class="secondary">POST /auth/logout-all</button>
<button onclick="go('POST','/auth/password-change')" class="secondary">POST /auth/password-change</button></p>
<pre id="out">Mint a token, then call /hello: the origin echoes what it received, X-Auth-* identity headers included.</pre>`, `
const out = document.getElementById("out");
document.getElementById("mint").addEventListener("submit", async (event) => {
  event.preventDefault();
  const r = await fetch("/demo/mint?" + new URLSearchParams(new FormData(event.target)));
  out.textContent = await r.text();
});
async function go(method, path) {
  const r = await fetch(path, { method });
  out.textContent = method + " " + path + " -> " + r.status + "\\n\\n" + await r.text();
}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const secret = process.env.JWT_SECRET;
  if (!secret) {
    console.error("demo origin: set JWT_SECRET (npm run dev does this for you)");
    process.exit(1);
  }
  const origin = await startOrigin({
    port: Number(process.env.ORIGIN_PORT ?? 8788),
    mint: {
      secret,
      issuer: process.env.JWT_ISSUER,
      audience: process.env.JWT_AUDIENCE,
      cookie: process.env.TOKEN_COOKIE ?? "tg_token",
      refreshCookie: process.env.REFRESH_COOKIE ?? "tg_refresh",
      refreshPath: process.env.REFRESH_PATH ?? "/auth/refresh",
      refreshTyp: process.env.REFRESH_TYP ?? "refresh+jwt",
    },
    backchannel: { path: process.env.BACKCHANNEL_LOGOUT_PATH, audience: process.env.BACKCHANNEL_LOGOUT_AUDIENCE },
    gatewayUrl: process.env.GATEWAY_URL ?? "http://127.0.0.1:8787",
  });
  console.log(`demo origin listening on ${origin.url}`);
}
