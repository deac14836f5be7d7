import Architectures
import Foundation
import SafeTensors
import Testing

@testable import MergeEngine

/// Deterministic test values: multiples of 1/128 in [−2, 2), exact in f16, f32 and f64, with
/// repeated magnitudes (so rank ties occur).
func testValues(_ n: Int, seed: UInt64, name: String = "test-data") -> [Double] {
  let rng = CounterRNG(seed: seed, name: name, stream: 0)
  return (0..<n).map { (Double(rng.bits($0) % 512) - 256) / 128 }
}

/// A base and three models with a 4×6 matrix `w` and a 10-vector `b`.
struct Family {
  static let shapes: [String: [Int]] = ["w": [4, 6], "b": [10]]
  let base: [String: [Double]]
  let models: [[String: [Double]]]
  let checkpoints: [Checkpoint]

  init(_ dir: TempDir, count: Int = 3, seed: UInt64 = 1, dtype: DType = .f32) throws {
    func tensors(_ s: UInt64) -> [String: [Double]] {
      ["w": testValues(24, seed: s, name: "w"), "b": testValues(10, seed: s, name: "b")]
    }
    let b = tensors(seed * 100)
    base = b
    models = (1...count).map { tensors(seed * 100 + UInt64($0)) }
    var cps = [try dir.model("base", dtype: dtype, Family.shapes.reduce(into: [:]) { $0[$1.key] = ($1.value, b[$1.key]!) })]
    for (i, m) in models.enumerated() {
      cps.append(
        try dir.model("m\(i + 1)", dtype: dtype, Family.shapes.reduce(into: [:]) { $0[$1.key] = ($1.value, m[$1.key]!) }))
    }
    checkpoints = cps
  }

  var operands: [Int] { Array(1...models.count) }

  func deltas(_ key: String) -> [[Double]] { models.map { Ref.sub($0[key]!, base[key]!) } }

  static func rowLength(_ key: String) -> Int {
    shapes[key]!.count >= 2 ? shapes[key]!.dropFirst().reduce(1, *) : shapes[key]![0]
  }
}

@Suite("TIES variants against a per-element reference")
struct TiesReferenceTests {
  @Test(arguments: [
    // (sign, average, normalize, density, lambda, topk)
    ("magnitude_sum", "weight", "true", 0.6, 1.0, "exact"),
    ("magnitude_sum", "count", "true", 0.6, 1.0, "exact"),
    ("sign_count", "weight", "true", 0.5, 1.0, "exact"),
    ("sign_count", "count", "true", 0.4, 0.7, "exact"),
    ("magnitude_sum", "weight", "false", 0.6, 0.7, "exact"),
    ("none", "weight", "true", 0.3, 1.3, "exact"),
    ("magnitude_sum", "weight", "true", 0.3, 1.0, "inclusive"),
  ])
  func ties(sign: String, average: String, normalize: String, density: Double, lambda: Double, topk: String) throws {
    let d = TempDir()
    let f = try Family(d)
    let weights = [1.0, 2.0, 0.5]
    let r = try d.merge(
      .ties, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["density": density, "lambda": lambda],
      options: ["sign": sign, "average": average, "normalize": normalize, "topk": topk], weights: weights)
    for key in ["w", "b"] {
      let trimmed = f.deltas(key).map {
        topk == "exact" ? Ref.topK($0, density: density) : Ref.topKInclusive($0, density: density)
      }
      let vote: Ref.Vote = sign == "magnitude_sum" ? .sum : (sign == "sign_count" ? .count : .none)
      let expected = Ref.taskMerge(
        base: f.base[key]!, deltas: trimmed, weights: weights, vote: vote, normalize: normalize == "true",
        byCount: average == "count",
        lambda: lambda)
      #expect(close(r.values[key], expected), "\(key): max diff \(maxDiff(r.values[key], expected))")
    }
  }

  @Test func averageByCountDiffersFromByWeightWithNonUniformWeights() throws {
    let d = TempDir()
    let base = try d.model("base", ["w": ([1], [0])])
    let a = try d.model("a", ["w": ([1], [1])])
    let b = try d.model("b", ["w": ([1], [3])])
    let ms = [base, a, b]
    // Agreeing deltas 1 and 3 with weights 1 and 3: Σwτ = 10; by weight 10/4, by count 10/2.
    let byWeight = try d.merge(.ties, inputs: ms, operands: [1, 2], base: 0, params: ["density": 1], weights: [1, 3], name: "w")
    let byCount = try d.merge(
      .ties, inputs: ms, operands: [1, 2], base: 0, params: ["density": 1], options: ["average": "count"], weights: [1, 3],
      name: "c")
    #expect(byWeight.values["w"] == [2.5])
    #expect(byCount.values["w"] == [5])
    let raw = try d.merge(
      .ties, inputs: ms, operands: [1, 2], base: 0, params: ["density": 1, "lambda": 0.5], options: ["normalize": "false"],
      weights: [1, 3], name: "n")
    #expect(raw.values["w"] == [5])
  }

  @Test func aZeroVoteElectsPlusForTiesAndNothingForTheSdMechaPresets() throws {
    // mergekit's rule: the elected sign is + when the vote is exactly 0; sd-mecha's
    // torch.sign gives 0 and drops both entries (its presets, and `sign_tie: none`).
    let d = TempDir()
    let base = try d.model("base", ["w": ([1], [0])])
    let a = try d.model("a", ["w": ([1], [2])])
    let b = try d.model("b", ["w": ([1], [-2])])
    let r = try d.merge(.ties, inputs: [base, a, b], operands: [1, 2], base: 0, params: ["density": 1])
    #expect(r.values["w"] == [2])
    let soup = try d.merge(.tiesSoup, inputs: [base, a, b], operands: [1, 2], base: 0, params: ["density": 1], name: "soup")
    #expect(soup.values["w"] == [0])
    let none = try d.merge(
      .ties, inputs: [base, a, b], operands: [1, 2], base: 0, params: ["density": 1], options: ["sign_tie": "none"], name: "none")
    #expect(none.values["w"] == [0])
  }

  @Test func densityOneWithAgreeingSignsIsTheWeightedMeanDelta() throws {
    let d = TempDir()
    let n = 50
    let base = testValues(n, seed: 5)
    let mags = (0..<3).map { testValues(n, seed: 6 + UInt64($0)).map { abs($0) + 1.0 / 128 } }
    // Every model's delta has the sign of (−1)^e at element e.
    let models = mags.map { m in m.indices.map { base[$0] + (($0 % 2 == 0) ? m[$0] : -m[$0]) } }
    var cps = [try d.model("base", ["w": ([n], base)])]
    for (i, m) in models.enumerated() { cps.append(try d.model("m\(i)", ["w": ([n], m)])) }
    let weights = [1.0, 2.0, 5.0]
    let r = try d.merge(.ties, inputs: cps, operands: [1, 2, 3], base: 0, params: ["density": 1], weights: weights)
    let expected = base.indices.map { e in
      base[e] + (0..<3).reduce(0.0) { $0 + weights[$1] * (models[$1][e] - base[e]) } / weights.reduce(0, +)
    }
    #expect(close(r.values["w"], expected))
  }
}

@Suite("DARE")
struct DareTests {
  @Test func inverseRescaleMatchesTheDocumentedMask() throws {
    let d = TempDir()
    let f = try Family(d)
    let weights = [0.5, 1, 1.5]
    let r = try d.merge(
      .dare, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["drop": 0.4, "lambda": 0.9], weights: weights,
      seed: 42)
    for key in ["w", "b"] {
      let dropped = f.deltas(key).enumerated().map { i, delta in
        let keep = Ref.dareKeep(seed: 42, key: key, operand: i, count: delta.count, drop: 0.4)
        return delta.indices.map { keep[$0] ? delta[$0] / 0.6 : 0 }
      }
      let expected = Ref.taskMerge(
        base: f.base[key]!, deltas: dropped, weights: weights, vote: .none, normalize: false, lambda: 0.9)
      #expect(close(r.values[key], expected), "\(key): \(maxDiff(r.values[key], expected))")
    }
  }

  @Test func l1RescaleKeepsEachDeltasL1Norm() throws {
    let d = TempDir()
    let f = try Family(d)
    for i in f.operands {
      let r = try d.merge(
        .dare, inputs: f.checkpoints, operands: [i], base: 0, params: ["drop": 0.5], options: ["rescale": "l1"], seed: 3,
        name: "one\(i)")
      for key in ["w", "b"] {
        let original = f.deltas(key)[i - 1]
        let out = Ref.sub(r.values[key]!, f.base[key]!)
        let l1Before = original.reduce(0) { $0 + abs($1) }
        let l1After = out.reduce(0) { $0 + abs($1) }
        #expect(abs(l1After - l1Before) < 1e-9 * l1Before, "model \(i) \(key): \(l1After) vs \(l1Before)")
        // Kept entries are scaled by one common factor; dropped ones are 0, following the mask.
        let keep = Ref.dareKeep(seed: 3, key: key, operand: 0, count: original.count, drop: 0.5)
        let kept = original.indices.filter { keep[$0] }
        let factor = l1Before / kept.reduce(0) { $0 + abs(original[$1]) }
        let expected = original.indices.map { keep[$0] ? original[$0] * factor : 0 }
        #expect(close(out, expected, tol: 1e-9))
      }
    }
    // Several models: each is rescaled by its own factor before combining.
    let weights = [1.0, 0.5, 2.0]
    let all = try d.merge(
      .dare, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["drop": 0.5], options: ["rescale": "l1"],
      weights: weights, seed: 3, name: "all")
    for key in ["w", "b"] {
      let scaled = f.deltas(key).enumerated().map { i, delta in
        let keep = Ref.dareKeep(seed: 3, key: key, operand: i, count: delta.count, drop: 0.5)
        let before = delta.reduce(0) { $0 + abs($1) }
        let after = delta.indices.reduce(0.0) { $0 + (keep[$1] ? abs(delta[$1]) : 0) }
        return delta.indices.map { keep[$0] ? delta[$0] * (before / after) : 0 }
      }
      let expected = Ref.taskMerge(base: f.base[key]!, deltas: scaled, weights: weights, vote: .none, normalize: false)
      #expect(close(all.values[key], expected, tol: 1e-9))
    }
  }

  @Test(arguments: [("magnitude_sum", Ref.Vote.sum), ("sign_count", Ref.Vote.count)])
  func withSignElectionNormalizesByDefault(sign: String, vote: Ref.Vote) throws {
    let d = TempDir()
    let f = try Family(d)
    let weights = [1.0, 2.0, 0.25]
    let r = try d.merge(
      .dare, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["drop": 0.3], options: ["sign": sign],
      weights: weights,
      seed: 9)
    for key in ["w", "b"] {
      let dropped = f.deltas(key).enumerated().map { i, delta in
        let keep = Ref.dareKeep(seed: 9, key: key, operand: i, count: delta.count, drop: 0.3)
        return delta.indices.map { keep[$0] ? delta[$0] / 0.7 : 0 }
      }
      // normalize: auto means true when electing signs (mergekit's dare_ties).
      let expected = Ref.taskMerge(base: f.base[key]!, deltas: dropped, weights: weights, vote: vote, normalize: true)
      #expect(close(r.values[key], expected), "\(key): \(maxDiff(r.values[key], expected))")
    }
  }

  @Test func masksDifferPerTensorAndPerModel() throws {
    let d = TempDir()
    let n = 400
    let base = try d.model("base", ["x": ([n], Array(repeating: 0, count: n)), "y": ([n], Array(repeating: 0, count: n))])
    let one = try d.model("one", ["x": ([n], Array(repeating: 1, count: n)), "y": ([n], Array(repeating: 1, count: n))])
    let r = try d.merge(
      .dare, inputs: [base, one, one], operands: [1, 2], base: 0, params: ["drop": 0.5], options: ["rescale": "none"], seed: 1)
    // Same data in x and y and in both operands: equal masks would make every sum 0 or 2.
    #expect(r.values["x"] != r.values["y"])
    #expect(r.values["x"]!.contains(1))
  }
}

@Suite("DELLA")
struct DellaTests {
  @Test(arguments: ["row", "tensor"])
  func matchesTheDocumentedMask(scope: String) throws {
    let d = TempDir()
    let f = try Family(d)
    let weights = [1.0, 0.5, 2.0]
    let r = try d.merge(
      .della, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["density": 0.5, "epsilon": 0.2, "lambda": 1.1],
      options: ["scope": scope], weights: weights, seed: 17)
    for key in ["w", "b"] {
      let rowLength = scope == "row" ? Family.rowLength(key) : Family.shapes[key]!.reduce(1, *)
      let dropped = f.deltas(key).enumerated().map { i, delta in
        Ref.dellaDrop(delta, rowLength: rowLength, density: 0.5, epsilon: 0.2, seed: 17, key: key, operand: i, inverse: true)
      }
      let expected = Ref.taskMerge(
        base: f.base[key]!, deltas: dropped, weights: weights, vote: .sum, normalize: true, lambda: 1.1)
      #expect(close(r.values[key], expected), "\(scope) \(key): \(maxDiff(r.values[key], expected))")
    }
  }

  @Test func tensorScopeRanksAcrossRows() throws {
    let d = TempDir()
    // Row 0 holds small magnitudes, row 1 large ones: per row both span density ± ε; over
    // the whole tensor row 0 gets the low probabilities.
    let n = 2000
    let small = (0..<n).map { Double($0 + 1) / Double(n) }
    let large = small.map { $0 + 10 }
    let base = try d.model("base", ["w": ([2, n], Array(repeating: 0, count: 2 * n))])
    let m = try d.model("m", ["w": ([2, n], small + large)])
    func keptFraction(_ v: [Double], _ range: Range<Int>) -> Double {
      Double(range.filter { v[$0] != 0 }.count) / Double(range.count)
    }
    let perRow = try d.merge(
      .della, inputs: [base, m], operands: [1], base: 0, params: ["density": 0.5, "epsilon": 0.4], options: ["scope": "row"],
      seed: 5,
      name: "row")
    let whole = try d.merge(
      .della, inputs: [base, m], operands: [1], base: 0, params: ["density": 0.5, "epsilon": 0.4], options: ["scope": "tensor"],
      seed: 5, name: "tensor")
    let pr = perRow.values["w"]!
    let wt = whole.values["w"]!
    // Per row: the smallest tenth of each row is kept with p ≈ 0.1…0.18, the largest with ≈ 0.82…0.9.
    #expect(abs(keptFraction(pr, 0..<200) - 0.14) < 0.06)
    #expect(abs(keptFraction(pr, 1800..<2000) - 0.86) < 0.06)
    #expect(abs(keptFraction(pr, n..<(n + 200)) - 0.14) < 0.06)
    // Whole tensor: row 0 spans p 0.1…0.5, row 1 spans 0.5…0.9.
    #expect(abs(keptFraction(wt, 0..<n) - 0.3) < 0.04)
    #expect(abs(keptFraction(wt, n..<(2 * n)) - 0.7) < 0.04)
  }

  @Test func keepProbabilitiesSpanDensityPlusMinusEpsilonByRank() throws {
    let d = TempDir()
    let n = 20000
    // Distinct magnitudes, shuffled positions: rank is independent of position.
    let mags = (0..<n).map { Double(($0 * 7919) % n + 1) }
    let base = try d.model("base", ["w": ([n], Array(repeating: 0, count: n))])
    let m = try d.model("m", ["w": ([n], mags)])
    let r = try d.merge(
      .della, inputs: [base, m], operands: [1], base: 0, params: ["density": 0.4, "epsilon": 0.3], options: ["rescale": "none"],
      seed: 8)
    let out = r.values["w"]!
    // Bin by magnitude rank (rank = magnitude − 1 here): p(rank) = 0.1 + 0.6·rank/(n − 1).
    for bin in 0..<5 {
      let lo = bin * n / 5
      let hi = (bin + 1) * n / 5
      let idx = mags.indices.filter { Int(mags[$0]) - 1 >= lo && Int(mags[$0]) - 1 < hi }
      let kept = Double(idx.filter { out[$0] != 0 }.count) / Double(idx.count)
      let expected = 0.1 + 0.6 * (Double(lo + hi) / 2) / Double(n - 1)
      #expect(abs(kept - expected) < 0.03, "bin \(bin): kept \(kept), expected \(expected)")
      // rescale none: kept values are the original ones.
      #expect(idx.allSatisfy { out[$0] == 0 || out[$0] == mags[$0] })
    }
  }

  @Test func epsilonMustKeepProbabilitiesInsideTheUnitInterval() throws {
    let d = TempDir()
    let f = try Family(d)
    #expect(throws: MergeError.self) {
      _ = try d.merge(.della, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["density": 0.8, "epsilon": 0.25])
    }
  }
}

@Suite("Breadcrumbs")
struct BreadcrumbsTests {
  @Test(arguments: [
    (0.0, 0.3),  // no outliers removed: a plain top-k (mergekit's slice [n_bot:-0] would keep nothing)
    (0.5, 0.8),  // the band does not fit: fewer large values are dropped
    (0.01, 0.5),  // ⌊γ·n⌋ = 0 on a small tensor
    (0.2, 0.3),
    (0.1, 0.9),
  ])
  func bandMatchesTheReference(gamma: Double, density: Double) throws {
    let d = TempDir()
    let f = try Family(d)
    let r = try d.merge(
      .breadcrumbs, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["density": density, "gamma": gamma])
    for key in ["w", "b"] {
      let banded = f.deltas(key).map { Ref.band($0, gamma: gamma, density: density) }
      let expected = Ref.taskMerge(base: f.base[key]!, deltas: banded, weights: [1, 1, 1], vote: .none, normalize: false)
      #expect(close(r.values[key], expected), "γ \(gamma) density \(density) \(key)")
    }
  }

  @Test func densityOneKeepsEverything() throws {
    let d = TempDir()
    let base = try d.model("base", ["w": ([5], [0, 0, 0, 0, 0])])
    let a = try d.model("a", ["w": ([5], [5, -4, 3, -2, 1])])
    let r = try d.merge(.breadcrumbs, inputs: [base, a], operands: [1], base: 0, params: ["density": 1, "gamma": 0.2])
    #expect(r.values["w"] == [5, -4, 3, -2, 1])
  }

  @Test func equalMagnitudesAreCutByIndex() throws {
    let d = TempDir()
    let base = try d.model("base", ["w": ([10], Array(repeating: 0, count: 10))])
    let a = try d.model("a", ["w": ([10], [1, -1, 1, -1, 1, -1, 1, -1, 1, -1])])
    // γ 0.2 removes the first two (lowest index first among equals), density 0.3 keeps the next three.
    let r = try d.merge(.breadcrumbs, inputs: [base, a], operands: [1], base: 0, params: ["density": 0.3, "gamma": 0.2])
    #expect(r.values["w"] == [0, 0, 1, -1, 1, 0, 0, 0, 0, 0])
  }

  @Test func withSignElectionAndNormalize() throws {
    let d = TempDir()
    let f = try Family(d)
    let weights = [2.0, 1.0, 1.0]
    let r = try d.merge(
      .breadcrumbs, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["density": 0.5, "gamma": 0.1],
      options: ["sign": "magnitude_sum", "normalize": "true"], weights: weights)
    for key in ["w", "b"] {
      let banded = f.deltas(key).map { Ref.band($0, gamma: 0.1, density: 0.5) }
      let expected = Ref.taskMerge(base: f.base[key]!, deltas: banded, weights: weights, vote: .sum, normalize: true)
      #expect(close(r.values[key], expected))
    }
  }
}

/// The engine measures Weiszfeld distances from a Gram matrix (‖m − xᵢ‖² = cᵀGc − 2(Gc)ᵢ +
/// Gᵢᵢ), which cancels to an absolute error of about 1e-8·‖x‖ when the median approaches an
/// input (as it does for sparse TIES-filtered deltas); the reference measures distances
/// directly. Results agree to about 1e-8 relative: below f16/bf16 resolution, about one f32
/// ulp.
let medianTolerance = 1e-7

@Suite("Geometric median and model stock")
struct MedianStockTests {
  @Test func geometricMedianWithBaseIsTakenOverDeltas() throws {
    let d = TempDir()
    let f = try Family(d, count: 4)
    let weights = [1.0, 2.0, 1.0, 0.5]
    let r = try d.merge(
      .geometricMedian, inputs: f.checkpoints, operands: f.operands, base: 0, weights: weights)
    for key in ["w", "b"] {
      let median = Ref.geometricMedian(f.deltas(key), weights: weights)
      let expected = Ref.add(f.base[key]!, median)
      #expect(close(r.values[key], expected, tol: medianTolerance), "\(key): \(maxDiff(r.values[key], expected))")
    }
  }

  @Test func geometricMedianWithoutBase() throws {
    let d = TempDir()
    let f = try Family(d, count: 3)
    let r = try d.merge(.geometricMedian, inputs: f.checkpoints, operands: [0, 1, 2, 3], params: ["max_iter": 30])
    for key in ["w", "b"] {
      let points = [f.base[key]!] + f.models.map { $0[key]! }
      let expected = Ref.geometricMedian(points, maxIter: 30)
      #expect(close(r.values[key], expected, tol: medianTolerance))
    }
  }

  @Test(arguments: ["all", "consecutive"])
  func modelStockPairs(pairs: String) throws {
    let d = TempDir()
    let f = try Family(d, count: 3)
    let r = try d.merge(.modelStock, inputs: f.checkpoints, operands: f.operands, base: 0, options: ["pairs": pairs])
    for key in ["w", "b"] {
      let expected = Ref.modelStock(base: f.base[key]!, models: f.models.map { $0[key]! }, consecutive: pairs == "consecutive")
      #expect(close(r.values[key], expected), "\(pairs) \(key): \(maxDiff(r.values[key], expected))")
    }
  }

  @Test func modelStockPairChoiceMatters() throws {
    let d = TempDir()
    let base = try d.model("base", ["w": ([2], [0, 0])])
    let a = try d.model("a", ["w": ([2], [1, 0])])
    let b = try d.model("b", ["w": ([2], [0, 1])])
    let c = try d.model("c", ["w": ([2], [1, 0])])
    // All pairs: cosines 0, 1, 0 → 1/3. Consecutive (a,b), (b,c): 0.
    let all = try d.merge(.modelStock, inputs: [base, a, b, c], operands: [1, 2, 3], base: 0, name: "all")
    let cons = try d.merge(
      .modelStock, inputs: [base, a, b, c], operands: [1, 2, 3], base: 0, options: ["pairs": "consecutive"], name: "c")
    let t = 3 * (1.0 / 3) / (1 + 2 * (1.0 / 3))
    #expect(close(all.values["w"], [t * 2 / 3, t / 3]))
    #expect(cons.values["w"] == [0, 0])
  }

  @Test func modelStockRowScopeUsesOneRatioPerRow() throws {
    let d = TempDir()
    let f = try Family(d, count: 3)
    let r = try d.merge(.modelStock, inputs: f.checkpoints, operands: f.operands, base: 0, options: ["scope": "row"])
    for key in ["w", "b"] {
      let len = Family.rowLength(key)
      var expected: [Double] = []
      for start in stride(from: 0, to: f.base[key]!.count, by: len) {
        let slice = { (v: [Double]) in Array(v[start..<(start + len)]) }
        expected += Ref.modelStock(base: slice(f.base[key]!), models: f.models.map { slice($0[key]!) }, consecutive: false)
      }
      #expect(close(r.values[key], expected), "\(key): \(maxDiff(r.values[key], expected))")
    }
    let whole = try d.merge(.modelStock, inputs: f.checkpoints, operands: f.operands, base: 0, name: "whole")
    #expect(whole.values["w"] != r.values["w"])
    // A vector is one row either way.
    #expect(close(whole.values["b"], r.values["b"]!))
  }
}

@Suite("Sd-mecha presets against a per-element reference")
struct PresetTests {
  @Test func tiesSoup() throws {
    let d = TempDir()
    let f = try Family(d, count: 4)
    let r = try d.merge(.tiesSoup, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["density": 0.4, "lambda": 0.8])
    for key in ["w", "b"] {
      let trimmed = f.deltas(key).map { Ref.topKInclusive($0, density: 0.4) }
      let expected = Ref.taskMerge(
        base: f.base[key]!, deltas: trimmed, weights: [1, 1, 1, 1], vote: .count, normalize: true, byCount: true, lambda: 0.8,
        tieElectsPlus: false)
      #expect(close(r.values[key], expected), "\(key): \(maxDiff(r.values[key], expected))")
    }
  }

  @Test func tsd() throws {
    let d = TempDir()
    let f = try Family(d, count: 4)
    let p = 0.3
    let r = try d.merge(
      .tsd, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["drop": p, "density": 0.5, "lambda": 0.9], seed: 21)
    for key in ["w", "b"] {
      // sd-mecha's ties_sum_with_dropout: drop without rescale, TIES-SOUP, then ÷ (1 − p).
      let dropped = f.deltas(key).enumerated().map { i, delta in
        let keep = Ref.dareKeep(seed: 21, key: key, operand: i, count: delta.count, drop: p)
        return delta.indices.map { keep[$0] ? delta[$0] : 0 }
      }
      let trimmed = dropped.map { Ref.topKInclusive($0, density: 0.5) }
      let expected = Ref.taskMerge(
        base: f.base[key]!, deltas: trimmed, weights: [1, 1, 1, 1], vote: .count, normalize: true, byCount: true,
        lambda: 0.9 / (1 - p), tieElectsPlus: false)
      #expect(close(r.values[key], expected), "\(key): \(maxDiff(r.values[key], expected))")
    }
  }

  @Test(arguments: [("magnitude_sum", Ref.Vote.sum), ("sign_count", Ref.Vote.count), ("none", Ref.Vote.none)])
  func tgmd(sign: String, vote: Ref.Vote) throws {
    let d = TempDir()
    let f = try Family(d, count: 4)
    let p = 0.2
    let r = try d.merge(
      .tgmd, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["drop": p, "density": 0.6, "lambda": 1],
      options: ["sign": sign],
      seed: 4)
    for key in ["w", "b"] {
      let dropped = f.deltas(key).enumerated().map { i, delta in
        let keep = Ref.dareKeep(seed: 4, key: key, operand: i, count: delta.count, drop: p)
        return delta.indices.map { keep[$0] ? delta[$0] : 0 }
      }
      let filtered = Ref.signFilter(dropped.map { Ref.topKInclusive($0, density: 0.6) }, vote: vote, tieElectsPlus: false)
      let median = Ref.geometricMedian(filtered)
      let expected = Ref.add(f.base[key]!, Ref.scale(median, 1 / (1 - p)))
      #expect(close(r.values[key], expected, tol: medianTolerance), "\(key): \(maxDiff(r.values[key], expected))")
    }
  }

  @Test func dgmla() throws {
    let d = TempDir()
    let f = try Family(d, count: 4)
    let r = try d.merge(
      .dgmla, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["density": 0.5, "epsilon": 0.15, "lambda": 0.75],
      seed: 12)
    for key in ["w", "b"] {
      let dropped = f.deltas(key).enumerated().map { i, delta in
        Ref.dellaDrop(
          delta, rowLength: Family.rowLength(key), density: 0.5, epsilon: 0.15, seed: 12, key: key, operand: i, inverse: true)
      }
      let median = Ref.geometricMedian(Ref.signFilter(dropped, vote: .sum, tieElectsPlus: false))
      let expected = Ref.add(f.base[key]!, Ref.scale(median, 0.75))
      #expect(close(r.values[key], expected, tol: medianTolerance), "\(key): \(maxDiff(r.values[key], expected))")
    }
  }

  @Test func taskArithmeticWithNormalize() throws {
    let d = TempDir()
    let f = try Family(d)
    let weights = [1.0, 3.0, 0.5]
    let r = try d.merge(
      .taskArithmetic, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["lambda": 0.6],
      options: ["normalize": "true"],
      weights: weights)
    for key in ["w", "b"] {
      let expected = Ref.taskMerge(
        base: f.base[key]!, deltas: f.deltas(key), weights: weights, vote: .none, normalize: true, lambda: 0.6)
      #expect(close(r.values[key], expected))
    }
  }
}
