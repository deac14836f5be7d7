import Foundation
import MixLab
import Recipes
import Testing

/// What `mixlab import` refuses, and how it says so; headers and paths of what it writes.
@Suite("Import: errors, headers and paths")
struct ImportTests {
  func setup() throws -> (TempWorkspace, String) {
    let t = try TempWorkspace()
    let base = TinyModel.random(seed: 3, layout: llamaLayout)
    try base.writeFolder(t.root + "/models/m0")
    try TinyModel.variant(of: base, seed: 4, scale: 0.1).writeFolder(t.root + "/models/m1")
    try FileManager.default.createDirectory(atPath: t.root + "/configs", withIntermediateDirectories: true)
    return (t, t.root + "/configs")
  }

  func importing(_ t: TempWorkspace, _ file: String, _ text: String, models: [String: String] = [:]) throws
    -> ImportRecipe.Outcome
  {
    try text.write(toFile: file, atomically: true, encoding: .utf8)
    return try ImportRecipe.run(
      file: file, out: t.root + "/experiments/imp/x.yaml", format: nil, models: models, modelsDir: nil, shallow: false,
      force: true)
  }

  @Test(
    "mergekit constructs without a mixlab equivalent are named with their line",
    arguments: [
      ("merge_method: nuslerp\nmodels:\n  - model: ../models/m1\n", "nuslerp", 1),
      (
        "merge_method: ties\nbase_model: ../models/m0\nmodels:\n  - model: ../models/m1\n    parameters: {weight: 1, density: 0.5, frobnicate: 2}\n",
        "frobnicate", 5
      ),
      ("merge_method: linear\nmodels:\n  - model: ../models/m1+some/lora\n", "LoRA", 3),
      (
        "merge_method: linear\ntokenizer_source: union\nmodels:\n  - model: ../models/m1\n    parameters: {weight: 1}\n",
        "tokenizer_source", 2
      ),
      (
        "merge_method: passthrough\nslices:\n  - sources:\n    - model: ../models/m0\n      layer_range: [0, 2]\n  - sources:\n    - model: ../models/m1\n      layer_range: [1, 3]\n",
        "frankenmerge", 2
      ),
      (
        "merge_method: linear\nslices:\n  - sources:\n    - model: ../models/m0\n      layer_range: [0, 2]\n      parameters: {weight: 1}\n",
        "whole depth", 4
      ),
      (
        "merge_method: ties\nbase_model: ../models/m0\nmodels:\n  - model: ../models/m1\n    parameters: {weight: 1, density: 0.5}\n  - model: ../models/m0\n    parameters: {weight: 1, density: 0.3}\n",
        "", 0
      ),
      (
        "merge_method: linear\nmodels:\n  - model: someone/unknown-model\n    parameters: {weight: 1}\n",
        "--model someone/unknown-model=DIR", 3
      ),
    ])
  func mergekitErrors(text: String, mention: String, line: Int) throws {
    let (t, configs) = try setup()
    if mention.isEmpty {
      // The base listed among the models is not an operand, so differing densities are fine.
      _ = try importing(t, configs + "/c.yaml", text)
      return
    }
    #expect {
      _ = try importing(t, configs + "/c.yaml", text)
    } throws: { error in
      let m = message(error)
      return m.contains(mention) && m.contains("c.yaml:\(line):")
    }
  }

  @Test("one slice over every model's whole depth imports like `models`, with slice parameters in between")
  func wholeSlice() throws {
    let (t, configs) = try setup()
    let o = try importing(
      t, configs + "/s.yaml",
      """
      merge_method: task_arithmetic
      base_model: ../models/m0
      slices:
        - sources:
            - model: ../models/m0
              layer_range: [0, 3]
            - model: ../models/m1
              layer_range: [0, 3]
              parameters: {weight: 0.5}
          parameters:
            lambda: 0.8
      parameters:
        lambda: 0.2
      """)
    #expect(o.notes.contains { $0.contains("one slice over layers [0, 3)") })
    #expect(o.yaml.contains("weights: [0.5]") && o.yaml.contains("lambda: 0.8"), "the slice's lambda wins over the global one")
  }

  @Test("per-model densities that differ are refused (mixlab takes one per step)")
  func differingDensity() throws {
    let (t, configs) = try setup()
    let base = TinyModel.random(seed: 3, layout: llamaLayout)
    try TinyModel.variant(of: base, seed: 9, scale: 0.1).writeFolder(t.root + "/models/m2")
    #expect {
      _ = try importing(
        t, configs + "/d.yaml",
        """
        merge_method: ties
        base_model: ../models/m0
        models:
          - model: ../models/m1
            parameters: {weight: 1, density: 0.5}
          - model: ../models/m2
            parameters: {weight: 1, density: 0.7}
        """)
    } throws: { message($0).contains("`density` differs between models") }
  }

  @Test("the written recipe states its source and semantics, and its paths resolve from its own folder")
  func headerAndPaths() throws {
    let (t, configs) = try setup()
    let o = try importing(
      t, configs + "/h.yaml",
      """
      merge_method: dare_ties
      base_model: ../models/m0
      models:
        - model: ../models/m1
          parameters:
            weight: 1
            density:
              - filter: mlp
                value: 0.4
              - value: 0.6
      dtype: bfloat16
      """)
    #expect(o.yaml.hasPrefix("# Imported by `mixlab import` from the mergekit config h.yaml."))
    #expect(o.yaml.contains("density d (keep probability) → drop 1 − d"))
    #expect(o.yaml.contains("compute f32: mergekit computes in bfloat16"))
    #expect(o.yaml.contains("drop: {filters: [{match: \"*mlp*\", value: 0.6}], default: 0.4}"))
    let recipe = try RecipeParser.load(t.root + "/experiments/imp/x.yaml")
    for input in recipe.inputs {
      guard case .file(let p) = input.source else { continue }
      #expect(!p.hasPrefix("/"), "paths are relative")
      let resolved = ((t.root + "/experiments/imp/" + p) as NSString).standardizingPath
      #expect(FileManager.default.fileExists(atPath: resolved + "/model.safetensors"), "\(p)")
    }
  }

  @Test("sd-mecha: unsupported methods and TIES-STOCK are named with their line")
  func mechaErrors() throws {
    let t = try TempWorkspace()
    let dir = t.root + "/models"
    let base = TinyModel.random(seed: 3, layout: sdLayout)
    try base.write(dir + "/a.safetensors")
    try TinyModel.variant(of: base, seed: 4, scale: 0.1).write(dir + "/b.safetensors")
    func run(_ text: String) throws {
      try text.write(toFile: dir + "/r.mecha", atomically: true, encoding: .utf8)
      _ = try ImportRecipe.run(
        file: dir + "/r.mecha", out: t.root + "/experiments/imp/r.yaml", format: nil, models: [:], modelsDir: nil,
        shallow: false, force: true)
    }
    #expect {
      try run("version 0.1.0\nmodel \"a\"\nmodel \"b\"\nmerge \"rotate\" &0 &1 alpha=1.0\n")
    } throws: { message($0).contains("r.mecha:4:") && message($0).contains("`rotate` is not supported") }
    #expect {
      try run(
        "version 0.1.0\nmodel \"a\"\nmodel \"b\"\nmerge \"subtract\" &1 &0\nmerge \"ties_sum_extended\" &2 k=0.5\nmerge \"add_difference\" &0 &3 alpha=1.0\n"
      )
    } throws: { message($0).contains("TIES-STOCK") && message($0).contains("r.mecha:5:") }
    #expect {
      try run("version 0.2.0\nmodel \"a\"\n")
    } throws: { message($0).contains("version 0.2.0 is not supported") }
    #expect {
      try run("model \"missing\"\nmodel \"b\"\ncall \"weighted_sum\" &0 &1 alpha=0.5\n")
    } throws: { message($0).contains("\"missing\" was not found") && message($0).contains("r.mecha:1:") }
  }
}
