internal import CShims
import Dispatch
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A tensor to be written: name, dtype, shape.
public struct TensorSpec: Sendable, Hashable, Codable {
  public var name: String
  public var dtype: DType
  public var shape: [Int]

  public init(name: String, dtype: DType, shape: [Int]) {
    self.name = name
    self.dtype = dtype
    self.shape = shape
  }

  public var elementCount: Int { shape.reduce(1, *) }
  public var byteCount: Int { elementCount * dtype.size }
}

/// What a completed write produced; every hash was computed from the bytes as they were
/// written, in the same pass.
public struct WriteResult: Sendable, Codable, Equatable {
  public var path: String
  public var size: Int
  public var headerLength: Int
  public var sha256: String
  public var tensorDataSHA256: String
  /// SHA-256 of each tensor's bytes, by name.
  public var tensorSHA256: [String: String]
}

/// The canonical header and tensor order shared by writer and verifier.
public enum CanonicalLayout {
  /// The reference order: larger element types first (keeps alignment), then name by bytes.
  public static func order(_ specs: [TensorSpec]) -> [TensorSpec] {
    specs.sorted { a, b in
      if a.dtype.referenceRank != b.dtype.referenceRank { return a.dtype.referenceRank > b.dtype.referenceRank }
      return Array(a.name.utf8).lexicographicallyPrecedes(Array(b.name.utf8))
    }
  }

  /// The header bytes (space-padded to a multiple of 8) and the tensors with their offsets.
  ///
  /// Metadata keys are sorted; no timestamps or paths are added, so equal inputs give equal
  /// bytes.
  public static func header(for specs: [TensorSpec], metadata: [String: String]) -> (bytes: [UInt8], tensors: [TensorInfo]) {
    let ordered = order(specs)
    var out: [UInt8] = [UInt8(ascii: "{")]
    var first = true
    if !metadata.isEmpty {
      out.append(contentsOf: Array("\"__metadata__\":{".utf8))
      let keys = metadata.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
      for (i, k) in keys.enumerated() {
        if i > 0 { out.append(UInt8(ascii: ",")) }
        JSONText.appendQuoted(k, to: &out)
        out.append(UInt8(ascii: ":"))
        JSONText.appendQuoted(metadata[k]!, to: &out)
      }
      out.append(UInt8(ascii: "}"))
      first = false
    }
    var offset = 0
    var infos: [TensorInfo] = []
    infos.reserveCapacity(ordered.count)
    for s in ordered {
      if !first { out.append(UInt8(ascii: ",")) }
      first = false
      JSONText.appendQuoted(s.name, to: &out)
      let end = offset + s.byteCount
      let shape = s.shape.map(String.init).joined(separator: ",")
      out.append(
        contentsOf: Array(":{\"dtype\":\"\(s.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}".utf8))
      infos.append(TensorInfo(name: s.name, dtype: s.dtype, shape: s.shape, begin: offset, end: end))
      offset = end
    }
    out.append(UInt8(ascii: "}"))
    let pad = (8 - out.count % 8) % 8
    out.append(contentsOf: [UInt8](repeating: 0x20, count: pad))
    return (out, infos)
  }
}

/// Writes one safetensors file canonically and durably, hashing as it writes.
///
/// Tensors must be supplied in `tensors` order (the canonical order), each as one or more
/// `append` calls whose lengths add up to the tensor's byte count. Bytes go to a temporary
/// file in the destination folder; hashing (whole file, data section, each tensor) and writing
/// happen on a pipeline of background queues while the caller computes the next chunk, and writeback starts as data arrives, so the final
/// `fsync` is short. `finish` renames the file into place only when it is complete; if the
/// writer is dropped unfinished, the temporary file is removed and nothing is left behind.
public final class SafeTensorsWriter: @unchecked Sendable {
  // Sendable: the caller's side (`append`, `finish`) is used from one thread at a time;
  // everything the background queue touches lives in `sink`.
  public let path: String
  public let tensors: [TensorInfo]
  public let headerLength: Int
  public var totalSize: Int { 8 + headerLength + (tensors.last?.end ?? 0) }

  private let tempPath: String
  private var fd: Int32
  // Queued jobs retain the sink, never the writer, so the writer's deinit always runs on the
  // caller's thread and can wait for them (on a queue, waiting for itself would deadlock).
  private let sink: Sink
  private var finished = false

  private static let bufferSize = 8 << 20
  private var buffer: UnsafeMutableRawBufferPointer
  private var bufferFill = 0
  private var bufferFileOffset = 0

  // Position of the caller in the canonical stream.
  private var cursorTensor = 0
  private var cursorInTensor = 0

  /// Creates the temporary file and writes the header.
  ///
  /// - Parameters:
  ///   - path: final location; replaced atomically on `finish`.
  ///   - specs: the tensors, in any order (they are put in canonical order).
  ///   - metadata: `__metadata__` entries.
  ///   - hashTensors: also hash the data section and each tensor (false: whole file only, as
  ///     synthetic models need; the result then holds an empty data digest and no tensor digests).
  /// - Throws: `SafeTensorsError.writeFailed` when the folder is not writable.
  public init(path: String, specs: [TensorSpec], metadata: [String: String], hashTensors: Bool = true) throws(SafeTensorsError) {
    self.path = path
    let (header, infos) = CanonicalLayout.header(for: specs, metadata: metadata)
    tensors = infos
    headerLength = header.count
    let dir = (path as NSString).deletingLastPathComponent
    let base = (path as NSString).lastPathComponent
    tempPath = (dir.isEmpty ? "." : dir) + "/.\(base).mixlab-tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      throw .writeFailed(
        path: path, reason: "cannot create a temporary file in \(dir.isEmpty ? "." : dir): \(String(cString: strerror(errno)))")
    }
    sink = Sink(fd: fd, tensors: infos, dataStart: 8 + header.count, hashTensors: hashTensors)
    // Full, aligned 8 MiB buffers bypass the page cache: a durable write then costs the disk's
    // time, not a copy into the cache plus writeback throttling (measured 1.8 s instead of
    // 7.8 s for 2 GiB here). The header and the last partial buffer go through `fd`.
    sink.directFD = mixlab_open_direct(tempPath)
    buffer = .allocate(byteCount: SafeTensorsWriter.bufferSize, alignment: 4096)
    var prefix = [UInt8](repeating: 0, count: 8)
    withUnsafeBytes(of: UInt64(header.count).littleEndian) { for i in 0..<8 { prefix[i] = $0[i] } }
    // The header goes through the same path as data so the file hash covers it.
    prefix.withUnsafeBytes { appendRaw($0) }
    header.withUnsafeBytes { appendRaw($0) }
    skipEmptyTensors()
  }

  deinit {
    if !finished {
      sink.drain()
      sink.closeDirect()
      if fd >= 0 { close(fd) }
      unlink(tempPath)
    }
    buffer.deallocate()
  }

  /// The tensor the next `append` belongs to, or nil when all data has been supplied.
  public var nextTensor: TensorInfo? { cursorTensor < tensors.count ? tensors[cursorTensor] : nil }

  /// Appends bytes of the current tensor (possibly spanning into following tensors).
  ///
  /// - Throws: `SafeTensorsError.writerMisuse` when more bytes arrive than the layout
  ///   holds, or `.writeFailed` when an earlier background write failed.
  public func append(_ bytes: UnsafeRawBufferPointer) throws(SafeTensorsError) {
    if let f = sink.currentFailure() { throw .writeFailed(path: path, reason: f) }
    var remaining = bytes.count
    var at = 0
    while remaining > 0 {
      guard cursorTensor < tensors.count else {
        throw .writerMisuse(path: path, reason: "more tensor bytes than the header describes")
      }
      let t = tensors[cursorTensor]
      let n = min(remaining, t.byteCount - cursorInTensor)
      let chunk = UnsafeRawBufferPointer(rebasing: bytes[at..<(at + n)])
      if FaultInjection.active {
        appendReachingMiddle(chunk, at: 8 + headerLength + t.begin + cursorInTensor)
      } else {
        appendRaw(chunk)
      }
      at += n
      remaining -= n
      cursorInTensor += n
      if cursorInTensor == t.byteCount {
        cursorTensor += 1
        cursorInTensor = 0
        skipEmptyTensors()
      }
    }
  }

  /// Test hook (docs/reliability.md): reaches `.midTensor` when the file's middle byte falls
  /// inside `chunk`, with the first half written to the temporary file, so a kill there
  /// leaves a partial file on disk.
  private func appendReachingMiddle(_ chunk: UnsafeRawBufferPointer, at position: Int) {
    let split = totalSize / 2 - position
    guard split > 0, split < chunk.count else { return appendRaw(chunk) }
    appendRaw(UnsafeRawBufferPointer(rebasing: chunk[0..<split]))
    flushBuffer()
    sink.drain()
    FaultInjection.reach(.midTensor)
    appendRaw(UnsafeRawBufferPointer(rebasing: chunk[split...]))
  }

  private func skipEmptyTensors() {
    while cursorTensor < tensors.count, tensors[cursorTensor].byteCount == 0 { cursorTensor += 1 }
  }

  private func appendRaw(_ bytes: UnsafeRawBufferPointer) {
    var at = 0
    while at < bytes.count {
      let n = min(bytes.count - at, buffer.count - bufferFill)
      (buffer.baseAddress! + bufferFill).copyMemory(from: bytes.baseAddress! + at, byteCount: n)
      bufferFill += n
      at += n
      if bufferFill == buffer.count { flushBuffer() }
    }
  }

  private func flushBuffer() {
    guard bufferFill > 0 else { return }
    let full = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<bufferFill])
    let owned = buffer
    let offset = bufferFileOffset
    bufferFileOffset += bufferFill
    bufferFill = 0
    buffer = sink.takeBuffer(byteCount: SafeTensorsWriter.bufferSize)
    sink.submit(UnsafeRawBufferPointer(full), owned: owned, fileOffset: offset)
  }

  /// Flushes, verifies that every tensor was supplied, fsyncs, renames into place and
  /// fsyncs the folder.
  ///
  /// - Parameter check: called once the temporary file is complete and fsynced, just before
  ///   the rename; a returned reason abandons the file (e.g. an input changed while it was
  ///   read, so the bytes describe no version of it).
  /// - Returns: sizes and hashes of the file as written.
  /// - Throws: `SafeTensorsError.writeFailed` (the temporary file is removed),
  ///   `.abandoned` when `check` refused the file, or `.writerMisuse` when tensors are missing.
  @discardableResult
  public func finish(check: (() -> String?)? = nil) throws(SafeTensorsError) -> WriteResult {
    guard cursorTensor == tensors.count else {
      throw .writerMisuse(path: path, reason: "finished before tensor \"\(tensors[cursorTensor].name)\" was complete")
    }
    flushBuffer()
    sink.drain()
    sink.closeDirect()
    if let f = sink.currentFailure() { throw .writeFailed(path: path, reason: f) }
    if fdatasync(fd) != 0 { throw .writeFailed(path: path, reason: "fsync: \(String(cString: strerror(errno)))") }
    close(fd)
    fd = -1
    if let reason = check?() { throw .abandoned(path: path, reason: reason) }  // deinit removes the file
    FaultInjection.reach(.beforeRename)  // test hook: complete and fsynced, not renamed
    if rename(tempPath, path) != 0 {
      throw .writeFailed(path: path, reason: "rename into place: \(String(cString: strerror(errno)))")
    }
    finished = true
    SafeTensorsWriter.syncDirectory(of: path)
    let (fileDigest, dataDigest, tensorDigests) = sink.finalize()
    var digests: [String: String] = [:]
    for (t, d) in zip(tensors, tensorDigests) { digests[t.name] = d }
    return WriteResult(
      path: path, size: totalSize, headerLength: headerLength, sha256: fileDigest, tensorDataSHA256: dataDigest,
      tensorSHA256: digests)
  }

  /// The background side of a writer: hashes and writes the buffers handed to it.
  private final class Sink: @unchecked Sendable {
    // Sendable: each hash is touched only by jobs on its own serial queue, the write position
    // and descriptors only on the write queue (and by `finalize`/`closeDirect` after `drain`);
    // `failure` and `freeBuffers` are shared with the caller's thread and guarded by `lock`.
    private let fd: Int32
    /// The same file opened with O_DIRECT, or -1; touched only on the write queue
    /// (and once by the writer before any job and after the last).
    var directFD: Int32 = -1

    func closeDirect() {
      if directFD >= 0 {
        close(directFD)
        directFD = -1
      }
    }
    private let tensors: [TensorInfo]
    private let dataStart: Int
    private let inFlight = DispatchSemaphore(value: 4)
    private let lock = NSLock()
    private var failure: String?
    private var freeBuffers: [UnsafeMutableRawBufferPointer] = []

    private var fileHash = StreamingSHA256()
    private var dataHash = StreamingSHA256()
    private var tensorHash = StreamingSHA256()
    private var hashTensor = 0
    private var hashInTensor = 0
    private var tensorDigests: [String] = []
    private var writtenBytes = 0
    private var lastSyncStart = 0

    let hashTensors: Bool

    init(fd: Int32, tensors: [TensorInfo], dataStart: Int, hashTensors: Bool) {
      self.hashTensors = hashTensors
      self.fd = fd
      self.tensors = tensors
      self.dataStart = dataStart
      tensorDigests.reserveCapacity(tensors.count)
    }

    deinit {
      for b in freeBuffers { b.deallocate() }
    }

    func currentFailure() -> String? {
      lock.lock()
      defer { lock.unlock() }
      return failure
    }

    /// A free buffer for the caller to fill; waits while four are already in the pipeline.
    func takeBuffer(byteCount: Int) -> UnsafeMutableRawBufferPointer {
      inFlight.wait()
      lock.lock()
      defer { lock.unlock() }
      return freeBuffers.popLast() ?? .allocate(byteCount: byteCount, alignment: 4096)
    }

    func returnBuffer(_ b: UnsafeMutableRawBufferPointer) {
      lock.lock()
      freeBuffers.append(b)
      lock.unlock()
      inFlight.signal()
    }

    // Four serial queues form a pipeline: each buffer is hashed three ways and written
    // concurrently, and each queue keeps buffer order, so buffer k + 1's file hash can run
    // while buffer k is still being written.
    private let fileQueue = DispatchQueue(label: "mixlab.writer.file-hash")
    private let dataQueue = DispatchQueue(label: "mixlab.writer.data-hash")
    private let tensorQueue = DispatchQueue(label: "mixlab.writer.tensor-hash")
    private let writeQueue = DispatchQueue(label: "mixlab.writer.write")

    /// Hands a filled buffer to the pipeline; it returns to the free list when every stage is
    /// done with it.
    func submit(_ chunk: UnsafeRawBufferPointer, owned: UnsafeMutableRawBufferPointer, fileOffset: Int) {
      let shared = UncheckedSendable((chunk, owned))
      let group = DispatchGroup()
      let skip = max(0, dataStart - fileOffset)
      fileQueue.async(group: group) { self.fileHash.update(shared.value.0) }
      if hashTensors && skip < chunk.count {
        dataQueue.async(group: group) { self.dataHash.update(UnsafeRawBufferPointer(rebasing: shared.value.0[skip...])) }
        tensorQueue.async(group: group) { self.hashTensorBytes(UnsafeRawBufferPointer(rebasing: shared.value.0[skip...])) }
      }
      writeQueue.async(group: group) { self.write(shared.value.0, fileOffset: fileOffset) }
      group.notify(queue: writeQueue) { self.returnBuffer(shared.value.1) }
    }

    /// Waits until every submitted buffer is hashed, written and returned.
    func drain() {
      fileQueue.sync {}
      dataQueue.sync {}
      tensorQueue.sync {}
      writeQueue.sync {}
      // The notify blocks of the last buffers run on the write queue after their stages.
      writeQueue.sync {}
    }

    /// Runs on the write queue.
    private func write(_ chunk: UnsafeRawBufferPointer, fileOffset: Int) {
      if currentFailure() != nil { return }
      var written = 0
      var direct =
        directFD >= 0 && chunk.count % 4096 == 0 && fileOffset % 4096 == 0
        && Int(bitPattern: chunk.baseAddress) % 4096 == 0
      while written < chunk.count {
        let target = direct ? directFD : fd
        var r = pwrite(target, chunk.baseAddress! + written, chunk.count - written, off_t(fileOffset + written))
        if FaultInjection.simulateDiskFull {  // test hook: a full disk
          r = -1
          errno = ENOSPC
        }
        if r < 0 && direct && errno != EINTR && errno != ENOSPC {
          // The file system refuses direct I/O for this write: use the page cache from now on.
          closeDirect()
          direct = false
          continue
        }
        if r >= 0 && direct && r < chunk.count - written { direct = false }
        if r < 0 {
          if errno == EINTR { continue }
          let reason =
            errno == ENOSPC
            ? "the disk is full (free space on the file system that holds it, then run again)" : String(cString: strerror(errno))
          lock.lock()
          failure = failure ?? reason
          lock.unlock()
          return
        }
        written += r
      }
      writtenBytes = fileOffset + chunk.count
      // Start writeback of what has accumulated so the final fsync has little left to do.
      if writtenBytes - lastSyncStart >= 64 << 20 {
        _ = mixlab_start_writeback(fd, Int64(lastSyncStart), Int64(writtenBytes - lastSyncStart))
        lastSyncStart = writtenBytes
      }
    }

    /// Runs on the tensor-hash queue: feeds the per-tensor digests.
    private func hashTensorBytes(_ bytes: UnsafeRawBufferPointer) {
      var at = 0
      while at < bytes.count {
        while hashTensor < tensors.count, tensors[hashTensor].byteCount == hashInTensor {
          tensorDigests.append(tensorHash.finalizeHex())
          tensorHash = StreamingSHA256()
          hashTensor += 1
          hashInTensor = 0
        }
        guard hashTensor < tensors.count else { return }
        let n = min(bytes.count - at, tensors[hashTensor].byteCount - hashInTensor)
        tensorHash.update(UnsafeRawBufferPointer(rebasing: bytes[at..<(at + n)]))
        at += n
        hashInTensor += n
      }
    }

    /// The digests, once every buffer has been consumed (trailing and empty tensors closed).
    func finalize() -> (file: String, data: String, tensors: [String]) {
      while hashTensor < tensors.count, tensors[hashTensor].byteCount == hashInTensor {
        tensorDigests.append(tensorHash.finalizeHex())
        tensorHash = StreamingSHA256()
        hashTensor += 1
        hashInTensor = 0
      }
      return (fileHash.finalizeHex(), hashTensors ? dataHash.finalizeHex() : "", hashTensors ? tensorDigests : [])
    }
  }

  /// fsyncs the folder holding `path` so a rename survives a power loss.
  public static func syncDirectory(of path: String) {
    let dir = (path as NSString).deletingLastPathComponent
    let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 {
      _ = fsync(dfd)
      close(dfd)
    }
  }
}
