// The release build's string copy into wasm (wasm-bindgen's passStringToWasm0,
// patched by scripts/glue-strings.mjs to try one TextEncoder.encodeInto
// first): whatever the string, the bytes that reach wasm must be exactly its
// UTF-8, as TextEncoder.encode gives them. The function is taken from the
// glue the release build generated and run against a plain memory with a
// bump allocator.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const glue = readFileSync(path.join(root, "build/.stage/index.js"), "utf8");

/** The source of one top-level function of the glue. */
function functionSource(name) {
  const start = glue.indexOf(`function ${name}(`);
  assert.notEqual(start, -1, `${name} is in the glue`);
  let depth = 0;
  for (let i = glue.indexOf("{", start); i < glue.length; i++) {
    if (glue[i] === "{") depth++;
    if (glue[i] === "}" && --depth === 0) return glue.slice(start, i + 1);
  }
  throw new Error(`${name} never closes`);
}

/** passStringToWasm0 over a fresh memory; returns the bytes it wrote. */
function passToWasm(text) {
  const memory = new Uint8Array(1 << 20).fill(0xee); // garbage, not zeros
  let top = 8;
  const malloc = (size) => {
    const ptr = top;
    top += size + 8;
    return ptr;
  };
  const realloc = (ptr, oldSize, newSize) => {
    const moved = malloc(newSize);
    memory.copyWithin(moved, ptr, ptr + Math.min(oldSize, newSize));
    return moved;
  };
  const run = new Function(
    "getUint8ArrayMemory0",
    "cachedTextEncoder",
    `let WASM_VECTOR_LEN = 0;\n${functionSource("passStringToWasm0")}\n` +
      "return (arg, malloc, realloc) => { const ptr = passStringToWasm0(arg, malloc, realloc); return [ptr, WASM_VECTOR_LEN]; };",
  )(() => memory, new TextEncoder());
  const [ptr, len] = run(text, malloc, realloc);
  return memory.slice(ptr, ptr + len);
}

test("the release glue carries the encodeInto fast path", () => {
  assert.match(functionSource("passStringToWasm0"), /Patched by scripts\/glue-strings\.mjs/);
});

test("every string reaches wasm as its exact UTF-8, on both sides of the 32-character threshold", () => {
  const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjE3NjU0MDAwMDB9.c2lnbmF0dXJl";
  const odd = ["é", "ÿ", "\u0100", "€", "😀", "\ud800", "\udfff", "\u0000", "\u007f", "\u0080"];
  const cases = ["", "GET", "a".repeat(32), "a".repeat(33), `Bearer ${token}`, "https://gw.example/api?x=1"];
  for (const length of [1, 31, 32, 33, 40, 300]) {
    for (const char of odd) {
      const ascii = "x".repeat(length);
      cases.push(char + ascii, ascii + char, ascii.slice(0, length >> 1) + char + ascii.slice(length >> 1));
      cases.push(ascii + char + ascii + char, char.repeat(length));
    }
  }
  const encoder = new TextEncoder();
  for (const text of cases) {
    assert.deepEqual(passToWasm(text), encoder.encode(text), JSON.stringify(text));
  }
});
