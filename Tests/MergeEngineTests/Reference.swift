import Architectures
import Foundation

/// Straightforward reference implementations of the merge methods, written from the formulas
/// in docs/methods.md (and mergekit's / sd-mecha's code) on plain `[Double]` arrays, one
/// element at a time. They share no code with the engine: the engine streams groups, ranks
/// by radix select and solves in Gram-matrix coefficient space; these sort, loop and compute
/// distances directly, so agreement is evidence that both implement the same definition.
enum Ref {
  // MARK: Vectors

  static func dot(_ a: [Double], _ b: [Double]) -> Double {
    var s = 0.0
    for i in a.indices { s += a[i] * b[i] }
    return s
  }

  static func norm(_ a: [Double]) -> Double { dot(a, a).squareRoot() }

  static func sub(_ a: [Double], _ b: [Double]) -> [Double] { zip(a, b).map { $0 - $1 } }
  static func add(_ a: [Double], _ b: [Double]) -> [Double] { zip(a, b).map { $0 + $1 } }
  static func scale(_ a: [Double], _ s: Double) -> [Double] { a.map { $0 * s } }

  static func sign(_ x: Double) -> Double { x > 0 ? 1 : (x < 0 ? -1 : 0) }

  // MARK: Trimming

  /// mergekit's `magnitude`: keep exactly ⌊density·n⌋ entries of largest magnitude; among
  /// equal magnitudes the lower index wins (mixlab's documented tie-break).
  static func topK(_ v: [Double], density: Double) -> [Double] {
    if density >= 1 { return v }
    let k = Int(density * Double(v.count))
    let order = v.indices.sorted { abs(v[$0]) != abs(v[$1]) ? abs(v[$0]) > abs(v[$1]) : $0 < $1 }
    var out = [Double](repeating: 0, count: v.count)
    for i in order.prefix(k) { out[i] = v[i] }
    return out
  }

  /// sd-mecha's `filter_top_k`: threshold at the max(⌊(1−density)·n⌋, 1)-th smallest
  /// magnitude, keep everything at least that large.
  static func topKInclusive(_ v: [Double], density: Double) -> [Double] {
    if density >= 1 { return v }
    let kk = max(Int((1 - density) * Double(v.count)), 1)
    let threshold = v.map { abs($0) }.sorted()[kk - 1]
    return v.map { abs($0) >= threshold ? $0 : 0 }
  }

  /// mergekit's `magnitude_outliers` (breadcrumbs): drop the top ⌊γ·n⌋, keep the next
  /// ⌊density·n⌋ (fewer dropped at the top when they do not fit).
  static func band(_ v: [Double], gamma: Double, density: Double) -> [Double] {
    if density >= 1 { return v }
    let n = v.count
    let target = Int(density * Double(n))
    var top = Int(gamma * Double(n))
    let bottom = n - target - top
    if bottom < 0 { top += bottom }
    let order = v.indices.sorted { abs(v[$0]) != abs(v[$1]) ? abs(v[$0]) > abs(v[$1]) : $0 < $1 }
    var out = [Double](repeating: 0, count: n)
    for r in top..<(top + target) { out[order[r]] = v[order[r]] }
    return out
  }

  // MARK: Random drops

  /// The documented DARE mask: entry e of operand i is kept when
  /// CounterRNG(seed, tensor, i).unitDouble(e) < 1 − p.
  static func dareKeep(seed: UInt64, key: String, operand: Int, count: Int, drop p: Double) -> [Bool] {
    let rng = CounterRNG(seed: seed, name: key, stream: UInt64(operand))
    return (0..<count).map { rng.unitDouble($0) < 1 - p }
  }

  /// DELLA's keep probabilities: within each row (or the whole tensor), ascending magnitude
  /// rank r of L (ties by index) gives p = (density − ε) + 2ε·r/(L − 1).
  static func dellaProbabilities(_ v: [Double], rowLength: Int, density: Double, epsilon: Double) -> [Double] {
    var probs = [Double](repeating: 0, count: v.count)
    for start in stride(from: 0, to: v.count, by: rowLength) {
      let idx = Array(start..<(start + rowLength))
      let sorted = idx.sorted { abs(v[$0]) != abs(v[$1]) ? abs(v[$0]) < abs(v[$1]) : $0 < $1 }
      let denom = rowLength > 1 ? Double(rowLength - 1) : 1
      for (rank, e) in sorted.enumerated() {
        probs[e] = (density - epsilon) + Double(rank) / denom * 2 * epsilon
      }
    }
    return probs
  }

  /// DELLA drop with the documented mask (u < p) and optional 1/p rescale.
  static func dellaDrop(
    _ v: [Double], rowLength: Int, density: Double, epsilon: Double, seed: UInt64, key: String, operand: Int,
    inverse: Bool
  ) -> [Double] {
    let probs = dellaProbabilities(v, rowLength: rowLength, density: density, epsilon: epsilon)
    let rng = CounterRNG(seed: seed, name: key, stream: UInt64(operand))
    return v.indices.map { e in
      rng.unitDouble(e) < probs[e] ? (inverse ? v[e] / probs[e] : v[e]) : 0
    }
  }

  // MARK: Sign election and combination

  enum Vote { case none, sum, count }

  /// Per element: elect a sign from the weighted deltas (a vote of 0 elects + as mergekit, or
  /// nothing as sd-mecha's torch.sign when `tieElectsPlus` is false), sum the agreeing weighted
  /// deltas, divide by the agreeing weights (or their number) when normalizing, and scale by λ.
  static func taskMerge(
    base: [Double], deltas: [[Double]], weights: [Double], vote: Vote, normalize: Bool, byCount: Bool = false,
    lambda: Double = 1, tieElectsPlus: Bool = true
  ) -> [Double] {
    var out = base
    for e in base.indices {
      var elected = 1.0
      if vote != .none {
        var s = 0.0
        for i in deltas.indices {
          let x = weights[i] * deltas[i][e]
          s += vote == .sum ? x : sign(x)
        }
        elected = s > 0 ? 1 : s < 0 ? -1 : (tieElectsPlus ? 1 : 0)
      }
      var acc = 0.0
      var div = 0.0
      for i in deltas.indices {
        let x = weights[i] * deltas[i][e]
        if vote == .none || (x != 0 && sign(x) == elected) {
          acc += x
          div += byCount ? 1 : weights[i]
        }
      }
      if normalize { acc /= abs(div) < 1e-8 ? 1 : div }
      out[e] = base[e] + lambda * acc
    }
    return out
  }

  /// Zeroes entries whose sign disagrees with the elected one (TGMD/DGMLA before the median).
  static func signFilter(_ deltas: [[Double]], vote: Vote, tieElectsPlus: Bool = true) -> [[Double]] {
    guard vote != .none, let n = deltas.first?.count else { return deltas }
    var out = deltas
    for e in 0..<n {
      var s = 0.0
      for d in deltas { s += vote == .sum ? d[e] : sign(d[e]) }
      let elected: Double = s > 0 ? 1 : s < 0 ? -1 : (tieElectsPlus ? 1 : 0)
      for i in deltas.indices where sign(deltas[i][e]) != elected || elected == 0 { out[i][e] = 0 }
    }
    return out
  }

  // MARK: Whole-tensor methods

  /// sd-mecha's Weiszfeld iteration on the points themselves.
  static func geometricMedian(
    _ points: [[Double]], weights w: [Double]? = nil, eps: Double = 1e-6, maxIter: Int = 100, ftol: Double = 1e-20
  )
    -> [Double]
  {
    let weights = w ?? Array(repeating: 1, count: points.count)
    func average(_ ws: [Double]) -> [Double] {
      var m = [Double](repeating: 0, count: points[0].count)
      for (i, p) in points.enumerated() { m = add(m, scale(p, ws[i])) }
      return scale(m, 1 / ws.reduce(0, +))
    }
    func objective(_ m: [Double]) -> Double {
      var s = 0.0
      for (i, p) in points.enumerated() { s += norm(sub(p, m)) * weights[i] }
      return s / Double(points.count)
    }
    var median = average(weights)
    var newWeights = weights
    var obj = objective(median)
    for _ in 0..<maxIter {
      let prev = obj
      newWeights = points.indices.map { weights[$0] / max(norm(sub(points[$0], median)), eps) }
      median = average(newWeights)
      obj = objective(median)
      if abs(prev - obj) <= ftol * obj { break }
    }
    return average(newWeights)
  }

  /// mergekit's model stock on flat vectors: t = N·c̄ / (1 + (N − 1)·c̄).
  static func modelStock(base: [Double], models: [[Double]], consecutive: Bool, eps: Double = 1e-6) -> [Double] {
    let deltas = models.map { sub($0, base) }
    var cosines: [Double] = []
    for i in deltas.indices {
      for j in (i + 1)..<deltas.count where !consecutive || j == i + 1 {
        let c = dot(deltas[i], deltas[j]) / max(norm(deltas[i]) * norm(deltas[j]), eps)
        cosines.append(min(1, max(-1, c)))
      }
    }
    let c = cosines.reduce(0, +) / Double(cosines.count)
    let n = Double(models.count)
    let t = n * c / (1 + (n - 1) * c)
    var mean = [Double](repeating: 0, count: base.count)
    for d in deltas { mean = add(mean, scale(d, 1 / n)) }
    return add(base, scale(mean, t))
  }

  /// mergekit's slerp (norms kept).
  static func slerp(_ a: [Double], _ b: [Double], t: Double) -> [Double] {
    let ua = scale(a, 1 / norm(a))
    let ub = scale(b, 1 / norm(b))
    let d = dot(ua, ub)
    if abs(d) > 0.9995 { return add(scale(a, 1 - t), scale(b, t)) }
    let theta = Foundation.acos(d)
    let s = Foundation.sin(theta)
    return add(scale(a, Foundation.sin((1 - t) * theta) / s), scale(b, Foundation.sin(t * theta) / s))
  }

  /// mergekit's multislerp, transcribed on arrays.
  static func multislerp(
    _ xs: [[Double]], weights w0: [Double], base: [Double]? = nil, normalize: Bool = true, eps: Double = 1e-8
  )
    -> [Double]
  {
    let tensors = base.map { b in xs.map { sub($0, b) } } ?? xs
    var w = w0
    if normalize {
      let s = w.reduce(0, +)
      w = w.map { $0 / s }
    }
    let norms = tensors.map(norm)
    let units = tensors.indices.map { scale(tensors[$0], 1 / (norms[$0] + eps)) }
    var mean = [Double](repeating: 0, count: xs[0].count)
    for i in units.indices { mean = add(mean, scale(units[i], w[i])) }
    mean = scale(mean, 1 / norm(mean))
    var tangent = [Double](repeating: 0, count: xs[0].count)
    for i in units.indices {
      let d = dot(units[i], mean)
      tangent = add(tangent, scale(sub(units[i], scale(mean, d)), w[i]))
    }
    let tn = norm(tangent) + eps
    var result = add(scale(mean, Foundation.cos(tn)), scale(tangent, Foundation.sin(tn) / tn))
    let avgNorm = zip(norms, w).reduce(0.0) { $0 + $1.0 * $1.1 }
    result = scale(result, avgNorm)
    return base.map { add(result, $0) } ?? result
  }

  /// mergekit's `karcher_merge_tensors` (alphas summing to 1), transcribed on arrays.
  static func karcher(_ xs: [[Double]], alphas: [Double], maxIter: Int = 10, tol: Double = 1e-5) -> [Double] {
    let norms = xs.map(norm)
    let units = xs.indices.map { norms[$0] == 0 ? xs[$0] : scale(xs[$0], 1 / norms[$0]) }
    let valid = xs.indices.filter { norms[$0] > tol }
    let alphaSum = valid.reduce(0.0) { $0 + alphas[$1] }
    var mean = [Double](repeating: 0, count: xs[0].count)
    for i in valid { mean = add(mean, scale(units[i], alphas[i] / alphaSum)) }
    let mn = norm(mean)
    mean = mn < tol ? units[valid[0]] : scale(mean, 1 / mn)
    for _ in 0..<maxIter {
      var tangent = [Double](repeating: 0, count: mean.count)
      for i in valid {
        let d = min(1, max(-1, dot(mean, units[i])))
        let theta = Foundation.acos(d)
        if theta < tol { continue }
        tangent = add(tangent, scale(sub(units[i], scale(mean, d)), alphas[i] / alphaSum * theta / Foundation.sin(theta)))
      }
      let tn = norm(tangent)
      if tn < tol { break }
      mean = add(scale(mean, Foundation.cos(tn)), scale(tangent, Foundation.sin(tn) / tn))
      let un = norm(mean)
      if un > tol { mean = scale(mean, 1 / un) }
    }
    let s = zip(alphas, norms).reduce(0.0) { $0 + $1.0 * $1.1 }
    return scale(mean, s)
  }
}

/// True when every element agrees within `tol` relative to max(1, |expected|).
func close(_ a: [Double]?, _ b: [Double], tol: Double = 1e-12) -> Bool {
  guard let a, a.count == b.count else { return false }
  for i in a.indices where !(abs(a[i] - b[i]) <= tol * max(1, abs(b[i]))) { return false }
  return true
}

/// Largest absolute difference, for failure messages.
func maxDiff(_ a: [Double]?, _ b: [Double]) -> Double {
  guard let a, a.count == b.count else { return .infinity }
  return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
