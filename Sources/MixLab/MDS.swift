/// Eigen-decomposition of small symmetric matrices by the cyclic Jacobi method: rotations
/// in a fixed (row, column) order with only +, −, ×, ÷ and square roots, so results are the
/// same bit for bit on every IEEE platform.
enum SymmetricEigen {
  /// Eigenvalues in descending order (ties by original position) and unit eigenvectors, each
  /// signed so that its entry of largest magnitude (the first such) is positive.
  ///
  /// - Parameter a: an n×n symmetric matrix, row-major.
  static func decompose(_ a: [Double], n: Int) -> (values: [Double], vectors: [[Double]]) {
    precondition(a.count == n * n, "matrix must be n×n")
    var m = a
    var v = [Double](repeating: 0, count: n * n)
    for i in 0..<n { v[i * n + i] = 1 }
    var scale = 0.0
    for x in m { scale = max(scale, abs(x)) }
    for _ in 0..<100 {
      var off = 0.0
      for p in 0..<n { for q in (p + 1)..<max(p + 1, n) { off += m[p * n + q] * m[p * n + q] } }
      if off <= (1e-30 * scale * scale) || off == 0 { break }
      for p in 0..<n {
        for q in (p + 1)..<max(p + 1, n) {
          let apq = m[p * n + q]
          if apq == 0 { continue }
          let app = m[p * n + p]
          let aqq = m[q * n + q]
          let theta = (aqq - app) / (2 * apq)
          let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
          let c = 1 / (t * t + 1).squareRoot()
          let s = t * c
          for k in 0..<n {
            let mkp = m[k * n + p]
            let mkq = m[k * n + q]
            m[k * n + p] = c * mkp - s * mkq
            m[k * n + q] = s * mkp + c * mkq
          }
          for k in 0..<n {
            let mpk = m[p * n + k]
            let mqk = m[q * n + k]
            m[p * n + k] = c * mpk - s * mqk
            m[q * n + k] = s * mpk + c * mqk
          }
          for k in 0..<n {
            let vkp = v[k * n + p]
            let vkq = v[k * n + q]
            v[k * n + p] = c * vkp - s * vkq
            v[k * n + q] = s * vkp + c * vkq
          }
        }
      }
    }
    let order = (0..<n).sorted { m[$0 * n + $0] != m[$1 * n + $1] ? m[$0 * n + $0] > m[$1 * n + $1] : $0 < $1 }
    var vectors: [[Double]] = []
    for j in order {
      var vec = (0..<n).map { v[$0 * n + j] }
      var big = 0
      for k in vec.indices where abs(vec[k]) > abs(vec[big]) { big = k }
      if vec[big] < 0 { vec = vec.map { -$0 } }
      vectors.append(vec)
    }
    return (order.map { m[$0 * n + $0] }, vectors)
  }
}

/// Classical (Torgerson) multidimensional scaling: points whose Euclidean distances best
/// match a distance matrix. B = −½ J D⁽²⁾ J (double centring of the squared distances); the
/// coordinates along axis k are the k-th eigenvector of B times √λₖ.
enum ClassicalMDS {
  /// - Parameters:
  ///   - distances: n×n symmetric, zero diagonal, finite.
  ///   - dimensions: axes wanted (2 for a map).
  /// - Returns: one point per row (`dimensions` coordinates; axes with λ ≤ 0 are 0) and the
  ///   share of the positive spectrum the axes keep (1 when the distances are Euclidean in
  ///   that many dimensions; nil when every distance is 0).
  static func embed(_ distances: [[Double]], dimensions: Int = 2) -> (points: [[Double]], explained: Double?) {
    let n = distances.count
    guard n > 0 else { return ([], nil) }
    var sq = [Double](repeating: 0, count: n * n)
    for i in 0..<n { for j in 0..<n { sq[i * n + j] = distances[i][j] * distances[i][j] } }
    var rowMean = [Double](repeating: 0, count: n)
    var total = 0.0
    for i in 0..<n {
      var s = 0.0
      for j in 0..<n { s += sq[i * n + j] }
      rowMean[i] = s / Double(n)
      total += s
    }
    let mean = total / Double(n * n)
    var b = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
      for j in 0..<n { b[i * n + j] = -0.5 * (sq[i * n + j] - rowMean[i] - rowMean[j] + mean) }
    }
    // Exact symmetry, whatever the rounding above did.
    for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { b[j * n + i] = b[i * n + j] } }
    let (values, vectors) = SymmetricEigen.decompose(b, n: n)
    var points = [[Double]](repeating: [Double](repeating: 0, count: dimensions), count: n)
    for k in 0..<min(dimensions, n) where values[k] > 0 {
      let r = values[k].squareRoot()
      for i in 0..<n { points[i][k] = vectors[k][i] * r }
    }
    let positive = values.filter { $0 > 0 }.reduce(0, +)
    let kept = values.prefix(dimensions).filter { $0 > 0 }.reduce(0, +)
    return (points, positive > 0 ? kept / positive : nil)
  }
}

/// Outliers by distance to the medoid: the model whose summed distance to all others is
/// smallest is the medoid; a model is an outlier when its distance to the medoid exceeds
/// Q3 + 1.5·IQR of the other models' distances to it (Tukey's fence; quartiles by linear
/// interpolation) and also 1.5 × their median. The second condition keeps models that are
/// all about equally far (a mix at the centre of its parents gives a near-zero IQR) from
/// being flagged over rounding-size differences. Needs at least 4 models.
enum Outliers {
  static func byMedoid(_ d: [[Double]]) -> (medoid: Int, flagged: [Int], fence: Double?) {
    let n = d.count
    guard n > 0 else { return (0, [], nil) }
    var medoid = 0
    var best = Double.infinity
    for i in 0..<n {
      let s = d[i].reduce(0, +)
      if s < best {
        best = s
        medoid = i
      }
    }
    guard n >= 4 else { return (medoid, [], nil) }
    let toMedoid = (0..<n).map { d[medoid][$0] }
    let sorted = (0..<n).filter { $0 != medoid }.map { toMedoid[$0] }.sorted()
    let q1 = quantile(sorted, 0.25)
    let q3 = quantile(sorted, 0.75)
    let fence = max(q3 + 1.5 * (q3 - q1), 1.5 * quantile(sorted, 0.5))
    let flagged = (0..<n).filter { $0 != medoid && toMedoid[$0] > fence }
    return (medoid, flagged, fence)
  }

  /// Linear interpolation between order statistics (type 7).
  static func quantile(_ sorted: [Double], _ p: Double) -> Double {
    let h = Double(sorted.count - 1) * p
    let lo = Int(h)
    let hi = min(lo + 1, sorted.count - 1)
    return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
  }
}
