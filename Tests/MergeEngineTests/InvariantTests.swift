import Foundation
import SafeTensors
import Testing

@testable import MergeEngine

@Suite("Invariants users rely on")
struct InvariantTests {
  /// One method applied to three copies of the same f16 model (and, where the method takes a
  /// base, that same model as base).
  struct SelfMerge: Sendable, CustomTestStringConvertible {
    var method: MethodName
    var base: Bool
    var params: [String: Double] = [:]
    var options: [String: String] = [:]
    var weights: [Double]? = nil
    var testDescription: String { "\(method.rawValue)\(base ? " with base" : "")" }
  }

  static let selfMerges: [SelfMerge] = [
    SelfMerge(method: .weightedSum, base: false, params: ["alpha": 0.3]),
    SelfMerge(method: .average, base: false, weights: [0.2, 0.5, 0.3]),
    SelfMerge(method: .average, base: false),
    SelfMerge(method: .slerp, base: false, params: ["t": 0.4]),
    SelfMerge(method: .slerp, base: false, params: ["t": 0.4], options: ["norms": "interpolate"]),
    SelfMerge(method: .karcher, base: false),
    SelfMerge(method: .karcher, base: false, weights: [1, 1, 1]),
    SelfMerge(method: .multislerp, base: false, weights: [1, 2, 3]),
    SelfMerge(method: .geometricMedian, base: false),
    SelfMerge(method: .geometricMedian, base: true),
    SelfMerge(method: .modelStock, base: true),
    SelfMerge(method: .taskArithmetic, base: true),
    SelfMerge(method: .ties, base: true, params: ["density": 0.3]),
    SelfMerge(method: .dare, base: true, params: ["drop": 0.9]),
    SelfMerge(method: .della, base: true, params: ["density": 0.3]),
    SelfMerge(method: .breadcrumbs, base: true, params: ["density": 0.3]),
    SelfMerge(method: .tiesSoup, base: true, params: ["density": 0.3]),
    SelfMerge(method: .tsd, base: true, params: ["density": 0.3, "drop": 0.5]),
    SelfMerge(method: .tgmd, base: true, params: ["density": 0.3, "drop": 0.5]),
    SelfMerge(method: .dgmla, base: true, params: ["density": 0.3]),
  ]

  @Test(arguments: selfMerges)
  func mergingAModelWithItselfReturnsIt(_ c: SelfMerge) throws {
    let d = TempDir()
    let w = testValues(600, seed: 77)
    let b = testValues(30, seed: 78)
    let model = try d.model("m", dtype: .f16, ["w": ([20, 30], w), "b": ([30], b)])
    let operands = c.method == .weightedSum || c.method == .slerp ? [0, 0] : [0, 0, 0]
    let r = try d.merge(
      c.method, inputs: [model], operands: operands, base: c.base ? 0 : nil, params: c.params, options: c.options,
      weights: c.weights.map { Array($0.prefix(operands.count)) }, seed: 3, compute: .f32, out: .f16)
    #expect(r.values["w"] == w)
    #expect(r.values["b"] == b)
  }

  @Test(arguments: [
    (MethodName.average, [0.2, 0.3, 0.5]), (MethodName.average, [2.0, -0.5, -0.5]),
    (MethodName.taskArithmetic, [0.25, 0.25, 0.5]),
    (MethodName.tripleSum, []), (MethodName.sumTwice, []), (MethodName.weightedSum, []), (MethodName.addDifference, []),
  ])
  func weightsSummingToOneKeepAConstantTensorConstant(method: MethodName, weights: [Double]) throws {
    let d = TempDir()
    let n = 300
    let constants = [0.75, -1.5, 2.25, 0.5]
    var models: [Checkpoint] = []
    for (i, c) in constants.enumerated() {
      models.append(try d.model("m\(i)", dtype: .f16, ["w": ([10, 30], Array(repeating: c, count: n))]))
    }
    let r: (values: [String: [Double]], outcome: MergeOutcome)
    let expected: Double
    switch method {
    case .average:
      r = try d.merge(
        .average, inputs: models, operands: [0, 1, 2], options: ["normalize": "false"], weights: weights, out: .f64)
      expected = zip(weights, constants).reduce(0) { $0 + $1.0 * $1.1 }
    case .taskArithmetic:
      // base + Σ wᵢ(xᵢ − base) with Σ wᵢ = 1 is Σ wᵢxᵢ.
      r = try d.merge(.taskArithmetic, inputs: models, operands: [1, 2, 3], base: 0, weights: weights, out: .f64)
      expected = zip(weights, constants.dropFirst()).reduce(0) { $0 + $1.0 * $1.1 }
    case .tripleSum:
      r = try d.merge(.tripleSum, inputs: models, operands: [0, 1, 2], params: ["alpha": 0.25, "beta": 0.5], out: .f64)
      expected = 0.25 * 0.75 + 0.25 * -1.5 + 0.5 * 2.25
    case .sumTwice:
      r = try d.merge(.sumTwice, inputs: models, operands: [0, 1, 2], params: ["alpha": 0.5, "beta": 0.25], out: .f64)
      expected = (0.5 * 0.75 + 0.5 * -1.5) * 0.75 + 0.25 * 2.25
    case .weightedSum:
      r = try d.merge(.weightedSum, inputs: models, operands: [0, 1], params: ["alpha": 0.375], out: .f64)
      expected = 0.625 * 0.75 + 0.375 * -1.5
    default:
      // A + α(B − C) with B = C keeps A.
      r = try d.merge(.addDifference, inputs: models, operands: [0, 1, 1], params: ["alpha": 0.7], out: .f64)
      expected = 0.75
    }
    let v = r.values["w"]!
    #expect(Set(v).count == 1, "\(method.rawValue): not constant")
    #expect(abs(v[0] - expected) < 1e-6)
  }

  @Test func geometricMedianOfIdenticalModelsWithABaseIsThatModel() throws {
    let d = TempDir()
    let base = try d.model("base", dtype: .f16, ["w": ([40], testValues(40, seed: 1))])
    let m = testValues(40, seed: 2)
    let x = try d.model("x", dtype: .f16, ["w": ([40], m)])
    let r = try d.merge(.geometricMedian, inputs: [base, x], operands: [1, 1, 1, 1], base: 0, compute: .f32, out: .f16)
    #expect(r.values["w"] == m)
  }

  @Test func tiesWithDensityOneAndOneModelIsThatModel() throws {
    let d = TempDir()
    let f = try Family(d, count: 1)
    let r = try d.merge(.ties, inputs: f.checkpoints, operands: [1], base: 0, params: ["density": 1])
    #expect(close(r.values["w"], f.models[0]["w"]!))
  }
}
