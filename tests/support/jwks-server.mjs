// A local identity provider's JWKS endpoint: serves whatever key set a test
// puts at a path, with a Cache-Control header, counts fetches, can go down.
// Faults: a path can hang (never answer), be slow (answer after a delay), or
// serve a raw body of the test's choosing (garbage instead of a key set).
import http from "node:http";

export async function startJwksServer() {
  const sets = new Map(); // path -> { keys, maxAge }
  const raw = new Map(); // path -> { body, status, contentType, maxAge }: served as is
  const hanging = new Set(); // paths that never answer
  const delays = new Map(); // path -> ms before answering
  const fetches = new Map(); // path -> count
  let down = false;
  const answer = (path, res) => {
    const set = sets.get(path);
    const verbatim = raw.get(path);
    if (down || (!set && !verbatim)) {
      res.writeHead(down ? 503 : 404).end();
      return;
    }
    if (verbatim) {
      res.writeHead(verbatim.status, { "content-type": verbatim.contentType, "cache-control": `public, max-age=${verbatim.maxAge}` });
      res.end(verbatim.body);
      return;
    }
    res.writeHead(200, { "content-type": "application/jwk-set+json", "cache-control": `public, max-age=${set.maxAge}` });
    res.end(JSON.stringify({ keys: set.keys }));
  };
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, "http://idp").pathname;
    fetches.set(path, (fetches.get(path) ?? 0) + 1);
    if (hanging.has(path)) return; // never answers: the caller's timeout must fire
    const delay = delays.get(path);
    // A slow provider answers with what it serves when the delay is over.
    if (delay) setTimeout(() => !res.destroyed && answer(path, res), delay).unref();
    else answer(path, res);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    url: (path) => `${base}${path}`,
    serve: (path, keys, maxAge = 600) => {
      raw.delete(path);
      sets.set(path, { keys, maxAge });
    },
    /** Serves `body` (a string) as is, in place of any key set at `path`. */
    serveRaw: (path, body, { status = 200, contentType = "application/jwk-set+json", maxAge = 600 } = {}) => {
      sets.delete(path);
      raw.set(path, { body, status, contentType, maxAge });
    },
    fetches: (path) => fetches.get(path) ?? 0,
    setDown: (value) => (down = value),
    hang: (path) => hanging.add(path),
    /** Answers `path` only after `ms` (0: at once again). */
    slow: (path, ms) => (ms ? delays.set(path, ms) : delays.delete(path)),
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
