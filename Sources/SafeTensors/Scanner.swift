import Dispatch

/// Non-finite element counts of one tensor.
public struct NonFinite: Sendable, Codable, Hashable {
  public var key: String
  public var nan: Int
  public var inf: Int

  public init(key: String, nan: Int, inf: Int) {
    self.key = key
    self.nan = nan
    self.inf = inf
  }
}

/// What one read pass over a file found.
public struct ScanResult: Sendable, Codable {
  /// SHA-256 of the whole file.
  public var sha256: String
  /// SHA-256 of the bytes after the header.
  public var tensorDataSHA256: String
  /// SHA-256 of each tensor's bytes, when requested.
  public var tensorSHA256: [String: String]?
  /// Tensors holding NaN or infinite values (others are omitted).
  public var nonFinite: [NonFinite]
  public var size: Int
}

/// Hashes a file and scans its floats in one read: the file is walked in windows that flow
/// through a pipeline of serial queues (whole-file hash, data hash, per-tensor hashes), the
/// non-finite scan shared between the two lighter streams. Pages are released
/// behind the walk, so the resident set stays at a few windows whatever the file size.
public enum Scanner {
  public static let windowBytes = 64 << 20

  /// Scans `file`.
  ///
  /// - Parameters:
  ///   - perTensor: also compute a SHA-256 per tensor.
  ///   - scanNonFinite: count NaN/Inf per float tensor.
  public static func scan(_ file: SafeTensorsFile, perTensor: Bool, scanNonFinite: Bool = true) -> ScanResult {
    scan(file, perTensor: perTensor, scanNonFinite: scanNonFinite, windowBytes: windowBytes)
  }

  /// The scan with a chosen window size, so tests can put window edges inside small files;
  /// at least 8 bytes, so that an element spans at most two windows.
  static func scan(_ file: SafeTensorsFile, perTensor: Bool, scanNonFinite: Bool, windowBytes: Int) -> ScanResult {
    precondition(windowBytes >= 8, "scan windows must hold the widest element")
    final class State: @unchecked Sendable {
      // Each field is touched by one serial queue only (file: fileHash and, without per-tensor
      // hashes, counts0; data: dataHash and counts0 or counts1; tensors: tensorHash,
      // tensorDigests, counts1), and read after all of them have drained.
      var fileHash = StreamingSHA256()
      var dataHash = StreamingSHA256()
      var tensorHash = StreamingSHA256()
      var tensorDigests: [String: String] = [:]
      var counts0: [Int: (nan: Int, inf: Int)] = [:]
      var counts1: [Int: (nan: Int, inf: Int)] = [:]
    }
    let state = State()
    let size = file.file.size
    let dataStart = file.dataStart
    let tensors = file.tensors
    // True when `t` was completed before file offset `pos`. An empty tensor sitting exactly at
    // `pos` is not: it is finished (its digest taken) when the walk reaches it.
    @Sendable func isDone(_ t: TensorInfo, before pos: Int) -> Bool {
      let end = dataStart + t.end
      return end < pos || (end == pos && t.byteCount > 0)
    }
    // Counts NaN/Inf in the elements whose first byte lies in file offsets a..<b: every
    // element belongs to exactly one such range, wherever window edges fall, and one that
    // straddles an edge is read whole (the mapping covers the file).
    @Sendable func countNonFinite(from a: Int, to b: Int, startingAt first: Int, into counts: inout [Int: (nan: Int, inf: Int)]) {
      var t = first
      while t < tensors.count {
        let info = tensors[t]
        let tBegin = dataStart + info.begin
        if tBegin >= b { break }
        defer { t += 1 }
        guard info.dtype.isFloat, dataStart + info.end > a else { continue }
        let elementSize = info.dtype.size
        let k0 = max(0, (a - tBegin + elementSize - 1) / elementSize)
        let k1 = min(info.byteCount / elementSize, (b - tBegin + elementSize - 1) / elementSize)
        guard k1 > k0 else { continue }
        let r = file.file.withBytes((tBegin + k0 * elementSize)..<(tBegin + k1 * elementSize)) {
          Codec.countNonFinite(info.dtype, $0.baseAddress!, count: k1 - k0)
        }
        if r.nan + r.inf > 0 {
          let old = counts[t] ?? (0, 0)
          counts[t] = (old.nan + r.nan, old.inf + r.inf)
        }
      }
    }
    // A pipeline over windows: one serial queue per digest stream, so while one stream is
    // still on window k another can start window k + 1 and both cores stay busy; each stream
    // sees the windows in order. At most three windows are mapped at once; a window's pages
    // are released when every stream is done with it.
    let fileQueue = DispatchQueue(label: "mixlab.scan.file")
    let dataQueue = DispatchQueue(label: "mixlab.scan.data")
    let tensorQueue = DispatchQueue(label: "mixlab.scan.tensors")
    let doneQueue = DispatchQueue(label: "mixlab.scan.done")
    let inFlight = DispatchSemaphore(value: 3)
    var windowStart = 0
    // Tensors overlapping a window, found by walking forward.
    var firstTensor = 0
    let tensorState = UncheckedSendable(Box((t: 0, pos: 0)))
    while windowStart < size {
      let windowEnd = min(size, windowStart + windowBytes)
      inFlight.wait()
      file.file.willNeed(windowEnd..<min(size, windowEnd + windowBytes))
      while firstTensor < tensors.count, isDone(tensors[firstTensor], before: windowStart) {
        firstTensor += 1
      }
      let lo = windowStart
      let first = firstTensor
      // The scan is split between the two lighter streams.
      let split = lo + (windowEnd - lo) / 2
      let group = DispatchGroup()
      fileQueue.async(group: group) {
        file.file.withBytes(lo..<windowEnd) { state.fileHash.update($0) }
        if scanNonFinite && !perTensor { countNonFinite(from: lo, to: split, startingAt: first, into: &state.counts0) }
      }
      dataQueue.async(group: group) {
        let pos = max(lo, dataStart)
        if pos < windowEnd { file.file.withBytes(pos..<windowEnd) { state.dataHash.update($0) } }
        if scanNonFinite {
          if perTensor {
            countNonFinite(from: lo, to: split, startingAt: first, into: &state.counts0)
          } else {
            countNonFinite(from: split, to: windowEnd, startingAt: first, into: &state.counts1)
          }
        }
      }
      if perTensor {
        tensorQueue.async(group: group) {
          let walk = tensorState.value
          if walk.value.t < first { walk.value = (first, walk.value.pos) }
          var t = walk.value.t
          var pos = max(lo, dataStart, walk.value.pos)
          file.file.withBytes(lo..<windowEnd) { window in
            while pos < windowEnd, t < tensors.count {
              let info = tensors[t]
              let tEnd = dataStart + info.end
              if isDone(info, before: pos) {
                t += 1
                continue
              }
              let e = min(windowEnd, tEnd)
              if e > pos { state.tensorHash.update(UnsafeRawBufferPointer(rebasing: window[(pos - lo)..<(e - lo)])) }
              if e < tEnd {
                pos = e
                break  // continues in the next window
              }
              state.tensorDigests[info.name] = state.tensorHash.finalizeHex()
              state.tensorHash = StreamingSHA256()
              t += 1
              pos = e
            }
          }
          walk.value = (t, pos)
          if scanNonFinite { countNonFinite(from: split, to: windowEnd, startingAt: first, into: &state.counts1) }
        }
      }
      group.notify(queue: doneQueue) {
        file.file.release(lo..<windowEnd)
        inFlight.signal()
      }
      windowStart = windowEnd
    }
    FaultInjection.reach(.hashing)  // test hook: digests in flight
    fileQueue.sync {}
    dataQueue.sync {}
    tensorQueue.sync {}
    doneQueue.sync {}
    doneQueue.sync {}
    if perTensor {
      // Empty tensors at the very end of the data (or an all-empty file) still get digests.
      for info in tensors where state.tensorDigests[info.name] == nil {
        state.tensorDigests[info.name] = StreamingSHA256().finalizeHex()
      }
    }
    var counts = state.counts0
    for (t, c) in state.counts1 {
      let old = counts[t] ?? (0, 0)
      counts[t] = (old.nan + c.nan, old.inf + c.inf)
    }
    let nonFinite = counts.map { NonFinite(key: tensors[$0.key].name, nan: $0.value.nan, inf: $0.value.inf) }
      .sorted { $0.key < $1.key }
    return ScanResult(
      sha256: state.fileHash.finalizeHex(), tensorDataSHA256: state.dataHash.finalizeHex(),
      tensorSHA256: perTensor ? state.tensorDigests : nil, nonFinite: nonFinite, size: size)
  }
}

/// A mutable cell for state carried from one pipeline job to the next on a serial queue.
final class Box<T>: @unchecked Sendable {
  // Sendable: touched only by jobs of one serial queue.
  var value: T
  init(_ value: T) { self.value = value }
}
