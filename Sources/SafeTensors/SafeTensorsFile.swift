/// A strictly validated, memory-mapped safetensors file.
public final class SafeTensorsFile: Sendable {
  /// The reference implementation's limit on header size.
  public static let maxHeaderLength = 100_000_000

  public let path: String
  public let file: MappedFile
  public let header: SafeTensorsHeader
  /// Length of the JSON header in bytes (without the 8-byte length prefix).
  public let headerLength: Int
  private let index: [String: Int]

  /// Offset of the data section from the start of the file.
  public var dataStart: Int { 8 + headerLength }
  public var tensors: [TensorInfo] { header.tensors }
  public var metadata: [String: String] { header.metadata }

  /// Opens and validates `path`; no tensor data is read.
  ///
  /// - Throws: `SafeTensorsError` naming the file and the tensor or byte offset at fault.
  public init(path: String) throws(SafeTensorsError) {
    self.path = path
    file = try MappedFile(path: path)
    guard file.size >= 8 else { throw .tooShort(path: path, size: file.size) }
    let n: UInt64 = file.withBytes(0..<8) { $0.loadUnaligned(as: UInt64.self).littleEndian }
    guard n <= UInt64(SafeTensorsFile.maxHeaderLength) else { throw .headerTooLarge(path: path, length: n) }
    guard Int(n) <= file.size - 8 else { throw .headerBeyondFile(path: path, length: n, fileSize: file.size) }
    headerLength = Int(n)
    let bytes: [UInt8] = file.withBytes(8..<(8 + Int(n))) { Array($0) }
    header = try SafeTensorsHeader.parse(bytes, dataLength: file.size - 8 - Int(n), path: path)
    var index: [String: Int] = [:]
    index.reserveCapacity(header.tensors.count)
    for (i, t) in header.tensors.enumerated() { index[t.name] = i }
    self.index = index
  }

  /// The entry for `name`, or nil.
  public func info(_ name: String) -> TensorInfo? {
    index[name].map { header.tensors[$0] }
  }

  /// Byte range of `t` within the file.
  public func fileRange(of t: TensorInfo) -> Range<Int> {
    (dataStart + t.begin)..<(dataStart + t.end)
  }

  /// Calls `body` with the raw bytes of elements `elements` of `t` (all of it by default).
  public func withBytes<R>(of t: TensorInfo, elements: Range<Int>? = nil, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows
    -> R
  {
    let r = elements ?? 0..<t.elementCount
    let lo = dataStart + t.begin + r.lowerBound * t.dtype.size
    return try file.withBytes(lo..<(lo + r.count * t.dtype.size), body)
  }

  /// Decodes elements `elements` of `t` into `dst` (which holds at least `elements.count`).
  public func read(_ t: TensorInfo, elements: Range<Int>, into dst: UnsafeMutablePointer<Float>) {
    withBytes(of: t, elements: elements) { raw in
      guard let base = raw.baseAddress else { return }
      Codec.decode(t.dtype, base, count: elements.count, into: dst)
    }
  }

  /// Decodes elements `elements` of `t` into `dst` as `Double` (exact).
  public func read(_ t: TensorInfo, elements: Range<Int>, into dst: UnsafeMutablePointer<Double>) {
    withBytes(of: t, elements: elements) { raw in
      guard let base = raw.baseAddress else { return }
      Codec.decode(t.dtype, base, count: elements.count, into: dst)
    }
  }

  /// Drops the resident pages of `t` once it has been consumed.
  public func release(_ t: TensorInfo) {
    file.release(fileRange(of: t))
  }
}
