import Architectures

/// Exact rank selection by magnitude over a whole tensor, streamed: radix passes over the
/// magnitude bit patterns (16 bits per pass) find the key at a given descending rank; ties at
/// that key are ordered by element index, so "keep exactly k" is well defined and independent
/// of chunking.
struct RankBoundary: Sendable {
  /// Descending rank r (0 = largest magnitude) this boundary cuts at.
  var rank: Int
  /// Upper boundary: keep ranks < r. Lower boundary: keep ranks ≥ r.
  var isUpper: Bool
  /// Keep every element whose key equals the boundary key (sd-mecha's inclusive threshold).
  var inclusive: Bool

  var prefix: UInt64 = 0
  var remaining: Int
  /// Elements in the bucket chosen by the last `select`.
  var bucketCount = 0
  var above = 0
  var key: UInt64 = 0
  var equalCount = 0

  init(rank: Int, isUpper: Bool, inclusive: Bool = false) {
    self.rank = rank
    self.isUpper = isUpper
    self.inclusive = inclusive
    remaining = rank
  }

  /// How many elements equal to `key` have rank < r.
  var tieCut: Int { rank - above }

  /// True when deciding an element equal to `key` needs its position among equal keys.
  var needsTiePositions: Bool { !inclusive && tieCut > 0 && tieCut < equalCount }

  /// Chooses the bucket of the current digit from a histogram (descending), narrowing the
  /// prefix.
  mutating func select(histogram h: UnsafePointer<UInt32>, last: Bool) {
    var cum = 0
    var bucket = 65535
    while bucket >= 0 {
      let c = Int(h[bucket])
      if remaining < cum + c {
        prefix = prefix << 16 | UInt64(bucket)
        above += cum
        remaining -= cum
        bucketCount = c
        if last {
          key = prefix
          equalCount = c
        }
        return
      }
      cum += c
      bucket -= 1
    }
    // Rank beyond the element count (cannot happen for ranks < count); keep state consistent.
    prefix = prefix << 16
    if last { key = prefix }
  }

  /// Whether an element with `k` and tie position `j` (0-based among elements equal to the
  /// boundary key, in element order) is on the kept side of this boundary.
  @inline(__always)
  func keeps(_ k: UInt64, tiePosition j: Int) -> Bool {
    if isUpper {
      if k > key { return true }
      if k < key { return false }
      return inclusive || j < tieCut
    } else {
      if k > key { return false }
      if k < key { return true }
      return j >= tieCut
    }
  }
}

enum Radix {
  /// Number of 16-bit digits for a compute type's magnitude keys.
  static func digits(keyBits: Int) -> Int { (keyBits + 15) / 16 }
}

/// k-th largest of a list of keys by quickselect (expected linear time); the input is copied.
enum Select {
  static func descending(_ keys: [UInt64], rank: Int) -> UInt64 {
    var a = keys
    var lo = 0
    var hi = a.count - 1
    let target = rank
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    return a.withUnsafeMutableBufferPointer { p in
      while lo < hi {
        // Pivot: a deterministic pseudo-random element (no adversarial quadratic inputs).
        state = CounterRNG.mix(state)
        let pivot = p[lo + Int(state % UInt64(hi - lo + 1))]
        // Three-way partition: > pivot | == pivot | < pivot.
        var lt = lo
        var i = lo
        var gt = hi
        while i <= gt {
          if p[i] > pivot {
            p.swapAt(lt, i)
            lt += 1
            i += 1
          } else if p[i] < pivot {
            p.swapAt(i, gt)
            gt -= 1
          } else {
            i += 1
          }
        }
        if target < lt {
          hi = lt - 1
        } else if target > gt {
          lo = gt + 1
        } else {
          return pivot
        }
      }
      return p[lo]
    }
  }
}

extension Select {
  /// The key at descending rank `rank`, how many keys are larger and how many equal it: one
  /// histogram of the top 16 significant bits, then a sort of the one bucket that holds the
  /// rank (a few hundred keys for real tensors).
  static func boundary(_ keys: UnsafeBufferPointer<UInt64>, rank: Int) -> (key: UInt64, above: Int, equal: Int) {
    guard !keys.isEmpty else { return (0, 0, 0) }
    var maxKey: UInt64 = 0
    var minKey: UInt64 = .max
    for k in keys {
      maxKey = max(maxKey, k)
      minKey = min(minKey, k)
    }
    // Buckets over the keys' actual range (candidate lists share their top bits).
    let bits = 64 - (maxKey - minKey).leadingZeroBitCount
    let shift = UInt64(max(0, bits - 16))
    var histogram = [Int](repeating: 0, count: 65536)
    histogram.withUnsafeMutableBufferPointer { h in
      for k in keys { h[Int(truncatingIfNeeded: (k &- minKey) &>> shift)] &+= 1 }
    }
    var above = 0
    var bucket = 65535
    while bucket > 0 && above + histogram[bucket] <= rank {
      above += histogram[bucket]
      bucket -= 1
    }
    var candidates: [UInt64] = []
    candidates.reserveCapacity(histogram[bucket])
    for k in keys where Int(truncatingIfNeeded: (k &- minKey) &>> shift) == bucket { candidates.append(k) }
    candidates.sort(by: >)
    let key = candidates[min(rank - above, candidates.count - 1)]
    var larger = above
    var equal = 0
    for c in candidates {
      larger &+= c > key ? 1 : 0
      equal &+= c == key ? 1 : 0
    }
    return (key, larger, equal)
  }
}
