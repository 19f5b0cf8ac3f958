#!/usr/bin/env python3
"""Prints "name type" for every tensor of a GGUF file, in file order: the
tensor infos read straight from the header (GGUF v2/v3), independent of
aloe's reader, for scripts/gen-mix-gold.sh. Type names are ggml's, lower
case (q4_k, iq4_nl).

  gguf-types.py FILE               one line per tensor
  gguf-types.py FILE PREFIX...     grouped: "PREFIX... NAME TYPE" for the
                                   tensors outside the layers, then
                                   "PREFIX... blk.KIND TYPE*N ..." per layer
                                   tensor kind: its types from layer 0 up,
                                   runs of one type as TYPE*COUNT"""
import struct
import sys

# ggml type ids (ggml.h) of the types llama.cpp's presets write
NAMES = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 8: "q8_0", 10: "q2_k", 11: "q3_k",
         12: "q4_k", 13: "q5_k", 14: "q6_k", 20: "iq4_nl", 23: "iq4_xs", 30: "bf16"}
# metadata value types: fixed sizes (uint8 .. float64, bool); 8 string, 9 array
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def main(path):
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def skip_value(t):
        nonlocal pos
        if t == 8:
            n = take("Q")
            pos += n
        elif t == 9:
            et, n = take("I"), take("Q")
            for _ in range(n):
                skip_value(et)
        else:
            pos += SIZES[t]

    if data[:4] != b"GGUF":
        sys.exit(f"{path}: not a GGUF file")
    pos = 4
    version, n_tensors, n_kv = take("I"), take("Q"), take("Q")
    if version not in (2, 3):
        sys.exit(f"{path}: GGUF version {version}")
    for _ in range(n_kv):
        n = take("Q")  # the key
        pos += n
        skip_value(take("I"))
    tensors = []
    for _ in range(n_tensors):
        n = take("Q")
        name = data[pos:pos + n].decode()
        pos += n
        n_dims = take("I")
        pos += 8 * n_dims
        t = take("I")
        take("Q")  # offset
        tensors.append((name, NAMES.get(t, f"type{t}")))
    return tensors


def grouped(tensors, prefix):
    kinds = {}
    for name, t in sorted(tensors):
        parts = name.split(".", 2)
        if parts[0] != "blk":
            print(prefix, name, t)
        else:
            kinds.setdefault(parts[2], {})[int(parts[1])] = t
    for kind in sorted(kinds):
        layers = kinds[kind]
        runs = []
        for i in range(len(layers)):
            if runs and runs[-1][0] == layers[i]:
                runs[-1][1] += 1
            else:
                runs.append([layers[i], 1])
        print(prefix, "blk." + kind, " ".join(f"{t}*{n}" for t, n in runs))


if __name__ == "__main__":
    ts = main(sys.argv[1])
    if len(sys.argv) > 2:
        grouped(ts, " ".join(sys.argv[2:]))
    else:
        for name, t in ts:
            print(name, t)
