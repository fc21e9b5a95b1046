// A URL on which nothing listens, so a connection to it is refused at once
// (rather than timing out).
//
// Not a port bound and then released: that port goes back to the range the
// kernel hands out for port 0, and the other test files running beside this
// one (origins, key servers, Miniflare's own sockets) bind port 0 all the
// time, so one of them could take it before the gateway connects. A port
// below that range is never handed out, and nothing in the suite binds a
// fixed port; the one returned is checked to refuse connections.
import net from "node:net";
import { readFileSync } from "node:fs";

/** The lowest port the kernel hands out for port 0 (Linux; elsewhere it starts higher still). */
function ephemeralLow() {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 1024) return low;
  } catch {
    // not Linux, or not readable
  }
  return 32768;
}

function refuses(host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (error) => resolve(error.code === "ECONNREFUSED"));
  });
}

export async function closedPortUrl(host = "127.0.0.1") {
  // Unprivileged ports just below the ephemeral range: none is on the fetch
  // standard's list of blocked ports, so the connection really is attempted.
  const low = ephemeralLow();
  for (let port = low - 1; port >= Math.max(1025, low - 200); port--) {
    if (await refuses(host, port)) return `http://${host}:${port}`;
  }
  throw new Error(`no closed port found below ${low} on ${host}`);
}
