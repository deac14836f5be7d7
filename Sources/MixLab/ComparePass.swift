import Dispatch
import Foundation
import SafeTensors

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// One tensor compared across models: the same key in each model, with the same element
/// count (callers leave shape mismatches out).
struct CompareItem: Sendable {
  var key: String
  /// One entry per model, in model order.
  var entries: [Checkpoint.Entry]
  /// The accumulator its sums go to (a tensor, a block, …); several items may share one.
  var bucket: Int
  /// Known equal in every model (equal per-tensor SHA-256): only model 0 is read, for norms.
  var knownEqual: Bool
}

/// Sums of one bucket: the Gram matrix of the models and, for designated pairs, the squared
/// difference and the largest absolute difference, all accumulated in `Double`.
struct CompareSums: Sendable, Equatable {
  var n: Int
  /// Upper triangle of the Gram matrix, row-major: (0,0), (0,1), …, (0,n−1), (1,1), …
  var gram: [Double]
  /// Σ (a − b)² per designated pair, computed from the differences (no cancellation).
  var squaredDifference: [Double]
  /// max |a − b| per designated pair; NaN when a compared element was NaN.
  var maxAbsDifference: [Double]

  init(n: Int, pairs: Int) {
    self.n = n
    gram = [Double](repeating: 0, count: n * (n + 1) / 2)
    squaredDifference = [Double](repeating: 0, count: pairs)
    maxAbsDifference = [Double](repeating: 0, count: pairs)
  }

  /// Index of (i, j), i ≤ j, in the upper triangle of an n×n matrix.
  @inline(__always)
  static func upper(_ i: Int, _ j: Int, n: Int) -> Int { i * n - i * (i - 1) / 2 + (j - i) }

  /// Gᵢⱼ (symmetric).
  subscript(i: Int, j: Int) -> Double {
    i <= j ? gram[CompareSums.upper(i, j, n: n)] : gram[CompareSums.upper(j, i, n: n)]
  }

  /// Adds `other` (sums add, maxima take the larger, NaN wins).
  mutating func add(_ other: CompareSums) {
    for k in gram.indices { gram[k] += other.gram[k] }
    for p in squaredDifference.indices {
      squaredDifference[p] += other.squaredDifference[p]
      maxAbsDifference[p] = CompareSums.maxNaN(maxAbsDifference[p], other.maxAbsDifference[p])
    }
  }

  /// The larger of two values, NaN if either is.
  static func maxNaN(_ a: Double, _ b: Double) -> Double {
    if a.isNaN || b.isNaN { return .nan }
    return Swift.max(a, b)
  }
}

/// What one streaming pass found.
struct ComparePassResult: Sendable {
  /// Sums per bucket.
  var buckets: [CompareSums]
  /// Per item: true when its bytes are identical in every model (same dtype, or known equal
  /// by hash); false when some byte differs or dtypes differ.
  var itemBytesEqual: [Bool]
  /// Per model: the items holding NaN or infinite values there.
  var nonFiniteItems: [[Int]]
  /// Bytes of tensor data read.
  var bytesRead: Int
}

/// The streaming pass shared by `diff`, `distance` and the report: every item is cut into
/// pieces of at most `pieceElements` elements (the cut depends on the element count only);
/// pieces are processed in batches of about `batchElements` elements by interleaved
/// workers, each writing its own slot; slots are then added to their bucket in piece order.
/// Every sum therefore has one fixed order, whatever the thread count. Input pages are
/// released after each batch, so resident memory is about one batch per model.
enum ComparePass {
  static let pieceElements = 65_536
  static let batchElements = 1 << 20
  /// Elements decoded at once per model (a multiple of 4, the SIMD width).
  static let tile = 1024

  struct Piece {
    var item: Int
    var start: Int
    var count: Int
  }

  /// Runs the pass.
  ///
  /// - Parameters:
  ///   - models: the checkpoints, in model order.
  ///   - items: what to compare; `entries` index into `models`.
  ///   - bucketCount: number of accumulators.
  ///   - pairs: model pairs (i, j) for which Σ(a−b)² and max |a−b| are computed exactly.
  ///   - threads: workers (0: all cores); never changes results.
  ///   - progress: called after each batch with the bytes read so far.
  static func run(
    models: [Checkpoint], items: [CompareItem], bucketCount: Int, pairs: [(Int, Int)], threads: Int,
    progress: ((Int) -> Void)? = nil
  ) -> ComparePassResult {
    let n = models.count
    var pieces: [Piece] = []
    for (i, item) in items.enumerated() {
      let count = item.entries[0].info.elementCount
      var s = 0
      repeat {
        pieces.append(Piece(item: i, start: s, count: min(pieceElements, count - s)))
        s += pieceElements
      } while s < count
    }
    let upper = n * (n + 1) / 2
    let stride = upper + 2 * pairs.count + 1
    var buckets = [CompareSums](repeating: CompareSums(n: n, pairs: pairs.count), count: bucketCount)
    var bytesEqual = items.map { _ in true }
    var nonFinite = [Set<Int>](repeating: [], count: n)
    let workers = max(1, threads > 0 ? threads : ProcessInfo.processInfo.activeProcessorCount)
    let maxBatchPieces = max(1, batchElements / pieceElements)
    let slots = UnsafeMutablePointer<Double>.allocate(capacity: maxBatchPieces * stride)
    defer { slots.deallocate() }
    let kernel = PieceKernel(models: models, items: items, pairs: pairs)
    var bytesRead = 0

    func batchEnd(from b0: Int) -> Int {
      var b1 = b0
      var elements = 0
      while b1 < pieces.count, b1 - b0 < maxBatchPieces, elements < batchElements {
        elements += pieces[b1].count
        b1 += 1
      }
      return b1
    }
    var b0 = 0
    var b1 = batchEnd(from: 0)
    advise(pieces[0..<b1], items: items, models: models, release: false)
    while b0 < pieces.count {
      let next = batchEnd(from: b1)
      if b1 < pieces.count { advise(pieces[b1..<next], items: items, models: models, release: false) }
      let shared = UncheckedSendable((kernel, pieces, slots))
      let start = b0
      let end = b1
      DispatchQueue.concurrentPerform(iterations: min(workers, end - start)) { w in
        let (kernel, pieces, slots) = shared.value
        kernel.withScratch { scratch in
          var p = start + w
          while p < end {
            kernel.compute(pieces[p], scratch: scratch, into: slots + (p - start) * stride)
            p += workers
          }
        }
      }
      for p in start..<end {
        let piece = pieces[p]
        let slot = slots + (p - start) * stride
        let item = items[piece.item]
        var sums = CompareSums(n: n, pairs: pairs.count)
        for k in 0..<upper { sums.gram[k] = slot[k] }
        for q in pairs.indices {
          sums.squaredDifference[q] = slot[upper + q]
          sums.maxAbsDifference[q] = slot[upper + pairs.count + q]
        }
        buckets[item.bucket].add(sums)
        if slot[stride - 1] == 0 { bytesEqual[piece.item] = false }
        for m in 0..<n where !slot[CompareSums.upper(m, m, n: n)].isFinite { nonFinite[m].insert(piece.item) }
        for m in (item.knownEqual ? 0..<1 : 0..<n) { bytesRead += piece.count * item.entries[m].info.dtype.size }
      }
      advise(pieces[start..<end], items: items, models: models, release: true)
      progress?(bytesRead)
      b0 = b1
      b1 = next
    }
    return ComparePassResult(
      buckets: buckets, itemBytesEqual: bytesEqual, nonFiniteItems: nonFinite.map { $0.sorted() }, bytesRead: bytesRead)
  }

  /// Running maxima of |d| per lane, as plain compares (pointwiseMax does not vectorize
  /// here); NaN is caught by the squared sum instead.
  @inline(__always)
  static func laneMax(_ d: SIMD4<Double>, _ m0: inout Double, _ m1: inout Double, _ m2: inout Double, _ m3: inout Double) {
    let d0 = abs(d[0])
    let d1 = abs(d[1])
    let d2 = abs(d[2])
    let d3 = abs(d[3])
    m0 = d0 > m0 ? d0 : m0
    m1 = d1 > m1 ? d1 : m1
    m2 = d2 > m2 ? d2 : m2
    m3 = d3 > m3 ? d3 : m3
  }

  private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
  private static let faultAround = 64 << 10

  /// Starts reading ahead, or drops the resident pages of, the byte ranges of `pieces` in each
  /// model; adjacent ranges are coalesced so a batch costs a few system calls. Released
  /// ranges are widened (whole pages, plus the fault-around window): a neighbour's page used
  /// again later comes back from the page cache, and nothing stays resident behind the pass.
  static func advise(_ pieces: ArraySlice<Piece>, items: [CompareItem], models: [Checkpoint], release: Bool) {
    for m in models.indices {
      var current: (shard: Int, range: Range<Int>)?
      func flush() {
        guard let c = current else { return }
        let file = models[m].shards[c.shard].file
        if release {
          // Widened by the kernel's fault-around window (64 KiB): a fault at the start of
          // this range maps the aligned window around it, including the tail of the range
          // released before, which would otherwise stay resident.
          let lo = max(0, c.range.lowerBound - faultAround) / pageSize * pageSize
          let hi = (c.range.upperBound + faultAround + pageSize - 1) / pageSize * pageSize
          file.release(lo..<hi)
        } else {
          file.willNeed(c.range)
        }
      }
      for p in pieces {
        let item = items[p.item]
        if item.knownEqual && m > 0 { continue }
        let e = item.entries[m]
        let f = models[m].file(of: e)
        let size = e.info.dtype.size
        let lo = f.dataStart + e.info.begin + p.start * size
        let r = lo..<(lo + p.count * size)
        if let c = current, c.shard == e.shard, c.range.upperBound == r.lowerBound {
          current = (c.shard, c.range.lowerBound..<r.upperBound)
        } else {
          flush()
          current = (e.shard, r)
        }
      }
      flush()
    }
  }
}

/// Computes one piece: decodes each model's elements tile by tile into `Double` and
/// accumulates the Gram matrix and the pair differences in SIMD lanes (fixed lane and tile
/// order), reduced to one `Double` per sum at the end of the piece.
final class PieceKernel: @unchecked Sendable {
  // Sendable: immutable after init; scratch memory is per call of `withScratch`.
  let models: [Checkpoint]
  let items: [CompareItem]
  let pairs: [(Int, Int)]
  let n: Int
  let upper: Int
  /// Two models compared with each other: one fused loop.
  let fusedPair: Bool

  init(models: [Checkpoint], items: [CompareItem], pairs: [(Int, Int)]) {
    self.models = models
    self.items = items
    self.pairs = pairs
    n = models.count
    upper = n * (n + 1) / 2
    fusedPair = n == 2 && pairs.count == 1 && Set([pairs[0].0, pairs[0].1]) == [0, 1]
  }

  struct Scratch {
    var tiles: UnsafeMutablePointer<Double>
    /// One tile of `Float`, for formats that decode exactly to `Float` first.
    var narrow: UnsafeMutablePointer<Float>
    var gram: UnsafeMutablePointer<SIMD4<Double>>
    var squared: UnsafeMutablePointer<SIMD4<Double>>
    var maxAbs: UnsafeMutablePointer<SIMD4<Double>>
  }

  func withScratch(_ body: (Scratch) -> Void) {
    let t = ComparePass.tile
    let accBytes = (upper + 2 * pairs.count) * 32
    let raw = UnsafeMutableRawPointer.allocate(byteCount: accBytes + n * t * 8 + t * 4, alignment: 64)
    defer { raw.deallocate() }
    let acc = raw.bindMemory(to: SIMD4<Double>.self, capacity: upper + 2 * pairs.count)
    let tiles = (raw + accBytes).bindMemory(to: Double.self, capacity: n * t)
    let narrow = (raw + accBytes + n * t * 8).bindMemory(to: Float.self, capacity: t)
    body(Scratch(tiles: tiles, narrow: narrow, gram: acc, squared: acc + upper, maxAbs: acc + upper + pairs.count))
  }

  /// Writes the piece's sums to `out`: Gram upper triangle, Σ(a−b)² per pair, max |a−b| per
  /// pair, then 1 when the piece's bytes are equal in every model, else 0.
  func compute(_ piece: ComparePass.Piece, scratch s: Scratch, into out: UnsafeMutablePointer<Double>) {
    let item = items[piece.item]
    let count = piece.count
    var equal = item.knownEqual
    if !equal {
      let dtype = item.entries[0].info.dtype
      if item.entries.allSatisfy({ $0.info.dtype == dtype }) {
        equal = true
        bytes(item, model: 0, piece) { b0 in
          for m in 1..<n where equal {
            bytes(item, model: m, piece) { bm in
              if count > 0 && memcmp(b0.baseAddress!, bm.baseAddress!, count * dtype.size) != 0 { equal = false }
            }
          }
        }
      }
    }
    let t = ComparePass.tile
    for k in 0..<(upper + 2 * pairs.count) { s.gram[k] = .zero }
    var done = 0
    if equal {
      // Every model holds these bytes: one norm gives every Gram entry; differences are 0.
      let x = s.tiles
      while done < count {
        let c = min(t, count - done)
        decode(item, model: 0, piece, offset: done, count: c, into: x, narrow: s.narrow)
        let padded = (c + 3) & ~3
        for e in c..<padded { x[e] = 0 }
        var a = s.gram[0]
        var e = 0
        while e < padded {
          let v = load(x + e)
          a += v * v
          e += 4
        }
        s.gram[0] = a
        done += c
      }
      let aa = reduce(s.gram[0])
      for k in 0..<upper { out[k] = aa }
      for q in pairs.indices {
        out[upper + q] = 0
        out[upper + pairs.count + q] = 0
      }
      out[upper + 2 * pairs.count] = 1
      return
    }
    while done < count {
      let c = min(t, count - done)
      let padded = (c + 3) & ~3
      for m in 0..<n {
        let x = s.tiles + m * t
        decode(item, model: m, piece, offset: done, count: c, into: x, narrow: s.narrow)
        for e in c..<padded { x[e] = 0 }
      }
      if fusedPair {
        pairTile(s, count: padded)
      } else {
        gramTile(s, count: padded)
        for (q, (i, j)) in pairs.enumerated() { differenceTile(s, i, j, slot: q, count: padded) }
      }
      done += c
    }
    for k in 0..<upper { out[k] = reduce(s.gram[k]) }
    for q in pairs.indices {
      let sq = reduce(s.squared[q])
      let m = s.maxAbs[q]
      out[upper + q] = sq
      out[upper + pairs.count + q] = sq.isNaN ? .nan : Swift.max(Swift.max(m[0], m[1]), Swift.max(m[2], m[3]))
    }
    out[upper + 2 * pairs.count] = 0
  }

  /// Two models and their difference (a diff): Σa², Σab, Σb², Σ(a−b)² and max |a−b| in one
  /// loop over the tile, each input element loaded once.
  @inline(__always)
  func pairTile(_ s: Scratch, count padded: Int) {
    let a = s.tiles
    let b = s.tiles + ComparePass.tile
    var aa = s.gram[0]
    var ab = s.gram[1]
    var bb = s.gram[2]
    var sq = s.squared[0]
    var m = s.maxAbs[0]
    var (m0, m1, m2, m3) = (m[0], m[1], m[2], m[3])
    var e = 0
    while e < padded {
      let x = load(a + e)
      let y = load(b + e)
      aa += x * x
      ab += x * y
      bb += y * y
      let d = x - y
      sq += d * d
      ComparePass.laneMax(d, &m0, &m1, &m2, &m3)
      e += 4
    }
    m = SIMD4(m0, m1, m2, m3)
    s.gram[0] = aa
    s.gram[1] = ab
    s.gram[2] = bb
    s.squared[0] = sq
    s.maxAbs[0] = m
  }

  /// Σ(a−b)² and max |a−b| of models i and j over a tile.
  @inline(__always)
  func differenceTile(_ s: Scratch, _ i: Int, _ j: Int, slot q: Int, count padded: Int) {
    let a = s.tiles + i * ComparePass.tile
    let b = s.tiles + j * ComparePass.tile
    var sq = s.squared[q]
    let m = s.maxAbs[q]
    var (m0, m1, m2, m3) = (m[0], m[1], m[2], m[3])
    var e = 0
    while e < padded {
      let d = load(a + e) - load(b + e)
      sq += d * d
      ComparePass.laneMax(d, &m0, &m1, &m2, &m3)
      e += 4
    }
    s.squared[q] = sq
    s.maxAbs[q] = SIMD4(m0, m1, m2, m3)
  }

  /// Adds one tile's products to the Gram accumulators: for each row i, four columns at a
  /// time, so each load of model i's elements feeds four products.
  @inline(__always)
  func gramTile(_ s: Scratch, count padded: Int) {
    let t = ComparePass.tile
    for i in 0..<n {
      let xi = s.tiles + i * t
      var j = i
      var k = CompareSums.upper(i, i, n: n)
      while j + 4 <= n {
        let x0 = s.tiles + j * t
        let x1 = x0 + t
        let x2 = x1 + t
        let x3 = x2 + t
        var a0 = s.gram[k]
        var a1 = s.gram[k + 1]
        var a2 = s.gram[k + 2]
        var a3 = s.gram[k + 3]
        var e = 0
        while e < padded {
          let v = load(xi + e)
          a0 += v * load(x0 + e)
          a1 += v * load(x1 + e)
          a2 += v * load(x2 + e)
          a3 += v * load(x3 + e)
          e += 4
        }
        s.gram[k] = a0
        s.gram[k + 1] = a1
        s.gram[k + 2] = a2
        s.gram[k + 3] = a3
        j += 4
        k += 4
      }
      if j + 2 <= n {
        // Two columns left (or three: two here, one below).
        let x0 = s.tiles + j * t
        let x1 = x0 + t
        var a0 = s.gram[k]
        var a1 = s.gram[k + 1]
        var e = 0
        while e < padded {
          let v = load(xi + e)
          a0 += v * load(x0 + e)
          a1 += v * load(x1 + e)
          e += 4
        }
        s.gram[k] = a0
        s.gram[k + 1] = a1
        j += 2
        k += 2
      }
      if j < n {
        let xj = s.tiles + j * t
        var a = s.gram[k]
        var e = 0
        while e < padded {
          a += load(xi + e) * load(xj + e)
          e += 4
        }
        s.gram[k] = a
      }
    }
  }

  @inline(__always)
  func load(_ p: UnsafeMutablePointer<Double>) -> SIMD4<Double> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Double>.self)
  }

  /// Lanes summed in a fixed order.
  @inline(__always)
  func reduce(_ v: SIMD4<Double>) -> Double { (v[0] + v[1]) + (v[2] + v[3]) }

  func bytes(_ item: CompareItem, model m: Int, _ piece: ComparePass.Piece, _ body: (UnsafeRawBufferPointer) -> Void) {
    let e = item.entries[m]
    models[m].file(of: e).withBytes(of: e.info, elements: piece.start..<(piece.start + piece.count), body)
  }

  /// Decodes `count` elements into `dst`. Float formats up to 32 bits go through `Float`
  /// (exact) and a widening loop, both of which vectorize; f64 and integers decode to
  /// `Double` directly.
  func decode(
    _ item: CompareItem, model m: Int, _ piece: ComparePass.Piece, offset: Int, count: Int,
    into dst: UnsafeMutablePointer<Double>, narrow: UnsafeMutablePointer<Float>
  ) {
    let e = item.entries[m]
    let lo = piece.start + offset
    let file = models[m].file(of: e)
    switch e.info.dtype {
    case .f16, .bf16, .f32, .f8e4m3, .f8e5m2:
      file.read(e.info, elements: lo..<(lo + count), into: narrow)
      for i in 0..<count { dst[i] = Double(narrow[i]) }
    default:
      file.read(e.info, elements: lo..<(lo + count), into: dst)
    }
  }
}
