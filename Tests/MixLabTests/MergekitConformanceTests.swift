import Foundation
import MixLab
import Testing

/// A mergekit config imported by `mixlab import` and run by mixlab gives mergekit's math.
///
/// Expected values are computed here from the formulas of mergekit's source
/// (merge_methods/*.py, sparsify.py, config.py's evaluate_setting), written out plainly in
/// Double; mixlab computes in f32, so results agree to about 1e-6.
@Suite("mergekit conformance: imported configs give mergekit's formulas")
struct MergekitConformanceTests {
  /// A base and three fine-tunes as HF folders under `<root>/models/`; `m2` is also reachable
  /// through the hub id `org/model-two`.
  struct Family {
    let base: TinyModel
    let ms: [TinyModel]
    let dir: String
    var hubMap: [String: String] { ["org/model-two": dir + "/m2"] }

    init(_ t: TempWorkspace) throws {
      dir = t.root + "/models"
      base = TinyModel.random(seed: 1, layout: llamaLayout)
      ms = (1...3).map {
        TinyModel.variant(of: TinyModel.random(seed: 1, layout: llamaLayout), seed: UInt64(10 + $0), scale: 0.2)
      }
      try base.writeFolder(dir + "/m0")
      for (i, m) in ms.enumerated() { try m.writeFolder(dir + "/m\(i + 1)") }
    }
  }

  func config(_ t: TempWorkspace, _ name: String, _ text: String) throws -> String {
    let path = t.root + "/configs/\(name).yaml"
    try FileManager.default.createDirectory(atPath: t.root + "/configs", withIntermediateDirectories: true)
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  /// mergekit's `t` of a tensor: layer i of L at i/(L − 1), embeddings 0, final norm and head 1.
  static func depth(_ name: String) -> Double {
    if let r = name.range(of: "layers.") {
      let i = Int(name[r.upperBound...].prefix { $0.isNumber })!
      return Double(i) / 2
    }
    return name.contains("embed_tokens") ? 0 : 1
  }

  /// mergekit's evaluate_setting for a numeric gradient.
  static func gradient(_ g: [Double], _ t: Double) -> Double {
    let scaled = t * Double(g.count - 1)
    let i0 = Int(scaled)
    let i1 = min(g.count - 1, i0 + 1)
    let frac = scaled - Double(i0)
    return (1 - frac) * g[i0] + frac * g[i1]
  }

  @Test("linear: Σ wᵢxᵢ / Σ wᵢ with a per-layer gradient weight, HF folders and a hub id mapped by --model")
  func linear() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let cfg = try config(
      t, "linear",
      """
      models:
        - model: ../models/m1
          parameters:
            weight: [1.0, 0.0]
        - model: org/model-two
          parameters:
            weight: 0.5
      merge_method: linear
      dtype: float32
      """)
    let (out, yaml) = try importAndRun(t, source: cfg, name: "linear", models: f.hubMap)
    #expect(yaml.contains("base_model.model-two") && yaml.contains("org/model-two"))
    for (name, _, _) in f.base.tensors {
      let w1 = Self.gradient([1, 0], Self.depth(name))
      let w2 = 0.5
      let a = f.ms[0].values(name)
      let b = f.ms[1].values(name)
      let expected = zip(a, b).map { (w1 * $0 + w2 * $1) / (w1 + w2) }
      expectClose(try readTensor(out, name), expected, name)
    }
  }

  @Test("slerp: mergekit's slerp from the base with t from filters (first match, then the catch-all)")
  func slerp() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let cfg = try config(
      t, "slerp",
      """
      base_model: ../models/m0
      models:
        - model: ../models/m0
        - model: ../models/m1
      merge_method: slerp
      parameters:
        t:
          - filter: self_attn
            value: [0.2, 0.8]
          - value: 0.6
      dtype: float32
      """)
    let (out, _) = try importAndRun(t, source: cfg, name: "slerp")
    for (name, _, _) in f.base.tensors {
      let tt = name.contains("self_attn") ? Self.gradient([0.2, 0.8], Self.depth(name)) : 0.6
      let v0 = f.base.values(name)
      let v1 = f.ms[0].values(name)
      // mergekit slerp(): normalize, dot, lerp above 0.9995, else sin-weighted sum of the originals.
      let dot = v0.scaled(1 / v0.norm).dot(v1.scaled(1 / v1.norm))
      let expected: [Double]
      if abs(dot) > 0.9995 {
        expected = v0.scaled(1 - tt).plus(v1.scaled(tt))
      } else {
        let theta0 = acos(dot)
        let s0 = sin(theta0 - theta0 * tt) / sin(theta0)
        let s1 = sin(theta0 * tt) / sin(theta0)
        expected = v0.scaled(s0).plus(v1.scaled(s1))
      }
      expectClose(try readTensor(out, name), expected, tolerance: 1e-5, name)
    }
  }

  @Test("task_arithmetic: base + λ·Σ wᵢτᵢ")
  func taskArithmetic() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let cfg = try config(
      t, "ta",
      """
      base_model: ../models/m0
      models:
        - model: ../models/m1
          parameters: {weight: 0.7}
        - model: ../models/m2
          parameters: {weight: 0.4}
      merge_method: task_arithmetic
      parameters:
        lambda: 0.9
      dtype: float32
      """)
    let (out, _) = try importAndRun(t, source: cfg, name: "ta")
    for (name, _, _) in f.base.tensors {
      let b = f.base.values(name)
      let d1 = f.ms[0].values(name).minus(b)
      let d2 = f.ms[1].values(name).minus(b)
      let expected = b.plus(d1.scaled(0.7).plus(d2.scaled(0.4)).scaled(0.9))
      expectClose(try readTensor(out, name), expected, name)
    }
  }

  /// mergekit's TIES: magnitude top-k per delta, weighted deltas, `sum` sign election
  /// (ties elect +), agreeing entries summed and divided by their weights.
  static func ties(base b: [Double], models: [[Double]], weights: [Double], density: Double, normalize: Bool, lambda: Double)
    -> [Double]
  {
    let n = b.count
    let k = Int(density * Double(n))
    let deltas: [[Double]] = models.map { m in
      let tv = m.minus(b)
      if density >= 1 { return tv }
      let order = tv.indices.sorted { abs(tv[$0]) > abs(tv[$1]) }
      var kept = [Double](repeating: 0, count: n)
      for i in order.prefix(k) { kept[i] = tv[i] }
      return kept
    }
    let weighted = zip(deltas, weights).map { d, w in d.scaled(w) }
    var out = b
    for e in 0..<n {
      let sum = weighted.reduce(0) { $0 + $1[e] }
      let majority: Double = sum >= 0 ? 1 : -1
      var mixed = 0.0
      var divisor = 0.0
      for (i, wd) in weighted.enumerated() where (wd[e] > 0 ? 1.0 : wd[e] < 0 ? -1.0 : 0.0) == majority {
        mixed += wd[e]
        divisor += weights[i]
      }
      if divisor == 0 { divisor = 1 }
      if normalize { mixed /= divisor }
      out[e] = b[e] + lambda * mixed
    }
    return out
  }

  @Test("ties: magnitude top-k, sum sign election, mean over agreeing weights (normalize defaults to true)")
  func ties() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let cfg = try config(
      t, "ties",
      """
      base_model: ../models/m0
      models:
        - model: ../models/m1
          parameters: {weight: 1.0, density: 0.5}
        - model: ../models/m2
          parameters: {weight: 0.6, density: 0.5}
        - model: ../models/m3
          parameters: {weight: 1.0, density: 0.5}
      merge_method: ties
      parameters:
        int8_mask: true
      dtype: float32
      """)
    let (out, yaml) = try importAndRun(t, source: cfg, name: "ties")
    #expect(yaml.contains("sign: magnitude_sum") && yaml.contains("topk: exact") && yaml.contains("normalize: true"))
    for (name, _, _) in f.base.tensors {
      let expected = Self.ties(
        base: f.base.values(name), models: f.ms.map { $0.values(name) }, weights: [1, 0.6, 1], density: 0.5, normalize: true,
        lambda: 1)
      expectClose(try readTensor(out, name), expected, name)
    }
  }

  @Test("dare_ties with density 1: no drop; sign election; mergekit's default normalize: false; lambda")
  func dareTiesNoDrop() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let cfg = try config(
      t, "dt",
      """
      base_model: ../models/m0
      models:
        - model: ../models/m1
          parameters: {weight: 0.8, density: 1.0}
        - model: ../models/m2
          parameters: {weight: 0.5, density: 1.0}
        - model: ../models/m3
          parameters: {weight: 0.3, density: 1.0}
      merge_method: dare_ties
      parameters: {lambda: 1.2}
      dtype: float32
      """)
    let (out, yaml) = try importAndRun(t, source: cfg, name: "dt")
    #expect(yaml.contains("normalize: false") && yaml.contains("rescale: l1") && yaml.contains("drop: 0"))
    for (name, _, _) in f.base.tensors {
      let expected = Self.ties(
        base: f.base.values(name), models: f.ms.map { $0.values(name) }, weights: [0.8, 0.5, 0.3], density: 1,
        normalize: false, lambda: 1.2)
      expectClose(try readTensor(out, name), expected, name)
    }
  }

  @Test("dare_linear: kept entries are rescaled to the delta's L1 norm (mergekit's rescale), about density of them kept")
  func dareLinearL1() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let cfg = try config(
      t, "dl",
      """
      base_model: ../models/m0
      models:
        - model: ../models/m1
          parameters: {weight: 1.0, density: 0.5}
      merge_method: dare_linear
      dtype: float32
      """)
    let (out, _) = try importAndRun(t, source: cfg, name: "dl")
    var kept = 0
    var total = 0
    for (name, _, _) in f.base.tensors {
      let b = f.base.values(name)
      let tv = f.ms[0].values(name).minus(b)
      let got = try readTensor(out, name)
      // The mask is mixlab's (seeded), read back from the output: an entry was dropped iff the
      // output equals the base there. Then mergekit's formula: τ·mask·(‖τ‖₁ / ‖τ·mask‖₁).
      let mask = zip(got, b).map { $0 == $1 ? 0.0 : 1.0 }
      let masked = zip(tv, mask).map { $0 * $1 }
      let before = tv.reduce(0) { $0 + abs($1) }
      let after = masked.reduce(0) { $0 + abs($1) }
      let scale = (before < 1e-7 || after < 1e-7) ? 1 : before / after
      expectClose(got, b.plus(masked.scaled(scale)), name)
      kept += Int(mask.reduce(0, +))
      total += b.count
    }
    // 156 entries, keep probability 0.5: 78 ± 6.2 (σ); far outside would mean a wrong drop rate.
    #expect(kept > total / 2 - 30 && kept < total / 2 + 30, "kept \(kept) of \(total)")
  }

  @Test("breadcrumbs: drop the top γ and the bottom, keep the band of density·n (mergekit's magnitude_outliers)")
  func breadcrumbs() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let cfg = try config(
      t, "bc",
      """
      base_model: ../models/m0
      models:
        - model: ../models/m1
          parameters: {weight: 0.7, density: 0.5, gamma: 0.25}
        - model: ../models/m2
          parameters: {weight: 0.5, density: 0.5, gamma: 0.25}
      merge_method: breadcrumbs
      dtype: float32
      """)
    let (out, _) = try importAndRun(t, source: cfg, name: "bc")
    for (name, _, _) in f.base.tensors {
      let b = f.base.values(name)
      let n = b.count
      var sum = [Double](repeating: 0, count: n)
      for (m, w) in zip(f.ms.prefix(2), [0.7, 0.5]) {
        let tv = m.values(name).minus(b)
        // magnitude_outliers: ascending sort, keep indices[n_bot : n − n_top].
        let target = Int(0.5 * Double(n))
        var nTop = Int(0.25 * Double(n))
        var nBot = n - target - nTop
        if nBot < 0 {
          nTop += nBot
          nBot = 0
        }
        let ascending = tv.indices.sorted { abs(tv[$0]) < abs(tv[$1]) }
        for i in ascending[nBot..<(n - nTop)] { sum[i] += w * tv[i] }
      }
      expectClose(try readTensor(out, name), b.plus(sum), name)
    }
  }

  @Test("model_stock: t = N·c̄/(1 + (N − 1)·c̄) from the mean pairwise cosine, base + t·mean(τ)")
  func modelStock() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let cfg = try config(
      t, "ms",
      """
      base_model: ../models/m0
      models:
        - model: ../models/m1
        - model: ../models/m2
        - model: ../models/m3
      merge_method: model_stock
      dtype: float32
      """)
    let (out, _) = try importAndRun(t, source: cfg, name: "ms")
    for (name, _, _) in f.base.tensors {
      let w0 = f.base.values(name)
      let offsets = f.ms.map { $0.values(name).minus(w0) }
      var cos: [Double] = []
      for i in 0..<offsets.count {
        for j in (i + 1)..<offsets.count {
          cos.append(offsets[i].dot(offsets[j]) / max(offsets[i].norm * offsets[j].norm, 1e-6))
        }
      }
      let c = min(1, max(-1, cos.reduce(0, +) / Double(cos.count)))
      let n = Double(offsets.count)
      let tt = n * c / (1 + (n - 1) * c)
      let avg = f.ms.map { $0.values(name) }.reduce([Double](repeating: 0, count: w0.count)) { $0.plus($1) }.scaled(1 / n)
      let expected = avg.scaled(tt).plus(w0.scaled(1 - tt))
      expectClose(try readTensor(out, name), expected, tolerance: 1e-5, name)
    }
  }

  @Test("karcher: mergekit's Karcher mean on the sphere times the mean norm")
  func karcher() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let cfg = try config(
      t, "ka",
      """
      models:
        - model: ../models/m1
        - model: ../models/m2
        - model: ../models/m3
      merge_method: karcher
      parameters: {max_iter: 10, tol: 1.0e-5}
      dtype: float32
      """)
    let (out, _) = try importAndRun(t, source: cfg, name: "ka")
    for (name, _, _) in f.base.tensors {
      let xs = f.ms.map { $0.values(name) }
      let alphas = [Double](repeating: 1.0 / 3, count: 3)
      let norms = xs.map(\.norm)
      let units = zip(xs, norms).map { x, n in x.scaled(1 / n) }
      var mean = zip(units, alphas).reduce([Double](repeating: 0, count: xs[0].count)) { $0.plus($1.0.scaled($1.1)) }
      mean = mean.scaled(1 / mean.norm)
      for _ in 0..<10 {
        var tangent = [Double](repeating: 0, count: mean.count)
        for (u, a) in zip(units, alphas) {
          let dot = min(1, max(-1, mean.dot(u)))
          let theta = acos(dot)
          if theta < 1e-5 { continue }
          tangent = tangent.plus(u.minus(mean.scaled(dot)).scaled(a * theta / sin(theta)))
        }
        let tn = tangent.norm
        if tn < 1e-5 { break }
        mean = mean.scaled(cos(tn)).plus(tangent.scaled(sin(tn) / tn))
        mean = mean.scaled(1 / mean.norm)
      }
      let scale = zip(alphas, norms).reduce(0) { $0 + $1.0 * $1.1 }
      expectClose(try readTensor(out, name), mean.scaled(scale), tolerance: 1e-5, name)
    }
  }

  @Test("multislerp with a base: barycentric interpolation of the deltas on the sphere, scaled by the mean norm")
  func multislerp() throws {
    let t = try TempWorkspace()
    let f = try Family(t)
    let cfg = try config(
      t, "msl",
      """
      base_model: ../models/m0
      models:
        - model: ../models/m1
          parameters: {weight: 0.6}
        - model: ../models/m2
          parameters: {weight: 0.4}
        - model: ../models/m3
          parameters: {weight: 1.0}
      merge_method: multislerp
      dtype: float32
      """)
    let (out, _) = try importAndRun(t, source: cfg, name: "msl")
    let eps = 1e-8
    for (name, _, _) in f.base.tensors {
      let b = f.base.values(name)
      let xs = f.ms.map { $0.values(name).minus(b) }
      let w = [0.6, 0.4, 1.0].map { $0 / 2.0 }
      let norms = xs.map(\.norm)
      let units = zip(xs, norms).map { x, n in x.scaled(1 / (n + eps)) }
      var mean = zip(units, w).reduce([Double](repeating: 0, count: b.count)) { $0.plus($1.0.scaled($1.1)) }
      mean = mean.scaled(1 / mean.norm)
      let tangent = zip(units, w).reduce([Double](repeating: 0, count: b.count)) { acc, uw in
        acc.plus(uw.0.minus(mean.scaled(uw.0.dot(mean))).scaled(uw.1))
      }
      let tn = tangent.norm + eps
      let dir = mean.scaled(cos(tn)).plus(tangent.scaled(sin(tn) / tn))
      let avgNorm = zip(norms, w).reduce(0) { $0 + $1.0 * $1.1 }
      expectClose(try readTensor(out, name), dir.scaled(avgNorm).plus(b), tolerance: 1e-5, name)
    }
  }
}
