#!/usr/bin/env python3
"""Writes the fuzz seed corpus (Tests/Fuzz/corpus/): small safetensors files, valid and
broken in each way the strict reader refuses, and recipes, valid and hostile.

The files are committed; rerun this only to change them. Bytes are built by hand (struct,
json), independently of mixlab's writer. Deterministic: no randomness, no timestamps.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ST = os.path.join(HERE, "corpus", "safetensors")
RC = os.path.join(HERE, "corpus", "recipes")

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
         "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def data_bytes(n, salt):
    return bytes(((i * 131 + salt * 17 + 7) & 0xFF) for i in range(n))


def build(tensors, metadata=None, header_text=None, declared=None, data=None, pad=True):
    """tensors: [(name, dtype, shape, payload-or-None)] laid out in order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blob = b""
    for i, (name, dtype, shape, payload) in enumerate(tensors):
        n = SIZES[dtype]
        for d in shape:
            n *= d
        payload = payload if payload is not None else data_bytes(n, i)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(payload)]}
        blob += payload
    text = header_text if header_text is not None else json.dumps(header, separators=(",", ":"), ensure_ascii=False)
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if pad:
        raw += b" " * ((8 - len(raw) % 8) % 8)
    return struct.pack("<Q", declared if declared is not None else len(raw)) + raw + (data if data is not None else blob)


def write(folder, name, content):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(content if isinstance(content, bytes) else content.encode("utf-8"))


def safetensors():
    w = lambda name, b: write(ST, name, b)
    w("valid-all-dtypes.safetensors",
      build([(f"t_{d.lower()}", d, [3], None) for d in sorted(SIZES, key=lambda d: (-SIZES[d], d))],
            metadata={"format": "pt", "note": "fuzz seed ✓"}))
    w("valid-scalar-empty.safetensors",
      build([("scalar", "F32", [], None), ("empty", "F16", [0, 4], None), ("matrix", "BF16", [2, 3], None)]))
    w("valid-sd1-tiny.safetensors", build([
        ("model.diffusion_model.input_blocks.0.0.weight", "F16", [4, 4, 3, 3], None),
        ("model.diffusion_model.input_blocks.0.0.bias", "F16", [4], None),
        ("model.diffusion_model.out.2.weight", "F16", [4, 4, 3, 3], None),
        ("cond_stage_model.transformer.text_model.embeddings.position_ids", "I64", [1, 4], struct.pack("<4q", 0, 1, 2, 3)),
        ("first_stage_model.decoder.conv_out.weight", "F16", [3, 4, 3, 3], None),
    ], metadata={"format": "pt"}))
    nan32, inf32 = struct.pack("<I", 0x7FC00000), struct.pack("<f", float("inf"))
    w("valid-nonfinite.safetensors", build([
        ("f32", "F32", [6], nan32 + inf32 + struct.pack("<f", float("-inf")) + struct.pack("<I", 1) + struct.pack("<2f", 0.5, -0.0)),
        ("f16", "F16", [4], struct.pack("<4H", 0x7E00, 0x7C00, 0xFC00, 0x0001)),
        ("bf16", "BF16", [4], struct.pack("<4H", 0x7FC0, 0x7F80, 0xFF80, 0x3F80)),
    ]))
    w("valid-unicode-names.safetensors", build([("é/ü.weight", "F32", [1], None), ('a"b\\c', "F16", [2], None),
                                                 ("\u2603", "U8", [1], None)]))
    # Keys in an order unlike the offsets, no padding, whitespace in the JSON.
    body = ('{ "b" : {"data_offsets":[4,8],"shape":[1],"dtype":"F32"},\n'
            '  "a" : {"dtype":"F32","shape":[1],"data_offsets":[0,4]} }')
    w("valid-unordered-unpadded.safetensors", build([], header_text=body, data=data_bytes(8, 1), pad=False))
    w("valid-metadata-only.safetensors", build([], metadata={"k": "v", "empty": ""}))
    w("valid-integers.safetensors", build([("ids", "I64", [2, 2], None), ("mask", "BOOL", [4], bytes([0, 1, 1, 0])),
                                           ("u", "U8", [3], None), ("i8", "I8", [2], None)]))
    w("valid-zero-rows-huge-trailing.safetensors", build([("z", "F32", [0, 4611686018427387904, 4], b"")]))
    ok = build([("a", "F32", [2], None), ("b", "F16", [2], None)])
    w("bad-truncated-data.safetensors", ok[:-3])
    w("bad-trailing-bytes.safetensors", ok + b"\x00\x01")
    w("bad-gap.safetensors", build([], header_text='{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', data=data_bytes(8, 2)))
    w("bad-overlap.safetensors", build([], header_text='{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                                                    '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', data=data_bytes(8, 3)))
    w("bad-duplicate-key.safetensors", build([], header_text='{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                                           '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', data=data_bytes(4, 4)))
    w("bad-utf8.safetensors", build([], header_text=b'{"\xff\xfe":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', data=data_bytes(4, 5)))
    w("bad-header-length.safetensors", build([("a", "F32", [1], None)], declared=200_000_000))
    w("bad-shape-overflow.safetensors", build([], header_text='{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}', data=data_bytes(16, 6)))
    w("bad-shape-mismatch.safetensors", build([], header_text='{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', data=data_bytes(8, 7)))
    w("bad-unknown-dtype.safetensors", build([], header_text='{"a":{"dtype":"F4","shape":[1],"data_offsets":[0,1]}}', data=b"\0"))
    w("bad-metadata-nonstring.safetensors", build([], header_text='{"__metadata__":{"n":1}}'))
    w("bad-negative-offset.safetensors", build([], header_text='{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}', data=b"\0"))
    w("bad-deep-json.safetensors", build([], header_text='{"a":' + "[" * 200 + "]" * 200 + "}"))
    w("bad-not-json.safetensors", build([], header_text="hello, world"))
    w("bad-array-root.safetensors", build([], header_text="[]"))
    w("bad-too-short.safetensors", b"\x08\x00\x00\x00\x00")
    w("bad-empty.safetensors", b"")


RECIPE_OK = """mixlab: 1
description: seed recipe
inputs:
  base: {synth: {arch: sd1, seed: 7, index: 0, scale: 0.05}}
  m1: {path: ../../models/m1.safetensors, sha256: 2dfe869f49}
  m2: ../../models/m2.safetensors
steps:
  merged:
    method: ties
    base: base
    models: [m1, m2]
    weights: [1, 0.5]
    density: 0.5
    sign: magnitude_sum
output:
  from: merged
  dtype: f16
"""


def recipes():
    w = lambda name, text: write(RC, name, text)
    w("valid-ties.yaml", RECIPE_OK)
    here = os.path.dirname(os.path.dirname(HERE))
    for exp in ("quickstart", "sd2-community"):
        folder = os.path.join(here, "experiments", exp)
        for f in sorted(os.listdir(folder)):
            if f.endswith(".yaml"):
                with open(os.path.join(folder, f)) as src:
                    w(f"valid-{exp}-{f}", src.read())
    w("valid-every-param-form.yaml", """mixlab: 1
inputs:
  a: {synth: {arch: sd1, seed: 1, index: 0, scale: 0.02, dtype: bf16}}
  b: {synth: {arch: sd1, seed: 1, index: 1, scale: 0.02}}
  c: /absolute/models/c.safetensors
steps:
  ws:
    method: weighted_sum
    models: [a, b]
    alpha: {gradient: [0, 0.5, 1]}
  dare:
    method: dare
    base: a
    models: [b, c]
    drop: 0.9
    seed: 42
    rescale: l1
  f:
    method: add_difference
    models: [ws, dare, a]
    alpha: {filters: [{match: "*attn*", value: 1}, {regex: "^model\\\\.diffusion_model\\\\.out", value: 0.25}], default: 0.5}
output:
  from: f
  compute: f64
  dtype: bf16
  key_policy: copy_reference
  shard_size: 2GB
  metadata: {author: fuzz}
""")
    w("valid-json-style.yaml", json.dumps({"mixlab": 1, "inputs": {"a": "a.safetensors", "b": "b.safetensors"},
                                           "steps": {"m": {"method": "slerp", "models": ["a", "b"], "t": 0.3}},
                                           "output": {"from": "m"}}))
    w("valid-block-scalars.yaml", "mixlab: 1\ndescription: |\n  * not an alias & not an anchor\n  [not flow\n"
      "inputs: {a: a.safetensors, b: b.safetensors}\nsteps: {m: {method: average, models: [a, b]}}\noutput: {from: m}\n")
    w("hostile-alias-bomb.yaml", "mixlab: 1\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
      + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
                f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n" for i in range(8)))
    w("hostile-merge-key.yaml", "mixlab: 1\nbase: &b {method: average}\nsteps:\n  m:\n    <<: *b\n    models: [a]\n")
    w("hostile-deep-flow.yaml", "mixlab: 1\ninputs: " + "[" * 2000 + "]" * 2000 + "\n")
    w("hostile-deep-block.yaml", "mixlab: 1\ndescription:\n  " + "- " * 2000 + "x\n")
    w("hostile-deep-mapping.yaml", "mixlab: 1\nsteps:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 120)))
    w("hostile-name-escape.yaml", RECIPE_OK.replace("mixlab: 1\n", "mixlab: 1\nname: ../../../etc/passwd\n"))
    w("hostile-name-hidden.yaml", RECIPE_OK.replace("mixlab: 1\n", "mixlab: 1\nname: .hidden\n"))
    w("hostile-input-name.yaml", RECIPE_OK.replace("  m2: ../../models", "  ../m2: ../../models"))
    w("hostile-huge-numbers.yaml", RECIPE_OK.replace("density: 0.5", "density: 1e400").replace("weights: [1, 0.5]", "weights: [1e308, 99999999999999999999]"))
    w("hostile-huge-seed.yaml", RECIPE_OK.replace("seed: 7", "seed: 184467440737095516160000"))
    w("hostile-huge-version.yaml", RECIPE_OK.replace("mixlab: 1", "mixlab: 99999999999999999999999"))
    w("hostile-nan-inf.yaml", RECIPE_OK.replace("density: 0.5", "density: .nan").replace("weights: [1, 0.5]", "weights: [.inf, -.inf]"))
    w("hostile-tabs.yaml", RECIPE_OK.replace("    method", "\tmethod"))
    w("hostile-two-documents.yaml", RECIPE_OK + "---\n" + RECIPE_OK)
    w("valid-bom-crlf.yaml", "\ufeff" + RECIPE_OK.replace("\n", "\r\n"))
    w("hostile-tags.yaml", "mixlab: !!int 1\ninputs: !!map {a: !!python/object/apply:os.system [x]}\nsteps: !!binary aGVsbG8=\n")
    w("hostile-duplicate-keys.yaml", RECIPE_OK + "output:\n  from: merged\n")
    w("hostile-long-line.yaml", "mixlab: 1\ndescription: " + "x" * 4000 + "\n")
    w("hostile-directives.yaml", "%YAML 1.1\n%TAG !x! tag:example.com,2000:\n--- !x!recipe\nmixlab: 1\n")
    w("hostile-null-bytes.yaml", "mixlab: 1\ninputs: {a: \"a\u0000b\"}\n")
    w("hostile-cycle.yaml", "mixlab: 1\ninputs: {a: a.safetensors}\nsteps:\n  x: {method: average, models: [y]}\n"
      "  y: {method: average, models: [x]}\noutput: {from: x}\n")
    w("empty.yaml", "")
    w("comments-only.yaml", "# nothing here\n# at all\n")


if __name__ == "__main__":
    safetensors()
    recipes()
