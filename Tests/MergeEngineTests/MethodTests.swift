import Foundation
import SafeTensors
import Testing

@testable import MergeEngine

@Suite("Element-wise methods against hand-computed values")
struct ElementwiseTests {
  @Test func weightedSum() throws {
    let d = TempDir()
    let a = try d.model("a", ["w": ([2, 2], [1, 2, 3, 4])])
    let b = try d.model("b", ["w": ([2, 2], [5, 6, 7, 8])])
    let r = try d.merge(.weightedSum, inputs: [a, b], operands: [0, 1], params: ["alpha": 0.25])
    #expect(r.values["w"] == [2, 3, 4, 5])
  }

  @Test func addDifference() throws {
    let d = TempDir()
    let a = try d.model("a", ["w": ([3], [1, 1, 1])])
    let b = try d.model("b", ["w": ([3], [3, 5, 7])])
    let c = try d.model("c", ["w": ([3], [1, 2, 3])])
    let r = try d.merge(.addDifference, inputs: [a, b, c], operands: [0, 1, 2], params: ["alpha": 0.5])
    #expect(r.values["w"] == [2, 2.5, 3])
  }

  @Test func averageNormalizesWeights() throws {
    let d = TempDir()
    let a = try d.model("a", ["w": ([2], [0, 10])])
    let b = try d.model("b", ["w": ([2], [4, 20])])
    let r = try d.merge(.average, inputs: [a, b], operands: [0, 1], weights: [1, 3])
    #expect(r.values["w"] == [3, 17.5])
  }

  @Test func tripleSumAndSumTwice() throws {
    let d = TempDir()
    let a = try d.model("a", ["w": ([1], [1])])
    let b = try d.model("b", ["w": ([1], [2])])
    let c = try d.model("c", ["w": ([1], [4])])
    let t = try d.merge(.tripleSum, inputs: [a, b, c], operands: [0, 1, 2], params: ["alpha": 0.25, "beta": 0.5], name: "t")
    let expectedT: Double = 0.25 * 1 + 0.25 * 2 + 0.5 * 4
    #expect(t.values["w"] == [expectedT])
    let s = try d.merge(.sumTwice, inputs: [a, b, c], operands: [0, 1, 2], params: ["alpha": 0.5, "beta": 0.5], name: "s")
    let expectedS: Double = (0.5 * 1 + 0.5 * 2) * 0.5 + 0.5 * 4
    #expect(s.values["w"] == [expectedS])
  }
}

@Suite("Task-vector methods against hand-computed values")
struct TaskVectorTests {
  // base 0; deltas per element chosen so trimming and sign election are visible.
  func models(_ d: TempDir) throws -> [Checkpoint] {
    [
      try d.model("base", ["w": ([4], [0, 0, 0, 0])]),
      try d.model("m1", ["w": ([4], [4, -1, 2, 0.5])]),
      try d.model("m2", ["w": ([4], [-2, -3, 1, 1])]),
      try d.model("m3", ["w": ([4], [1, 2, -6, 0.25])]),
    ]
  }

  @Test func taskArithmetic() throws {
    let d = TempDir()
    let m = try models(d)
    let r = try d.merge(.taskArithmetic, inputs: m, operands: [1, 2, 3], base: 0, params: ["lambda": 0.5])
    #expect(r.values["w"] == [1.5, -1, -1.5, 0.875])
  }

  @Test func tiesWithDensityOneAndAgreeingSignsIsTheMeanDelta() throws {
    let d = TempDir()
    let base = try d.model("base", ["w": ([3], [1, 1, 1])])
    let a = try d.model("a", ["w": ([3], [2, 3, 0])])
    let b = try d.model("b", ["w": ([3], [4, 5, -1])])
    let r = try d.merge(.ties, inputs: [base, a, b], operands: [1, 2], base: 0, params: ["density": 1])
    let expected: [Double] = [3, 4, -0.5]
    #expect(r.values["w"] == expected)
  }

  @Test func tiesTrimsElectsAndAverages() throws {
    let d = TempDir()
    let m = try models(d)
    // density 0.5 keeps the 2 largest magnitudes of each delta:
    // m1: [4, 0, 2, 0]; m2: [0, -3, 0, 0] wait: m2 |.| = [2, 3, 1, 1] → keep -2, -3: [-2, -3, 0, 0]
    // m3: |.| = [1, 2, 6, .25] → keep 2, -6: [0, 2, -6, 0]
    // sign (magnitude sum): e0: 4-2 = 2 → +; e1: -3+2 = -1 → −; e2: 2-6 → −; e3: 0 → +
    // mean of agreeing: e0: 4/1; e1: -3/1; e2: -6/1; e3: none → 0
    let r = try d.merge(.ties, inputs: m, operands: [1, 2, 3], base: 0, params: ["density": 0.5])
    #expect(r.values["w"] == [4, -3, -6, 0])
  }

  @Test func tiesSignCountElection() throws {
    let d = TempDir()
    let base = try d.model("base", ["w": ([1], [0])])
    let a = try d.model("a", ["w": ([1], [10])])
    let b = try d.model("b", ["w": ([1], [-1])])
    let c = try d.model("c", ["w": ([1], [-1])])
    let bySum = try d.merge(.ties, inputs: [base, a, b, c], operands: [1, 2, 3], base: 0, params: ["density": 1], name: "s")
    #expect(bySum.values["w"] == [10])
    let byCount = try d.merge(
      .ties, inputs: [base, a, b, c], operands: [1, 2, 3], base: 0, params: ["density": 1], options: ["sign": "sign_count"],
      name: "c")
    #expect(byCount.values["w"] == [-1])
  }

  @Test func tiesExactTopKBreaksTiesByIndex() throws {
    let d = TempDir()
    let base = try d.model("base", ["w": ([6], [0, 0, 0, 0, 0, 0])])
    let a = try d.model("a", ["w": ([6], [1, 1, 1, 1, 1, 1])])
    // density 0.5 of 6 = 3 entries, all magnitudes equal: the first three by index are kept.
    let r = try d.merge(.ties, inputs: [base, a], operands: [1], base: 0, params: ["density": 0.5])
    #expect(r.values["w"] == [1, 1, 1, 0, 0, 0])
    // The inclusive (sd-mecha) threshold keeps every tie.
    let all = try d.merge(
      .ties, inputs: [base, a], operands: [1], base: 0, params: ["density": 0.5], options: ["topk": "inclusive"], name: "i")
    #expect(all.values["w"] == [1, 1, 1, 1, 1, 1])
  }

  @Test func breadcrumbsKeepsABand() throws {
    let d = TempDir()
    let base = try d.model("base", ["w": ([10], Array(repeating: 0, count: 10))])
    let a = try d.model("a", ["w": ([10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])])
    // gamma 0.2 drops 10 and 9; density 0.3 keeps the next three: 8, 7, 6.
    let r = try d.merge(.breadcrumbs, inputs: [base, a], operands: [1], base: 0, params: ["density": 0.3, "gamma": 0.2])
    #expect(r.values["w"] == [0, 0, 0, 0, 0, 6, 7, 8, 0, 0])
  }

  @Test func dareDropsWithTheSeededMaskAndRescales() throws {
    let d = TempDir()
    let n = 1000
    let base = try d.model("base", ["w": ([n], Array(repeating: 0, count: n))])
    let a = try d.model("a", ["w": ([n], Array(repeating: 1, count: n))])
    let r = try d.merge(.dare, inputs: [base, a], operands: [1], base: 0, params: ["drop": 0.75], seed: 7)
    let kept = r.values["w"]!.filter { $0 != 0 }
    #expect(kept.allSatisfy { $0 == 4 })  // 1 / (1 − 0.75)
    #expect(abs(Double(kept.count) - 250) < 60)
    // Same seed, same mask; other seed, other mask.
    let again = try d.merge(.dare, inputs: [base, a], operands: [1], base: 0, params: ["drop": 0.75], seed: 7, name: "again")
    #expect(again.values["w"] == r.values["w"])
    let other = try d.merge(.dare, inputs: [base, a], operands: [1], base: 0, params: ["drop": 0.75], seed: 8, name: "other")
    #expect(other.values["w"] != r.values["w"])
  }

  @Test func modelStockMatchesTheFormula() throws {
    let d = TempDir()
    let base = try d.model("base", ["w": ([2], [0, 0])])
    let a = try d.model("a", ["w": ([2], [1, 0])])
    let b = try d.model("b", ["w": ([2], [1, 1])])
    // cos = 1/√2; t = 2c / (1 + c); result = t·mean(deltas)
    let c = 1 / 2.0.squareRoot()
    let t = 2 * c / (1 + c)
    let r = try d.merge(.modelStock, inputs: [base, a, b], operands: [1, 2], base: 0)
    let w = r.values["w"]!
    #expect(abs(w[0] - t * 1) < 1e-12)
    #expect(abs(w[1] - t * 0.5) < 1e-12)
  }

  @Test func geometricMedianOfIdenticalModelsIsThatModel() throws {
    let d = TempDir()
    let a = try d.model("a", ["w": ([3], [1, -2, 3])])
    let r = try d.merge(.geometricMedian, inputs: [a, a, a], operands: [0, 1, 2])
    #expect(r.values["w"] == [1, -2, 3])
  }

  @Test func geometricMedianResistsAnOutlier() throws {
    let d = TempDir()
    let a = try d.model("a", ["w": ([1], [0])])
    let b = try d.model("b", ["w": ([1], [1])])
    let c = try d.model("c", ["w": ([1], [100])])
    // In one dimension the geometric median of {0, 1, 100} is the median, 1.
    let r = try d.merge(.geometricMedian, inputs: [a, b, c], operands: [0, 1, 2], params: ["max_iter": 1000, "eps": 1e-12])
    #expect(abs(r.values["w"]![0] - 1) < 1e-3)
  }
}

@Suite("Spherical methods")
struct SphericalTests {
  @Test func slerpOfOrthogonalUnitVectors() throws {
    let d = TempDir()
    let a = try d.model("a", ["w": ([2], [1, 0])])
    let b = try d.model("b", ["w": ([2], [0, 1])])
    let r = try d.merge(.slerp, inputs: [a, b], operands: [0, 1], params: ["t": 0.5])
    let w = r.values["w"]!
    #expect(abs(w[0] - 0.5.squareRoot()) < 1e-12)
    #expect(abs(w[1] - 0.5.squareRoot()) < 1e-12)
  }

  @Test func slerpOfParallelVectorsIsLerp() throws {
    let d = TempDir()
    let a = try d.model("a", ["w": ([2], [1, 1])])
    let b = try d.model("b", ["w": ([2], [2, 2])])
    let r = try d.merge(.slerp, inputs: [a, b], operands: [0, 1], params: ["t": 0.25])
    #expect(r.values["w"] == [1.25, 1.25])
  }

  @Test func karcherOfOneDirectionKeepsIt() throws {
    let d = TempDir()
    let a = try d.model("a", ["w": ([2], [3, 4])])
    let b = try d.model("b", ["w": ([2], [6, 8])])
    let r = try d.merge(.karcher, inputs: [a, b], operands: [0, 1])
    let w = r.values["w"]!
    // Unit direction (0.6, 0.8) times the mean norm 7.5.
    #expect(abs(w[0] - 4.5) < 1e-9)
    #expect(abs(w[1] - 6) < 1e-9)
  }

  @Test func portableMathAgreesWithTheLibrary() {
    for i in 0...200 {
      let x = Double(i) / 200 * 2 - 1
      #expect(abs(PortableMath.acos(x) - Foundation.acos(x)) < 1e-14)
      let y = Double(i) / 10 - 10
      #expect(abs(PortableMath.sin(y) - Foundation.sin(y)) < 1e-14)
      #expect(abs(PortableMath.cos(y) - Foundation.cos(y)) < 1e-14)
    }
  }
}
