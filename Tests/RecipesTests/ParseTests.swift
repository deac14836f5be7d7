import Foundation
import MergeEngine
import SafeTensors
import Testing

@testable import Recipes

@Suite("Recipes: valid recipes parse into the expected Recipe")
struct ParseTests {
  @Test("every input kind, with synth defaults filled in")
  func inputs() throws {
    let r = try parse(
      """
      mixlab: 1
      name: every-input
      description: Every input kind
      inputs:
        a: models/a.safetensors
        b: {path: /abs/b.safetensors, sha256: ABCDEF0123456789}
        c: {recipe: soup}
        d:
          synth: {arch: sdxl, seed: 9, index: 3, scale: 0.05, dtype: bf16}
        e: {synth: {}}
      steps:
        s:
          method: average
          models: [a, b, c, d, e]
      output:
        from: s
      """)
    #expect(r.name == "every-input")
    #expect(r.description == "Every input kind")
    #expect(
      r.inputs == [
        RecipeInput(name: "a", source: .file(path: "models/a.safetensors"), sha256: nil, line: 5),
        RecipeInput(name: "b", source: .file(path: "/abs/b.safetensors"), sha256: "abcdef0123456789", line: 6),
        RecipeInput(name: "c", source: .recipe(name: "soup"), sha256: nil, line: 7),
        RecipeInput(
          name: "d", source: .synth(SynthInput(arch: "sdxl", seed: 9, index: 3, scale: 0.05, dtype: "bf16")), sha256: nil, line: 8
        ),
        RecipeInput(
          name: "e", source: .synth(SynthInput(arch: "sd1", seed: 0, index: 0, scale: 1, dtype: "f16")), sha256: nil, line: 10),
      ])
    #expect(r.dependencies == ["soup"])
    #expect(r.steps.map(\.models) == [["a", "b", "c", "d", "e"]])
  }

  @Test("the name defaults to the file name; `name:` overrides it")
  func names() throws {
    let text = withStep("average", "models: [m1, m2]")
    #expect(try parse(text, file: "/w/experiments/e/my-soup.yaml").name == "my-soup")
    #expect(try parse("name: other\n" + text, file: "/w/experiments/e/my-soup.yaml").name == "other")
    #expect(try RecipeParser.parse(text, file: "/w/x.yaml", name: "given").name == "given")
  }

  @Test("load reads a file; a missing or non-UTF-8 file is an error naming it")
  func load() throws {
    let dir = FileManager.default.temporaryDirectory.path + "/recipes-load-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try withStep("average", "models: [m1, m2]").write(toFile: dir + "/soup.yaml", atomically: true, encoding: .utf8)
    let r = try RecipeParser.load(dir + "/soup.yaml")
    #expect(r.name == "soup" && r.file == dir + "/soup.yaml")
    #expect(r.text == withStep("average", "models: [m1, m2]"))

    #expect(throws: RecipeError.self) { try RecipeParser.load(dir + "/missing.yaml") }
    do {
      _ = try RecipeParser.load(dir + "/missing.yaml")
    } catch {
      #expect(error.file == dir + "/missing.yaml" && error.message.contains("cannot read"))
    }
    _ = FileManager.default.createFile(atPath: dir + "/latin1.yaml", contents: Data([0x6D, 0x69, 0xE9, 0xFF, 0x0A]))
    do {
      _ = try RecipeParser.load(dir + "/latin1.yaml")
      Issue.record("non-UTF-8 text parsed")
    } catch {
      #expect(error.message.contains("UTF-8"))
    }
  }

  @Test("a step with every parameter form, weights and options")
  func paramForms() throws {
    let r = try parse(
      #"""
      mixlab: 1
      inputs:
        base: base.safetensors
        m1: m1.safetensors
        m2: m2.safetensors
      steps:
        merged:
          method: TIES
          base: base
          models: [m1, m2]
          weights: [1, {gradient: [0, 1]}]
          density:
            filters:
              - {match: "*attn*", value: 0.3}
              - regex: '\.ff\.'
                value: {blocks: {IN00: 0.1, OUT11: 0.9}, default: 0.5}
            default: [0.2, 0.8]
          lambda: {gradient: [1, 1.5]}
          sign: sign_count
          normalize: false
          topk: inclusive
      output: {from: merged}
      """#)
    let s = try #require(r.steps.first)
    let expected = RecipeStep(
      name: "merged", method: .ties, models: ["m1", "m2"], base: "base", weights: [.constant(1), .gradient([0, 1])],
      params: [
        "density": .rules(
          [
            (pattern: .glob("*attn*"), value: .constant(0.3)),
            (pattern: .regex(#"\.ff\."#), value: .blocks(["IN00": 0.1, "OUT11": 0.9], fallback: 0.5)),
          ], fallback: .gradient([0.2, 0.8])),
        "lambda": .gradient([1, 1.5]),
      ],
      options: ["sign": "sign_count", "normalize": "false", "topk": "inclusive"], seed: nil, line: 7)
    #expect(s == expected)
  }

  @Test("block values: by name with a default, and positional lists of 20, 21, 26 or 27")
  func blocks() throws {
    func alpha(_ value: String) throws -> RecipeParam {
      try #require(try parse(withStep("weighted_sum", "models: [m1, m2]", "alpha: \(value)")).steps[0].params["alpha"])
    }
    #expect(try alpha("{blocks: {BASE: 0, M00: 1}, default: 0.5}") == .blocks(["BASE": 0, "M00": 1], fallback: 0.5))
    #expect(try alpha("{blocks: {VAE: 1}}") == .blocks(["VAE": 1], fallback: nil))
    for n in [20, 21, 26, 27] {
      let values = (0..<n).map { Double($0) / 100 }
      let text = "{blocks: [\(values.map { "\($0)" }.joined(separator: ", "))]}"
      #expect(try alpha(text) == .blockList(values))
    }
    #expect(try alpha("[0.1, 0.9]") == .gradient([0.1, 0.9]))
    #expect(try alpha("{gradient: [0.1, 0.9]}") == .gradient([0.1, 0.9]))
    #expect(try alpha("0.25") == .constant(0.25))
    #expect(try alpha("1_000e-3") == .constant(1))
  }

  @Test("a positional block list takes its names from the architecture")
  func blockListNames() throws {
    let sd1 = sd1Blocks + ["VAE"]
    let sdxl = sdxlBlocks + ["VAE"]
    let list26 = (0..<26).map(Double.init)
    #expect(
      try RecipeParam.blockList(list26).engineValue(blockNames: sd1)
        == .blocks(Dictionary(uniqueKeysWithValues: zip(sd1Blocks, list26)), fallback: nil))
    let list27 = (0..<27).map(Double.init)
    #expect(
      try RecipeParam.blockList(list27).engineValue(blockNames: sd1)
        == .blocks(Dictionary(uniqueKeysWithValues: zip(sd1, list27)), fallback: nil))
    let list20 = (0..<20).map(Double.init)
    #expect(
      try RecipeParam.blockList(list20).engineValue(blockNames: sdxl)
        == .blocks(Dictionary(uniqueKeysWithValues: zip(sdxlBlocks, list20)), fallback: nil))
    let list21 = (0..<21).map(Double.init)
    #expect(
      try RecipeParam.blockList(list21).engineValue(blockNames: sdxl)
        == .blocks(Dictionary(uniqueKeysWithValues: zip(sdxl, list21)), fallback: nil))
    // An SD1 list on an SDXL model (and the reverse) is refused with the counts it expects.
    #expect {
      try RecipeParam.blockList(list26).engineValue(blockNames: sdxl)
    } throws: { e in
      (e as? RecipeParamError)?.message.contains("20 values (BASE…OUT08) or 21 with VAE; this one has 26") == true
    }
    #expect(throws: RecipeParamError.self) { try RecipeParam.blockList(list20).engineValue(blockNames: sd1) }
    // Nested inside filters too.
    let rules = RecipeParam.rules([(pattern: .glob("*"), value: .blockList(list20))], fallback: nil)
    #expect(throws: RecipeParamError.self) { try rules.engineValue(blockNames: sd1) }
  }

  @Test("method names are case- and dash-insensitive; seeds and options are kept")
  func methodsAndSeeds() throws {
    #expect(try parse(withStep("TIES-SOUP", "base: base", "models: [m1, m2]", "density: 0.5")).steps[0].method == .tiesSoup)
    #expect(try parse(withStep("Model-Stock", "base: base", "models: [m1, m2]")).steps[0].method == .modelStock)
    let dare = try parse(
      withStep("dare", "base: base", "models: [m1, m2]", "drop: 0.9", "seed: 18446744073709551615", "rescale: l1"))
    #expect(dare.steps[0].seed == UInt64.max)
    #expect(dare.steps[0].options == ["rescale": "l1"])
    #expect(dare.steps[0].params == ["drop": .constant(0.9)])
    // A single model may be written without brackets.
    #expect(try parse(withStep("average", "models: m1")).steps[0].models == ["m1"])
  }

  @Test("steps come out in dependency order, file order among independent ones")
  func stepOrder() throws {
    let r = try parse(
      head + """
        steps:
          final:
            method: weighted_sum
            models: [left, right]
          right:
            method: average
            models: [m2, base]
          left:
            method: weighted_sum
            models: [m1, right]
          lone:
            method: average
            models: [m1]
        output: {from: final}
        """)
    #expect(r.steps.map(\.name) == ["right", "left", "final", "lone"])
    #expect(r.steps.map(\.line) == [10, 13, 7, 16])
  }

  @Test("output with every key and assemble rules of every kind")
  func output() throws {
    let r = try parse(
      head + #"""
        steps:
          s:
            method: average
            models: [m1, m2]
        output:
          from: s
          assemble:
            - {components: [clip_l], from: m1}
            - {blocks: [IN00, OUT11], from: m2}
            - {match: "*.bias", from: s}
            - {regex: '^first_stage_model\.', from: base}
            - {components: unet, ema_from: m1}
            - {match: "*position_ids", drop: true}
            - {all: true, from: s}
          dtype: bf16
          compute: f64
          seed: 7
          time_embed: in00
          key_policy: copy_reference
          nonfinite: zero
          reference: m2
          shard_size: 2GB
          metadata: {author: me, "modelspec.title": Mix, version: 2}
        """#)
    let expected = RecipeOutput(
      from: "s",
      assemble: [
        AssembleRule(selector: .components(["clip_l"]), source: .from("m1"), line: 13),
        AssembleRule(selector: .blocks(["IN00", "OUT11"]), source: .from("m2"), line: 14),
        AssembleRule(selector: .match("*.bias"), source: .from("s"), line: 15),
        AssembleRule(selector: .regex(#"^first_stage_model\."#), source: .from("base"), line: 16),
        AssembleRule(selector: .components(["unet"]), source: .ema("m1"), line: 17),
        AssembleRule(selector: .match("*position_ids"), source: .drop, line: 18),
        AssembleRule(selector: .all, source: .from("s"), line: 19),
      ],
      dtype: .bf16, compute: .f64, seed: 7, timeEmbed: .in00, keyPolicy: .copyReference, nonFinite: .zero, reference: "m2",
      shardBytes: 2_000_000_000, metadata: ["author": "me", "modelspec.title": "Mix", "version": "2"])
    #expect(r.output == expected)
    #expect(r.referenceInput == "m2")
  }

  @Test("output defaults")
  func outputDefaults() throws {
    let r = try parse(withStep("average", "models: [m1, m2]"))
    #expect(
      r.output
        == RecipeOutput(
          from: "t", assemble: [], dtype: .f16, compute: .f32, seed: 0, timeEmbed: .base, keyPolicy: .error, nonFinite: .error,
          reference: nil, shardBytes: nil, metadata: [:]))
  }

  @Test("the reference input: explicit, else the main step's base (followed down), else its first model")
  func reference() throws {
    #expect(try parse(withStep("ties", "base: base", "models: [m1, m2]", "density: 0.5")).referenceInput == "base")
    #expect(try parse(withStep("average", "models: [m2, m1]")).referenceInput == "m2")
    let chained = try parse(
      head + """
        steps:
          soup:
            method: average
            models: [m2, m1]
          tv:
            method: task_arithmetic
            base: soup
            models: [m1]
        output: {from: tv}
        """)
    #expect(chained.referenceInput == "m2")
    #expect(try parse(head + "steps: {s: {method: average, models: [m1]}}\noutput: {from: base}\n").referenceInput == "base")
  }

  @Test(
    "sizes for shard_size",
    arguments: [
      ("2GB", 2_000_000_000), ("512MiB", 536_870_912), ("1.5G", 1_610_612_736), ("1048576", 1_048_576), (" 3 MB ", 3_000_000),
      ("10kb", 10_000),
    ])
  func sizes(text: String, bytes: Int) {
    #expect(ByteCount.parse(text) == bytes)
  }

  @Test("sizes that are refused", arguments: ["0", "-1", "abc", "1e30GB", "GB", "nanGB", "infMB", ""])
  func badSizes(text: String) {
    #expect(ByteCount.parse(text) == nil)
  }
}

@Suite("Recipes: assembly-only recipes")
struct AssemblyOnlyTests {
  @Test("a recipe without steps takes its output from an input and swaps components")
  func noSteps() throws {
    let r = try parse(
      """
      mixlab: 1
      inputs:
        unet: {recipe: ties}
        te: {recipe: soup}
        vae: vae-donor.safetensors
      output:
        from: unet
        assemble:
          - {components: [clip_l], from: te}
          - {components: [vae], from: vae}
      """)
    #expect(r.steps.isEmpty)
    #expect(r.referenceInput == "unet")
    #expect(r.dependencies == ["ties", "soup"])
    #expect(r.canonical.contains(#""steps":{}"#))
  }

  @Test("without steps, output.from must name an input")
  func noStepsNeedsInput() {
    expectRefused(head + "output: {from: t}\n", at: 1, 1, "missing `steps`", "takes `output.from` from an input")
    expectRefused(head, at: 1, 1, "missing `steps`")
    // An explicitly empty steps mapping is still a mistake.
    expectRefused(head + "steps: {}\noutput: {from: m1}\n", at: 6, 8, "`steps` is empty")
  }
}
