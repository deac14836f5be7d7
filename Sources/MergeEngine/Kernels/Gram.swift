/// Dot products accumulated in `Double` in a fixed order (four interleaved partial sums
/// combined at the end), so the result depends only on the data.
enum Dots {
  /// Σ (a[e] − b[e])·(c[e] − d[e]) over n elements; `b`/`d` may be nil (treated as 0).
  @inline(__always)
  static func dot<T: ComputeScalar>(
    _ a: UnsafePointer<T>, _ b: UnsafePointer<T>?, _ c: UnsafePointer<T>, _ d: UnsafePointer<T>?, _ n: Int
  ) -> Double {
    var s0 = 0.0
    var s1 = 0.0
    var s2 = 0.0
    var s3 = 0.0
    var e = 0
    if let b, let d {
      while e + 4 <= n {
        s0 += (a[e].double - b[e].double) * (c[e].double - d[e].double)
        s1 += (a[e + 1].double - b[e + 1].double) * (c[e + 1].double - d[e + 1].double)
        s2 += (a[e + 2].double - b[e + 2].double) * (c[e + 2].double - d[e + 2].double)
        s3 += (a[e + 3].double - b[e + 3].double) * (c[e + 3].double - d[e + 3].double)
        e += 4
      }
      while e < n {
        s0 += (a[e].double - b[e].double) * (c[e].double - d[e].double)
        e += 1
      }
    } else {
      while e + 4 <= n {
        s0 += a[e].double * c[e].double
        s1 += a[e + 1].double * c[e + 1].double
        s2 += a[e + 2].double * c[e + 2].double
        s3 += a[e + 3].double * c[e + 3].double
        e += 4
      }
      while e < n {
        s0 += a[e].double * c[e].double
        e += 1
      }
    }
    return (s0 + s1) + (s2 + s3)
  }

  /// Elements a `Float` tile sums before its partial sums are widened to `Double`: 32 adds per
  /// lane keep the relative error near 2e-6, far below what a metric shows.
  static let metricTile = 256

  /// ⟨a, b⟩, |b|², |a − b|² and max |a − b| in one pass, for the run metrics and the report's
  /// comparison (NaN differences are left out of the maximum; the squared sum carries them). Deterministic (the order of
  /// every addition depends only on n) and vectorized: `Float` data is summed in 8-lane
  /// `Float` tiles of `metricTile` elements, each tile widened to `Double` once; `Double` data
  /// in four `Double` lanes (element i to lane i mod 4, lanes summed in a fixed order).
  @inline(__always)
  static func similarity<T: ComputeScalar>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ n: Int) -> (
    dot: Double, bb: Double, diff: Double, maxAbs: Double
  ) {
    if T.self == Float.self {
      return UnsafeRawPointer(a).withMemoryRebound(to: Float.self, capacity: n) { fa in
        UnsafeRawPointer(b).withMemoryRebound(to: Float.self, capacity: n) { fb in similarityFloat(fa, fb, n) }
      }
    }
    var dot = SIMD4<Double>()
    var bb = SIMD4<Double>()
    var diff = SIMD4<Double>()
    var most = SIMD4<Double>()
    var e = 0
    while e + 4 <= n {
      let x = SIMD4<Double>(a[e].double, a[e + 1].double, a[e + 2].double, a[e + 3].double)
      let y = SIMD4<Double>(b[e].double, b[e + 1].double, b[e + 2].double, b[e + 3].double)
      dot += x * y
      bb += y * y
      let d = x - y
      diff += d * d
      let ad = d.replacing(with: -d, where: d .< 0)
      most.replace(with: ad, where: ad .> most)
      e += 4
    }
    var tail = (0.0, 0.0, 0.0, 0.0)
    while e < n {
      let x = a[e].double
      let y = b[e].double
      tail.0 += x * y
      tail.1 += y * y
      tail.2 += (x - y) * (x - y)
      if abs(x - y) > tail.3 { tail.3 = abs(x - y) }
      e += 1
    }
    return (lanes(dot) + tail.0, lanes(bb) + tail.1, lanes(diff) + tail.2, Swift.max(most.max(), tail.3))
  }

  static func similarityFloat(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> (
    dot: Double, bb: Double, diff: Double, maxAbs: Double
  ) {
    var dot = SIMD4<Double>()
    var bb = SIMD4<Double>()
    var diff = SIMD4<Double>()
    var most = SIMD8<Float>()
    var e = 0
    while n - e >= 8 {
      let end = e + min(metricTile, (n - e) / 8 * 8)
      var fdot = SIMD8<Float>()
      var fbb = SIMD8<Float>()
      var fdiff = SIMD8<Float>()
      while e < end {
        let x = UnsafeRawPointer(a + e).loadUnaligned(as: SIMD8<Float>.self)
        let y = UnsafeRawPointer(b + e).loadUnaligned(as: SIMD8<Float>.self)
        fdot += x * y
        fbb += y * y
        let d = x - y
        fdiff += d * d
        let ad = d.replacing(with: -d, where: d .< 0)
        most.replace(with: ad, where: ad .> most)
        e += 8
      }
      dot += widen(fdot)
      bb += widen(fbb)
      diff += widen(fdiff)
    }
    var tail = (0.0, 0.0, 0.0, 0.0)
    while e < n {
      let x = Double(a[e])
      let y = Double(b[e])
      tail.0 += x * y
      tail.1 += y * y
      tail.2 += (x - y) * (x - y)
      // |x − y| as the lanes compute it (a Float difference), so the maximum does not depend
      // on where the tail starts.
      let ad = Double(abs(a[e] - b[e]))
      if ad > tail.3 { tail.3 = ad }
      e += 1
    }
    return (lanes(dot) + tail.0, lanes(bb) + tail.1, lanes(diff) + tail.2, Swift.max(Double(most.max()), tail.3))
  }

  /// |a|², as `similarity`.
  @inline(__always)
  static func squares<T: ComputeScalar>(_ a: UnsafePointer<T>, _ n: Int) -> Double {
    if T.self == Float.self {
      return UnsafeRawPointer(a).withMemoryRebound(to: Float.self, capacity: n) { fa in
        var acc = SIMD4<Double>()
        var e = 0
        while n - e >= 8 {
          let end = e + min(metricTile, (n - e) / 8 * 8)
          var f = SIMD8<Float>()
          while e < end {
            let x = UnsafeRawPointer(fa + e).loadUnaligned(as: SIMD8<Float>.self)
            f += x * x
            e += 8
          }
          acc += widen(f)
        }
        var tail = 0.0
        while e < n {
          tail += Double(fa[e]) * Double(fa[e])
          e += 1
        }
        return lanes(acc) + tail
      }
    }
    var acc = SIMD4<Double>()
    var e = 0
    while e + 4 <= n {
      let x = SIMD4<Double>(a[e].double, a[e + 1].double, a[e + 2].double, a[e + 3].double)
      acc += x * x
      e += 4
    }
    var tail = 0.0
    while e < n {
      tail += a[e].double * a[e].double
      e += 1
    }
    return lanes(acc) + tail
  }

  /// The two halves of an 8-lane `Float` sum, widened and added lane by lane.
  @inline(__always)
  static func widen(_ v: SIMD8<Float>) -> SIMD4<Double> { SIMD4<Double>(v.lowHalf) + SIMD4<Double>(v.highHalf) }

  @inline(__always)
  static func lanes(_ v: SIMD4<Double>) -> Double { (v[0] + v[1]) + (v[2] + v[3]) }

  /// Upper-triangular Gram entries of `vectors` (each minus `base` when given), row-major:
  /// (0,0), (0,1), …, (0,n−1), (1,1), …
  static func gram<T: ComputeScalar>(
    _ vectors: [UnsafePointer<T>], base: UnsafePointer<T>?, count: Int, into out: UnsafeMutablePointer<Double>
  ) {
    var k = 0
    for i in 0..<vectors.count {
      for j in i..<vectors.count {
        out[k] = dot(vectors[i], base, vectors[j], base, count)
        k += 1
      }
    }
  }
}

/// A symmetric N×N matrix of inner products and the coefficient-space algebra built on it:
/// vectors are represented by coefficients over the inputs, so norms, angles and distances of
/// any linear combination come from the Gram matrix alone.
public struct GramMatrix: Sendable, Equatable {
  public var n: Int
  public var values: [Double]

  public init(n: Int) {
    self.n = n
    values = [Double](repeating: 0, count: n * n)
  }

  public subscript(i: Int, j: Int) -> Double {
    get { values[i * n + j] }
    set { values[i * n + j] = newValue }
  }

  /// Adds an upper-triangular partial (as written by `Dots.gram`).
  mutating func add(upper: UnsafePointer<Double>) {
    var k = 0
    for i in 0..<n {
      for j in i..<n {
        self[i, j] += upper[k]
        if i != j { self[j, i] = self[i, j] }
        k += 1
      }
    }
  }

  /// pᵀ G q.
  public func inner(_ p: [Double], _ q: [Double]) -> Double {
    var s = 0.0
    for i in 0..<n where p[i] != 0 {
      var r = 0.0
      for j in 0..<n { r += values[i * n + j] * q[j] }
      s += p[i] * r
    }
    return s
  }

  public func norm(_ p: [Double]) -> Double { max(0, inner(p, p)).squareRoot() }

  static var upperCount: (Int) -> Int { { n in n * (n + 1) / 2 } }
}

/// Methods whose result is a linear combination of the operands with coefficients that
/// depend on whole-tensor inner products: slerp, multislerp, Karcher mean. One pass builds
/// the Gram matrix; the coefficients are solved in N dimensions; the apply pass combines.
public enum GramSolver: Sendable, Equatable {
  case slerp(t: Double, interpolateNorms: Bool)
  case multislerp(weights: [Double], normalize: Bool, eps: Double)
  case karcher(weights: [Double], maxIter: Int, tol: Double)
}

final class GramKernel<T: ComputeScalar>: Kernel {
  var solver: GramSolver
  var key: String
  var count: Int
  var hasBase: Bool
  var gram: GramMatrix
  var coefficients: [Double] = []

  init(solver: GramSolver, key: String, count: Int, hasBase: Bool) {
    self.solver = solver
    self.key = key
    self.count = count
    self.hasBase = hasBase
    gram = GramMatrix(n: count)
  }

  var passCount: Int { 1 }

  func slots(pass: Int) -> (ordered: Int, counters: Int) { (GramMatrix.upperCount(count), 0) }

  func partial(
    pass: Int, group: Group, operands: Operands<T>, ordered: UnsafeMutablePointer<Double>,
    counters: UnsafeMutablePointer<UInt32>
  ) {
    Dots.gram(operands.values, base: operands.base, count: group.count, into: ordered)
  }

  func combine(pass: Int, group: Group, ordered: UnsafePointer<Double>) {
    gram.add(upper: ordered)
  }

  func endPass(_ pass: Int, counters: UnsafePointer<UInt32>) throws(MergeError) {
    switch solver {
    case .slerp(let t, let interpolate): coefficients = GramSolvers.slerp(gram, t: t, interpolateNorms: interpolate)
    case .multislerp(let w, let normalize, let eps):
      coefficients = try GramSolvers.multislerp(gram, weights: w, normalize: normalize, eps: eps, key: key)
    case .karcher(let w, let maxIter, let tol):
      coefficients = GramSolvers.karcher(gram, weights: w, maxIter: maxIter, tol: tol)
    }
  }

  func apply(group: Group, operands: Operands<T>, into out: UnsafeMutablePointer<T>) {
    LinearCombination.apply(coefficients, operands: operands, count: group.count, into: out)
  }
}

/// out = base + Σ cᵢ·(xᵢ − base), or Σ cᵢ·xᵢ without a base; terms added in operand order.
enum LinearCombination {
  static func apply<T: ComputeScalar>(
    _ c: [Double], operands: Operands<T>, count n: Int, into out: UnsafeMutablePointer<T>
  ) {
    if let base = operands.base {
      for e in 0..<n { out[e] = 0 }
      for (i, x) in operands.values.enumerated() {
        let ci = T(c[i])
        for e in 0..<n { out[e] += ci * (x[e] - base[e]) }
      }
      for e in 0..<n { out[e] = base[e] + out[e] }
    } else {
      for e in 0..<n { out[e] = 0 }
      for (i, x) in operands.values.enumerated() {
        let ci = T(c[i])
        for e in 0..<n { out[e] += ci * x[e] }
      }
    }
  }
}

/// Coefficient solvers; see docs/methods.md for the formulas (they follow mergekit's and
/// sd-mecha's definitions, with angles from `PortableMath`).
public enum GramSolvers {
  /// Two-vector slerp. Parallel or degenerate vectors (|cos| > 0.9995) fall back to lerp.
  public static func slerp(_ g: GramMatrix, t: Double, interpolateNorms: Bool) -> [Double] {
    let na = g[0, 0].squareRoot()
    let nb = g[1, 1].squareRoot()
    let eps = 1e-8
    let lerp = [1 - t, t]
    guard na > eps, nb > eps else { return lerp }
    let dot = g[0, 1] / (na * nb)
    if abs(dot) > 0.9995 { return lerp }
    let theta = PortableMath.acos(dot)
    let sinTheta = PortableMath.sin(theta)
    if interpolateNorms {
      // sd-mecha: unit vectors interpolated on the sphere, norm interpolated linearly.
      let scale = (1 - t) * na + t * nb
      let c0 = PortableMath.sin((1 - t) * theta) / sinTheta / na * scale
      let c1 = PortableMath.sin(t * theta) / sinTheta / nb * scale
      return c0.isFinite && c1.isFinite ? [c0, c1] : lerp
    }
    // mergekit: the angle of the unit vectors, applied to the vectors as they are.
    let thetaT = theta * t
    return [PortableMath.sin(theta - thetaT) / sinTheta, PortableMath.sin(thetaT) / sinTheta]
  }

  /// mergekit's multislerp: barycentric interpolation on the hypersphere through the tangent
  /// space at the weighted mean direction; the norm is the weighted mean of norms.
  public static func multislerp(_ g: GramMatrix, weights w0: [Double], normalize: Bool, eps: Double, key: String)
    throws(MergeError) -> [Double]
  {
    let n = g.n
    if n == 1 { return [1] }
    var w = w0
    if normalize {
      let s = w.reduce(0, +)
      w = w.map { $0 / s }
    }
    let norms = (0..<n).map { g[$0, $0].squareRoot() }
    let a = norms.map { 1 / ($0 + eps) }
    var mu = (0..<n).map { w[$0] * a[$0] }
    let meanNorm = g.norm(mu)
    if meanNorm < eps {
      if n == 2 { return w }
      throw .numeric(method: "multislerp", key: key, reason: "the weighted sum of the unit vectors is zero (antipodal inputs)")
    }
    mu = mu.map { $0 / meanNorm }
    var dotsWeighted = 0.0
    for i in 0..<n {
      var gi = 0.0
      for j in 0..<n { gi += g[i, j] * mu[j] }
      dotsWeighted += w[i] * a[i] * gi
    }
    let tau = (0..<n).map { w[$0] * a[$0] - dotsWeighted * mu[$0] }
    let tn = g.norm(tau) + eps
    let c = PortableMath.cos(tn)
    let s = PortableMath.sin(tn) / tn
    let avgNorm = (0..<n).reduce(0.0) { $0 + norms[$1] * w[$1] }
    return (0..<n).map { (mu[$0] * c + tau[$0] * s) * avgNorm }
  }

  /// mergekit's Karcher mean on the unit sphere (Riemannian gradient descent), scaled by the
  /// weighted mean norm. Weights are relative: mergekit always passes weights summing to 1,
  /// so dividing by their sum gives its result and makes [1, 1] mean the same as [½, ½].
  public static func karcher(_ g: GramMatrix, weights: [Double], maxIter: Int, tol: Double) -> [Double] {
    let n = g.n
    if n == 1 { return [1] }
    let norms = (0..<n).map { g[$0, $0].squareRoot() }
    let valid = (0..<n).filter { norms[$0] > tol }
    if valid.isEmpty { return [Double](repeating: 0, count: n) }
    let alphaSum = valid.reduce(0.0) { $0 + weights[$1] }
    var alpha = [Double](repeating: 0, count: n)
    for i in valid { alpha[i] = weights[i] / alphaSum }
    func unit(_ i: Int) -> [Double] {
      var u = [Double](repeating: 0, count: n)
      u[i] = 1 / norms[i]
      return u
    }
    var mean = [Double](repeating: 0, count: n)
    for i in valid { mean[i] += alpha[i] / norms[i] }
    let mn = g.norm(mean)
    mean = mn < tol ? unit(valid[0]) : mean.map { $0 / mn }
    for _ in 0..<max(0, maxIter) {
      var tangent = [Double](repeating: 0, count: n)
      for i in valid {
        let u = unit(i)
        let dot = min(1, max(-1, g.inner(mean, u)))
        let theta = PortableMath.acos(dot)
        if theta < tol { continue }
        let f = alpha[i] * theta / PortableMath.sin(theta)
        for j in 0..<n { tangent[j] += f * (u[j] - dot * mean[j]) }
      }
      let tn = g.norm(tangent)
      if tn < tol { break }
      let c = PortableMath.cos(tn)
      let s = PortableMath.sin(tn)
      mean = (0..<n).map { c * mean[$0] + s * tangent[$0] / tn }
      let un = g.norm(mean)
      if un > tol { mean = mean.map { $0 / un } }
    }
    let total = weights.reduce(0, +)
    let scale = (0..<n).reduce(0.0) { $0 + weights[$1] * norms[$1] } / (total != 0 ? total : 1)
    return mean.map { $0 * scale }
  }

  /// Weiszfeld's geometric median (sd-mecha's `geometric_median`): start at the weighted mean,
  /// reweight by 1 / max(eps, distance), stop when the mean distance changes by at most
  /// ftol × itself or after maxIter steps.
  public static func geometricMedian(_ g: GramMatrix, weights: [Double], eps: Double, maxIter: Int, ftol: Double) -> [Double] {
    let n = g.n
    func average(_ w: [Double]) -> [Double] {
      let s = w.reduce(0, +)
      return s == 0 ? [Double](repeating: 0, count: n) : w.map { $0 / s }
    }
    func distances(_ median: [Double]) -> [Double] {
      (0..<n).map { i in
        var d = median
        d[i] -= 1
        return g.norm(d)
      }
    }
    func objective(_ median: [Double]) -> Double {
      let d = distances(median)
      return (0..<n).reduce(0.0) { $0 + d[$1] * weights[$1] } / Double(n)
    }
    var median = average(weights)
    var newWeights = weights
    var obj = objective(median)
    for _ in 0..<max(0, maxIter) {
      let prev = obj
      let d = distances(median)
      newWeights = (0..<n).map { weights[$0] / max(d[$0], eps) }
      median = average(newWeights)
      obj = objective(median)
      if abs(prev - obj) <= ftol * obj { break }
    }
    return average(newWeights)
  }

  /// Model stock's interpolation ratio t = N·cos / (1 + (N − 1)·cos) from the cosines of the
  /// deltas: the mean over all pairs (mergekit) or over consecutive pairs (sd-mecha).
  public static func modelStockT(_ g: GramMatrix, consecutive: Bool, eps: Double) -> Double {
    let n = g.n
    guard n >= 2 else { return 1 }
    var sum = 0.0
    var pairs = 0
    for i in 0..<n {
      for j in (i + 1)..<n where !consecutive || j == i + 1 {
        let denom = max((g[i, i] * g[j, j]).squareRoot(), eps)
        sum += min(1, max(-1, g[i, j] / denom))
        pairs += 1
      }
    }
    let cos = sum / Double(pairs)
    let t = Double(n) * cos / (1 + Double(n - 1) * cos)
    return t.isFinite ? t : 0
  }
}
