// A URL on which nothing listens: the port was bound, then released, so a
// connection to it is refused at once (rather than timing out).
import net from "node:net";

export async function closedPortUrl(host = "127.0.0.1") {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, host, resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return `http://${host}:${port}`;
}
