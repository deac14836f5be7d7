import Architectures

/// Configuration of the task-vector kernel (see `TaskMergeKernel`).
public struct TaskConfig: Equatable, Sendable {
  public enum Drop: Equatable, Sendable {
    case none
    /// Drop each entry with probability p.
    case bernoulli(p: Double)
    /// Keep probability (density − ε) + 2ε·rank/(L−1) from the magnitude rank in the row
    /// (or whole tensor).
    case della(density: Double, epsilon: Double, wholeTensor: Bool)
  }
  public enum Rescale: Equatable, Sendable {
    case none
    /// Divide kept entries by their keep probability.
    case inverse
    /// Scale each model's dropped delta to the L1 norm it had before dropping (mergekit).
    case l1
  }
  public enum Trim: Equatable, Sendable {
    case none
    /// Keep the top `density` fraction by magnitude: exactly ⌊density·n⌋ entries, ties by
    /// element index (mergekit), or everything at least the ⌈(1−density)·n⌉-th smallest
    /// magnitude (sd-mecha's inclusive threshold).
    case topK(density: Double, inclusive: Bool)
    /// Drop the top γ fraction, keep the next `density` fraction (breadcrumbs).
    case band(gamma: Double, density: Double)
  }
  public enum Consensus: Equatable, Sendable {
    case none
    /// Elected sign = sign of Σ wᵢτᵢ (TIES paper, mergekit "sum").
    case magnitudeSum
    /// Elected sign = sign of Σ sign(wᵢτᵢ) (sd-mecha's vote_sgn, "TIES-SOUP"; mergekit "count").
    case signCount
  }
  public enum Combine: Equatable, Sendable {
    /// Σ wᵢτᵢ over agreeing models.
    case sum
    /// Σ wᵢτᵢ / Σ wᵢ over agreeing models (byCount: divide by their number instead).
    case mean(byCount: Bool)
    /// Weiszfeld geometric median of the (filtered) deltas.
    case geometricMedian(eps: Double, maxIter: Int, ftol: Double)
    /// Model stock: t·(Σ filtered τᵢ)/count with t from the cosines of the deltas.
    case modelStock(consecutive: Bool, eps: Double, perRow: Bool)
  }
  public var weights: [Double]
  public var lambda: Double = 1
  public var drop: Drop = .none
  public var rescale: Rescale = .none
  public var trim: Trim = .none
  public var consensus: Consensus = .none
  /// A tied vote (Σ = 0) elects + (mergekit) or nothing, so no entry survives there
  /// (sd-mecha's torch.sign).
  public var tiedVoteElectsPositive = true
  public var combine: Combine = .sum
  public var seed: UInt64 = 0

  public init(weights: [Double]) { self.weights = weights }
}

/// Test hooks for the selection strategy (results never depend on them).
enum SelectionTuning {
  /// Forces the radix-digit fallback when 0; nil in normal use. Any value gives the same
  /// output bytes, so tests running concurrently are unaffected.
  nonisolated(unsafe) static var collectLimitForTests: Int?
}

/// The task-vector family in one configurable kernel: per model the delta τᵢ = xᵢ − base is
/// (1) randomly dropped (DARE's Bernoulli or DELLA's rank-based probabilities) and rescaled,
/// (2) trimmed by magnitude rank (TIES's top-k, breadcrumbs' band), then (3) signs are elected
/// and disagreeing entries masked, and (4) the survivors are combined (sum, mean by weight or
/// by count, geometric median, or model stock), scaled by λ and added to the base.
/// task_arithmetic, ties, dare, della, breadcrumbs, model_stock, geometric_median and the
/// presets TIES-SOUP, TSD, TGMD and DGMLA are configurations of it (docs/methods.md).
final class TaskMergeKernel<T: ComputeScalar>: Kernel {
  typealias Config = TaskConfig
  typealias Drop = TaskConfig.Drop
  typealias Rescale = TaskConfig.Rescale
  typealias Trim = TaskConfig.Trim
  typealias Consensus = TaskConfig.Consensus
  typealias Combine = TaskConfig.Combine

  enum PassKind: Equatable {
    case l1
    /// Small tensors: every magnitude key gathered, selection by sorting (same result as
    /// the radix passes, without their 64 Ki-bucket histograms per model).
    case gather
    case radix(digit: Int)
    /// After the first radix digit: the keys in the chosen bucket, gathered with their group,
    /// then selected in memory (replaces the later digits and the tie pass when the buckets
    /// are small enough, which they are for real tensors).
    case collect
    case ties
    case gram
  }

  /// Candidate keys (over all models and boundaries) the collect pass may hold.
  static var collectLimit: Int { SelectionTuning.collectLimitForTests ?? 1 << 23 }

  /// Tensors with at most this many keys over all models are selected by gathering.
  static var gatherLimit: Int { 1 << 21 }

  let config: Config
  let key: String
  let models: Int
  let elementCount: Int
  let rngs: [CounterRNG]
  let passes: [PassKind]
  let digits: Int

  var l1Factor: [Double]
  var l1Sums: [Double]
  var boundaries: [[RankBoundary]]
  var tieRunning: [Int]
  var tiePrefix: [[Int]] = []
  var gathered: [[UInt64]] = []
  var gatheredGroupSizes: [Int] = []
  var useCollect = false
  var candidates: [[UInt64]] = []
  var candidateGroupCounts: [[Int]] = []
  var groupCapacity = Engine.groupElements
  var gram: GramMatrix
  var combineCoefficients: [Double] = []
  var stockT = 1.0

  init(config: Config, key: String, models: Int, elementCount: Int) {
    self.config = config
    self.key = key
    self.models = models
    self.elementCount = elementCount
    rngs = (0..<models).map { CounterRNG(seed: config.seed, name: key, stream: UInt64($0)) }
    digits = Radix.digits(keyBits: T.keyBits)
    var p: [PassKind] = []
    if config.rescale == .l1 && config.drop != .none { p.append(.l1) }
    var b: [RankBoundary] = []
    let n = elementCount
    switch config.trim {
    case .none:
      break
    case .topK(let density, let inclusive):
      if density < 1 {
        if inclusive {
          let kk = max(Int((1 - density) * Double(n)), 1)
          b.append(RankBoundary(rank: n - kk, isUpper: true, inclusive: true))
        } else {
          let k = max(0, Int(density * Double(n)))
          if k < n { b.append(RankBoundary(rank: k, isUpper: true)) }
        }
      }
    case .band(let gamma, let density):
      if density < 1 {
        let target = Int(density * Double(n))
        var top = Int(gamma * Double(n))
        let bottom = n - target - top
        if bottom < 0 { top += bottom }
        if top > 0 { b.append(RankBoundary(rank: top, isUpper: false)) }
        if top + target < n { b.append(RankBoundary(rank: top + target, isUpper: true)) }
      }
    }
    boundaries = Array(repeating: b, count: models)
    if !b.isEmpty {
      if models * elementCount <= Self.gatherLimit {
        p.append(.gather)
      } else {
        p.append(.radix(digit: 0))
        p.append(.collect)
        for d in 1..<digits { p.append(.radix(digit: d)) }
        p.append(.ties)
      }
    }
    switch config.combine {
    case .geometricMedian, .modelStock(_, _, false): p.append(.gram)
    default: break
    }
    passes = p
    l1Factor = Array(repeating: 1, count: models)
    l1Sums = Array(repeating: 0, count: 2 * models)
    tieRunning = Array(repeating: 0, count: models * b.count)
    gram = GramMatrix(n: models)
  }

  var passCount: Int { passes.count }
  var wholeTensor: Bool {
    if case .della(_, _, true) = config.drop { return true }
    return false
  }
  var boundaryCount: Int { boundaries.first?.count ?? 0 }

  func wantsPass(_ pass: Int) -> Bool {
    switch passes[pass] {
    case .collect: return useCollect
    case .radix(let d) where d > 0: return !useCollect
    case .ties: return !useCollect && boundaries.contains { $0.contains { $0.needsTiePositions } }
    default: return true
    }
  }

  func slots(pass: Int) -> (ordered: Int, counters: Int) {
    switch passes[pass] {
    case .l1: return (2 * models, 0)
    case .gather: return (models * groupCapacity, 0)
    case .radix: return (0, models * boundaryCount * 65536)
    case .collect: return (models * boundaryCount * (groupCapacity + 1), 0)
    case .ties: return (models * boundaryCount, 0)
    case .gram: return (GramMatrix.upperCount(models), 0)
    }
  }

  // MARK: Stages

  /// Which stages to run when preparing deltas.
  enum Stage: Int, Comparable {
    case dropped = 0
    case scaled
    case trimmed
    static func < (a: Stage, b: Stage) -> Bool { a.rawValue < b.rawValue }
  }

  /// Fills `d` (models × count) with the deltas after the given stage; `raw` (optional)
  /// receives the undropped deltas for the L1 pass.
  func prepare(
    group: Group, operands: Operands<T>, stage: Stage, deltas d: UnsafeMutablePointer<T>,
    tieStart: [Int]?
  ) {
    let n = group.count
    for i in 0..<models {
      prepareModel(i, group: group, operands: operands, stage: stage, into: d + i * n, tieStart: tieStart)
    }
  }

  /// One model's delta after the given stage.
  func prepareModel(
    _ i: Int, group: Group, operands: Operands<T>, stage: Stage, into out: UnsafeMutablePointer<T>, tieStart: [Int]?
  ) {
    let n = group.count
    let x = operands.values[i]
    if let base = operands.base {
      for e in 0..<n { out[e] = x[e] - base[e] }
    } else {
      for e in 0..<n { out[e] = x[e] }
    }
    drop(model: i, group: group, values: out)
    if stage >= .scaled, l1Factor[i] != 1 {
      let f = T(l1Factor[i])
      for e in 0..<n { out[e] *= f }
    }
    if stage >= .trimmed, !boundaries[i].isEmpty {
      trim(model: i, values: out, count: n, tieStart: tieStart)
    }
  }

  /// Applies the random drop (and inverse rescale) to one model's deltas in place.
  func drop(model i: Int, group: Group, values v: UnsafeMutablePointer<T>) {
    let n = group.count
    let rng = rngs[i]
    let start = group.elementStart
    switch config.drop {
    case .none:
      return
    case .bernoulli(let p):
      let keep = 1 - p
      let scale = config.rescale == .inverse && keep > 0 ? T(1 / keep) : 1
      for e in 0..<n {
        let u = rng.unitDouble(start + e)
        v[e] = u < keep ? v[e] * scale : 0
      }
    case .della(let density, let epsilon, let wholeTensor):
      // Tensor scope ranks over every element; the kernel then runs as one group.
      let rowLength = wholeTensor ? n : group.rowLength
      let rows = n / rowLength
      withUnsafeTemporaryAllocation(of: Int.self, capacity: rowLength) { order in
        for r in 0..<rows {
          let row = v + r * rowLength
          // Ascending magnitude ranks, ties by position.
          for j in 0..<rowLength { order[j] = j }
          let o = order.baseAddress!
          var sortable = UnsafeMutableBufferPointer(start: o, count: rowLength)
          sortable.sort { a, b in
            let ka = row[a].magnitudeKey
            let kb = row[b].magnitudeKey
            return ka != kb ? ka < kb : a < b
          }
          let denom = rowLength > 1 ? Double(rowLength - 1) : 1
          for rank in 0..<rowLength {
            let j = o[rank]
            let prob = (density - epsilon) + Double(rank) / denom * 2 * epsilon
            let e = start + r * rowLength + j
            if rng.unitDouble(e) < prob {
              if config.rescale == .inverse { row[j] = row[j] / T(prob) }
            } else {
              row[j] = 0
            }
          }
        }
      }
    }
  }

  /// Zeroes entries outside the kept rank range.
  func trim(model i: Int, values v: UnsafeMutablePointer<T>, count n: Int, tieStart: [Int]?) {
    let bs = boundaries[i]
    // Unless ties at a boundary are split, the kept keys form an interval [lo, hi]: a
    // branch-free select the compiler vectorizes.
    if !bs.contains(where: { $0.needsTiePositions }) {
      var lo: UInt64 = 0
      var hi: UInt64 = .max
      for b in bs {
        if b.isUpper {
          // keep k > K, and k == K when every tie is kept
          let keepTies = b.inclusive || b.tieCut >= b.equalCount
          lo = max(lo, keepTies ? b.key : b.key &+ 1)
        } else {
          // keep k < K, and k == K when no tie is cut away
          let keepTies = b.tieCut <= 0
          if !keepTies && b.key == 0 { lo = .max; hi = 0 } else { hi = min(hi, keepTies ? b.key : b.key - 1) }
        }
      }
      T.keepMagnitudes(v, count: n, lo: lo, hi: hi)
      return
    }
    // Ties at a boundary are split: keys equal to the boundary key are kept by their position
    // among equal keys (element order, counted from the group's start offset).
    let keys = bs.map(\.key)
    let cuts = bs.map(\.tieCut)
    let upper = bs.map(\.isUpper)
    let inclusive = bs.map(\.inclusive)
    var ties = (0..<bs.count).map { b in tieStart.map { $0[i * bs.count + b] } ?? 0 }
    if bs.count == 1 && keys[0] != 0 {
      // First a vectorized select keeping every tie, then a scan that fixes the ties only.
      let k0 = keys[0]
      let cut = cuts[0]
      let up = upper[0]
      let inc = inclusive[0]
      var j = ties[0]
      if up {
        T.keepMagnitudes(v, count: n, lo: k0, hi: .max)
      } else {
        T.keepMagnitudes(v, count: n, lo: 0, hi: k0)
      }
      for e in 0..<n where v[e].magnitudeKey == k0 {
        let keep = up ? (inc || j < cut) : j >= cut
        j += 1
        if !keep { v[e] = 0 }
      }
      return
    }
    if bs.count == 1 {
      let k0 = keys[0]
      let cut = cuts[0]
      let up = upper[0]
      let inc = inclusive[0]
      var j = ties[0]
      for e in 0..<n {
        let k = v[e].magnitudeKey
        let keep: Bool
        if k == k0 {
          keep = up ? (inc || j < cut) : j >= cut
          j += 1
        } else {
          keep = up ? k > k0 : k < k0
        }
        if !keep { v[e] = 0 }
      }
      return
    }
    for e in 0..<n {
      let k = v[e].magnitudeKey
      var keep = true
      for b in 0..<keys.count {
        let kb = keys[b]
        if k == kb {
          let j = ties[b]
          ties[b] = j + 1
          if !(upper[b] ? (inclusive[b] || j < cuts[b]) : j >= cuts[b]) { keep = false }
        } else if upper[b] ? k < kb : k > kb {
          keep = false
        }
      }
      if !keep { v[e] = 0 }
    }
  }

  // MARK: Passes

  func partial(
    pass: Int, group: Group, operands: Operands<T>, ordered: UnsafeMutablePointer<Double>,
    counters: UnsafeMutablePointer<UInt32>
  ) {
    let n = group.count
    withUnsafeTemporaryAllocation(of: T.self, capacity: models * n) { buf in
      let d = buf.baseAddress!
      switch passes[pass] {
      case .l1:
        for i in 0..<models {
          let x = operands.values[i]
          var before = 0.0
          var after = 0.0
          let out = d + i * n
          if let base = operands.base {
            for e in 0..<n { out[e] = x[e] - base[e] }
          } else {
            for e in 0..<n { out[e] = x[e] }
          }
          for e in 0..<n { before += abs(out[e].double) }
          drop(model: i, group: group, values: out)
          for e in 0..<n { after += abs(out[e].double) }
          ordered[2 * i] = before
          ordered[2 * i + 1] = after
        }
      case .gather:
        prepare(group: group, operands: operands, stage: .scaled, deltas: d, tieStart: nil)
        for i in 0..<models {
          let v = d + i * n
          let slot = ordered + i * groupCapacity
          for e in 0..<n { slot[e] = Double(bitPattern: v[e].magnitudeKey) }
        }
      case .radix(let digit):
        // One model at a time, so its deltas stay in cache while they are counted.
        let shift = UInt64(16 * (digits - 1 - digit))
        let bc = boundaryCount
        for i in 0..<models {
          let v = d
          prepareModel(i, group: group, operands: operands, stage: .scaled, into: v, tieStart: nil)
          for b in 0..<bc {
            let bd = boundaries[i][b]
            let h = counters + (i * bc + b) * 65536
            let prefix = bd.prefix
            if digit == 0 {
              for e in 0..<n { h[Int(truncatingIfNeeded: (v[e].magnitudeKey &>> shift) & 0xFFFF)] &+= 1 }
            } else {
              let high = shift + 16
              for e in 0..<n {
                let k = v[e].magnitudeKey
                if k &>> high == prefix { h[Int(truncatingIfNeeded: (k &>> shift) & 0xFFFF)] &+= 1 }
              }
            }
          }
        }
      case .collect:
        let bc = boundaryCount
        let shift = UInt64(16 * (digits - 1))
        for i in 0..<models {
          let v = d
          prepareModel(i, group: group, operands: operands, stage: .scaled, into: v, tieStart: nil)
          for b in 0..<bc {
            let prefix = boundaries[i][b].prefix
            let slot = ordered + (i * bc + b) * (groupCapacity + 1)
            let keys = UnsafeMutableRawPointer(slot + 1).assumingMemoryBound(to: UInt64.self)
            var c = 0
            for e in 0..<n {
              let k = v[e].magnitudeKey
              if k &>> shift == prefix {
                keys[c] = k
                c += 1
              }
            }
            slot[0] = Double(c)
          }
        }
      case .ties:
        let bc = boundaryCount
        for i in 0..<models {
          let v = d
          prepareModel(i, group: group, operands: operands, stage: .scaled, into: v, tieStart: nil)
          for b in 0..<bc {
            let target = boundaries[i][b].key
            var c = 0
            for e in 0..<n where v[e].magnitudeKey == target { c += 1 }
            ordered[i * bc + b] = Double(c)
          }
        }
      case .gram:
        prepare(group: group, operands: operands, stage: .trimmed, deltas: d, tieStart: tieStartFor(group))
        filter(d, count: n)
        let vectors = (0..<models).map { UnsafePointer(d + $0 * n) }
        Dots.gram(vectors, base: nil, count: n, into: ordered)
      }
    }
  }

  func combine(pass: Int, group: Group, ordered: UnsafePointer<Double>) {
    switch passes[pass] {
    case .l1:
      for j in 0..<(2 * models) { l1Sums[j] += ordered[j] }
    case .gather:
      if gathered.isEmpty {
        gathered = Array(repeating: [], count: models)
        for i in 0..<models { gathered[i].reserveCapacity(elementCount) }
      }
      for i in 0..<models {
        let slot = UnsafeRawPointer(ordered + i * groupCapacity).assumingMemoryBound(to: UInt64.self)
        gathered[i].append(contentsOf: UnsafeBufferPointer(start: slot, count: group.count))
      }
      gatheredGroupSizes.append(group.count)
    case .radix:
      break
    case .collect:
      let bc = boundaryCount
      if candidates.isEmpty {
        candidates = Array(repeating: [], count: models * bc)
        candidateGroupCounts = Array(repeating: [], count: models * bc)
      }
      for j in 0..<(models * bc) {
        let slot = ordered + j * (groupCapacity + 1)
        let c = Int(slot[0])
        let keys = UnsafeRawPointer(slot + 1).assumingMemoryBound(to: UInt64.self)
        candidates[j].append(contentsOf: UnsafeBufferPointer(start: keys, count: c))
        candidateGroupCounts[j].append(c)
      }
    case .ties:
      if tiePrefix.count == group.index {
        tiePrefix.append(tieRunning)
      }
      for j in 0..<tieRunning.count { tieRunning[j] += Int(ordered[j]) }
    case .gram:
      gram.add(upper: ordered)
    }
  }

  func endPass(_ pass: Int, counters: UnsafePointer<UInt32>) throws(MergeError) {
    switch passes[pass] {
    case .l1:
      for i in 0..<models {
        let before = l1Sums[2 * i]
        let after = l1Sums[2 * i + 1]
        l1Factor[i] = before < 1e-7 || after < 1e-7 ? 1 : before / after
      }
    case .gather:
      let bc = boundaryCount
      for i in 0..<models {
        for b in 0..<bc {
          let r = min(boundaries[i][b].rank, max(0, gathered[i].count - 1))
          let (k, above, equal) = gathered[i].withUnsafeBufferPointer { Select.boundary($0, rank: r) }
          boundaries[i][b].key = k
          boundaries[i][b].above = above
          boundaries[i][b].equalCount = equal
        }
      }
      // Tie positions: equal keys before each group, in element order (only when a boundary
      // splits its ties).
      if boundaries.contains(where: { $0.contains { $0.needsTiePositions } }) {
        var running = Array(repeating: 0, count: models * bc)
        var start = 0
        for size in gatheredGroupSizes {
          tiePrefix.append(running)
          for i in 0..<models {
            for b in 0..<bc {
              let k = boundaries[i][b].key
              var c = 0
              gathered[i].withUnsafeBufferPointer { keys in
                for e in start..<(start + size) { c &+= keys[e] == k ? 1 : 0 }
              }
              running[i * bc + b] += c
            }
          }
          start += size
        }
      }
      gathered = []
      gatheredGroupSizes = []
    case .radix(let digit):
      let bc = boundaryCount
      for i in 0..<models {
        for b in 0..<bc {
          boundaries[i][b].select(histogram: counters + (i * bc + b) * 65536, last: digit == digits - 1)
        }
      }
      if digit == 0 {
        let total = boundaries.reduce(0) { $0 + $1.reduce(0) { $0 + $1.bucketCount } }
        useCollect = total <= Self.collectLimit
      }
    case .collect:
      let bc = boundaryCount
      for i in 0..<models {
        for b in 0..<bc {
          let j = i * bc + b
          let (k, above, equal) = candidates[j].withUnsafeBufferPointer {
            Select.boundary($0, rank: boundaries[i][b].remaining)
          }
          boundaries[i][b].key = k
          boundaries[i][b].above += above
          boundaries[i][b].equalCount = equal
        }
      }
      if boundaries.contains(where: { $0.contains { $0.needsTiePositions } }) {
        var running = Array(repeating: 0, count: models * bc)
        var starts = Array(repeating: 0, count: models * bc)
        let groups = candidateGroupCounts.first?.count ?? 0
        for g in 0..<groups {
          tiePrefix.append(running)
          for j in 0..<(models * bc) {
            let k = boundaries[j / bc][j % bc].key
            let n = candidateGroupCounts[j][g]
            var c = 0
            candidates[j].withUnsafeBufferPointer { keys in
              for e in starts[j]..<(starts[j] + n) { c &+= keys[e] == k ? 1 : 0 }
            }
            running[j] += c
            starts[j] += n
          }
        }
      }
      candidates = []
      candidateGroupCounts = []
    case .ties:
      break
    case .gram:
      switch config.combine {
      case .geometricMedian(let eps, let maxIter, let ftol):
        combineCoefficients = GramSolvers.geometricMedian(gram, weights: config.weights, eps: eps, maxIter: maxIter, ftol: ftol)
      case .modelStock(let consecutive, let eps, _):
        stockT = GramSolvers.modelStockT(gram, consecutive: consecutive, eps: eps)
      default:
        break
      }
    }
  }

  func tieStartFor(_ group: Group) -> [Int]? {
    guard boundaryCount > 0, group.index < tiePrefix.count else { return nil }
    return tiePrefix[group.index]
  }

  func setGroupCapacity(_ capacity: Int) { groupCapacity = capacity }

  /// Zeroes entries whose sign disagrees with the elected sign (when electing).
  func filter(_ d: UnsafeMutablePointer<T>, count n: Int) {
    guard config.consensus != .none else { return }
    withUnsafeTemporaryAllocation(of: T.self, capacity: n) { sBuf in
      let s = sBuf.baseAddress!
      elect(d, count: n, into: s)
      for i in 0..<models {
        let v = d + i * n
        let w = T(config.weights[i])
        for e in 0..<n {
          let agrees = w * v[e] * s[e] > 0
          v[e] = agrees ? v[e] : 0
        }
      }
    }
  }

  /// The elected sign per element: ±1, and for a tied vote +1 (mergekit) or 0 (sd-mecha).
  func elect(_ d: UnsafeMutablePointer<T>, count n: Int, into s: UnsafeMutablePointer<T>) {
    for e in 0..<n { s[e] = 0 }
    for i in 0..<models {
      let v = d + i * n
      let w = T(config.weights[i])
      if config.consensus == .magnitudeSum {
        for e in 0..<n { s[e] += w * v[e] }
      } else {
        for e in 0..<n {
          let x = w * v[e]
          s[e] += (x > 0 ? 1 : 0) - (x < 0 ? 1 : 0)
        }
      }
    }
    let tie: T = config.tiedVoteElectsPositive ? 1 : 0
    for e in 0..<n {
      let x = s[e]
      let pos: T = x > 0 ? 1 : 0
      let neg: T = x < 0 ? 1 : 0
      let zero: T = x == 0 ? tie : 0
      s[e] = pos - neg + zero
    }
  }

  // MARK: Apply

  func apply(group: Group, operands: Operands<T>, into out: UnsafeMutablePointer<T>) {
    apply(group: group, operands: operands, into: out, stats: nil)
  }

  /// Counts for the run's metrics: entries kept after drop and trim, all entries, and among
  /// the kept ones those agreeing with the elected sign (the configured election, or the sign
  /// of Σ wᵢτᵢ when the method elects none).
  func count(_ d: UnsafeMutablePointer<T>, count n: Int, into stats: UnsafeMutablePointer<Double>) {
    if T.self == Float.self {
      UnsafeMutableRawPointer(d).withMemoryRebound(to: Float.self, capacity: models * n) { countFloat($0, count: n, into: stats) }
      return
    }
    var kept = 0
    for i in 0..<models {
      let v = d + i * n
      for e in 0..<n { kept &+= v[e] != 0 ? 1 : 0 }
    }
    var agree = 0
    withUnsafeTemporaryAllocation(of: T.self, capacity: n) { sb in
      let s = sb.baseAddress!
      for e in 0..<n { s[e] = 0 }
      for i in 0..<models {
        let v = d + i * n
        let w = T(config.weights[i])
        if config.consensus == .signCount {
          for e in 0..<n { s[e] += (w * v[e] > 0 ? 1 : 0) - (w * v[e] < 0 ? 1 : 0) }
        } else {
          for e in 0..<n { s[e] += w * v[e] }
        }
      }
      for i in 0..<models {
        let v = d + i * n
        let w = T(config.weights[i])
        for e in 0..<n { agree &+= w * v[e] * s[e] > 0 ? 1 : 0 }
      }
    }
    stats[0] += Double(kept)
    stats[1] += Double(models * n)
    stats[2] += Double(agree)
    stats[3] += Double(kept)
  }

  /// `count` for `Float` deltas, eight lanes at a time: the same sums in the same order per
  /// element (so the same counts), as integer lane counters instead of a branch per element.
  func countFloat(_ d: UnsafeMutablePointer<Float>, count n: Int, into stats: UnsafeMutablePointer<Double>) {
    let weights = config.weights.map { Float($0) }
    let byCount = config.consensus == .signCount
    let zero = SIMD8<Float>()
    let one = SIMD8<Int32>(repeating: 1)
    var keptLanes = SIMD8<Int32>()
    var agreeLanes = SIMD8<Int32>()
    @inline(__always) func load(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
      UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    var e = 0
    while e + 8 <= n {
      var sum = zero
      for i in 0..<models {
        let v = load(d + i * n + e)
        keptLanes &+= SIMD8<Int32>().replacing(with: one, where: v .!= zero)
        let wv = weights[i] * v
        if byCount {
          sum += SIMD8<Float>().replacing(with: 1, where: wv .> zero) - SIMD8<Float>().replacing(with: 1, where: wv .< zero)
        } else {
          sum += wv
        }
      }
      for i in 0..<models {
        let wv = weights[i] * load(d + i * n + e)
        agreeLanes &+= SIMD8<Int32>().replacing(with: one, where: wv * sum .> zero)
      }
      e += 8
    }
    var kept = Int(keptLanes.wrappedSum())
    var agree = Int(agreeLanes.wrappedSum())
    while e < n {
      var sum: Float = 0
      for i in 0..<models {
        let v = d[i * n + e]
        kept &+= v != 0 ? 1 : 0
        let wv = weights[i] * v
        sum += byCount ? (wv > 0 ? 1 : 0) - (wv < 0 ? 1 : 0) : wv
      }
      for i in 0..<models { agree &+= weights[i] * d[i * n + e] * sum > 0 ? 1 : 0 }
      e += 1
    }
    stats[0] += Double(kept)
    stats[1] += Double(models * n)
    stats[2] += Double(agree)
    stats[3] += Double(kept)
  }

  func apply(group: Group, operands: Operands<T>, into out: UnsafeMutablePointer<T>, stats: UnsafeMutablePointer<Double>?) {
    let n = group.count
    withUnsafeTemporaryAllocation(of: T.self, capacity: models * n + 2 * n) { buf in
      let d = buf.baseAddress!
      let acc = d + models * n
      let div = acc + n
      prepare(group: group, operands: operands, stage: .trimmed, deltas: d, tieStart: tieStartFor(group))
      if let stats { count(d, count: n, into: stats) }
      for e in 0..<n {
        acc[e] = 0
        div[e] = 0
      }
      switch config.combine {
      case .sum, .mean:
        var byCount = false
        if case .mean(let c) = config.combine { byCount = c }
        if config.consensus == .none {
          for i in 0..<models {
            let v = d + i * n
            let w = T(config.weights[i])
            let dw: T = byCount ? 1 : w
            for e in 0..<n {
              acc[e] += w * v[e]
              div[e] += dw
            }
          }
        } else {
          elect(d, count: n, into: div)  // div temporarily holds the elected sign
          withUnsafeTemporaryAllocation(of: T.self, capacity: n) { sb in
            let s = sb.baseAddress!
            for e in 0..<n {
              s[e] = div[e]
              div[e] = 0
            }
            for i in 0..<models {
              let v = d + i * n
              let w = T(config.weights[i])
              let dw: T = byCount ? 1 : w
              for e in 0..<n {
                // s is −1, 0 or +1: x agrees when x·s > 0.
                let x = w * v[e]
                let agrees = x * s[e] > 0
                acc[e] += agrees ? x : 0
                div[e] += agrees ? dw : 0
              }
            }
          }
        }
        if case .mean = config.combine {
          for e in 0..<n {
            let q = abs(div[e].double) < 1e-8 ? T(1) : div[e]
            acc[e] = acc[e] / q
          }
        }
      case .geometricMedian:
        filter(d, count: n)
        for (i, c) in combineCoefficients.enumerated() {
          let v = d + i * n
          let ci = T(c)
          for e in 0..<n { acc[e] += ci * v[e] }
        }
      case .modelStock(let consecutive, let eps, let perRow):
        filter(d, count: n)
        if perRow {
          let rowLength = group.rowLength
          for r in 0..<(n / rowLength) {
            var g = GramMatrix(n: models)
            withUnsafeTemporaryAllocation(of: Double.self, capacity: GramMatrix.upperCount(models)) { up in
              let vectors = (0..<models).map { UnsafePointer(d + $0 * n + r * rowLength) }
              Dots.gram(vectors, base: nil, count: rowLength, into: up.baseAddress!)
              g.add(upper: up.baseAddress!)
            }
            let t = T(GramSolvers.modelStockT(g, consecutive: consecutive, eps: eps))
            stockRows(d, count: n, range: (r * rowLength)..<((r + 1) * rowLength), t: t, acc: acc, div: div)
          }
        } else {
          stockRows(d, count: n, range: 0..<n, t: T(stockT), acc: acc, div: div)
        }
      }
      let lambda = T(config.lambda)
      if let base = operands.base {
        for e in 0..<n { out[e] = base[e] + lambda * acc[e] }
      } else {
        for e in 0..<n { out[e] = lambda * acc[e] }
      }
    }
  }

  /// acc = t · Σ fᵢ / count(fᵢ ≠ 0 or all models when not electing).
  private func stockRows(
    _ d: UnsafeMutablePointer<T>, count n: Int, range: Range<Int>, t: T, acc: UnsafeMutablePointer<T>,
    div: UnsafeMutablePointer<T>
  ) {
    for i in 0..<models {
      let v = d + i * n
      for e in range {
        acc[e] += v[e]
        div[e] += config.consensus == .none || v[e] != 0 ? 1 : 0
      }
    }
    for e in range { acc[e] = div[e] == 0 ? 0 : t * acc[e] / div[e] }
  }
}
