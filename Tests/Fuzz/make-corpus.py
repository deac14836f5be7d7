#!/usr/bin/env python3
"""Writes the recipe seeds of the fuzz corpus (Tests/Fuzz/corpus/recipes/), valid and hostile.

The files are committed; rerun this only to change them. Deterministic. The reader's seeds
(safetensors files) are not committed: Sources/MixLabFuzz/SeedFiles.swift makes them in memory.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RC = os.path.join(HERE, "corpus", "recipes")

def write(folder, name, content):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(content if isinstance(content, bytes) else content.encode("utf-8"))


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
    recipes()
