import Foundation
import SafeTensors

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The hashes of one safetensors file.
public struct FileHashes: Sendable, Equatable {
  /// SHA-256 of the whole file.
  public var sha256: String
  /// SHA-256 of the bytes after the header.
  public var tensorDataSHA256: String
  /// Tensor name → SHA-256 of its bytes.
  public var tensorSHA256: [String: String]
  /// Tensors holding NaN or infinite values (found in the same read).
  public var nonFinite: [NonFinite]
  /// True when the values came from the cache and no byte of the file was read.
  public var fromCache: Bool

  public init(
    sha256: String, tensorDataSHA256: String, tensorSHA256: [String: String], nonFinite: [NonFinite] = [], fromCache: Bool
  ) {
    self.sha256 = sha256
    self.tensorDataSHA256 = tensorDataSHA256
    self.tensorSHA256 = tensorSHA256
    self.nonFinite = nonFinite
    self.fromCache = fromCache
  }
}

/// Hashes safetensors files, remembering results in the index so an unchanged multi-GB
/// model is not read again.
///
/// An entry is keyed by the file's resolved path and trusted only while device, inode, size,
/// modification time and status-change time (nanoseconds) are all unchanged. ctime cannot be
/// set by user programs, so even a rewrite that restores the old mtime invalidates the entry.
public struct HashCache: Sendable {
  public let index: IndexDB

  public init(index: IndexDB) {
    self.index = index
  }

  /// The whole-file, tensor-data and per-tensor SHA-256 of `file`.
  ///
  /// On a cache miss, or when `verify` is true, the file is read once (whole-file and
  /// per-tensor hashes in the same pass) and the cache updated.
  ///
  /// - Parameters:
  ///   - file: an opened file; its identity (device, inode, size, times) was taken when it
  ///     was opened, so it matches the bytes that are mapped.
  ///   - verify: ignore the cache and read the file.
  /// - Throws: `ProvenanceError.fileStatus` when the path cannot be resolved or the file
  ///   changed while it was read, `.database` on index errors.
  public func hashes(of file: SafeTensorsFile, verify: Bool = false) throws -> FileHashes {
    let mapped = file.file
    let key = try HashCache.resolvedPath(file.path)
    if !verify,
      let hit = try index.lookup(
        path: key, device: mapped.device, inode: mapped.inode, size: mapped.size, mtimeNs: mapped.mtimeNanoseconds,
        ctimeNs: mapped.ctimeNanoseconds),
      let tensors = hit.tensorSHA256, let nonFinite = hit.nonFinite
    {
      return FileHashes(
        sha256: hit.sha256, tensorDataSHA256: hit.tensorDataSHA256, tensorSHA256: tensors, nonFinite: nonFinite, fromCache: true)
    }
    let scan = Scanner.scan(file, perTensor: true, scanNonFinite: true)
    // If the file was written to or replaced while we read it, the digests describe no
    // version of it: refuse rather than cache them.
    let now = try HashCache.identity(of: key)
    let before = (mapped.device, mapped.inode, mapped.size, mapped.mtimeNanoseconds, mapped.ctimeNanoseconds)
    guard now == before else {
      throw ProvenanceError.changedWhileHashing(path: file.path)
    }
    let tensors = scan.tensorSHA256 ?? [:]
    try index.store(
      CachedHash(
        path: key, device: mapped.device, inode: mapped.inode, size: mapped.size, mtimeNs: mapped.mtimeNanoseconds,
        ctimeNs: mapped.ctimeNanoseconds, sha256: scan.sha256, tensorDataSHA256: scan.tensorDataSHA256,
        tensorSHA256: tensors, nonFinite: scan.nonFinite))
    return FileHashes(
      sha256: scan.sha256, tensorDataSHA256: scan.tensorDataSHA256, tensorSHA256: tensors, nonFinite: scan.nonFinite,
      fromCache: false)
  }

  /// Records hashes computed elsewhere (a file mixlab just wrote, hashed while writing) so the
  /// next run does not read it again.
  public func remember(_ file: SafeTensorsFile, hashes: FileHashes) throws {
    let mapped = file.file
    try index.store(
      CachedHash(
        path: try HashCache.resolvedPath(file.path), device: mapped.device, inode: mapped.inode, size: mapped.size,
        mtimeNs: mapped.mtimeNanoseconds, ctimeNs: mapped.ctimeNanoseconds, sha256: hashes.sha256,
        tensorDataSHA256: hashes.tensorDataSHA256, tensorSHA256: hashes.tensorSHA256, nonFinite: hashes.nonFinite))
  }

  /// The cached hashes of `file` when the cache holds a valid entry, else nil; reads nothing.
  public func cachedHashes(of file: SafeTensorsFile) throws -> FileHashes? {
    let mapped = file.file
    let key = try HashCache.resolvedPath(file.path)
    guard
      let hit = try index.lookup(
        path: key, device: mapped.device, inode: mapped.inode, size: mapped.size, mtimeNs: mapped.mtimeNanoseconds,
        ctimeNs: mapped.ctimeNanoseconds),
      let tensors = hit.tensorSHA256, let nonFinite = hit.nonFinite
    else { return nil }
    return FileHashes(
      sha256: hit.sha256, tensorDataSHA256: hit.tensorDataSHA256, tensorSHA256: tensors, nonFinite: nonFinite, fromCache: true)
  }

  /// `path` made absolute with symbolic links resolved, so one file has one cache entry.
  static func resolvedPath(_ path: String) throws -> String {
    guard let resolved = realpath(path, nil) else {
      throw ProvenanceError.fileStatus(path: path, reason: String(cString: strerror(errno)))
    }
    defer { free(resolved) }
    return String(cString: resolved)
  }

  /// (device, inode, size, mtime ns, ctime ns) of `path` now.
  static func identity(of path: String) throws -> (UInt64, UInt64, Int, Int64, Int64) {
    var st = stat()
    guard stat(path, &st) == 0 else {
      throw ProvenanceError.fileStatus(path: path, reason: String(cString: strerror(errno)))
    }
    #if canImport(Glibc)
      let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
      let ctime = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
    #else
      let mtime = Int64(st.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(st.st_mtimespec.tv_nsec)
      let ctime = Int64(st.st_ctimespec.tv_sec) * 1_000_000_000 + Int64(st.st_ctimespec.tv_nsec)
    #endif
    return (UInt64(st.st_dev), UInt64(st.st_ino), Int(st.st_size), mtime, ctime)
  }
}
