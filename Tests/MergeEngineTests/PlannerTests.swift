import Architectures
import Foundation
import SafeTensors
import Testing

@testable import MergeEngine

/// Small checkpoints with real Stable Diffusion 1 key names, every float tensor a constant, so
/// a merged value tells which rule, block or parameter applied.
enum SDKeys {
  static let clip = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
  static let positionIDs = "cond_stage_model.transformer.text_model.embeddings.position_ids"
  static let timeEmbed = "model.diffusion_model.time_embed.0.weight"
  static let in00 = "model.diffusion_model.input_blocks.0.0.weight"
  static let in01 = "model.diffusion_model.input_blocks.1.1.proj_in.weight"
  static let mid = "model.diffusion_model.middle_block.1.proj_in.weight"
  static let out02 = "model.diffusion_model.output_blocks.2.0.weight"
  static let out11 = "model.diffusion_model.output_blocks.11.1.proj_out.weight"
  static let finalOut = "model.diffusion_model.out.2.weight"
  static let vae = "first_stage_model.decoder.conv_in.weight"
  static let floats = [clip, timeEmbed, in00, in01, mid, out02, out11, finalOut, vae]

  static func model(
    _ d: TempDir, _ name: String, value: Double, extra: [String: (DType, [Int], [Double])] = [:], positions: [Double]? = nil
  )
    throws -> Checkpoint
  {
    var t: [String: (DType, [Int], [Double])] = [positionIDs: (.i64, [1, 4], positions ?? [0, 1, 2, 3])]
    for k in floats { t[k] = (.f32, [2, 3], Array(repeating: value, count: 6)) }
    for (k, v) in extra { t[k] = v }
    return try d.model(name, typed: t)
  }
}

@Suite("Planner: errors and key policies")
struct PlannerErrorTests {
  func spec(_ nodes: [NodeSpec], names: [String], policy: KeyPolicy = .error) -> MergeSpec {
    MergeSpec(inputNames: names, nodes: nodes, main: .node(nodes.count - 1), outputDType: .f32, keyPolicy: policy)
  }

  @Test func missingKeyNamesModelKeyAndStep() throws {
    let d = TempDir()
    let a = try SDKeys.model(d, "a", value: 1, extra: ["only.in.a": (.f32, [2], [1, 2])])
    let b = try SDKeys.model(d, "b", value: 3)
    let c = try SDKeys.model(d, "c", value: 5, extra: ["only.in.a": (.f32, [2], [9, 9])])
    let nodes = [
      NodeSpec(id: "first", method: .weightedSum, operands: [.input(0), .input(2)]),
      NodeSpec(id: "second", method: .addDifference, operands: [.node(0), .input(1), .input(0)]),
    ]
    #expect(throws: MergeError.missingKey(model: "B.safetensors", key: "only.in.a", step: "second")) {
      _ = try Planner.plan(spec(nodes, names: ["A.safetensors", "B.safetensors", "C.safetensors"]), inputs: [a, b, c])
    }
    let message = MergeError.missingKey(model: "B.safetensors", key: "only.in.a", step: "second").errorDescription!
    #expect(message.contains("B.safetensors") && message.contains("only.in.a") && message.contains("second"))
  }

  @Test func shapeMismatchNamesModelKeyAndStep() throws {
    let d = TempDir()
    let a = try SDKeys.model(d, "a", value: 1)
    let b = try SDKeys.model(d, "b", value: 3, extra: [SDKeys.mid: (.f32, [3, 2], Array(repeating: 3, count: 6))])
    let nodes = [NodeSpec(id: "soup", method: .average, operands: [.input(0), .input(1)])]
    #expect(throws: MergeError.shapeMismatch(model: "B", key: SDKeys.mid, shape: [3, 2], expected: [2, 3], step: "soup")) {
      _ = try Planner.plan(spec(nodes, names: ["A", "B"]), inputs: [a, b])
    }
  }

  @Test func copyReferencePolicyCopiesTheReferenceTensor() throws {
    let d = TempDir()
    let a = try SDKeys.model(d, "a", value: 1, extra: ["only.in.a": (.f32, [2], [1, 2])])
    let b = try SDKeys.model(d, "b", value: 3, extra: [SDKeys.mid: (.f32, [3, 2], Array(repeating: 3, count: 6))])
    let nodes = [NodeSpec(id: "soup", method: .average, operands: [.input(0), .input(1)])]
    let r = try d.run(spec(nodes, names: ["A", "B"], policy: .copyReference), inputs: [a, b])
    #expect(r.values["only.in.a"] == [1, 2])
    #expect(r.values[SDKeys.mid] == Array(repeating: 1, count: 6))
    #expect(r.values[SDKeys.in00] == Array(repeating: 2, count: 6))
    #expect(r.plan.notes.count == 2)
    #expect(r.plan.notes.contains { $0.hasPrefix("only.in.a") })
  }

  @Test func integerTensorsAreCopiedFromTheReferenceNotMerged() throws {
    let d = TempDir()
    let a = try SDKeys.model(d, "a", value: 1)
    let b = try SDKeys.model(d, "b", value: 3, positions: [10, 20, 30, 40])
    let nodes = [NodeSpec(id: "soup", method: .average, operands: [.input(0), .input(1)])]
    let r = try d.run(spec(nodes, names: ["A", "B"]), inputs: [a, b])
    #expect(r.values[SDKeys.positionIDs] == [0, 1, 2, 3])
    let out = try SafeTensorsFile(path: r.outcome.files[0].path)
    #expect(out.tensors.first { $0.name == SDKeys.positionIDs }?.dtype == .i64)
    #expect(out.tensors.first { $0.name == SDKeys.clip }?.dtype == .f32)
    // Copied byte for byte: the tensor hash equals the reference's.
    let aFile = try SafeTensorsFile(path: a.path)
    let refHash = Scanner.scan(aFile, perTensor: true).tensorSHA256![SDKeys.positionIDs]
    #expect(r.outcome.tensorSHA256[SDKeys.positionIDs] == refHash)
  }

  @Test func nonFinitePolicies() throws {
    let d = TempDir()
    let a = try d.model("a", ["w": ([4], [1, .nan, 3, .infinity]), "ok": ([1], [1])])
    let b = try d.model("b", ["w": ([4], [3, 4, 5, 6]), "ok": ([1], [3])])
    func spec(_ p: NonFinitePolicy) -> MergeSpec {
      MergeSpec(
        inputNames: ["A", "B"], nodes: [NodeSpec(id: "soup", method: .average, operands: [.input(0), .input(1)])], main: .node(0),
        outputDType: .f32, nonFinitePolicy: p)
    }
    do {
      _ = try d.run(spec(.error), inputs: [a, b])
      Issue.record("expected a non-finite error")
    } catch let e as MergeError {
      guard case .nonFinite(let report) = e else { throw e }
      #expect(report == ["model A tensor w: 1 NaN, 1 Inf"])
      #expect(e.errorDescription!.contains("model A tensor w"))
    }
    let zero = try d.run(spec(.zero), inputs: [a, b], name: "zero")
    #expect(zero.values["w"] == [2, 2, 4, 3])
    #expect(zero.values["ok"] == [2])
    let kept = try d.run(spec(.propagate), inputs: [a, b], name: "propagate")
    let w = kept.values["w"]!
    #expect(w[0] == 2 && w[1].isNaN && w[2] == 4 && w[3] == .infinity)
  }

  @Test func unknownBlockWithoutFallbackIsAParameterError() throws {
    let d = TempDir()
    let a = try SDKeys.model(d, "a", value: 1)
    let b = try SDKeys.model(d, "b", value: 3)
    let node = NodeSpec(
      id: "mbw", method: .weightedSum, operands: [.input(0), .input(1)], params: ["alpha": .blocks(["BASE": 0.5], fallback: nil)])
    #expect(throws: MergeError.self) {
      _ = try Planner.plan(MergeSpec(inputNames: ["A", "B"], nodes: [node], main: .node(0)), inputs: [a, b])
    }
  }
}

@Suite("Planner: assembly rules, block weights, gradients and key rules")
struct PlannerAssemblyTests {
  /// alpha of weighted_sum(A = 1, B = 3) read back from a value: v = 1 + 2α.
  func alpha(_ r: [String: [Double]], _ key: String) -> Double? {
    guard let v = r[key]?.first else { return nil }
    return ((v - 1) / 2 * 1e6).rounded() / 1e6
  }

  @Test(arguments: [TimeEmbedPlacement.base, .in00])
  func blockWeightsFollowTheBlockMap(placement: TimeEmbedPlacement) throws {
    let d = TempDir()
    let a = try SDKeys.model(d, "a", value: 1)
    let b = try SDKeys.model(d, "b", value: 3)
    let blocks: [String: Double] = ["BASE": 0.1, "IN00": 0.2, "IN01": 0.3, "M00": 0.5, "OUT02": 0.6, "OUT11": 0.9]
    let node = NodeSpec(
      id: "mbw", method: .weightedSum, operands: [.input(0), .input(1)], params: ["alpha": .blocks(blocks, fallback: nil)])
    let spec = MergeSpec(inputNames: ["A", "B"], nodes: [node], main: .node(0), outputDType: .f32, timeEmbed: placement)
    let r = try d.run(spec, inputs: [a, b]).values
    #expect(alpha(r, SDKeys.clip) == 0.1)
    #expect(alpha(r, SDKeys.in00) == 0.2)
    #expect(alpha(r, SDKeys.in01) == 0.3)
    #expect(alpha(r, SDKeys.mid) == 0.5)
    #expect(alpha(r, SDKeys.out02) == 0.6)
    #expect(alpha(r, SDKeys.out11) == 0.9)
    // `out.` is the last OUT block; the VAE falls back to BASE when it has no value.
    #expect(alpha(r, SDKeys.finalOut) == 0.9)
    #expect(alpha(r, SDKeys.vae) == 0.1)
    #expect(alpha(r, SDKeys.timeEmbed) == (placement == .base ? 0.1 : 0.2))
  }

  @Test func keyRulesFirstMatchWins() throws {
    let d = TempDir()
    let a = try SDKeys.model(d, "a", value: 1)
    let b = try SDKeys.model(d, "b", value: 3)
    let rules: [ParamValue.KeyRule] = [
      .init(pattern: .glob("*.proj_in.*"), value: .constant(0.25)),
      .init(pattern: .regex(#"output_blocks\.[0-9]+\."#), value: .constant(0.75)),
      .init(pattern: .glob("model.diffusion_model.*"), value: .blocks(["IN00": 0.125], fallback: 0.5)),
    ]
    let node = NodeSpec(
      id: "rules", method: .weightedSum, operands: [.input(0), .input(1)],
      params: ["alpha": .rules(rules, fallback: .constant(0))])
    let r = try d.run(MergeSpec(inputNames: ["A", "B"], nodes: [node], main: .node(0), outputDType: .f32), inputs: [a, b]).values
    #expect(alpha(r, SDKeys.in01) == 0.25)  // rule 1 (rule 3 also matches)
    #expect(alpha(r, SDKeys.mid) == 0.25)
    #expect(alpha(r, SDKeys.out02) == 0.75)  // rule 2 (rule 3 also matches)
    #expect(alpha(r, SDKeys.out11) == 0.75)
    #expect(alpha(r, SDKeys.in00) == 0.125)  // rule 3, by block
    #expect(alpha(r, SDKeys.finalOut) == 0.5)  // rule 3, fallback
    #expect(alpha(r, SDKeys.clip) == 0)  // no rule: the default
    #expect(alpha(r, SDKeys.vae) == 0)
  }

  @Test func assemblyRulesComponentsBlocksPatternsDropAndEMA() throws {
    let d = TempDir()
    let emaMid = Planner.emaKey(for: SDKeys.mid)!
    #expect(emaMid == "model_ema.diffusion_modelmiddle_block1proj_inweight")
    let a = try SDKeys.model(d, "a", value: 1, extra: [emaMid: (.f32, [2, 3], Array(repeating: 7, count: 6))])
    let b = try SDKeys.model(
      d, "b", value: 3, extra: ["cond_stage_model.transformer.text_model.final_layer_norm.weight": (.f32, [2], [4, 4])],
      positions: [0, 1, 2, 3])
    let spec = MergeSpec(
      inputNames: ["A", "B"], nodes: [NodeSpec(id: "mix", method: .weightedSum, operands: [.input(0), .input(1)])],
      main: .node(0),
      rules: [
        AssemblyRule(selector: .pattern(.glob("model.diffusion_model.time_embed.*")), source: .node(0)),
        AssemblyRule(selector: .components(["clip_l"]), source: .input(1)),
        AssemblyRule(selector: .blocks(["IN01"]), source: .drop),
        AssemblyRule(selector: .components(["ema"]), source: .drop),
        AssemblyRule(selector: .pattern(.regex("^first_stage_model\\.")), source: .input(0)),
        AssemblyRule(selector: .components(["unet"]), source: .inputEMA(0)),
      ], outputDType: .f32)
    let r = try d.run(spec, inputs: [a, b]).values
    #expect(r[SDKeys.timeEmbed] == Array(repeating: 2, count: 6))  // first rule: the merge
    #expect(r[SDKeys.clip] == Array(repeating: 3, count: 6))  // text encoder from B
    #expect(r["cond_stage_model.transformer.text_model.final_layer_norm.weight"] == [4, 4])  // only in B, claimed by its rule
    #expect(r[SDKeys.in01] == nil)  // dropped block
    #expect(r[emaMid] == nil)  // dropped component
    #expect(r[SDKeys.vae] == Array(repeating: 1, count: 6))  // pattern
    #expect(r[SDKeys.mid] == Array(repeating: 7, count: 6))  // A's EMA weights
    #expect(r[SDKeys.in00] == Array(repeating: 1, count: 6))  // no EMA copy: A's own
    #expect(r.count == SDKeys.floats.count + 1 - 1 + 1)  // −IN01, +final_layer_norm, + position_ids
  }

  @Test func gradientsSpanLlamaLayers() throws {
    let d = TempDir()
    func llama(_ name: String, _ v: Double) throws -> Checkpoint {
      var t: [String: ([Int], [Double])] = [
        "model.embed_tokens.weight": ([2, 2], Array(repeating: v, count: 4)), "model.norm.weight": ([2], [v, v]),
        "lm_head.weight": ([2, 2], Array(repeating: v, count: 4)),
      ]
      for i in 0..<4 {
        t["model.layers.\(i).self_attn.q_proj.weight"] = ([2, 2], Array(repeating: v, count: 4))
        t["model.layers.\(i).input_layernorm.weight"] = ([2], [v, v])
      }
      return try d.model(name, t)
    }
    let a = try llama("a", 1)
    let b = try llama("b", 3)
    let node = NodeSpec(
      id: "grad", method: .weightedSum, operands: [.input(0), .input(1)], params: ["alpha": .gradient([0.2, 1, 0.4])])
    let r = try d.run(MergeSpec(inputNames: ["A", "B"], nodes: [node], main: .node(0), outputDType: .f64), inputs: [a, b]).values
    // Position p = i/(L − 1); the gradient's 3 points sit at 0, 0.5, 1.
    func expected(_ p: Double) -> Double {
      let x = p * 2
      return x <= 1 ? 0.2 + 0.8 * x : 1 + (0.4 - 1) * (x - 1)
    }
    #expect(abs(alpha(r, "model.embed_tokens.weight")! - 0.2) < 1e-6)
    #expect(abs(alpha(r, "model.norm.weight")! - 0.4) < 1e-6)
    #expect(abs(alpha(r, "lm_head.weight")! - 0.4) < 1e-6)
    for i in 0..<4 {
      let p = Double(i) / 3
      #expect(abs(alpha(r, "model.layers.\(i).self_attn.q_proj.weight")! - expected(p)) < 1e-6, "layer \(i)")
      #expect(abs(alpha(r, "model.layers.\(i).input_layernorm.weight")! - expected(p)) < 1e-6, "layer \(i)")
    }
  }

  @Test func blockMapNames() {
    let sd1 = BlockMap(architecture: .sd1)
    #expect(sd1.blockNames.count == 27)
    #expect(sd1.blockNames.first == "BASE" && sd1.blockNames.last == "VAE")
    #expect(sd1.blockNames.contains("IN11") && sd1.blockNames.contains("OUT11") && sd1.blockNames.contains("M00"))
    #expect(sd1.block(of: "model.diffusion_model.out.0.weight") == "OUT11")
    let sdxl = BlockMap(architecture: .sdxl, timeEmbed: .in00)
    #expect(sdxl.blockNames.count == 21)
    #expect(!sdxl.blockNames.contains("IN09"))
    #expect(sdxl.block(of: "model.diffusion_model.out.2.bias") == "OUT08")
    #expect(sdxl.block(of: "model.diffusion_model.label_emb.0.0.weight") == "IN00")
    #expect(BlockMap(architecture: .sdxl).block(of: "model.diffusion_model.label_emb.0.0.weight") == "BASE")
    #expect(sdxl.block(of: "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight") == "BASE")
    #expect(sdxl.block(of: "first_stage_model.encoder.conv_in.weight") == "VAE")
    let llama = BlockMap(architecture: .llama)
    #expect(llama.layerPosition(of: "model.layers.21.mlp.up_proj.weight", layerCount: 22) == 1)
    #expect(llama.layerPosition(of: "model.layers.0.mlp.up_proj.weight", layerCount: 22) == 0)
    #expect(llama.layerPosition(of: "model.embed_tokens.weight", layerCount: 22) == 0)
    #expect(llama.layerPosition(of: "lm_head.weight", layerCount: 22) == 1)
  }
}
