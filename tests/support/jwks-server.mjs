// A local identity provider's JWKS endpoint: serves whatever key set a test
// puts at a path, with a Cache-Control header, counts fetches, can go down.
import http from "node:http";

export async function startJwksServer() {
  const sets = new Map(); // path -> { keys, maxAge }
  const hanging = new Set(); // paths that never answer
  const fetches = new Map(); // path -> count
  let down = false;
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, "http://idp").pathname;
    fetches.set(path, (fetches.get(path) ?? 0) + 1);
    const set = sets.get(path);
    if (hanging.has(path)) return; // never answers: the caller's timeout must fire
    if (down || !set) {
      res.writeHead(down ? 503 : 404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/jwk-set+json", "cache-control": `public, max-age=${set.maxAge}` });
    res.end(JSON.stringify({ keys: set.keys }));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    url: (path) => `${base}${path}`,
    serve: (path, keys, maxAge = 600) => sets.set(path, { keys, maxAge }),
    fetches: (path) => fetches.get(path) ?? 0,
    setDown: (value) => (down = value),
    hang: (path) => hanging.add(path),
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
