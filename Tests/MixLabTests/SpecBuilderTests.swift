import MergeEngine
import MixLab
import Recipes
import SafeTensors
import Testing

/// Recipe → engine `MergeSpec`, checked against the synthetic SD1 and SDXL layouts.
@Suite("SpecBuilder: recipes to merge specs")
struct SpecBuilderTests {
  static let sd1Names =
    ["BASE"] + (0..<12).map { "IN" + ($0 < 10 ? "0\($0)" : "\($0)") } + ["M00"]
    + (0..<12).map { "OUT" + ($0 < 10 ? "0\($0)" : "\($0)") }
  static let sdxlNames = ["BASE"] + (0..<9).map { "IN0\($0)" } + ["M00"] + (0..<9).map { "OUT0\($0)" }

  /// Builds the spec of `text` over `files` (opened in input order).
  func build(_ text: String, _ files: [String]) throws -> MergeSpec {
    let recipe = try RecipeParser.parse(text, file: "/w/experiments/e/r.yaml")
    return try SpecBuilder.build(recipe, inputs: try files.map { try Checkpoint(path: $0) })
  }

  func blend(_ alpha: String) -> String {
    "mixlab: 1\ninputs: {a: a, b: b}\nsteps:\n  s:\n    method: weighted_sum\n    models: [a, b]\n    alpha: \(alpha)\noutput: {from: s}\n"
  }

  func list(_ n: Int) -> String { "{blocks: [" + (0..<n).map { "\(Double($0) / 100)" }.joined(separator: ", ") + "]}" }

  @Test("SD1 block lists: 26 values name BASE…OUT11, 27 add VAE")
  func sd1Lists() throws {
    let m = try Models.sd1
    let s26 = try build(blend(list(26)), [m[0], m[1]])
    #expect(
      s26.nodes[0].params["alpha"]
        == .blocks(Dictionary(uniqueKeysWithValues: zip(Self.sd1Names, (0..<26).map { Double($0) / 100 })), fallback: nil))
    let s27 = try build(blend(list(27)), [m[0], m[1]])
    #expect(
      s27.nodes[0].params["alpha"]
        == .blocks(
          Dictionary(uniqueKeysWithValues: zip(Self.sd1Names + ["VAE"], (0..<27).map { Double($0) / 100 })), fallback: nil))
    #expect {
      try build(blend(list(20)), [m[0], m[1]])
    } throws: { e in
      let r = e as? RecipeError
      return r?.line == 4 && r?.message.contains("step `s`, alpha: a block list for this architecture has 26 values") == true
    }
  }

  @Test("SDXL block lists: 20 values name BASE…OUT08, 21 add VAE; SD1 lists and blocks are refused")
  func sdxlLists() throws {
    let m = try Models.sdxl
    let s20 = try build(blend(list(20)), [m[0], m[1]])
    #expect(
      s20.nodes[0].params["alpha"]
        == .blocks(Dictionary(uniqueKeysWithValues: zip(Self.sdxlNames, (0..<20).map { Double($0) / 100 })), fallback: nil))
    let s21 = try build(blend(list(21)), [m[0], m[1]])
    #expect(
      s21.nodes[0].params["alpha"].map { if case .blocks(let b, _) = $0 { return b["VAE"] == 0.2 } else { return false } } == true
    )
    #expect {
      try build(blend(list(26)), [m[0], m[1]])
    } throws: { message($0).contains("has 20 values (BASE…OUT08) or 21 with VAE; this one has 26") }
    #expect {
      try build(blend("{blocks: {IN11: 0.5}, default: 0}"), [m[0], m[1]])
    } throws: { e in
      let text = message(e)
      return text.contains("r.yaml:4:1") && text.contains("sdxl models have no block IN11")
        && text.contains("BASE, IN00–IN08, M00, OUT00–OUT08, VAE")
    }
    #expect {
      try build(blend("{filters: [{match: \"*\", value: {blocks: {OUT10: 1}, default: 0}}]}"), [m[0], m[1]])
    } throws: { message($0).contains("no block OUT10") }
    let assemble =
      "mixlab: 1\ninputs: {a: a, b: b}\nsteps: {s: {method: weighted_sum, models: [a, b]}}\n"
      + "output:\n  from: s\n  assemble:\n    - {blocks: [IN09], from: b}\n"
    #expect { try build(assemble, [m[0], m[1]]) } throws: {
      message($0).contains("r.yaml:7:1: assemble rule: sdxl models have no block IN09")
    }
  }

  @Test("assemble rules map to engine selectors and sources; steps and inputs to refs")
  func assemble() throws {
    let m = try Models.sd1
    let spec = try build(
      #"""
      mixlab: 1
      inputs: {base: a, ft: b, other: c}
      steps:
        soup: {method: average, models: [ft, other]}
        tv: {method: task_arithmetic, base: base, models: [soup, ft], weights: [1, 0.5]}
      output:
        from: tv
        assemble:
          - {components: [clip_l, vae], from: other}
          - {blocks: [IN00, OUT11], from: soup}
          - {match: "*.bias", ema_from: ft}
          - {regex: 'norm\d', drop: true}
          - {all: true, from: base}
        metadata: {title: t}
      """#, [m[0], m[1], m[2]])
    #expect(spec.inputNames == ["base", "ft", "other"])
    #expect(spec.nodes.map(\.id) == ["soup", "tv"])
    #expect(spec.nodes[0].operands == [.input(1), .input(2)] && spec.nodes[0].base == nil)
    #expect(spec.nodes[1].operands == [.node(0), .input(1)] && spec.nodes[1].base == .input(0))
    #expect(spec.nodes[1].weights == [.constant(1), .constant(0.5)])
    #expect(spec.main == .node(1))
    #expect(
      spec.rules == [
        AssemblyRule(selector: .components(["clip_l", "vae"]), source: .input(2)),
        AssemblyRule(selector: .blocks(["IN00", "OUT11"]), source: .node(0)),
        AssemblyRule(selector: .pattern(.glob("*.bias")), source: .inputEMA(1)),
        AssemblyRule(selector: .pattern(.regex(#"norm\d"#)), source: .drop),
        AssemblyRule(selector: .all, source: .input(0)),
      ])
    #expect(spec.reference == 0, "the base of the main step")
    #expect(spec.metadata["title"] == "t" && spec.metadata["format"] == "pt" && spec.metadata["mixlab.engine"] == Engine.version)
    #expect(spec.metadata["mixlab.recipe_sha256"]?.count == 64)
    #expect(spec.outputDType == .f16 && spec.computeType == .f32 && spec.keyPolicy == .error && spec.nonFinitePolicy == .error)
  }

  @Test("the reference input: explicit, else the main step's base followed down, else its first model")
  func reference() throws {
    let m = try Models.sd1
    let files = [m[0], m[1], m[2]]
    let steps = "steps:\n  soup: {method: average, models: [c, b]}\n  tv: {method: task_arithmetic, base: soup, models: [a]}\n"
    let text = "mixlab: 1\ninputs: {a: a, b: b, c: c}\n" + steps
    #expect(try build(text + "output: {from: tv}\n", files).reference == 2, "tv's base is soup, whose first model is c")
    #expect(try build(text + "output: {from: soup}\n", files).reference == 2)
    #expect(try build(text + "output: {from: tv, reference: b}\n", files).reference == 1)
    let assembled = try build(text + "output: {from: a}\n", files)
    #expect(assembled.reference == 0 && assembled.main == .input(0))
  }

  @Test("seeded steps get their own seed or output.seed; other steps none; output options carry over")
  func seeds() throws {
    let m = try Models.sd1
    let spec = try build(
      """
      mixlab: 1
      inputs: {base: a, x: b, y: c}
      steps:
        d1: {method: dare, base: base, models: [x, y], drop: 0.5}
        d2: {method: dare, base: base, models: [x, y], drop: 0.5, seed: 9}
        avg: {method: average, models: [d1, d2]}
      output: {from: avg, seed: 77, dtype: bf16, compute: f64, time_embed: in00, key_policy: copy_reference, nonfinite: zero}
      """, [m[0], m[1], m[2]])
    #expect(spec.nodes.map(\.seed) == [77, 9, nil])
    #expect(spec.outputDType == .bf16 && spec.computeType == .f64 && spec.timeEmbed == .in00)
    #expect(spec.keyPolicy == .copyReference && spec.nonFinitePolicy == .zero)
  }

  @Test("time_embed placement does not rename blocks: the same 26 names either way")
  func timeEmbed() throws {
    let m = try Models.sd1
    let text = blend(list(26)).replacingOccurrences(of: "output: {from: s}", with: "output: {from: s, time_embed: in00}")
    let spec = try build(text, [m[0], m[1]])
    #expect(spec.timeEmbed == .in00)
    #expect(spec.nodes[0].params["alpha"] == (try build(blend(list(26)), [m[0], m[1]])).nodes[0].params["alpha"])
  }
}

@Suite("Layer positions for gradients")
struct LayerPositionTests {
  @Test("transformer layers have a depth; UNet in_layers/out_layers sub-modules do not")
  func positions() {
    let sd = BlockMap(architecture: .sd1)
    #expect(sd.layerPosition(of: "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc1.weight", layerCount: 12) == 1)
    #expect(sd.layerPosition(of: "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight", layerCount: 12) == 0)
    #expect(sd.layerPosition(of: "model.diffusion_model.input_blocks.1.0.in_layers.2.weight", layerCount: 12) == nil)
    #expect(sd.layerPosition(of: "model.diffusion_model.output_blocks.3.0.out_layers.3.bias", layerCount: 12) == nil)
    let llama = BlockMap(architecture: .llama)
    #expect(llama.layerPosition(of: "model.layers.3.self_attn.q_proj.weight", layerCount: 7) == 0.5)
    #expect(llama.layerPosition(of: "model.embed_tokens.weight", layerCount: 7) == 0)
    #expect(llama.layerPosition(of: "lm_head.weight", layerCount: 7) == 1)
    #expect(BlockMap.layerIndex(of: "layers.4.w") == 4 && BlockMap.layerIndex(of: "a.in_layers.2.layers.5.w") == 5)
  }
}
