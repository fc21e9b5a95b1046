// The Worker's entry: hands each request to the Rust core in one call.
// The core (src/) decides everything; js/host.mjs does the I/O it asks for.
// Built by scripts/build.sh into build/index.js next to build/index_bg.wasm.
import wasmModule from "./index_bg.wasm";
import { initSync, handle, __wbg_reset_state as resetWasm } from "./index.js";
import { drive, redact } from "./snippets/host.mjs";
// The per-user Durable Object class, exported for the SESSIONS binding.
export { SessionObject } from "./sessions.mjs";

// Instantiated once per isolate, at startup, from the module the runtime
// already compiled.
initSync({ module: wasmModule });

const INTERNAL_ERROR = JSON.stringify({
  error: "internal_error",
  error_description: "Tokengate failed on this request; nothing was forwarded",
});

// Only a bug lands here. A trap leaves the wasm instance unusable, so the
// next request gets a fresh one.
function internalError(error) {
  console.error(`tokengate internal error: ${redact(error?.stack ?? error)}`);
  if (error instanceof WebAssembly.RuntimeError) resetWasm();
  return new Response(INTERNAL_ERROR + "\n", { status: 500, headers: { "content-type": "application/json" } });
}

export default {
  // Not an async function: the task's promise is returned as it is, with
  // no extra promise and await around it on every request.
  fetch(request, env, ctx) {
    const headers = request.headers;
    try {
      return drive(handle(
        request,
        env,
        ctx,
        request.method,
        request.url,
        headers.get("authorization") ?? undefined,
        headers.get("cookie") ?? undefined,
        headers.get("origin") ?? undefined,
        request.method === "OPTIONS" && headers.has("access-control-request-method"),
        Date.now(),
      )).catch(internalError);
    } catch (error) {
      return internalError(error);
    }
  },
};
