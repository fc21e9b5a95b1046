// workerd entry for the Rust/wasm floor: instantiate the wasm once per
// isolate, hand every request to Rust.
import wasmModule from "./rust_floor_bg.wasm";
import { initSync, forward } from "./rust_floor.js";

initSync({ module: wasmModule });

export default {
  fetch(request, env) {
    return forward(request, env.ORIGIN_URL);
  },
};
