#!/usr/bin/env python3
"""Instructions per request by wasm function, from a callgrind dump of
`node bench/profile.mjs icount` run with BENCH_V8_FLAGS="--no-liftoff
--perf-basic-prof" on a build with names kept (bench/README.md).

    python3 bench/lib/jit-functions.py DUMP /tmp/perf-PID.map REQUESTS JUMP_TABLE_HEX IMPORTS [TOP]

callgrind sees JIT code without symbols; V8's perf map names it. Calls into
wasm enter through V8's jump table (8 bytes a slot, one slot per function
after the IMPORTS imported ones, at JUMP_TABLE_HEX: the code space's start,
just below the lowest wasm function in the map), so callgrind books a
function's instructions on its slot.
"""
import re
import subprocess
import sys

dump, perf_map, requests, table, imports = sys.argv[1:6]
requests, table, imports = float(requests), int(table, 16), int(imports)
top = int(sys.argv[6]) if len(sys.argv) > 6 else 50

by_index, ranges = {}, []
for line in open(perf_map):
    parts = line.rstrip("\n").split(" ", 2)
    if len(parts) < 3:
        continue
    start, size, name = int(parts[0], 16), int(parts[1], 16), re.sub(r"::h[0-9a-f]{16}", "", parts[2])
    ranges.append((start, size, name))
    m = re.match(r"JS:(.*)-(\d+)-turbofan$", name)
    if m:
        by_index[int(m.group(2))] = m.group(1)

out = subprocess.run(["callgrind_annotate", "--threshold=100", dump], capture_output=True, text=True).stdout
costs, started = {}, False
for line in out.splitlines():
    if "file:function" in line:
        started = True
        continue
    m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+\?\?\?:0x([0-9a-f]+)", line) if started else None
    if not m:
        continue
    count, address = int(m.group(1).replace(",", "")), int(m.group(2), 16)
    name = next((n for s, z, n in ranges if s <= address < s + z), None)
    if name is None and table <= address < table + 0x10000:
        slot = (address - table) // 8
        name = f"wasm function {imports + slot}: {by_index.get(imports + slot, '?')}"
    name = name or f"unknown code at {address:x}"
    costs[name] = costs.get(name, 0) + count

print(f"JIT code, instructions per request: {sum(costs.values()) / requests:.0f}")
for name, count in sorted(costs.items(), key=lambda kv: -kv[1])[:top]:
    print(f"{count / requests:9.0f}  {name[:150]}")
