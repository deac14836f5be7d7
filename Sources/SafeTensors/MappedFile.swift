internal import CShims

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A read-only memory mapping of a whole file, unmapped when the object goes away.
///
/// This is the only long-lived pointer in mixlab; it never escapes: callers get scoped
/// buffers through `withBytes`. Consumed ranges can be released (`release`) so that
/// streaming over a large file keeps the resident set small.
public final class MappedFile: @unchecked Sendable {
  // Sendable: every stored property is immutable after init and the mapping is PROT_READ;
  // madvise calls are safe from any thread.
  public let path: String
  public let size: Int
  /// Identity of the file as it was opened, for hash caches.
  public let device: UInt64
  public let inode: UInt64
  public let mtimeNanoseconds: Int64
  public let ctimeNanoseconds: Int64
  private let base: UnsafeRawPointer?
  private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

  /// Maps `path` read-only.
  ///
  /// - Throws: `SafeTensorsError.cannotOpen` with the system's reason.
  public init(path: String) throws(SafeTensorsError) {
    self.path = path
    // O_NONBLOCK: a FIFO given as a model path must be refused below, not block forever.
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
    guard (st.st_mode & S_IFMT) == S_IFREG else { throw .cannotOpen(path: path, reason: "not a regular file") }
    size = Int(st.st_size)
    device = UInt64(st.st_dev)
    inode = UInt64(st.st_ino)
    #if canImport(Glibc)
      mtimeNanoseconds = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
      ctimeNanoseconds = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
    #else
      mtimeNanoseconds = Int64(st.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(st.st_mtimespec.tv_nsec)
      ctimeNanoseconds = Int64(st.st_ctimespec.tv_sec) * 1_000_000_000 + Int64(st.st_ctimespec.tv_nsec)
    #endif
    if size == 0 {
      base = nil
      return
    }
    guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
      throw .cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
    }
    base = UnsafeRawPointer(p)
  }

  deinit {
    if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
  }

  /// Calls `body` with the bytes of `range` (clamped to the file).
  public func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    let lo = max(0, min(range.lowerBound, size))
    let hi = max(lo, min(range.upperBound, size))
    guard let base, hi > lo else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
    return try body(UnsafeRawBufferPointer(start: base + lo, count: hi - lo))
  }

  /// Drops the resident pages fully inside `range`; the data stays in the page cache and is
  /// read again on next access, so this only bounds memory, never changes results.
  public func release(_ range: Range<Int>) {
    guard let base else { return }
    let page = MappedFile.pageSize
    let lo = (max(0, range.lowerBound) + page - 1) / page * page
    let hi = min(size, range.upperBound) / page * page
    guard hi > lo else { return }
    _ = madvise(UnsafeMutableRawPointer(mutating: base + lo), hi - lo, Int32(MADV_DONTNEED))
  }

  /// Asks the kernel to start reading `range` ahead of use.
  public func willNeed(_ range: Range<Int>) {
    guard let base else { return }
    let page = MappedFile.pageSize
    let lo = max(0, range.lowerBound) / page * page
    let hi = min(size, range.upperBound)
    guard hi > lo else { return }
    _ = madvise(UnsafeMutableRawPointer(mutating: base + lo), hi - lo, Int32(MADV_WILLNEED))
  }
}

/// Resident memory of this process, for records and benchmarks.
public enum ProcessMemory {
  /// Peak resident set size in bytes (VmHWM), 0 where unknown.
  public static var peakResidentBytes: Int { Int(mixlab_peak_rss_bytes()) }
  /// Current resident set size in bytes (VmRSS), 0 where unknown.
  public static var currentResidentBytes: Int { Int(mixlab_current_rss_bytes()) }
}
