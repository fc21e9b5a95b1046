// The origin every contender forwards to: 200 with a small body.
// `/echo...` answers the request it received as JSON (method, url, headers),
// so bench/run.mjs can check the identity headers before timing anything.
// Prints {"port": N} once listening. Requests with `x-bench-admin` are
// bench controls: /stats (requests served) and /reset.
import http from "node:http";

let served = 0;
const body = "ok: origin reached\n";

const server = http.createServer((req, res) => {
  if (req.headers["x-bench-admin"]) {
    if (req.url === "/reset") served = 0;
    const out = JSON.stringify({ served });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(out) });
    return res.end(out);
  }
  served++;
  // Drain any body, then answer.
  req.resume();
  req.on("end", () => {
    if (req.url.startsWith("/echo")) {
      const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(out) });
      return res.end(out);
    }
    res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
