import Architectures
import Foundation
import SafeTensors
import Testing

@testable import MergeEngine

/// Output bytes must not depend on thread count or memory budget. The models here have
/// tensors spanning several groups (230,400 elements in 170-row groups; rows longer than a
/// group), f16 values on a coarse grid so magnitudes tie massively at every top-k cut.
@Suite("Determinism across threads and memory budgets")
struct DeterminismTests {
  static let shapes: [String: [Int]] = [
    "big.weight": [600, 384], "wide.weight": [2, 70_000], "conv.weight": [16, 8, 3, 3], "big.bias": [384],
  ]

  /// Base and three models; values are multiples of 1/64 in [−1, 1).
  static func family(_ d: TempDir, count: Int = 2) throws -> [Checkpoint] {
    try (0...count).map { i in
      var tensors: [String: (DType, [Int], [Double])] = ["position_ids": (.i64, [1, 77], (0..<77).map(Double.init))]
      for (key, shape) in shapes {
        let rng = CounterRNG(seed: 99, name: key, stream: UInt64(i))
        let n = shape.reduce(1, *)
        tensors[key] = (.f16, shape, (0..<n).map { (Double(rng.bits($0) % 128) - 64) / 64 })
      }
      return try d.model("m\(i)", typed: tensors)
    }
  }

  struct Case: Sendable, CustomTestStringConvertible {
    var method: MethodName
    var base: Bool
    var params: [String: Double] = [:]
    var options: [String: String] = [:]
    var testDescription: String { method.rawValue + (options.isEmpty ? "" : " \(options)") }
  }

  static let cases: [Case] = [
    Case(method: .weightedSum, base: false, params: ["alpha": 0.3]),
    Case(method: .ties, base: true, params: ["density": 0.37]),
    Case(method: .dare, base: true, params: ["drop": 0.6], options: ["rescale": "l1", "sign": "magnitude_sum"]),
    Case(method: .della, base: true, params: ["density": 0.4, "epsilon": 0.2]),
    Case(method: .geometricMedian, base: true),
    Case(method: .slerp, base: false, params: ["t": 0.35]),
    Case(method: .modelStock, base: true),
  ]

  @Test(arguments: cases)
  func bytesAreIndependentOfThreadsAndBudget(_ c: Case) throws {
    let d = TempDir()
    let models = try DeterminismTests.family(d)
    let operands = [1, 2]
    var hashes: Set<String> = []
    var perTensor: [[String: String]] = []
    // One worker with every group in one batch; two workers with the whole budget; three
    // workers with batches of three groups (8 MB barely covers their scratch).
    for (threads, budget) in [(1, 1 << 30), (2, 1 << 30), (3, 8 << 20)] {
      let r = try d.merge(
        c.method, inputs: models, operands: operands, base: c.base ? 0 : nil, params: c.params, options: c.options, seed: 5,
        compute: .f32, out: .f16, threads: threads, budget: budget, name: "t\(threads)-\(budget)")
      hashes.insert(r.outcome.sha256)
      perTensor.append(r.outcome.tensorSHA256)
    }
    #expect(hashes.count == 1, "differing tensors: \(Set(perTensor.flatMap { $0 }.map { "\($0.key)=\($0.value)" }).count)")
  }

  @Test func exactTopKWithMassiveTiesMatchesTheReferenceAcrossGroups() throws {
    let d = TempDir()
    let models = try DeterminismTests.family(d)
    let density = 0.37
    let r = try d.merge(
      .ties, inputs: models, operands: [1, 2], base: 0, params: ["density": density], compute: .f32, out: .f32, threads: 2,
      budget: 8 << 20)
    let inputs = try models.map { try TempDir.read($0.path) }
    for key in ["big.weight"] {
      let base = inputs[0][key]!
      let trimmed = [1, 2].map { Ref.topK(Ref.sub(inputs[$0][key]!, base), density: density) }
      let expected = Ref.taskMerge(base: base, deltas: trimmed, weights: [1, 1], vote: .sum, normalize: true)
      #expect(close(r.values[key], expected, tol: 1e-6), "\(key): \(maxDiff(r.values[key], expected))")
    }
    // Integer tensors pass through untouched.
    #expect(r.values["position_ids"] == (0..<77).map(Double.init))
  }

  @Test func f32AndF64ComputeDifferButEachIsStable() throws {
    let d = TempDir()
    let models = try DeterminismTests.family(d)
    var hashes: [ComputeType: Set<String>] = [:]
    for compute in [ComputeType.f32, .f64] {
      for threads in [1, 3] {
        let r = try d.merge(
          .slerp, inputs: models, operands: [1, 2], params: ["t": 0.3], compute: compute, out: .f32, threads: threads,
          budget: 8 << 20, name: "\(compute)-\(threads)")
        hashes[compute, default: []].insert(r.outcome.sha256)
      }
    }
    #expect(hashes[.f32]!.count == 1)
    #expect(hashes[.f64]!.count == 1)
    #expect(hashes[.f32] != hashes[.f64])
  }

  @Test func f64OutputOfAnF64MergeIsExact() throws {
    let d = TempDir()
    let n = 5000
    let a = (0..<n).map { Double($0) * 0.1 + 1.0 / 3 }
    let b = (0..<n).map { Foundation.sin(Double($0)) }
    let ma = try d.model("a", dtype: .f64, ["w": ([50, 100], a)])
    let mb = try d.model("b", dtype: .f64, ["w": ([50, 100], b)])
    let alpha = 0.1
    let r = try d.merge(
      .weightedSum, inputs: [ma, mb], operands: [0, 1], params: ["alpha": alpha], compute: .f64, out: .f64, threads: 2)
    let expected = (0..<n).map { (1 - alpha) * a[$0] + alpha * b[$0] }
    #expect(r.values["w"] == expected)
    let avg = try d.merge(.average, inputs: [ma, mb], operands: [0, 1], compute: .f64, out: .f64, name: "avg")
    let expectedAvg = (0..<n).map { 0.5 * a[$0] + 0.5 * b[$0] }
    #expect(avg.values["w"] == expectedAvg)
  }

  /// The real SD1 key layout (conv, attention, norms, integer position_ids, VAE, text
  /// encoder) at a scale small enough for a debug build; multi-group tensors are covered above.
  @Test func synthesizedSD1MergesAreStable() throws {
    let d = TempDir()
    let folder = d.path + "/synth"
    let outputs = try Synthesizer(architecture: .sd1, count: 3, seed: 1, scale: 0.03, dtype: .f16).write(to: folder)
    let models = try outputs.map { try Checkpoint(path: $0.path) }
    for (method, params) in [(MethodName.ties, ["density": 0.3])] {
      var hashes: Set<String> = []
      for (threads, budget) in [(1, 1 << 30), (3, 8 << 20)] {
        let r = try d.merge(
          method, inputs: models, operands: [1, 2], base: 0, params: params, seed: 2, compute: .f32, out: .f16, threads: threads,
          budget: budget, name: "\(method)-\(threads)")
        hashes.insert(r.outcome.sha256)
      }
      #expect(hashes.count == 1, "\(method.rawValue)")
    }
  }
}
