// A stand-in for the SESSIONS Durable Object class whose every call fails,
// as when the object cannot be reached (an outage, or an overloaded
// object). Gateways bound to it must fail closed.
import { DurableObject } from "cloudflare:workers";

const down = () => {
  throw new Error("injected Durable Object outage");
};

export class UnreachableSessions extends DurableObject {
  read() {
    down();
  }
  write() {
    down();
  }
  spend() {
    down();
  }
}

export default {
  fetch: () => new Response("object-probe", { status: 404 }),
};
