import Foundation
import MixLab
import SafeTensors
import Testing

/// sd-mecha recipes and A1111 / supermerger merge metadata imported by `mixlab import` and run
/// by mixlab give those tools' math, computed here from their source's formulas.
@Suite("sd-mecha and A1111 conformance")
struct SDConformanceTests {
  struct Family {
    let base: TinyModel
    let ms: [TinyModel]
    let dir: String
    var shas: [String] = []

    init(_ t: TempWorkspace) throws {
      dir = t.root + "/models"
      base = TinyModel.random(seed: 5, layout: sdLayout)
      ms = (1...3).map { TinyModel.variant(of: TinyModel.random(seed: 5, layout: sdLayout), seed: UInt64(40 + $0), scale: 0.3) }
      shas.append(try base.write(dir + "/base.safetensors"))
      for (i, m) in ms.enumerated() { shas.append(try m.write(dir + "/m\(i + 1).safetensors")) }
    }

    var all: [TinyModel] { [base] + ms }
  }

  func write(_ t: TempWorkspace, _ name: String, _ text: String) throws -> String {
    let path = t.root + "/models/\(name)"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  // MARK: sd-mecha

  @Test("sd-mecha 0.1.0 weighted_sum: (1 − α)·A + α·B")
  func mechaWeightedSum() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let recipe = try write(
      t, "ws.mecha",
      """
      version 0.1.0
      model "m1" model_config="sd1-ldm" merge_space="weight"
      model "m2.safetensors" model_config="sd1-ldm" merge_space="weight"
      merge "weighted_sum" &0 &1 alpha=0.3
      """)
    let (out, yaml) = try importAndRun(t, source: recipe, name: "ws")
    #expect(yaml.contains("sd-mecha format 0.1.0"))
    for (name, _, _) in f.base.tensors {
      let expected = zip(f.ms[0].values(name), f.ms[1].values(name)).map { 0.7 * $0 + 0.3 * $1 }
      expectClose(try readTensor(out, name), expected, name)
    }
  }

  @Test("sd-mecha unversioned add_difference(a, subtract(b, c)): A + α·(B − C)")
  func mechaAddDifference() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let recipe = try write(
      t, "ad.mecha",
      """
      model "m1"
      model "m2"
      model "base"
      call "subtract" &1 &2
      call "add_difference" &0 &3 alpha=0.7
      """)
    let (out, yaml) = try importAndRun(t, source: recipe, name: "ad")
    #expect(yaml.contains("unversioned"))
    for (name, _, _) in f.base.tensors {
      let a = f.ms[0].values(name)
      let expected = a.plus(f.ms[1].values(name).minus(f.base.values(name)).scaled(0.7))
      expectClose(try readTensor(out, name), expected, name)
    }
  }

  /// sd-mecha's ties_sum over deltas: inclusive top-k, sign election by the sum of deltas or
  /// of signs, agreeing entries summed and divided by their count (nan → 0); then add_difference.
  static func mechaTies(base b: [Double], models: [[Double]], k: Double, bySum: Bool, alpha: Double) -> [Double] {
    let n = b.count
    let deltas: [[Double]] = models.map { m in
      let d = m.minus(b)
      let kk = max(Int((1 - k) * Double(n)), 1)
      let kth = d.map(abs).sorted()[kk - 1]
      return d.map { abs($0) >= kth ? $0 : 0 }
    }
    func sign(_ x: Double) -> Double { x > 0 ? 1 : x < 0 ? -1 : 0 }
    var out = b
    for e in 0..<n {
      let vote = deltas.reduce(0.0) { $0 + (bySum ? $1[e] : sign($1[e])) }
      let final = sign(vote)
      var sum = 0.0
      var count = 0.0
      for d in deltas where sign(d[e]) == final {
        sum += d[e]
        count += 1
      }
      let merged = count == 0 ? 0 : sum / count
      out[e] = b[e] + alpha * (merged.isFinite ? merged : 0)
    }
    return out
  }

  @Test(
    "sd-mecha ties_sum: vote_sgn means sign count in the unversioned format and sum of deltas in 0.1.0",
    arguments: [(false, "1", false), (false, "0", true), (true, "true", true), (true, "false", false)])
  func mechaTies(versioned: Bool, voteSgn: String, bySum: Bool) throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let header = versioned ? "version 0.1.0\n" : ""
    let cmd = versioned ? "merge" : "call"
    let suffix = versioned ? " model_config=\"sd1-ldm\" merge_space=\"weight\"" : ""
    let recipe = try write(
      t, "ties.mecha",
      header + """
        model "base"\(suffix)
        model "m1"\(suffix)
        \(cmd) "subtract" &1 &0
        model "m2"\(suffix)
        \(cmd) "subtract" &3 &0
        model "m3"\(suffix)
        \(cmd) "subtract" &5 &0
        \(cmd) "ties_sum" &2 &4 &6 k=0.5 vote_sgn=\(voteSgn)
        \(cmd) "add_difference" &0 &7 alpha=0.8
        """)
    let (out, yaml) = try importAndRun(t, source: recipe, name: "ties")
    #expect(yaml.contains("sign: \(bySum ? "magnitude_sum" : "sign_count")"))
    #expect(yaml.contains("vote_sgn=\(voteSgn) → sign: \(bySum ? "magnitude_sum" : "sign_count")"))
    for (name, _, _) in f.base.tensors {
      let expected = Self.mechaTies(
        base: f.base.values(name), models: f.ms.map { $0.values(name) }, k: 0.5, bySum: bySum, alpha: 0.8)
      expectClose(try readTensor(out, name), expected, name)
    }
  }

  @Test("sd-mecha geometric_median: Weiszfeld iterations from the mean, unit weights")
  func mechaGeometricMedian() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let recipe = try write(
      t, "gm.mecha",
      """
      version 0.1.0
      model "m1" model_config="sd1-ldm" merge_space="weight"
      model "m2" model_config="sd1-ldm" merge_space="weight"
      model "m3" model_config="sd1-ldm" merge_space="weight"
      merge "geometric_median" &0 &1 &2 eps=1e-6 maxiter=100 ftol=1e-20
      """)
    let (out, _) = try importAndRun(t, source: recipe, name: "gm")
    for (name, _, _) in f.base.tensors {
      let pts = f.ms.map { $0.values(name) }
      func average(_ w: [Double]) -> [Double] {
        zip(pts, w).reduce([Double](repeating: 0, count: pts[0].count)) { $0.plus($1.0.scaled($1.1)) }.scaled(1 / w.reduce(0, +))
      }
      func objective(_ m: [Double]) -> Double { pts.reduce(0) { $0 + $1.minus(m).norm } / Double(pts.count) }
      var median = average([1, 1, 1])
      var weights = [1.0, 1, 1]
      var obj = objective(median)
      for _ in 0..<100 {
        let prev = obj
        weights = pts.map { 1 / max($0.minus(median).norm, 1e-6) }
        median = average(weights)
        obj = objective(median)
        if abs(prev - obj) <= 1e-20 * obj { break }
      }
      expectClose(try readTensor(out, name), average(weights), tolerance: 1e-5, name)
    }
  }

  // MARK: A1111

  /// A merged model whose metadata records `recipe` over `models` (sha → name, own recipe).
  func merged(_ t: TempWorkspace, _ file: String, recipe: [String: Any], models: [String: [String: Any]]) throws -> String {
    func json(_ v: Any) throws -> String {
      String(decoding: try JSONSerialization.data(withJSONObject: v, options: [.sortedKeys]), as: UTF8.self)
    }
    let path = t.root + "/models/\(file)"
    try TinyModel.random(seed: 99, layout: sdLayout).write(
      path, metadata: ["format": "pt", "sd_merge_recipe": try json(recipe), "sd_merge_models": try json(models)])
    return path
  }

  func webui(_ method: String, _ a: String, _ b: String, _ c: String?, _ m: Double) -> [String: Any] {
    [
      "type": "webui", "primary_model_hash": a, "secondary_model_hash": b, "tertiary_model_hash": c ?? NSNull(),
      "interp_method": method, "multiplier": m, "save_as_half": false, "custom_name": "", "config_source": 0,
      "bake_in_vae": "None", "discard_weights": "", "is_inpainting": false, "is_instruct_pix2pix": false,
    ]
  }

  @Test("A1111 Weighted sum: A·(1 − M) + B·M, inputs pinned by the recorded SHA-256")
  func a1111WeightedSum() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let x = try merged(
      t, "x.safetensors", recipe: webui("Weighted sum", f.shas[1], f.shas[2], nil, 0.3),
      models: [
        f.shas[1]: ["name": "m1.safetensors", "legacy_hash": "abcd1234", "sd_merge_recipe": NSNull()],
        f.shas[2]: ["name": "m2.safetensors", "legacy_hash": "abcd1235", "sd_merge_recipe": NSNull()],
      ])
    let (out, yaml) = try importAndRun(t, source: x, name: "x")
    #expect(yaml.contains("sha256: \(f.shas[1])") && yaml.contains("sha256: \(f.shas[2])"))
    for (name, _, _) in f.base.tensors {
      let expected = zip(f.ms[0].values(name), f.ms[1].values(name)).map { $0 * 0.7 + $1 * 0.3 }
      expectClose(try readTensor(out, name), expected, name)
    }
  }

  @Test("A1111 ancestry: Add difference over an earlier Weighted sum expands into the whole tree; --shallow keeps the parent")
  func a1111Tree() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let xRecipe = webui("Weighted sum", f.shas[1], f.shas[2], nil, 0.3)
    // The intermediate model x is not on disk: only its recorded recipe is.
    let xSHA = String(repeating: "7", count: 64)
    let y = try merged(
      t, "y.safetensors", recipe: webui("Add difference", xSHA, f.shas[3], f.shas[0], 0.5),
      models: [
        xSHA: ["name": "x.safetensors", "legacy_hash": "1", "sd_merge_recipe": xRecipe],
        f.shas[1]: ["name": "m1.safetensors", "legacy_hash": "2", "sd_merge_recipe": NSNull()],
        f.shas[2]: ["name": "m2.safetensors", "legacy_hash": "3", "sd_merge_recipe": NSNull()],
        f.shas[3]: ["name": "m3.safetensors", "legacy_hash": "4", "sd_merge_recipe": NSNull()],
        f.shas[0]: ["name": "base.safetensors", "legacy_hash": "5", "sd_merge_recipe": NSNull()],
      ])
    let (out, _) = try importAndRun(t, source: y, name: "y")
    for (name, _, _) in f.base.tensors {
      let x = zip(f.ms[0].values(name), f.ms[1].values(name)).map { $0 * 0.7 + $1 * 0.3 }
      let expected = x.plus(f.ms[2].values(name).minus(f.base.values(name)).scaled(0.5))
      expectClose(try readTensor(out, name), expected, name)
    }
    // Shallow: the parent x is an input, which is missing: a clear error naming it.
    #expect {
      _ = try importAndRun(t, source: y, name: "y2", shallow: true)
    } throws: { error in
      message(error).contains("x.safetensors") && message(error).contains(xSHA)
    }
  }

  @Test("A1111 discard_weights becomes an assemble rule dropping the matching keys")
  func a1111Discard() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    var recipe = webui("Weighted sum", f.shas[1], f.shas[2], nil, 0.5)
    recipe["discard_weights"] = "first_stage_model"
    let x = try merged(
      t, "d.safetensors", recipe: recipe,
      models: [
        f.shas[1]: ["name": "m1.safetensors", "legacy_hash": "1", "sd_merge_recipe": NSNull()],
        f.shas[2]: ["name": "m2.safetensors", "legacy_hash": "2", "sd_merge_recipe": NSNull()],
      ])
    let (out, yaml) = try importAndRun(t, source: x, name: "d")
    #expect(yaml.contains("{regex: \"first_stage_model\", drop: true}"))
    let names = try SafeTensorsFile(path: out).tensors.map(\.name)
    #expect(!names.contains { $0.hasPrefix("first_stage_model") } && names.count == sdLayout.count - 1)
  }

  @Test("supermerger Add difference with block weights reads the block list (BASE, IN…, M00, OUT…)")
  func supermergerBlocks() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let blocks = (0..<26).map { Double($0) / 25 }
    let x = try merged(
      t, "sm.safetensors",
      recipe: [
        "type": "sd-webui-supermerger", "model_a": f.shas[1], "model_b": f.shas[2], "model_c": f.shas[0],
        "mode": "Add difference", "base_alpha": 0.4, "base_beta": 0.25, "mbw": true, "calcmode": "normal",
        "weights_alpha": blocks.map { "\($0)" }.joined(separator: ","), "elemental_merge": "",
      ],
      models: [
        f.shas[1]: ["name": "m1.safetensors", "legacy_hash": "1"],
        f.shas[2]: ["name": "m2.safetensors", "legacy_hash": "2"],
        f.shas[0]: ["name": "base.safetensors", "legacy_hash": "3"],
      ])
    let out = "\(t.root)/experiments/imp/sm.yaml"
    let outcome = try ImportRecipe.run(file: x, out: out, format: nil, models: [:], modelsDir: nil, shallow: false, force: true)
    #expect(outcome.yaml.contains("alpha: {blocks: [0, 0.04"))
    #expect(outcome.yaml.contains("method: add_difference"))
  }
}
