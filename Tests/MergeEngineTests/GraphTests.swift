import Foundation
import SafeTensors
import Testing

@testable import MergeEngine

@Suite("Recipe graphs")
struct GraphTests {
  @Test func stepsComposeWithoutIntermediateRounding() throws {
    // ties(base; m1, m2) then weighted_sum with m3, evaluated in one pass per tensor in f64:
    // the f16 output is the reference composition rounded once.
    let d = TempDir()
    let f = try Family(d, count: 3)
    let nodes = [
      NodeSpec(
        id: "ties", method: .ties, operands: [.input(1), .input(2)], base: .input(0), params: ["density": .constant(0.5)]),
      NodeSpec(id: "mix", method: .weightedSum, operands: [.node(0), .input(3)], params: ["alpha": .constant(0.3)]),
    ]
    let spec = MergeSpec(
      inputNames: ["base", "m1", "m2", "m3"], nodes: nodes, main: .node(1), computeType: .f64, outputDType: .f64)
    let r = try d.run(spec, inputs: f.checkpoints)
    for key in ["w", "b"] {
      let trimmed = f.deltas(key).prefix(2).map { Ref.topK($0, density: 0.5) }
      let ties = Ref.taskMerge(base: f.base[key]!, deltas: Array(trimmed), weights: [1, 1], vote: .sum, normalize: true)
      let expected = ties.indices.map { 0.7 * ties[$0] + 0.3 * f.models[2][key]![$0] }
      #expect(close(r.values[key], expected), "\(key): \(maxDiff(r.values[key], expected))")
    }
  }

  @Test func aStepUsedTwiceIsComputedOnce() throws {
    let d = TempDir()
    let a = try d.model("a", ["w": ([3], [1, 2, 3])])
    let b = try d.model("b", ["w": ([3], [3, 4, 5])])
    let nodes = [
      NodeSpec(id: "avg", method: .average, operands: [.input(0), .input(1)]),
      NodeSpec(id: "diff", method: .addDifference, operands: [.node(0), .node(0), .input(0)], params: ["alpha": .constant(1)]),
    ]
    let r = try d.run(MergeSpec(inputNames: ["a", "b"], nodes: nodes, main: .node(1), outputDType: .f32), inputs: [a, b])
    // avg = [2, 3, 4]; avg + (avg − a) = [3, 4, 5].
    #expect(r.values["w"] == [3, 4, 5])
    guard case .compute(let program) = r.plan.tensors[0].source else {
      Issue.record("expected a computed tensor")
      return
    }
    #expect(program.steps.count == 2)
    #expect(program.leaves.count == 2)
  }

  @Test func aStepSeedOverridesTheRecipeSeed() throws {
    let d = TempDir()
    let n = 200
    let base = try d.model("base", ["w": ([n], Array(repeating: 0, count: n))])
    let one = try d.model("one", ["w": ([n], Array(repeating: 1, count: n))])
    func run(recipeSeed: UInt64, stepSeed: UInt64?, name: String) throws -> [Double] {
      let node = NodeSpec(
        id: "dare", method: .dare, operands: [.input(1)], base: .input(0), params: ["drop": .constant(0.5)],
        options: ["rescale": "none"], seed: stepSeed)
      let spec = MergeSpec(inputNames: ["base", "one"], nodes: [node], main: .node(0), outputDType: .f32, seed: recipeSeed)
      return try d.run(spec, inputs: [base, one], name: name).values["w"]!
    }
    let expected = Ref.dareKeep(seed: 7, key: "w", operand: 0, count: n, drop: 0.5).map { $0 ? 1.0 : 0 }
    #expect(try run(recipeSeed: 1, stepSeed: 7, name: "a") == expected)
    #expect(try run(recipeSeed: 7, stepSeed: nil, name: "b") == expected)
    #expect(try run(recipeSeed: 7, stepSeed: 1, name: "c") != expected)
  }

  @Test func zeroPolicySanitizesCopiedTensorsToo() throws {
    let d = TempDir()
    let a = try d.model("a", ["w": ([3], [1, .nan, -.infinity])])
    let spec = MergeSpec(inputNames: ["a"], nodes: [], main: .input(0), outputDType: .f32, nonFinitePolicy: .zero)
    let r = try d.run(spec, inputs: [a])
    #expect(r.values["w"] == [1, 0, 0])
  }
}
