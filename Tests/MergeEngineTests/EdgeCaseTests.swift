import Foundation
import SafeTensors
import Testing

@testable import MergeEngine

@Suite("Edge cases")
struct EdgeCaseTests {
  @Test(arguments: [MethodName.weightedSum, .slerp, .ties, .dare, .geometricMedian, .modelStock, .karcher])
  func scalarsAndEmptyTensors(_ method: MethodName) throws {
    let d = TempDir()
    let base = try d.model("base", ["s": ([], [1]), "e": ([0, 4], []), "v": ([1], [2])])
    let a = try d.model("a", ["s": ([], [3]), "e": ([0, 4], []), "v": ([1], [4])])
    let b = try d.model("b", ["s": ([], [5]), "e": ([0, 4], []), "v": ([1], [-2])])
    let withBase: Set<MethodName> = [.ties, .dare, .modelStock]
    let params: [String: Double] =
      switch method {
      case .ties: ["density": 1]
      case .dare: ["drop": 0]
      default: [:]
      }
    let r = try d.merge(
      method, inputs: [base, a, b], operands: [1, 2], base: withBase.contains(method) ? 0 : nil, params: params)
    #expect(r.values["e"] == [])
    #expect(r.values["s"]?.count == 1)
    #expect(r.values["s"]!.allSatisfy { $0.isFinite })
    // One-element tensors are merged too, not copied.
    if method == .weightedSum { #expect(r.values["s"] == [4]) }
    if method == .ties { #expect(r.values["s"] == [4]) }  // base 1 + mean(2, 4)
  }

  @Test func mixedInputDTypesAreEachDecodedOnce() throws {
    let d = TempDir()
    let values = [0.5, -1.25, 3, 1.0 / 3]
    let a = try d.model("a", dtype: .f16, ["w": ([4], values)])
    let b = try d.model("b", dtype: .bf16, ["w": ([4], values)])
    let c = try d.model("c", dtype: .f64, ["w": ([4], values)])
    let r = try d.merge(.average, inputs: [a, b, c], operands: [0, 1, 2], compute: .f64, out: .f64)
    // 1/3 rounds differently in f16 and bf16; every other value is exact in all three.
    let third =
      (Double(Float16(1.0 / 3)) + Double(bf16RoundTrip(1.0 / 3)) + 1.0 / 3) / 3
    #expect(close(r.values["w"], [0.5, -1.25, 3, third], tol: 1e-15))
  }

  @Test func tiesWithDensityBelowOneElementKeepsTheBase() throws {
    let d = TempDir()
    let base = try d.model("base", ["w": ([10], Array(repeating: 1, count: 10))])
    let a = try d.model("a", ["w": ([10], (0..<10).map(Double.init))])
    // ⌊0.05 · 10⌋ = 0 entries kept (mergekit refuses this density; mixlab keeps the base).
    let r = try d.merge(.ties, inputs: [base, a], operands: [1], base: 0, params: ["density": 0.05])
    #expect(r.values["w"] == Array(repeating: 1, count: 10))
  }

  @Test func dareWithDropZeroIsTaskArithmetic() throws {
    let d = TempDir()
    let f = try Family(d)
    let dare = try d.merge(
      .dare, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["drop": 0, "lambda": 0.5], weights: [1, 2, 3],
      name: "d")
    let ta = try d.merge(
      .taskArithmetic, inputs: f.checkpoints, operands: f.operands, base: 0, params: ["lambda": 0.5], weights: [1, 2, 3],
      name: "t")
    #expect(dare.values == ta.values)
  }
}

/// bf16 rounding of a value (round to nearest even on the upper 16 bits of its f32).
func bf16RoundTrip(_ v: Double) -> Float {
  let bits = Float(v).bitPattern
  let rounded = (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000
  return Float(bitPattern: rounded)
}
