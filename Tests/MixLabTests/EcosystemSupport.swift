import Foundation
import MixLab
import SafeTensors
import Testing

/// Small hand-made f32 models for the conformance tests: names, shapes and values chosen here,
/// so expected outputs can be computed from the other tools' formulas, independently of mixlab.
struct TinyModel {
  var tensors: [(name: String, shape: [Int], values: [Double])]

  /// Values in [-1, 1] from a SplitMix64 stream; distinct magnitudes with overwhelming odds.
  static func random(seed: UInt64, layout: [(String, [Int])], offset: Double = 0) -> TinyModel {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
    func next() -> Double {
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      z ^= z >> 31
      return Double(z >> 11) / Double(1 << 53) * 2 - 1
    }
    return TinyModel(
      tensors: layout.map { name, shape in
        (name, shape, (0..<shape.reduce(1, *)).map { _ in Double(Float(next() + offset)) })
      })
  }

  /// `base` plus a random delta of scale `scale` (a fine-tune of it).
  static func variant(of base: TinyModel, seed: UInt64, scale: Double) -> TinyModel {
    let noise = random(seed: seed, layout: base.tensors.map { ($0.name, $0.shape) })
    return TinyModel(
      tensors: zip(base.tensors, noise.tensors).map { b, n in
        (b.name, b.shape, zip(b.values, n.values).map { Double(Float($0 + scale * $1)) })
      })
  }

  func values(_ name: String) -> [Double] { tensors.first { $0.name == name }!.values }

  /// Writes the model as f32 safetensors at `path` (a file) with `metadata`.
  @discardableResult
  func write(_ path: String, metadata: [String: String] = [:]) throws -> String {
    try FileManager.default.createDirectory(
      atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let specs = tensors.map { TensorSpec(name: $0.name, dtype: .f32, shape: $0.shape) }
    let w = try SafeTensorsWriter(path: path, specs: specs, metadata: metadata)
    for t in w.tensors {
      let floats = tensors.first { $0.name == t.name }!.values.map(Float.init)
      try floats.withUnsafeBytes { try w.append($0) }
    }
    return try w.finish().sha256
  }

  /// Writes the model as a Hugging Face folder (`DIR/model.safetensors`).
  @discardableResult
  func writeFolder(_ dir: String) throws -> String {
    try write(dir + "/model.safetensors")
  }
}

/// A Llama-like layout: embeddings, three layers, final norm, LM head.
let llamaLayout: [(String, [Int])] = [
  ("model.embed_tokens.weight", [6, 4]),
  ("model.layers.0.self_attn.q_proj.weight", [4, 4]),
  ("model.layers.0.mlp.up_proj.weight", [4, 4]),
  ("model.layers.1.self_attn.q_proj.weight", [4, 4]),
  ("model.layers.1.mlp.up_proj.weight", [4, 4]),
  ("model.layers.2.self_attn.q_proj.weight", [4, 4]),
  ("model.layers.2.mlp.up_proj.weight", [4, 4]),
  ("model.norm.weight", [4]),
  ("lm_head.weight", [6, 4]),
]

/// A few Stable-Diffusion-like keys (every key contains `model`, as the WebUI merger expects).
let sdLayout: [(String, [Int])] = [
  ("model.diffusion_model.input_blocks.0.0.weight", [4, 4]),
  ("model.diffusion_model.middle_block.1.proj.weight", [8, 2]),
  ("model.diffusion_model.out.2.bias", [4]),
  ("cond_stage_model.transformer.text_model.final_layer_norm.weight", [6]),
  ("first_stage_model.decoder.conv_in.weight", [2, 3]),
]

/// Every float of tensor `name` of the safetensors file at `path`, as Double.
func readTensor(_ path: String, _ name: String) throws -> [Double] {
  let f = try SafeTensorsFile(path: path)
  let t = try #require(f.info(name), "\(path) has no tensor \(name)")
  var out = [Double](repeating: 0, count: t.elementCount)
  out.withUnsafeMutableBufferPointer { f.read(t, elements: 0..<t.elementCount, into: $0.baseAddress!) }
  return out
}

/// Checks `actual` against `expected` element by element, to f32 precision.
func expectClose(
  _ actual: [Double], _ expected: [Double], tolerance: Double = 2e-6, _ what: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(
    actual.count == expected.count, "\(what): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
  var worst = 0.0
  var at = 0
  for (i, (a, e)) in zip(actual, expected).enumerated() {
    let err = abs(a - e) / max(1, abs(e))
    if err > worst {
      worst = err
      at = i
    }
  }
  #expect(
    worst <= tolerance,
    "\(what): element \(at) is \(actual.indices.contains(at) ? actual[at] : .nan), expected \(expected.indices.contains(at) ? expected[at] : .nan)",
    sourceLocation: sourceLocation)
}

/// Imports `source` into `experiments/<exp>/<name>.yaml` of `t`, runs it, returns the output path.
func importAndRun(
  _ t: TempWorkspace, source: String, experiment: String = "imp", name: String, models: [String: String] = [:],
  modelsDir: String? = nil, shallow: Bool = false
) throws -> (output: String, yaml: String) {
  let out = "\(t.root)/experiments/\(experiment)/\(name).yaml"
  let outcome = try ImportRecipe.run(
    file: source, out: out, format: nil, models: models, modelsDir: modelsDir, shallow: shallow, force: true)
  _ = try t.run("experiments/\(experiment)/\(name).yaml")
  return ("\(t.root)/artifacts/\(experiment)/\(name).safetensors", outcome.yaml)
}

extension Array where Element == Double {
  var norm: Double { Foundation.sqrt(reduce(0) { $0 + $1 * $1 }) }
  func dot(_ o: [Double]) -> Double { zip(self, o).reduce(0) { $0 + $1.0 * $1.1 } }
  func minus(_ o: [Double]) -> [Double] { zip(self, o).map { $0 - $1 } }
  func plus(_ o: [Double]) -> [Double] { zip(self, o).map { $0 + $1 } }
  func scaled(_ s: Double) -> [Double] { map { s * $0 } }
}
