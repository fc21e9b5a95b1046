// The demo web application in a real browser (Chromium from the npm package
// @sparticuz/chromium, driven by playwright-core) behind the release build
// of Tokengate in Miniflare: sessions, password change with
// `Tokengate-Revoke: user`, OpenID Connect back-channel logout, an old token
// replayed after sign-out, a strict path, and refresh-token rotation with a
// spent refresh token replayed.
//
//   bash scripts/build.sh && node --test --test-concurrency=1 'tests/browser/*.test.mjs'
//
// The browser comes with `npm ci` (launch.mjs unpacks it; CHROMIUM_PATH
// overrides it). Screenshots of the key pages go to build/screenshots/, so a
// test run leaves the tracked files alone; `SCREENSHOT_DIR=docs/screenshots`
// refreshes the ones the README shows.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { startGateway, launchChromium } from "./launch.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const screenshots = path.resolve(root, process.env.SCREENSHOT_DIR ?? "build/screenshots");

let gateway;
let browser;

before(async () => {
  gateway = await startGateway();
  browser = await launchChromium();
  mkdirSync(screenshots, { recursive: true });
});

after(async () => {
  await browser?.close();
  await gateway?.close();
});

async function shot(page, name) {
  await page.screenshot({ path: path.join(screenshots, `${name}.png`), fullPage: true });
}

/** A fresh browser context (its own cookie jar: another device) signed in as `user`. */
async function signIn(user, password, { screenshot } = {}) {
  const context = await browser.newContext({ viewport: { width: 900, height: 720 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const response = await page.goto(`${gateway.url}/demo/signin`);
  assert.equal(response.status(), 200);
  await page.fill("#user", user);
  await page.fill("#password", password);
  if (screenshot) await shot(page, "signin");
  await Promise.all([page.waitForURL(`${gateway.url}/app`), page.click("button[type=submit]")]);
  const session = await whoIsSignedIn(page);
  assert.equal(session.subject, user);
  assert.match(session.sid, /^[\w-]{16}$/, "the page shows the session (sid from X-Auth-Claims)");
  assert.match(session.tokenId, /^[0-9a-f-]{36}$/, "the page shows the token ID (X-Auth-Token-Id)");
  return { context, page, ...session };
}

async function whoIsSignedIn(page) {
  return {
    subject: await page.textContent("#subject"),
    tokenId: await page.textContent("#token-id"),
    sid: await page.textContent("#session-id"),
  };
}

/** Navigates to the protected page; returns the status and the body text shown. */
async function openApp(page) {
  const response = await page.goto(`${gateway.url}/app`);
  return { status: response.status(), text: await page.textContent("body") };
}

function assertRevoked({ status, text }, what) {
  assert.equal(status, 401, `${what}: expected 401, got ${status}: ${text.slice(0, 200)}`);
  assert.equal(JSON.parse(text).error, "token_revoked", what);
}

/**
 * Waits into the next whole second. A cut-off revokes every token issued
 * before it, and it may be the end of a second still running: a back-channel
 * logout's (the logout token's whole-second iat), or the gateway's own if its
 * clock read a whole second (cut_off_after in src/revocation.rs). Called after
 * the revoking request was answered, so a sign-in after it comes after the cut-off.
 */
const intoTheNextSecond = () => new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 20));

/** On the signed-out page: replay the old token and return what the page shows. */
async function replayOldToken(page) {
  await page.click("#replay");
  await page.waitForSelector("#replay-answer:not([hidden])");
  return page.textContent("#replay-answer");
}

test("two devices sign in as the same user, each with its own session", async () => {
  const a = await signIn("alice", "correct horse", { screenshot: true });
  await shot(a.page, "app");
  const b = await signIn("alice", "correct horse");
  assert.notEqual(a.sid, b.sid);
  assert.notEqual(a.tokenId, b.tokenId);
  // Both are still signed in.
  assert.equal((await openApp(a.page)).status, 200);
  assert.equal((await openApp(b.page)).status, 200);
  await a.context.close();
  await b.context.close();
});

test("a wrong password is refused at sign-in", async () => {
  await (await signIn("erin", "first")).context.close();
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${gateway.url}/demo/signin`);
  await page.fill("#user", "erin");
  await page.fill("#password", "second");
  await page.click("button[type=submit]");
  assert.match(await page.textContent("[role=alert]"), /Wrong password for erin/);
  await context.close();
});

test("sign out: the old token replayed from the browser is refused (token_revoked)", async () => {
  const a = await signIn("alice", "correct horse");
  const b = await signIn("alice", "correct horse");
  await Promise.all([a.page.waitForURL(/\/demo\/signed-out\?reason=logout$/), a.page.click("#logout")]);
  assert.match(await a.page.textContent("#gateway-answer"), /-> 200[^]*logged_out/);
  assert.match(await replayOldToken(a.page), /-> 401[^]*token_revoked/);
  await shot(a.page, "signed-out-replay-refused");
  // The gateway cleared the cookie: the browser itself has no token any more.
  const after = await openApp(a.page);
  assert.equal(after.status, 401);
  assert.equal(JSON.parse(after.text).error, "token_missing");
  // Signing out one session leaves the user's other session alone.
  assert.equal((await openApp(b.page)).status, 200);
  await a.context.close();
  await b.context.close();
});

test("sign out everywhere: every session of the user is refused", async () => {
  const a = await signIn("dave", "pw");
  const b = await signIn("dave", "pw");
  await Promise.all([a.page.waitForURL(/\/demo\/signed-out\?reason=logout-all$/), a.page.click("#logout-all")]);
  assert.match(await a.page.textContent("#gateway-answer"), /-> 200[^]*logged_out_everywhere/);
  assertRevoked(await openApp(b.page), "the other device after logout-all");
  assert.match(await replayOldToken(a.page), /-> 401[^]*token_revoked/);
  // A new sign-in after the cut-off works.
  await intoTheNextSecond();
  await (await signIn("dave", "pw")).context.close();
  await a.context.close();
  await b.context.close();
});

test("password change (Tokengate-Revoke: user): the other device is refused on its next navigation, the old token too", async () => {
  const a = await signIn("alice", "correct horse");
  const b = await signIn("alice", "correct horse");
  await a.page.fill("#current", "correct horse");
  await a.page.fill("#new", "new secret");
  await Promise.all([a.page.waitForURL(/\/demo\/signed-out\?reason=password$/), a.page.click("#change-password")]);

  assertRevoked(await openApp(b.page), "the other device after the password change");
  await shot(b.page, "revoked-other-device");
  assert.match(await replayOldToken(a.page), /-> 401[^]*token_revoked/);

  // The new password signs in; the old one no longer does.
  await intoTheNextSecond();
  await (await signIn("alice", "new secret")).context.close();
  await a.context.close();
  await b.context.close();
});

test("back-channel logout signs the user out of every browser; a sign-in after it works", async () => {
  // Without REQUIRE_SID a logout token naming the user cuts off all of the
  // user's tokens issued before it: an identity provider's access tokens
  // may carry no sid, so the session alone could leave them working.
  const a = await signIn("bob", "pw");
  const b = await signIn("bob", "pw");
  await Promise.all([a.page.waitForURL(`${gateway.url}/app/idp-logout`), a.page.click("#idp-logout")]);
  const answer = await a.page.textContent("#backchannel-answer");
  assert.match(answer, /^200\b/, `the gateway accepts the logout token: ${answer}`);
  await shot(a.page, "backchannel-logout");

  assertRevoked(await openApp(a.page), "the logged-out session");
  assertRevoked(await openApp(b.page), "the user's other browser, signed in before the logout");

  await a.page.goto(`${gateway.url}/demo/signed-out?reason=backchannel`);
  assert.match(await replayOldToken(a.page), /-> 401[^]*token_revoked/);
  // The logout token's iat is a whole second, and its cut-off the end of it.
  await intoTheNextSecond();
  const c = await signIn("bob", "pw");
  assert.equal((await openApp(c.page)).status, 200, "signed in after the logout");
  await a.context.close();
  await b.context.close();
  await c.context.close();
});

/** Every cookie the browser holds, by name, whatever its Path (one host only). */
async function cookiesOf(context) {
  return Object.fromEntries((await context.cookies()).map((c) => [c.name, c]));
}

test("refresh rotates both tokens; replaying the spent refresh token ends the session (refresh_token_reused)", async () => {
  const { TOKEN_COOKIE: access, REFRESH_COOKIE: refresh, REFRESH_PATH: refreshPath } = gateway.vars;
  const a = await signIn("frank", "pw");
  const b = await signIn("frank", "pw");

  // The strict path, checked against the user's Durable Object too.
  const account = await a.page.goto(`${gateway.url}/app/account`);
  assert.equal(account.status(), 200);
  assert.equal(await a.page.textContent("#account-subject"), "frank");
  assert.equal(await a.page.textContent("#account-session"), a.sid);
  assert.match(await a.page.textContent("#strict-note"), /Durable Object/);

  // The refresh token: its own cookie, sent to the refresh route only.
  await openApp(a.page);
  assert.equal(await a.page.isDisabled("#replay-refresh"), true, "nothing spent yet, nothing to replay");
  const before = await cookiesOf(a.context);
  assert.ok(before[access] && before[refresh], `both cookies are set: ${Object.keys(before)}`);
  assert.deepEqual(
    [before[refresh].path, before[refresh].secure, before[refresh].httpOnly, before[refresh].sameSite],
    [refreshPath, true, true, "Strict"],
  );
  const claims = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url"));
  const header = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[0], "base64url"));
  assert.equal(header(before[refresh].value).typ, gateway.vars.REFRESH_TYP);
  assert.equal(claims(before[refresh].value).sid, a.sid);

  // Refresh: back on /app, same session, a new access token and refresh token.
  await Promise.all([a.page.waitForURL(`${gateway.url}/app`), a.page.click("#refresh")]);
  const refreshed = await whoIsSignedIn(a.page);
  assert.equal(refreshed.subject, "frank");
  assert.equal(refreshed.sid, a.sid, "the same session");
  assert.notEqual(refreshed.tokenId, a.tokenId, "a new access token");
  const after = await cookiesOf(a.context);
  assert.notEqual(after[access].value, before[access].value, "the access token cookie changed");
  assert.notEqual(after[refresh].value, before[refresh].value, "the refresh token rotated");
  assert.equal(await a.page.textContent("#previous-refresh-id"), claims(before[refresh].value).jti);
  assert.equal((await a.page.goto(`${gateway.url}/app/account`)).status(), 200, "the new access token passes the strict path");

  // A thief presents the spent refresh token: the gateway revokes the session.
  await openApp(a.page);
  await Promise.all([a.page.waitForURL(`${gateway.url}/app/refresh-replay`), a.page.click("#replay-refresh")]);
  const answer = await a.page.textContent("#refresh-replay-answer");
  assert.match(answer, /^401\b[^]*refresh_token_reused/, answer);
  await shot(a.page, "refresh-reuse");

  // The whole session is gone: its access token, on both kinds of path, and
  // its newest refresh token (never spent) too.
  assertRevoked(await openApp(a.page), "the access token of the reused session");
  const strict = await a.page.goto(`${gateway.url}/app/account`);
  assertRevoked({ status: strict.status(), text: await a.page.textContent("body") }, "the strict path");
  const again = await a.page.evaluate(async (path) => {
    const response = await fetch(path, { method: "POST" });
    return { status: response.status, text: await response.text() };
  }, refreshPath);
  assertRevoked(again, "the session's newest refresh token");

  // The user's other session is untouched.
  assert.equal((await openApp(b.page)).status, 200);
  assert.equal((await whoIsSignedIn(b.page)).sid, b.sid);
  await a.context.close();
  await b.context.close();
});
