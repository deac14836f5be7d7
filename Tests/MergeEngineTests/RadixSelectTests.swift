import Foundation
import SafeTensors
import Testing

@testable import MergeEngine

/// Large tensors take the streamed radix-select path (small ones gather and quickselect);
/// both must keep exactly the reference's entries, ties broken by element index.
@Suite("Radix selection on large tensors", .serialized)
struct RadixSelectTests {
  /// fp16 values from a small set, so thousands of magnitudes tie at every cut.
  static func values(_ n: Int, seed: UInt64) -> [Double] {
    var state = seed
    return (0..<n).map { _ in
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      let bucket = Int(state >> 58)  // 0…63
      return Double(bucket - 32) / 16
    }
  }

  @Test(arguments: [("exact", 0.37, true), ("inclusive", 0.5, true), ("exact", 0.37, false)])
  func topKMatchesTheReference(topk: String, density: Double, collect: Bool) throws {
    // collect: the candidates of the first digit's bucket are selected in memory; otherwise
    // the later radix digits and the tie pass run (the fallback for huge buckets).
    SelectionTuning.collectLimitForTests = collect ? nil : 0
    defer { SelectionTuning.collectLimitForTests = nil }
    let n = 1_050_000  // 2 models × n > the gather limit: radix passes, tie pass
    #expect(2 * n > TaskMergeKernel<Float>.gatherLimit)
    let d = TempDir()
    let base = try d.model("base", dtype: .f16, ["w": ([1050, 1000], Array(repeating: 0, count: n))])
    let a = try d.model("a", dtype: .f16, ["w": ([1050, 1000], RadixSelectTests.values(n, seed: 1))])
    let b = try d.model("b", dtype: .f16, ["w": ([1050, 1000], RadixSelectTests.values(n, seed: 2))])
    let r = try d.merge(
      .ties, inputs: [base, a, b], operands: [1, 2], base: 0, params: ["density": density], options: ["topk": topk],
      compute: .f32, out: .f32, threads: 2, budget: 16 << 20, name: "\(topk)-\(density)-\(collect)")
    let deltas = [RadixSelectTests.values(n, seed: 1), RadixSelectTests.values(n, seed: 2)]
    let trimmed = deltas.map { topk == "exact" ? Ref.topK($0, density: density) : Ref.topKInclusive($0, density: density) }
    let expected = Ref.taskMerge(
      base: Array(repeating: 0, count: n), deltas: trimmed, weights: [1, 1], vote: .sum, normalize: true)
    #expect(r.values["w"] == expected.map { Double(Float($0)) })
  }
}
