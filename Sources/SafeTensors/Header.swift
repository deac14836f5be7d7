/// One tensor's entry in a safetensors header.
public struct TensorInfo: Sendable, Hashable, Codable {
  public var name: String
  public var dtype: DType
  public var shape: [Int]
  /// Byte range relative to the start of the data section.
  public var begin: Int
  public var end: Int

  public init(name: String, dtype: DType, shape: [Int], begin: Int, end: Int) {
    self.name = name
    self.dtype = dtype
    self.shape = shape
    self.begin = begin
    self.end = end
  }

  /// Number of elements (1 for a scalar of shape `[]`).
  public var elementCount: Int { shape.reduce(1, *) }
  public var byteCount: Int { end - begin }
  /// Length of the first dimension, the unit in which element-wise work is chunked.
  public var rowCount: Int { shape.first ?? 1 }
  /// Elements per row (the product of the trailing dimensions).
  ///
  /// The reader checks that the whole product fits in `Int`, but a tensor with no rows may
  /// still have trailing dimensions whose product does not (`[0, 2^62, 4]` is valid); it has
  /// no elements to chunk, so its row length is 0 rather than a trap.
  public var rowLength: Int {
    var n = 1
    for d in shape.dropFirst() {
      let (p, overflow) = n.multipliedReportingOverflow(by: d)
      if overflow { return 0 }
      n = p
    }
    return n
  }
}

/// A parsed and validated header.
public struct SafeTensorsHeader: Sendable {
  /// Tensors in data order (ascending offsets).
  public var tensors: [TensorInfo]
  /// `__metadata__`, string to string.
  public var metadata: [String: String]

  /// Parses and validates a header against the size of the data section.
  ///
  /// Enforces the reference rules (valid UTF-8 JSON object, known dtypes, shape × dtype size
  /// equal to the byte span, offsets contiguous from 0 without gaps or overlaps, data length
  /// equal to the last offset) and also refuses duplicate keys and non-string metadata.
  ///
  /// - Parameters:
  ///   - bytes: the header text.
  ///   - dataLength: bytes after the header in the file.
  ///   - path: the file, named in errors.
  /// - Throws: `SafeTensorsError` naming the tensor or byte offset at fault.
  public static func parse(_ bytes: [UInt8], dataLength: Int, path: String) throws(SafeTensorsError) -> SafeTensorsHeader {
    if String(validating: bytes, as: UTF8.self) == nil {
      var offset = 0
      // Find the first bad byte by validating growing prefixes cheaply: decode scalars.
      var it = bytes.makeIterator()
      var decoder = UTF8()
      loop: while true {
        switch decoder.decode(&it) {
        case .scalarValue(let s): offset += UTF8.width(s)
        case .emptyInput: break loop
        case .error: break loop
        }
      }
      throw .invalidUTF8(path: path, offset: offset)
    }
    let root: JSONValue
    do {
      root = try StrictJSONParser.parse(bytes)
    } catch {
      if let key = error.duplicateKey { throw .duplicateKey(path: path, key: key, offset: error.offset) }
      throw .invalidJSON(path: path, offset: error.offset, reason: error.reason)
    }
    guard case .object(let members) = root else {
      throw .invalidJSON(path: path, offset: 0, reason: "the header must be a JSON object, found \(root.kindName)")
    }
    var metadata: [String: String] = [:]
    var tensors: [TensorInfo] = []
    tensors.reserveCapacity(members.count)
    for member in members {
      if member.key == "__metadata__" {
        guard case .object(let entries) = member.value else {
          throw .invalidMetadata(
            path: path, key: "__metadata__", reason: "must be an object of strings, found \(member.value.kindName)")
        }
        for entry in entries {
          guard case .string(let s) = entry.value else {
            throw .invalidMetadata(path: path, key: entry.key, reason: "values must be strings, found \(entry.value.kindName)")
          }
          metadata[entry.key] = s
        }
        continue
      }
      tensors.append(try parseTensor(name: member.key, value: member.value, path: path))
    }
    tensors.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
    var expected = 0
    for t in tensors {
      if t.begin != expected {
        throw .gapOrOverlap(path: path, tensor: t.name, expectedBegin: expected, begin: t.begin)
      }
      expected = t.end
    }
    if expected != dataLength {
      throw .dataLengthMismatch(path: path, headerEnd: expected, dataLength: dataLength)
    }
    return SafeTensorsHeader(tensors: tensors, metadata: metadata)
  }

  private static func parseTensor(name: String, value: JSONValue, path: String) throws(SafeTensorsError) -> TensorInfo {
    guard case .object(let fields) = value else {
      throw .invalidTensorEntry(path: path, tensor: name, reason: "entry must be an object, found \(value.kindName)")
    }
    var dtypeText: String?
    var shape: [Int]?
    var offsets: [Int]?
    for f in fields {
      switch f.key {
      case "dtype":
        guard case .string(let s) = f.value else {
          throw .invalidTensorEntry(path: path, tensor: name, reason: "dtype must be a string")
        }
        dtypeText = s
      case "shape":
        guard case .array(let dims) = f.value else {
          throw .invalidTensorEntry(path: path, tensor: name, reason: "shape must be an array of non-negative integers")
        }
        var out: [Int] = []
        for d in dims {
          guard let n = d.nonNegativeInt else {
            throw .invalidTensorEntry(path: path, tensor: name, reason: "shape must be an array of non-negative integers")
          }
          out.append(n)
        }
        shape = out
      case "data_offsets":
        guard case .array(let pair) = f.value, pair.count == 2, let b = pair[0].nonNegativeInt, let e = pair[1].nonNegativeInt
        else {
          throw .invalidTensorEntry(
            path: path, tensor: name, reason: "data_offsets must be two non-negative integers [begin, end]")
        }
        offsets = [b, e]
      default:
        throw .invalidTensorEntry(
          path: path, tensor: name, reason: "unexpected field \"\(f.key)\" (allowed: dtype, shape, data_offsets)")
      }
    }
    guard let dtypeText else { throw .invalidTensorEntry(path: path, tensor: name, reason: "missing dtype") }
    guard let shape else { throw .invalidTensorEntry(path: path, tensor: name, reason: "missing shape") }
    guard let offsets else { throw .invalidTensorEntry(path: path, tensor: name, reason: "missing data_offsets") }
    guard let dtype = DType(rawValue: dtypeText) else {
      throw .unknownDType(path: path, tensor: name, dtype: dtypeText)
    }
    guard offsets[1] >= offsets[0] else {
      throw .invalidTensorEntry(path: path, tensor: name, reason: "data_offsets end \(offsets[1]) is before begin \(offsets[0])")
    }
    var count = 1
    for d in shape {
      let (p, o) = count.multipliedReportingOverflow(by: d)
      guard !o else { throw .invalidTensorEntry(path: path, tensor: name, reason: "shape \(shape) overflows") }
      count = p
    }
    let (bytes, o) = count.multipliedReportingOverflow(by: dtype.size)
    guard !o else { throw .invalidTensorEntry(path: path, tensor: name, reason: "shape \(shape) overflows") }
    let span = offsets[1] - offsets[0]
    guard bytes == span else {
      throw .byteLengthMismatch(path: path, tensor: name, expected: bytes, actual: span)
    }
    return TensorInfo(name: name, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1])
  }
}
