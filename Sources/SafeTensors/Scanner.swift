import Dispatch

/// Non-finite element counts of one tensor.
public struct NonFinite: Sendable, Codable, Hashable {
  public var key: String
  public var nan: Int
  public var inf: Int
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

/// Hashes a file and scans its floats in one read: the file is walked in windows; in each
/// window one thread feeds the whole-file hash while another feeds the data hash, the
/// per-tensor hashes and the non-finite scan. Pages are released behind the walk, so the
/// resident set stays at a few windows whatever the file size.
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
      // Each field is touched by exactly one of the two parts of each window, and windows
      // are processed one after the other.
      var fileHash = StreamingSHA256()
      var dataHash = StreamingSHA256()
      var tensorHash = StreamingSHA256()
      var tensorIndex = 0
      var tensorDigests: [String: String] = [:]
      var counts: [Int: (Int, Int)] = [:]
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
    var windowStart = 0
    // Tensors overlapping a window, found by walking forward.
    var firstTensor = 0
    while windowStart < size {
      let windowEnd = min(size, windowStart + windowBytes)
      file.file.willNeed(windowEnd..<min(size, windowEnd + windowBytes))
      while firstTensor < tensors.count, isDone(tensors[firstTensor], before: windowStart) {
        firstTensor += 1
      }
      let lo = windowStart
      let first = firstTensor
      DispatchQueue.concurrentPerform(iterations: 2) { part in
        file.file.withBytes(lo..<windowEnd) { window in
          if part == 0 {
            state.fileHash.update(window)
            return
          }
          var t = first
          var pos = max(lo, dataStart)
          if pos < windowEnd {
            state.dataHash.update(UnsafeRawBufferPointer(rebasing: window[(pos - lo)...]))
          }
          while pos < windowEnd, t < tensors.count {
            let info = tensors[t]
            let tBegin = dataStart + info.begin
            let tEnd = dataStart + info.end
            if isDone(info, before: pos) {
              t += 1
              continue
            }
            let s = max(pos, tBegin)
            let e = min(windowEnd, tEnd)
            if e > s {
              let slice = UnsafeRawBufferPointer(rebasing: window[(s - lo)..<(e - lo)])
              if perTensor { state.tensorHash.update(slice) }
              if scanNonFinite && info.dtype.isFloat {
                // Element boundaries: tensors start aligned to their element size relative to the
                // data section, and windows split on multiples of 8 from the file start; adjust.
                let elementSize = info.dtype.size
                let skip = (elementSize - (s - tBegin) % elementSize) % elementSize
                let usable = (slice.count - skip) / elementSize
                if usable > 0 {
                  let r = Codec.countNonFinite(info.dtype, slice.baseAddress! + skip, count: usable)
                  if r.nan + r.inf > 0 {
                    let old = state.counts[t] ?? (0, 0)
                    state.counts[t] = (old.0 + r.nan, old.1 + r.inf)
                  }
                }
                // An element split across two windows is checked whole here.
                let tail = (slice.count - skip) % elementSize
                if tail > 0 && e == windowEnd && e < tEnd {
                  let elementStart = e - tail
                  file.file.withBytes(elementStart..<(elementStart + elementSize)) { el in
                    let r = Codec.countNonFinite(info.dtype, el.baseAddress!, count: 1)
                    if r.nan + r.inf > 0 {
                      let old = state.counts[t] ?? (0, 0)
                      state.counts[t] = (old.0 + r.nan, old.1 + r.inf)
                    }
                  }
                }
              }
            }
            if e == tEnd {
              if perTensor {
                state.tensorDigests[info.name] = state.tensorHash.finalizeHex()
                state.tensorHash = StreamingSHA256()
              }
              t += 1
            }
            pos = e
            if e == windowEnd && e < tEnd { break }
          }
        }
      }
      file.file.release(lo..<windowEnd)
      windowStart = windowEnd
    }
    if perTensor {
      // Empty tensors at the very end of the data (or an all-empty file) still get digests.
      for info in tensors where state.tensorDigests[info.name] == nil {
        state.tensorDigests[info.name] = StreamingSHA256().finalizeHex()
      }
    }
    let nonFinite = state.counts.keys.sorted().map { i in
      NonFinite(key: tensors[i].name, nan: state.counts[i]!.0, inf: state.counts[i]!.1)
    }.sorted { $0.key < $1.key }
    return ScanResult(
      sha256: state.fileHash.finalizeHex(), tensorDataSHA256: state.dataHash.finalizeHex(),
      tensorSHA256: perTensor ? state.tensorDigests : nil, nonFinite: nonFinite, size: size)
  }
}
