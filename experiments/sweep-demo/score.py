#!/usr/bin/env python3
"""Evaluator for the sweep-demo experiment (standard library only).

Usage: score.py ARTIFACT A B

Scores how close a merge of A and B lands to a known target: the block-weighted blend
target(key) = (1 - t) * A + t * B with t = 0.2 in IN04, 0.8 in M00, 0.5 in OUT04 and 0.3
everywhere else. Prints one JSON object: {"closeness": 1 - rel_l2, "rel_l2_to_target": ...}
computed over the UNet's float16 tensors.
"""
import json
import re
import struct
import sys

TARGET = {"IN04": 0.2, "M00": 0.8, "OUT04": 0.5}
DEFAULT = 0.3


def block(key):
    m = re.match(r"model\.diffusion_model\.(input_blocks|output_blocks)\.(\d+)\.", key)
    if m:
        return ("IN" if m.group(1) == "input_blocks" else "OUT") + "%02d" % int(m.group(2))
    if key.startswith("model.diffusion_model.middle_block."):
        return "M00"
    return "BASE"


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    return header, data, 8 + n


def values(header, data, start, key):
    info = header[key]
    b, e = info["data_offsets"]
    count = (e - b) // 2
    return struct.unpack("<%de" % count, data[start + b : start + e])


def main():
    out_path, a_path, b_path = sys.argv[1:4]
    (ho, do, so), (ha, da, sa), (hb, db, sb) = read(out_path), read(a_path), read(b_path)
    diff = 0.0
    norm = 0.0
    for key, info in ho.items():
        if not key.startswith("model.diffusion_model.") or info["dtype"] != "F16":
            continue
        t = TARGET.get(block(key), DEFAULT)
        o, a, b = values(ho, do, so, key), values(ha, da, sa, key), values(hb, db, sb, key)
        for x, y, z in zip(o, a, b):
            target = (1 - t) * y + t * z
            diff += (x - target) ** 2
            norm += target * target
    rel = (diff / norm) ** 0.5 if norm > 0 else 0.0
    print(json.dumps({"closeness": 1 - rel, "rel_l2_to_target": rel}))


if __name__ == "__main__":
    main()
