/// Element-wise linear combinations: out = Σ cᵢ·xᵢ in operand order, evaluated exactly as
/// written in docs/methods.md for each method (the grouping of operations is part of the
/// definition, since floating-point addition is not associative).
/// The element-wise methods' formulas.
public enum LinearForm: Sendable, Equatable {
  /// (1 − α)·a + α·b
  case weightedSum(Double)
  /// a + α·(b − c)
  case addDifference(Double)
  /// a + α·b (b is a difference already)
  case addDelta(Double)
  /// Σ wᵢ·xᵢ / Σ wᵢ (normalized) or Σ wᵢ·xᵢ
  case average([Double], normalize: Bool)
  /// (1 − α − β)·a + α·b + β·c (supermerger "triple sum")
  case tripleSum(Double, Double)
  /// ((1 − α)·a + α·b)·(1 − β) + β·c (supermerger "sum twice")
  case sumTwice(Double, Double)
}

final class LinearKernel<T: ComputeScalar>: Kernel {
  let form: LinearForm

  init(form: LinearForm) { self.form = form }

  func apply(group: Group, operands: Operands<T>, into out: UnsafeMutablePointer<T>) {
    let n = group.count
    let x = operands.values
    switch form {
    case .weightedSum(let alpha):
      let a = x[0]
      let b = x[1]
      let wa = T(1 - alpha)
      let wb = T(alpha)
      for e in 0..<n { out[e] = wa * a[e] + wb * b[e] }
    case .addDifference(let alpha):
      let a = x[0]
      let b = x[1]
      let c = x[2]
      let s = T(alpha)
      for e in 0..<n { out[e] = a[e] + s * (b[e] - c[e]) }
    case .addDelta(let alpha):
      let a = x[0]
      let b = x[1]
      let s = T(alpha)
      for e in 0..<n { out[e] = a[e] + s * b[e] }
    case .average(let weights, let normalize):
      var total = 0.0
      for w in weights { total += w }
      let scale = normalize && abs(total) >= 1e-8 ? 1 / total : 1
      let w = weights.map { T($0 * scale) }
      let first = x[0]
      let w0 = w[0]
      for e in 0..<n { out[e] = w0 * first[e] }
      for i in 1..<x.count {
        let xi = x[i]
        let wi = w[i]
        for e in 0..<n { out[e] += wi * xi[e] }
      }
    case .tripleSum(let alpha, let beta):
      let a = x[0]
      let b = x[1]
      let c = x[2]
      let wa = T(1 - alpha - beta)
      let wb = T(alpha)
      let wc = T(beta)
      for e in 0..<n { out[e] = wa * a[e] + wb * b[e] + wc * c[e] }
    case .sumTwice(let alpha, let beta):
      let a = x[0]
      let b = x[1]
      let c = x[2]
      let wa = T(1 - alpha)
      let wb = T(alpha)
      let wab = T(1 - beta)
      let wc = T(beta)
      for e in 0..<n { out[e] = (wa * a[e] + wb * b[e]) * wab + wc * c[e] }
    }
  }
}
