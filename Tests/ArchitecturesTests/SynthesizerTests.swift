import Foundation
import SafeTensors
import Testing

@testable import Architectures

/// Every float element of a model, in canonical tensor order (position_ids left out).
func floatValues(_ path: String) throws -> [Float] {
  let f = try SafeTensorsFile(path: path)
  var out: [Float] = []
  for t in f.tensors where t.dtype.isFloat {
    var v = [Float](repeating: 0, count: t.elementCount)
    f.read(t, elements: 0..<t.elementCount, into: &v)
    out += v
  }
  return out
}

@Suite("Synthesizer")
struct SynthesizerTests {
  @Test("full size: the layout's shapes, and 2.13 GB for SD1 in fp16")
  func fullSize() throws {
    let s = Synthesizer(architecture: .sd1, count: 1, seed: 0)
    let specs = try s.specs()
    let byName = Dictionary(uniqueKeysWithValues: Layout.sd1.keys.map { ($0.name, $0) })
    #expect(specs.count == Layout.sd1.requiredKeys.count + 1)  // + position_ids
    for spec in specs {
      let k = try #require(byName[spec.name])
      #expect(spec.shape == k.shape, "\(spec.name)")
      #expect(spec.dtype == (k.dtype.isFloat ? .f16 : k.dtype), "\(spec.name)")
    }
    let (header, _) = CanonicalLayout.header(
      for: specs, metadata: ["format": "pt", "mixlab.synth": String(repeating: "x", count: 60)])
    let size = 8 + header.count + specs.reduce(0) { $0 + $1.byteCount }
    #expect(size > 2_125_000_000 && size < 2_135_000_000, "SD1 fp16 is \(size) bytes")
  }

  @Test("--scale shrinks every dimension, never below 1", arguments: [Architecture.sd1, .sdxl], [0.5, 0.05, 0.0001])
  func scale(arch: Architecture, scale: Double) throws {
    let s = Synthesizer(architecture: arch, count: 1, seed: 0, scale: scale)
    let layout = try #require(Layout.reference(arch))
    let byName = Dictionary(uniqueKeysWithValues: layout.keys.map { ($0.name, $0) })
    for spec in try s.specs() {
      let k = try #require(byName[spec.name])
      #expect(spec.shape == k.shape.map { max(1, Int((Double($0) * scale).rounded())) }, "\(spec.name)")
      #expect(spec.shape.allSatisfy { $0 >= 1 })
    }
  }

  @Test("Llama --scale shrinks the config's dimensions and keeps its 22 layers")
  func llamaScale() throws {
    let c = LlamaConfig.reference.scaled(0.01)
    #expect(c.numHiddenLayers == 22)
    #expect(c.hiddenSize == 20 && c.vocabSize == 320 && c.numKeyValueHeads == 1 && c.headDim == 1)
    let specs = try Synthesizer(architecture: .llama, count: 1, seed: 0, scale: 0.01).specs()
    #expect(specs.count == 22 * 9 + 3)
    #expect(specs.first { $0.name == "model.embed_tokens.weight" }?.shape == [320, 20])
  }

  @Test("same arguments, same bytes; another seed, other bytes")
  func deterministic() throws {
    let a = TempDir("synth")
    let b = TempDir("synth")
    let c = TempDir("synth")
    let s = Synthesizer(architecture: .sd1, count: 3, seed: 42, scale: 0.02, dtype: .bf16)
    let ra = try s.write(to: a.path)
    let rb = try s.write(to: b.path)
    var other = s
    other.seed = 43
    let rc = try other.write(to: c.path)
    #expect(a.listing() == ["sd1-00.safetensors", "sd1-01.safetensors", "sd1-02.safetensors"])
    for i in 0..<3 {
      let name = "sd1-0\(i).safetensors"
      #expect(fileBytes(a.file(name)) == fileBytes(b.file(name)), "\(name)")
      #expect(ra[i].sha256 == rb[i].sha256)
      #expect(ra[i].sha256 != rc[i].sha256)
      #expect(ra[i].sha256 == Digest.sha256(fileBytes(a.file(name))))
      #expect(ra[i].size == fileBytes(a.file(name)).count && ra[i].path == a.file(name))
    }
    #expect(Set(ra.map(\.sha256)).count == 3)
  }

  @Test("model 0 is the base; variants differ from it, with deltas whose signs partly conflict")
  func structuredDeltas() throws {
    let dir = TempDir("synth")
    let s = Synthesizer(architecture: .sd1, count: 4, seed: 7, scale: 0.03, dtype: .f32)
    let out = try s.write(to: dir.path)
    let models = try out.map { try floatValues($0.path) }
    let base = models[0]
    #expect(models.allSatisfy { $0.count == base.count } && base.count > 300_000)
    func fractionChanged(_ m: [Float]) -> Double {
      Double(zip(m, base).filter { $0 != $1 }.count) / Double(base.count)
    }
    func fractionOpposed(_ x: [Float], _ y: [Float]) -> Double {
      var opposed = 0
      var both = 0
      for i in 0..<base.count {
        let dx = x[i] - base[i]
        let dy = y[i] - base[i]
        if dx != 0 && dy != 0 {
          both += 1
          if (dx > 0) != (dy > 0) { opposed += 1 }
        }
      }
      return Double(opposed) / Double(max(1, both))
    }
    // Only the scheduler-free float tensors all change; nearly every element moves.
    #expect(fractionChanged(models[1]) > 0.99)
    #expect(fractionChanged(models[2]) > 0.99)
    #expect(models[1] != models[2])
    let odd = fractionOpposed(models[1], models[3])  // both flip the conflict region
    let mixed = fractionOpposed(models[1], models[2])  // one flips, one does not
    #expect(mixed > 0.2 && mixed < 0.8, "opposite-sign fraction of model 1 vs 2: \(mixed)")
    #expect(odd < mixed, "models 1 and 3 should agree more (\(odd)) than 1 and 2 (\(mixed))")
    // Deltas are small next to the weights: a variant stays close to its base.
    let deltaNorm = zip(models[1], base).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot()
    let baseNorm = base.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
    #expect(deltaNorm < 0.5 * baseNorm, "delta \(deltaNorm) vs base \(baseNorm)")
  }

  @Test("position_ids hold 0..<n and scheduler buffers the real schedule")
  func specialTensors() throws {
    let dir = TempDir("synth")
    let s = Synthesizer(architecture: .sd1, count: 1, seed: 1, scale: 0.02, dtype: .f32, extras: ["ema", "scheduler"])
    let out = try s.write(to: dir.path)
    let f = try SafeTensorsFile(path: out[0].path)
    let pos = try #require(f.info("cond_stage_model.transformer.text_model.embeddings.position_ids"))
    #expect(pos.dtype == .i64 && pos.shape == [1, 2])
    var ids = [Double](repeating: -1, count: pos.elementCount)
    f.read(pos, elements: 0..<pos.elementCount, into: &ids)
    #expect(ids == [0, 1])
    #expect(f.tensors.contains { $0.name.hasPrefix("model_ema.") })
    let betas = try #require(f.info("betas"))
    let cum = try #require(f.info("alphas_cumprod"))
    var b = [Double](repeating: 0, count: betas.elementCount)
    var a = [Double](repeating: 0, count: cum.elementCount)
    f.read(betas, elements: 0..<b.count, into: &b)
    f.read(cum, elements: 0..<a.count, into: &a)
    #expect(abs(b.first! - 0.00085) < 1e-7 && abs(b.last! - 0.012) < 1e-7)
    #expect(zip(a, a.dropFirst()).allSatisfy { $0 > $1 })
    #expect(abs(a[0] - (1 - 0.00085)) < 1e-6)
    #expect(Detection.architecture(of: f.tensors.map { ($0.name, $0.shape) }) == .sd1)
  }

  @Test("Llama: a Hugging Face folder with config.json, one file or shards with an index")
  func llamaFolders() throws {
    let dir = TempDir("synth")
    let single = Synthesizer(architecture: .llama, count: 1, seed: 5, scale: 0.03, dtype: .bf16)
    let one = try single.write(to: dir.file("single"))
    #expect(dir.listing("single/llama-00") == ["config.json", "model.safetensors"])
    let config =
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: one[0].path + "/config.json")))
      as? [String: Any]
    let scaled = LlamaConfig.reference.scaled(0.03)
    #expect(config?["hidden_size"] as? Int == scaled.hiddenSize)
    #expect(config?["num_hidden_layers"] as? Int == 22)
    #expect(config?["torch_dtype"] as? String == "bfloat16")
    #expect(config?["model_type"] as? String == "llama")

    let shardBytes = 256 << 10
    let sharded = Synthesizer(architecture: .llama, count: 2, seed: 5, scale: 0.03, dtype: .bf16, shardBytes: shardBytes)
    let out = try sharded.write(to: dir.file("sharded"))
    #expect(out.count == 2 && dir.listing("sharded") == ["llama-00", "llama-01"])
    let files = dir.listing("sharded/llama-00")
    let shards = files.filter { $0.hasPrefix("model-") }
    #expect(shards.count > 1)
    #expect(files.contains("config.json") && files.contains("model.safetensors.index.json"))
    #expect(shards == (0..<shards.count).map { Sharding.shardName($0, of: shards.count) })
    let c = try Checkpoint(path: out[0].path)
    #expect(c.isSharded && c.entries.count == 22 * 9 + 3)
    #expect(Detection.architecture(of: c.entries.map { ($0.info.name, $0.info.shape) }) == .llama)
    for f in c.shards where f.tensors.count > 1 {
      #expect(f.file.size - f.dataStart <= shardBytes, "\(f.path)")
    }
    // Sharding does not change the values: each tensor equals the single-file model's.
    let whole = try SafeTensorsFile(path: one[0].path + "/model.safetensors")
    for e in c.entries {
      let t = try #require(whole.info(e.info.name))
      let a = whole.withBytes(of: t) { Array($0) }
      let b = c.file(of: e).withBytes(of: e.info) { Array($0) }
      #expect(a == b, "\(e.info.name)")
    }
  }

  @Test("architectures without a synthesis layout are refused", arguments: [Architecture.sd2, .unknown])
  func unsupported(arch: Architecture) {
    #expect(throws: Synthesizer.SynthError.self) { _ = try Synthesizer(architecture: arch, count: 1, seed: 0).specs() }
  }
}
