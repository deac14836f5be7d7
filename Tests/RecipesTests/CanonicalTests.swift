import Foundation
import MergeEngine
import SafeTensors
import Testing

@testable import Recipes

/// The recipe every variant below is compared with.
private let baseline = """
  # TIES of two fine-tunes against their base, VAE from the base.
  mixlab: 1
  name: ties-test
  inputs:
    base: models/base.safetensors
    m1: {synth: {arch: sd1, seed: 3, index: 1, scale: 0.05}}
    m2: models/m2.safetensors
  steps:
    ties:
      method: ties
      base: base
      models: [m1, m2]
      density: 0.5
  output:
    from: ties
    assemble:
      - components: [vae]
        from: base
    dtype: f16

  """

/// `baseline` with `old` replaced by `new` (which must occur).
private func variant(_ old: String, _ new: String) -> String {
  precondition(baseline.contains(old), "baseline has no “\(old)”")
  return baseline.replacingOccurrences(of: old, with: new)
}

private func hash(_ text: String) throws -> String { try parse(text).hash }

@Suite("Recipes: canonical form and recipe hash")
struct CanonicalTests {
  @Test("the hash is the SHA-256 of the canonical JSON, which is sorted, compact and path-free")
  func hashOfCanonical() throws {
    let r = try parse(baseline)
    #expect(r.hash == Digest.sha256(r.canonical))
    #expect(r.hash.count == 64 && r.hash.allSatisfy(\.isHexDigit))
    #expect(!r.canonical.contains("models/") && !r.canonical.contains(" ") && !r.canonical.contains("\n"))
    #expect(!r.canonical.contains("ties-test") && !r.canonical.contains("TIES of two"))
    let object = try #require(try JSONSerialization.jsonObject(with: Data(r.canonical.utf8)) as? [String: Any])
    #expect(Set(object.keys) == ["engine", "inputs", "mixlab", "output", "steps"])
    // Keys appear in sorted order at every level.
    #expect(r.canonical.hasPrefix(#"{"engine":"#))
  }

  @Test("a golden canonical form: changing it changes every recorded recipe hash")
  func golden() throws {
    let r = try parse(
      """
      mixlab: 1
      inputs:
        a: a.safetensors
        b: {synth: {seed: 2, index: 1, scale: 0.05}}
      steps:
        soup:
          method: average
          models: [a, b]
      output: {from: soup}
      """)
    let expected =
      #"{"engine":"\#(Engine.version)","inputs":{"a":{"kind":"file"},"b":{"arch":"sd1","dtype":"f16","index":1,"kind":"synth","scale":0.05,"seed":2}},"#
      + #""mixlab":1,"output":{"assemble":[],"compute":"f32","dtype":"F16","from":"soup","key_policy":"error","metadata":{},"#
      + #""nonfinite":"error","reference":"a","shard_size":null,"time_embed":"base"},"#
      + #""steps":{"soup":{"method":"average","models":["a","b"],"options":{"normalize":"true"},"params":{},"semantics":"1","weights":[1,1]}}}"#
    #expect(r.canonical == expected)
  }

  static let sameHash: [(String, String)] = [
    (
      "comments, blank lines and other indentation",
      """
      # a comment
      mixlab: 1   # the format version


      name: ties-test
      inputs:
          base: models/base.safetensors     # the base
          m1: {synth: {arch: sd1, seed: 3, index: 1, scale: 0.05}}
          m2: models/m2.safetensors
      steps:
          ties:
              method: ties
              base: base
              models: [m1, m2]
              density: 0.5
      output:
          from: ties
          assemble:
          - components: [vae]
            from: base
          dtype: f16
      """
    ),
    (
      "key order",
      """
      output:
        dtype: f16
        assemble:
          - from: base
            components: [vae]
        from: ties
      steps:
        ties:
          density: 0.5
          models: [m1, m2]
          base: base
          method: ties
      inputs:
        m2: models/m2.safetensors
        m1: {synth: {scale: 0.05, index: 1, seed: 3, arch: sd1}}
        base: models/base.safetensors
      mixlab: 1
      """
    ),
    (
      "flow style throughout",
      """
      {mixlab: 1, inputs: {base: models/base.safetensors, m1: {synth: {arch: sd1, seed: 3, index: 1, scale: 0.05}},
        m2: models/m2.safetensors}, steps: {ties: {method: ties, base: base, models: [m1, m2], density: 0.5}},
        output: {from: ties, assemble: [{components: [vae], from: base}], dtype: f16}}
      """
    ),
    (
      "block style throughout",
      """
      mixlab: 1
      inputs:
        base: models/base.safetensors
        m1:
          synth:
            arch: sd1
            seed: 3
            index: 1
            scale: 0.05
        m2:
          path: models/m2.safetensors
      steps:
        ties:
          method: ties
          base: base
          models:
            - m1
            - m2
          density: 0.5
      output:
        from: ties
        assemble:
          - components:
              - vae
            from: base
        dtype: f16
      """
    ),
    (
      "quoted strings and keys",
      """
      "mixlab": 1
      inputs:
        'base': "models/base.safetensors"
        m1: {synth: {arch: "sd1", seed: 3, index: 1, scale: 0.05}}
        m2: 'models/m2.safetensors'
      steps:
        "ties":
          method: "ties"
          base: 'base'
          "models": ["m1", 'm2']
          density: 0.5
      output:
        from: "ties"
        assemble: [{components: ["vae"], "from": 'base'}]
        dtype: "f16"
      """
    ),
    (
      "number spellings",
      variant("density: 0.5", "density: 5.0e-1").replacingOccurrences(of: "scale: 0.05", with: "scale: 0.0500")
    ),
    ("number spellings (2)", variant("density: 0.5", "density: .5")),
    ("method spelling", variant("method: ties", "method: TIES")),
    ("name and description", variant("name: ties-test", "name: something-else\ndescription: Not part of the output")),
    (
      "input paths and sha256 pins",
      variant("base: models/base.safetensors", "base: /elsewhere/renamed.safetensors")
        .replacingOccurrences(
          of: "m2: models/m2.safetensors", with: "m2: {path: ../m2-copy.safetensors, sha256: 0123456789abcdef}")
    ),
    (
      "every default written out",
      """
      mixlab: 1
      name: ties-test
      inputs:
        base: models/base.safetensors
        m1: {synth: {arch: sd1, seed: 3, index: 1, scale: 0.05, dtype: f16}}
        m2: models/m2.safetensors
      steps:
        ties:
          method: ties
          base: base
          models: [m1, m2]
          weights: [1, 1.0]
          density: 0.5
          lambda: 1.0
          sign: magnitude_sum
          normalize: true
          average: weight
          topk: exact
      output:
        from: ties
        assemble:
          - components: [vae]
            from: base
        dtype: f16
        compute: f32
        time_embed: base
        key_policy: error
        nonfinite: error
        reference: base
        metadata: {}
      """
    ),
    ("a seed on a recipe without random steps", variant("  dtype: f16", "  dtype: f16\n  seed: 12345")),
    ("synth arch left to its default", variant("{arch: sd1, seed: 3", "{seed: 3")),
    ("trailing whitespace and CRLF line ends", baseline.replacingOccurrences(of: "\n", with: "  \r\n")),
  ]

  @Test("formatting and defaults do not change the hash", arguments: sameHash)
  func same(label: String, text: String) throws {
    #expect(try hash(text) == (try hash(baseline)), "\(label)")
    #expect(try parse(text).canonical == (try parse(baseline)).canonical)
  }

  static let differentHash: [(String, String)] = [
    ("density", variant("density: 0.5", "density: 0.6")),
    ("density as a gradient", variant("density: 0.5", "density: [0.5, 0.6]")),
    ("lambda", variant("density: 0.5", "density: 0.5\n    lambda: 0.9")),
    ("sign option", variant("density: 0.5", "density: 0.5\n    sign: sign_count")),
    ("normalize option", variant("density: 0.5", "density: 0.5\n    normalize: false")),
    ("topk option", variant("density: 0.5", "density: 0.5\n    topk: inclusive")),
    ("weights", variant("density: 0.5", "density: 0.5\n    weights: [1, 0.5]")),
    ("model order", variant("models: [m1, m2]", "models: [m2, m1]")),
    ("base", variant("base: base\n    models: [m1, m2]", "base: m2\n    models: [m1, base]")),
    ("method", variant("method: ties", "method: ties_soup")),
    ("dtype", variant("dtype: f16", "dtype: bf16")),
    ("compute", variant("dtype: f16", "dtype: f16\n  compute: f64")),
    ("assemble source", variant("from: base", "from: m1")),
    ("assemble selector", variant("components: [vae]", "components: [clip_l]")),
    ("assemble rule removed", variant("  assemble:\n    - components: [vae]\n      from: base\n", "")),
    ("assemble rule added", variant("      from: base\n", "      from: base\n    - {match: \"*.bias\", from: m1}\n")),
    ("time_embed", variant("dtype: f16", "dtype: f16\n  time_embed: in00")),
    ("key_policy", variant("dtype: f16", "dtype: f16\n  key_policy: copy_reference")),
    ("nonfinite", variant("dtype: f16", "dtype: f16\n  nonfinite: zero")),
    ("reference", variant("dtype: f16", "dtype: f16\n  reference: m2")),
    ("shard_size", variant("dtype: f16", "dtype: f16\n  shard_size: 1GB")),
    ("metadata", variant("dtype: f16", "dtype: f16\n  metadata: {author: me}")),
    ("synth seed", variant("seed: 3", "seed: 4")),
    ("synth index", variant("index: 1", "index: 2")),
    ("synth scale", variant("scale: 0.05", "scale: 0.04")),
    ("synth dtype", variant("scale: 0.05}", "scale: 0.05, dtype: bf16}")),
    ("synth arch", variant("arch: sd1", "arch: sdxl")),
    ("input kind", variant("m2: models/m2.safetensors", "m2: {recipe: other}")),
  ]

  @Test("anything that changes the output changes the hash", arguments: differentHash)
  func different(label: String, text: String) throws {
    #expect(try hash(text) != (try hash(baseline)), "\(label)")
  }

  @Test("every difference gives its own hash")
  func allDistinct() throws {
    let hashes = try Self.differentHash.map { try hash($0.1) }
    #expect(Set(hashes).count == hashes.count)
  }

  @Test("seeds of random methods: the effective seed counts, not where it is written")
  func seeds() throws {
    func dare(stepSeed: UInt64? = nil, outputSeed: UInt64? = nil) throws -> String {
      let seedLine = stepSeed.map { "    seed: \($0)\n" } ?? ""
      let output = outputSeed.map { "output: {from: t, seed: \($0)}\n" } ?? "output: {from: t}\n"
      return try hash(
        head + "steps:\n  t:\n    method: dare\n    base: base\n    models: [m1, m2]\n    drop: 0.5\n" + seedLine + output)
    }
    let unseeded = try dare()
    #expect(try dare(stepSeed: 0) == unseeded, "seed 0 is the default")
    #expect(try dare(outputSeed: 0) == unseeded)
    #expect(try dare(stepSeed: 1) != unseeded)
    #expect(try dare(stepSeed: 1) != (try dare(stepSeed: 2)))
    // output.seed is the default seed of seeded steps: the same effective seed, the same hash.
    #expect(try dare(outputSeed: 5) == (try dare(stepSeed: 5)))
    #expect(try dare(outputSeed: 5) != unseeded)
    // A step's own seed wins over output.seed, which then changes nothing.
    #expect(try dare(stepSeed: 9, outputSeed: 5) == (try dare(stepSeed: 9)))
  }

  @Test("the same text hashes the same in every parse")
  func stable() throws {
    let hashes = try (0..<20).map { _ in try hash(baseline) }
    #expect(Set(hashes).count == 1)
  }
}
