import Foundation
import SafeTensors
import Testing

@testable import MergeEngine

@Suite("Spherical methods against direct Double implementations")
struct SphericalReferenceTests {
  @Test func slerpMatchesMergekitsFormula() throws {
    let d = TempDir()
    let f = try Family(d, count: 1)
    for t in [0.0, 0.3, 0.5, 0.9, 1.0] {
      let r = try d.merge(.slerp, inputs: f.checkpoints, operands: [0, 1], params: ["t": t], name: "t\(t)")
      for key in ["w", "b"] {
        let expected = Ref.slerp(f.base[key]!, f.models[0][key]!, t: t)
        #expect(close(r.values[key], expected, tol: 1e-12), "t \(t) \(key): \(maxDiff(r.values[key], expected))")
      }
    }
  }

  @Test func slerpWithInterpolatedNormsFollowsSdMecha() throws {
    let d = TempDir()
    let a = [3.0, 0, 1]
    let b = [0.0, 2, 0.5]
    let ma = try d.model("a", ["w": ([3], a)])
    let mb = try d.model("b", ["w": ([3], b)])
    let t = 0.25
    let r = try d.merge(.slerp, inputs: [ma, mb], operands: [0, 1], params: ["t": t], options: ["norms": "interpolate"])
    // sd-mecha: unit vectors slerped, then scaled by the linearly interpolated norm.
    let ua = Ref.scale(a, 1 / Ref.norm(a))
    let ub = Ref.scale(b, 1 / Ref.norm(b))
    let omega = Foundation.acos(Ref.dot(ua, ub))
    let unit = Ref.scale(
      Ref.add(Ref.scale(ua, Foundation.sin((1 - t) * omega)), Ref.scale(ub, Foundation.sin(t * omega))), 1 / Foundation.sin(omega)
    )
    let expected = Ref.scale(unit, (1 - t) * Ref.norm(a) + t * Ref.norm(b))
    #expect(close(r.values["w"], expected, tol: 1e-12))
  }

  @Test(arguments: [[1.0, 2.0, 3.0], [0.2, 0.3, 0.5], [5.0, 1.0, 1.0]])
  func multislerpMatchesMergekit(weights: [Double]) throws {
    let d = TempDir()
    let f = try Family(d, count: 3)
    let plain = try d.merge(.multislerp, inputs: f.checkpoints, operands: f.operands, weights: weights, name: "plain")
    let withBase = try d.merge(.multislerp, inputs: f.checkpoints, operands: f.operands, base: 0, weights: weights, name: "base")
    for key in ["w", "b"] {
      let xs = f.models.map { $0[key]! }
      let e1 = Ref.multislerp(xs, weights: weights)
      #expect(close(plain.values[key], e1, tol: 1e-10), "\(key): \(maxDiff(plain.values[key], e1))")
      let e2 = Ref.multislerp(xs, weights: weights, base: f.base[key]!)
      #expect(close(withBase.values[key], e2, tol: 1e-10), "\(key) with base: \(maxDiff(withBase.values[key], e2))")
    }
  }

  @Test func multislerpWithoutWeightNormalization() throws {
    let d = TempDir()
    let f = try Family(d, count: 2)
    let weights = [0.5, 1.5]
    let r = try d.merge(
      .multislerp, inputs: f.checkpoints, operands: f.operands, options: ["normalize_weights": "false"], weights: weights)
    for key in ["w", "b"] {
      let expected = Ref.multislerp(f.models.map { $0[key]! }, weights: weights, normalize: false)
      #expect(close(r.values[key], expected, tol: 1e-10))
    }
  }

  @Test func multislerpOfAntipodalPairFallsBackToLerp() throws {
    let d = TempDir()
    let a = try d.model("a", ["w": ([2], [1, 2])])
    let b = try d.model("b", ["w": ([2], [-1, -2])])
    let r = try d.merge(.multislerp, inputs: [a, b], operands: [0, 1], weights: [1, 1])
    #expect(close(r.values["w"], [0, 0]))
  }

  @Test(arguments: [(10, 1e-5), (50, 1e-12), (1, 1e-5)])
  func karcherMatchesDirectIteration(maxIter: Int, tol: Double) throws {
    let d = TempDir()
    let f = try Family(d, count: 3)
    let r = try d.merge(
      .karcher, inputs: f.checkpoints, operands: [0, 1, 2, 3], params: ["max_iter": Double(maxIter), "tol": tol])
    for key in ["w", "b"] {
      let xs = [f.base[key]!] + f.models.map { $0[key]! }
      let expected = Ref.karcher(xs, alphas: [0.25, 0.25, 0.25, 0.25], maxIter: maxIter, tol: tol)
      #expect(close(r.values[key], expected, tol: 1e-9), "\(key): \(maxDiff(r.values[key], expected))")
    }
  }

  @Test func karcherWeightsAreRelative() throws {
    // Weights [1, 3] mean the same as [0.25, 0.75]: the result's norm is the weighted mean of
    // the norms, not their weighted sum.
    let d = TempDir()
    let f = try Family(d, count: 1)
    let raw = try d.merge(.karcher, inputs: f.checkpoints, operands: [0, 1], weights: [1, 3], name: "raw")
    let unit = try d.merge(.karcher, inputs: f.checkpoints, operands: [0, 1], weights: [0.25, 0.75], name: "unit")
    for key in ["w", "b"] {
      let expected = Ref.karcher([f.base[key]!, f.models[0][key]!], alphas: [0.25, 0.75])
      #expect(close(unit.values[key], expected, tol: 1e-9))
      #expect(close(raw.values[key], expected, tol: 1e-9), "\(key): \(maxDiff(raw.values[key], expected))")
    }
  }
}
