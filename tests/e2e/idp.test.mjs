// A real identity provider in front of the release build: oidc-provider signs
// users in by authorization code + PKCE and issues ES256 JWT access tokens
// for the API (resource indicators); the gateways verify them with the
// provider's jwks_uri, take its back-channel logouts, and follow its key
// rotation. Everything a user agent does goes over HTTP with a cookie jar.
//
// oidc-provider's access tokens carry jti, sub, iat, exp, scope, client_id,
// iss and aud, and no sid; its logout tokens carry sub and sid (with
// backchannel_logout_session_required). So by default a logout cuts the user
// off; with REQUIRE_SID and the provider told to put sid into access tokens,
// a logout ends exactly its sign-in.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { SignJWT, importJWK } from "jose";
import { startOrigin } from "../../demo/origin.mjs";
import { bearer } from "../support/harness.mjs";
import {
  BACKCHANNEL_PATH,
  RESOURCE,
  RESOURCE_SCOPE,
  UserAgent,
  decodeJwt,
  publicClient,
  startGateway,
  startIdentityProvider,
} from "../support/idp.mjs";

// Two apps registered at the provider, each behind its own gateway.
const APP = "tokengate-app"; // default settings: access tokens without sid
const PER_SESSION_APP = "tokengate-per-session"; // REQUIRE_SID, access tokens with sid

let idp;
let origin;
let gateway; // default settings
let perSession; // REQUIRE_SID = "true"
let clients;

const settings = (audience) => ({
  JWT_ISSUER: idp.issuer,
  JWT_AUDIENCE: RESOURCE,
  JWT_JWKS_URL: idp.jwksUri,
  JWT_TYP: "at+jwt",
  BACKCHANNEL_LOGOUT_PATH: BACKCHANNEL_PATH,
  BACKCHANNEL_LOGOUT_AUDIENCE: audience,
});

before(async () => {
  idp = await startIdentityProvider();
  origin = await startOrigin();
  gateway = await startGateway(origin.url, settings(APP));
  perSession = await startGateway(origin.url, { ...settings(PER_SESSION_APP), REQUIRE_SID: "true" });
  clients = [publicClient(APP, gateway.url), publicClient(PER_SESSION_APP, perSession.url)];
  idp.configure({ clients, sidInAccessTokensFor: [PER_SESSION_APP] });
});
after(async () => {
  await gateway?.close();
  await perSession?.close();
  await origin?.close();
  await idp?.close();
});

// Cut-offs are per user and gateways share nothing with the tests before:
// every test signs in its own user.
const freshUser = (name) => `${name}-${randomUUID().slice(0, 8)}`;

/** What a client of the API sees: 200, or the status and the error code. */
async function outcome(target, accessToken) {
  const response = await target.fetch("/api/orders", { headers: bearer(accessToken) });
  const body = await response.text();
  return response.status === 200 ? 200 : `${response.status} ${JSON.parse(body).error}`;
}

/**
 * Waits into the next whole second. Token `iat`s are whole seconds and a
 * logout revokes every token of its second, so a sign-in meant to come
 * after a logout must start in a later second.
 */
const nextSecond = () => new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 20));

/**
 * A logout Tokengate saw does not end the provider's refresh token, which
 * never passes through Tokengate: refreshed in a later second, it gives an
 * access token the logout does not cover. An app signing out therefore
 * revokes its refresh token at the provider as well (RFC 7009), after which
 * it refreshes nothing.
 */
async function refreshOutlivesLogoutUntilRevoked(userAgent, refreshToken) {
  await nextSecond();
  const refreshedAfterLogout = await userAgent.refresh(APP, refreshToken);
  assert.equal(await outcome(gateway, refreshedAfterLogout.access_token), 200);
  await userAgent.revoke(APP, refreshedAfterLogout.refresh_token);
  await assert.rejects(userAgent.refresh(APP, refreshedAfterLogout.refresh_token), /invalid_grant/);
}

test("sign-in by code + PKCE: the provider's ES256 JWT access token reaches the origin with the user's identity", async () => {
  const discovery = await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json();
  assert.equal(discovery.jwks_uri, idp.jwksUri, "the gateway is configured with the provider's jwks_uri");
  assert.equal(discovery.backchannel_logout_supported, true);

  const alice = freshUser("alice");
  const tokens = await new UserAgent(idp).signIn(APP, alice);
  assert.ok(tokens.refresh_token, "offline_access gives a refresh token");
  assert.ok(tokens.id_token);

  const { header, payload } = decodeJwt(tokens.access_token);
  assert.deepEqual(header, { alg: "ES256", typ: "at+jwt", kid: "ec-1" });
  // Exactly what oidc-provider puts in an access token: no sid.
  assert.deepEqual(Object.keys(payload).sort(), ["aud", "client_id", "exp", "iat", "iss", "jti", "scope", "sub"]);
  assert.equal(payload.aud, RESOURCE);
  assert.equal(payload.iss, idp.issuer);
  assert.equal(payload.scope, RESOURCE_SCOPE);

  origin.received.splice(0);
  assert.equal(await outcome(gateway, tokens.access_token), 200);
  const [seen, ...more] = origin.received.splice(0);
  assert.equal(more.length, 0);
  assert.equal(seen.url, "/api/orders");
  assert.equal(seen.headers["x-auth-subject"], alice);
  assert.equal(seen.headers["x-auth-issuer"], idp.issuer);
  assert.equal(seen.headers["x-auth-token-id"], payload.jti);
  assert.deepEqual(JSON.parse(Buffer.from(seen.headers["x-auth-claims"], "base64url").toString("utf8")), payload);

  // The provider's ID token is not an access token for the API.
  assert.equal(await outcome(gateway, tokens.id_token), "401 type_invalid");
});

test("logout at Tokengate refuses the token and the access token refreshed from the same sign-in", async () => {
  const bob = freshUser("bob");
  const userAgent = new UserAgent(idp);
  const signedIn = await userAgent.signIn(APP, bob);
  // The app refreshed at the provider: a second access token of the same
  // sign-in, which looks like any other token of bob's (no sid).
  const refreshed = await userAgent.refresh(APP, signedIn.refresh_token);
  assert.notEqual(refreshed.access_token, signedIn.access_token);
  assert.equal(await outcome(gateway, signedIn.access_token), 200);
  assert.equal(await outcome(gateway, refreshed.access_token), 200);

  const response = await gateway.fetch("/auth/logout", { method: "POST", headers: bearer(signedIn.access_token) });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.equal(body.status, "logged_out");
  assert.equal(body.sub, bob, "no sid: the user is cut off");
  // The cut-off is the end of the logout's second, so a token refreshed in
  // that very second is covered too.
  assert.ok(body.revoked_before > decodeJwt(refreshed.access_token).payload.iat, JSON.stringify(body));

  assert.equal(await outcome(gateway, signedIn.access_token), "401 token_revoked");
  assert.equal(await outcome(gateway, refreshed.access_token), "401 token_revoked");

  await refreshOutlivesLogoutUntilRevoked(userAgent, refreshed.refresh_token);
});

test("logout at the provider arrives as a back-channel logout: the user's access token is refused, a later sign-in works", async () => {
  const carol = freshUser("carol");
  const userAgent = new UserAgent(idp);
  const signedIn = await userAgent.signIn(APP, carol);
  assert.equal(await outcome(gateway, signedIn.access_token), 200);

  const delivered = idp.logoutTokens.length;
  await userAgent.logOutAtProvider(APP, signedIn.id_token);
  const [logoutToken, ...others] = idp.logoutTokens.slice(delivered);
  assert.ok(logoutToken, "the provider delivered a logout token to the gateway");
  assert.equal(others.length, 0);
  const { header, payload } = decodeJwt(logoutToken);
  // Signed with the provider's RSA key (ID-token algorithm, RS256), while
  // access tokens use its EC key: the gateway picks the key by kid.
  assert.deepEqual(header, { alg: "RS256", typ: "logout+jwt", kid: "rsa-1" });
  assert.deepEqual(Object.keys(payload).sort(), ["aud", "events", "exp", "iat", "iss", "jti", "sid", "sub"]);
  assert.equal(payload.sub, carol);
  assert.equal(payload.aud, APP);

  assert.equal(await outcome(gateway, signedIn.access_token), "401 token_revoked");

  // An offline_access grant outlives the provider's logout too
  // (oidc-provider revokes only grants that expire with the session).
  await refreshOutlivesLogoutUntilRevoked(userAgent, signedIn.refresh_token);

  // Signing in again, after the logout's second, gives a token that works,
  // also once the provider's logout token is delivered again (a replay).
  const again = await new UserAgent(idp).signIn(APP, carol);
  assert.equal(await outcome(gateway, again.access_token), 200);
  const replay = await gateway.fetch(BACKCHANNEL_PATH, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ logout_token: logoutToken }).toString(),
  });
  assert.equal(replay.status, 200, await replay.text());
  assert.equal(await outcome(gateway, again.access_token), 200, "a replayed logout token revokes nothing issued after it");
});

test("REQUIRE_SID with sid in access tokens: a provider logout ends that sign-in only; tokens without sid are refused", async () => {
  const dave = freshUser("dave");
  const laptop = new UserAgent(idp);
  const phone = new UserAgent(idp);
  const onLaptop = await laptop.signIn(PER_SESSION_APP, dave);
  const onPhone = await phone.signIn(PER_SESSION_APP, dave);

  const { payload: laptopClaims } = decodeJwt(onLaptop.access_token);
  assert.deepEqual(Object.keys(laptopClaims).sort(), ["aud", "client_id", "exp", "iat", "iss", "jti", "scope", "sid", "sub"],
    "extraTokenClaims put the session's sid in the access token");
  const laptopSid = laptopClaims.sid;
  const phoneSid = decodeJwt(onPhone.access_token).payload.sid;
  assert.notEqual(laptopSid, phoneSid, "two sign-ins, two sessions");
  // A refreshed access token of a sign-in carries that sign-in's sid too.
  const laptopRefreshed = await laptop.refresh(PER_SESSION_APP, onLaptop.refresh_token);
  assert.equal(decodeJwt(laptopRefreshed.access_token).payload.sid, laptopSid);
  assert.equal(await outcome(perSession, onLaptop.access_token), 200);
  assert.equal(await outcome(perSession, onPhone.access_token), 200);

  const delivered = idp.logoutTokens.length;
  await laptop.logOutAtProvider(PER_SESSION_APP, onLaptop.id_token);
  const [logoutToken] = idp.logoutTokens.slice(delivered);
  assert.equal(decodeJwt(logoutToken).payload.sid, laptopSid, "the logout token names the sid the access tokens carry");

  assert.equal(await outcome(perSession, onLaptop.access_token), "401 token_revoked");
  assert.equal(await outcome(perSession, laptopRefreshed.access_token), "401 token_revoked");
  assert.equal(await outcome(perSession, onPhone.access_token), 200, "dave's other sign-in keeps working");

  // The default app's tokens have no sid: this gateway cannot end their
  // sign-in by a logout, so it refuses them.
  const withoutSid = await new UserAgent(idp).signIn(APP, freshUser("erin"));
  assert.equal(await outcome(perSession, withoutSid.access_token), "401 sid_required");
});

test("key rotation at the provider: the new kid verifies without restarting the gateway; the retired key is refused after a refetch", async () => {
  const frank = freshUser("frank");
  const beforeRotation = await new UserAgent(idp).signIn(APP, frank);
  assert.equal(decodeJwt(beforeRotation.access_token).header.kid, "ec-1");
  assert.equal(await outcome(gateway, beforeRotation.access_token), 200);

  // Rotation as a provider does it: publish the new key first, then sign
  // with it, then retire the old one.
  idp.configure({ clients, published: ["ec-1", "ec-2", "rsa-1"], accessTokenKid: "ec-1", sidInAccessTokensFor: [PER_SESSION_APP] });
  idp.configure({ clients, published: ["ec-2", "ec-1", "rsa-1"], accessTokenKid: "ec-2", sidInAccessTokensFor: [PER_SESSION_APP] });
  const afterRotation = await new UserAgent(idp).signIn(APP, frank);
  assert.equal(decodeJwt(afterRotation.access_token).header.kid, "ec-2");
  assert.equal(await outcome(gateway, afterRotation.access_token), 200, "an unknown kid makes the gateway fetch the JWKS again");
  assert.equal(await outcome(gateway, beforeRotation.access_token), 200, "the old key is still published");

  idp.configure({ clients, published: ["ec-2", "rsa-1"], accessTokenKid: "ec-2", sidInAccessTokensFor: [PER_SESSION_APP] });
  const jwks = await fetch(idp.jwksUri);
  assert.deepEqual((await jwks.json()).keys.map((k) => k.kid), ["ec-2", "rsa-1"]);
  // oidc-provider sends no Cache-Control on its JWKS: a gateway that has the
  // set cached keeps the retired key for JWT_JWKS_CACHE_SECONDS (default
  // 10 min; a removed key triggers no refetch). A gateway that fetches the
  // set now refuses it.
  assert.equal(jwks.headers.get("cache-control"), null);
  assert.equal(await outcome(gateway, beforeRotation.access_token), 200, "still cached by the running gateway");
  const fresh = await startGateway(origin.url, settings(APP));
  try {
    assert.equal(await outcome(fresh, afterRotation.access_token), 200);
    assert.equal(await outcome(fresh, beforeRotation.access_token), "401 unknown_key");
    // Neither can a holder of the retired private key sign a new token with it.
    const forged = await new SignJWT({ ...decodeJwt(afterRotation.access_token).payload, jti: randomUUID() })
      .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: "ec-1" })
      .sign(await importJWK(idp.key("ec-1"), "ES256"));
    assert.equal(await outcome(fresh, forged), "401 unknown_key");
  } finally {
    await fresh.close();
  }
});
