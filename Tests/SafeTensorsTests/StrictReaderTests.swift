import Foundation
import Testing

@testable import SafeTensors

/// How a malformed file must be refused.
enum Refusal: Sendable {
  /// Exactly this error (given the file's path).
  case exact(@Sendable (String) -> SafeTensorsError)
  /// `invalidJSON` at this header offset, with a reason mentioning `reason`.
  case json(offset: Int, reason: String)
}

/// One file of the malformed corpus.
struct Malformed: Sendable, CustomTestStringConvertible {
  var name: String
  /// Variants of one defect share a kind (and may share a message); different kinds must not.
  var kind: String
  var bytes: [UInt8]
  var refusal: Refusal
  var testDescription: String { name }
}

/// A tensor entry as header text.
func entry(_ name: String, _ dtype: String, _ shape: [Int], _ begin: Int, _ end: Int) -> String {
  "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(begin),\(end)]}"
}

/// Byte offset of the `n`-th occurrence (0-based) of `needle` in `text`.
func offset(of needle: String, in text: String, occurrence n: Int = 0) -> Int {
  let h = Array(text.utf8)
  let x = Array(needle.utf8)
  var seen = 0
  for i in 0...(h.count - x.count) where Array(h[i..<(i + x.count)]) == x {
    if seen == n { return i }
    seen += 1
  }
  fatalError("\(needle) not found")
}

enum Corpus {
  static let a = entry("a", "F32", [2], 0, 8)
  static let b = entry("b", "F32", [2], 8, 16)
  static let eight = [UInt8](repeating: 0x11, count: 8)
  static let sixteen = [UInt8](repeating: 0x22, count: 16)

  static func file(_ header: String, _ data: [UInt8] = [], declared: UInt64? = nil) -> [UInt8] {
    RawFile.bytes(header: header, data: data, declaredLength: declared)
  }

  static let cases: [Malformed] = {
    var c: [Malformed] = []
    func add(_ name: String, _ bytes: [UInt8], _ refusal: Refusal, kind: String? = nil) {
      c.append(Malformed(name: name, kind: kind ?? name, bytes: bytes, refusal: refusal))
    }

    // Sizes and the length prefix.
    add("empty file", [], .exact { .tooShort(path: $0, size: 0) })
    add("file shorter than 8 bytes", [1, 0, 0, 0, 0], .exact { .tooShort(path: $0, size: 5) })
    let valid = "{\(a)}"
    add(
      "header longer than the file", file(valid, eight, declared: UInt64(valid.utf8.count + 9)),
      .exact { .headerBeyondFile(path: $0, length: UInt64(valid.utf8.count + 9), fileSize: 8 + valid.utf8.count + 8) })
    add(
      "header length over 100 MB", file(valid, eight, declared: 100_000_001),
      .exact { .headerTooLarge(path: $0, length: 100_000_001) })
    add(
      "header length of 2^64 - 1", file(valid, eight, declared: UInt64.max),
      .exact { .headerTooLarge(path: $0, length: UInt64.max) })
    add(
      "header length at the 100 MB limit but past the end", file(valid, eight, declared: 100_000_000),
      .exact { .headerBeyondFile(path: $0, length: 100_000_000, fileSize: 8 + valid.utf8.count + 8) })

    // Data length against the offsets.
    add(
      "truncated data", file("{\(a),\(b)}", Array(sixteen.prefix(12))),
      .exact { .dataLengthMismatch(path: $0, headerEnd: 16, dataLength: 12) })
    add(
      "offsets past the end of the file", file("{\(entry("a", "F32", [256], 0, 1024))}", eight),
      .exact { .dataLengthMismatch(path: $0, headerEnd: 1024, dataLength: 8) })
    add(
      "trailing bytes after the last tensor", file(valid, sixteen),
      .exact { .dataLengthMismatch(path: $0, headerEnd: 8, dataLength: 16) })

    // Text and JSON syntax.
    add("header is not JSON", file("<html>not json</html>"), .json(offset: 0, reason: "unexpected character"))
    add("header is cut inside the JSON", file("{\"a\":{\"dtype\":"), .json(offset: 14, reason: "unexpected end"))
    add("header is empty", file(""), .json(offset: 0, reason: "unexpected end"))
    add(
      "header is an array, not an object", file("[1,2,3]"),
      .json(offset: 0, reason: "must be a JSON object, found an array"))
    add("header is a string, not an object", file("\"abc\""), .json(offset: 0, reason: "found a string"))
    add(
      "header is not valid UTF-8", RawFile.bytes(header: Array("{\"ab".utf8) + [0xFF] + Array("\":1}".utf8)),
      .exact { .invalidUTF8(path: $0, offset: 4) }, kind: "invalid UTF-8")
    add(
      "header has a truncated UTF-8 sequence", RawFile.bytes(header: Array("{\"é".utf8) + [0xC3]),
      .exact { .invalidUTF8(path: $0, offset: 4) }, kind: "invalid UTF-8")
    let nulPadded = RawFile.bytes(header: Array(valid.utf8) + [0, 0, 0], data: eight)
    add("header padded with NUL bytes", nulPadded, .json(offset: valid.utf8.count, reason: "NUL byte"))
    add(
      "deep nesting",
      file("{\"__metadata__\":" + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + "}"),
      .json(offset: 16 + 63, reason: "nesting deeper than 64"))
    add(
      "trailing garbage after the object", file(valid + "x", eight),
      .json(offset: valid.utf8.count, reason: "unexpected byte 0x78"))

    // Duplicate keys at every level.
    let dupTensor = "{\(entry("a", "F32", [1], 0, 4)),\(entry("a", "F32", [1], 4, 8))}"
    add(
      "duplicate tensor key", file(dupTensor, eight),
      .exact { .duplicateKey(path: $0, key: "a", offset: offset(of: "\"a\"", in: dupTensor, occurrence: 1)) })
    let dupField = "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}"
    add(
      "duplicate key inside a tensor entry", file(dupField, eight),
      .exact { .duplicateKey(path: $0, key: "dtype", offset: offset(of: "\"dtype\"", in: dupField, occurrence: 1)) })
    let dupMeta = "{\"__metadata__\":{\"k\":\"v\"},\"__metadata__\":{\"k\":\"w\"},\(a)}"
    add(
      "duplicate __metadata__ object", file(dupMeta, eight),
      .exact { .duplicateKey(path: $0, key: "__metadata__", offset: offset(of: "\"__metadata__\"", in: dupMeta, occurrence: 1)) })
    let dupMetaKey = "{\"__metadata__\":{\"same\":\"v\",\"same\":\"w\"},\(a)}"
    add(
      "duplicate key inside __metadata__", file(dupMetaKey, eight),
      .exact { .duplicateKey(path: $0, key: "same", offset: offset(of: "\"same\"", in: dupMetaKey, occurrence: 1)) })
    // The same key spelled with an escape is still the same key.
    let dupEscaped = "{\(entry("a", "F32", [1], 0, 4)),\(entry("\\u0061", "F32", [1], 4, 8))}"
    add(
      "duplicate tensor key spelled with an escape", file(dupEscaped, eight),
      .exact { .duplicateKey(path: $0, key: "a", offset: offset(of: "\"\\u0061\"", in: dupEscaped)) },
      kind: "duplicate tensor key")

    // Metadata values.
    add(
      "non-string metadata value", file("{\"__metadata__\":{\"n\":1},\(a)}", eight),
      .exact { .invalidMetadata(path: $0, key: "n", reason: "values must be strings, found a number") })
    add(
      "metadata value is an object", file("{\"__metadata__\":{\"o\":{}},\(a)}", eight),
      .exact { .invalidMetadata(path: $0, key: "o", reason: "values must be strings, found an object") })
    add(
      "metadata is not an object", file("{\"__metadata__\":[\"x\"],\(a)}", eight),
      .exact { .invalidMetadata(path: $0, key: "__metadata__", reason: "must be an object of strings, found an array") })

    // Offsets.
    add(
      "overlapping offsets", file("{\(a),\(entry("b", "F32", [2], 4, 12))}", Array(sixteen.prefix(12))),
      .exact { .gapOrOverlap(path: $0, tensor: "b", expectedBegin: 8, begin: 4) })
    add(
      "gap between offsets", file("{\(a),\(entry("b", "F32", [2], 12, 20))}", sixteen + [0, 0, 0, 0]),
      .exact { .gapOrOverlap(path: $0, tensor: "b", expectedBegin: 8, begin: 12) })
    add(
      "first offset not 0", file("{\(entry("a", "F32", [2], 4, 12))}", Array(sixteen.prefix(12))),
      .exact { .gapOrOverlap(path: $0, tensor: "a", expectedBegin: 0, begin: 4) })
    add(
      "tensor starting inside another at offset 0", file("{\(a),\(entry("b", "F32", [1], 0, 4))}", eight),
      .exact { .gapOrOverlap(path: $0, tensor: "a", expectedBegin: 4, begin: 0) })
    add(
      "data_offsets end before begin", file("{\(entry("a", "F32", [0], 8, 0))}", eight),
      .exact { .invalidTensorEntry(path: $0, tensor: "a", reason: "data_offsets end 0 is before begin 8") })
    add(
      "negative data offset", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", eight),
      .exact {
        .invalidTensorEntry(path: $0, tensor: "a", reason: "data_offsets must be two non-negative integers [begin, end]")
      }, kind: "malformed data_offsets")
    add(
      "three data offsets", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", eight),
      .exact {
        .invalidTensorEntry(path: $0, tensor: "a", reason: "data_offsets must be two non-negative integers [begin, end]")
      }, kind: "malformed data_offsets")

    // Shapes and dtypes.
    add(
      "shape/length mismatch", file("{\(entry("a", "F32", [3], 0, 8))}", eight),
      .exact { .byteLengthMismatch(path: $0, tensor: "a", expected: 12, actual: 8) })
    add(
      "unknown dtype", file("{\(entry("a", "X17", [2], 0, 8))}", eight),
      .exact { .unknownDType(path: $0, tensor: "a", dtype: "X17") })
    add(
      "lower-case dtype", file("{\(entry("a", "f32", [2], 0, 8))}", eight),
      .exact { .unknownDType(path: $0, tensor: "a", dtype: "f32") })
    let shapeReason = "shape must be an array of non-negative integers"
    add(
      "negative number in shape", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", eight),
      .exact { .invalidTensorEntry(path: $0, tensor: "a", reason: shapeReason) }, kind: "malformed shape")
    add(
      "float number in shape", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", eight),
      .exact { .invalidTensorEntry(path: $0, tensor: "a", reason: shapeReason) }, kind: "malformed shape")
    add(
      "exponent in shape", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", eight),
      .exact { .invalidTensorEntry(path: $0, tensor: "a", reason: shapeReason) }, kind: "malformed shape")
    add(
      "string in shape", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", eight),
      .exact { .invalidTensorEntry(path: $0, tensor: "a", reason: shapeReason) }, kind: "malformed shape")
    add(
      "shape dimension larger than Int",
      file("{\(entry("a", "F32", [], 0, 4).replacingOccurrences(of: "[]", with: "[99999999999999999999]"))}", [0, 0, 0, 0]),
      .exact { .invalidTensorEntry(path: $0, tensor: "a", reason: shapeReason) }, kind: "malformed shape")
    add(
      "shape whose element count overflows", file("{\(entry("a", "F32", [1 << 40, 1 << 40], 0, 8))}", eight),
      .exact { .invalidTensorEntry(path: $0, tensor: "a", reason: "shape [1099511627776, 1099511627776] overflows") })
    add(
      "shape whose byte count overflows", file("{\(entry("a", "F64", [1 << 61], 0, 8))}", eight),
      .exact { .invalidTensorEntry(path: $0, tensor: "a", reason: "shape [2305843009213693952] overflows") })
    add(
      "unexpected field in a tensor entry",
      file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", eight),
      .exact {
        .invalidTensorEntry(path: $0, tensor: "a", reason: "unexpected field \"extra\" (allowed: dtype, shape, data_offsets)")
      })
    add(
      "missing data_offsets", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", eight),
      .exact { .invalidTensorEntry(path: $0, tensor: "a", reason: "missing data_offsets") })
    add(
      "missing dtype", file("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", eight),
      .exact { .invalidTensorEntry(path: $0, tensor: "a", reason: "missing dtype") })
    add(
      "dtype is not a string", file("{\"a\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", eight),
      .exact { .invalidTensorEntry(path: $0, tensor: "a", reason: "dtype must be a string") })
    add(
      "tensor entry is not an object", file("{\"a\":[0,8]}", eight),
      .exact { .invalidTensorEntry(path: $0, tensor: "a", reason: "entry must be an object, found an array") })
    return c
  }()
}

@Suite("Strict reader: malformed corpus")
struct StrictReaderTests {
  @Test("each malformed file is refused with its own error", arguments: Corpus.cases)
  func refused(_ m: Malformed) throws {
    let dir = TempDir("corpus")
    let path = dir.file("bad.safetensors")
    RawFile.write(m.bytes, to: path)
    let error = #expect(throws: SafeTensorsError.self) { _ = try SafeTensorsFile(path: path) }
    guard let error else { return }
    switch m.refusal {
    case .exact(let make):
      #expect(error == make(path))
    case .json(let offset, let reason):
      guard case .invalidJSON(let p, let o, let r) = error else {
        Issue.record("expected invalidJSON, got \(error)")
        return
      }
      #expect(p == path)
      #expect(o == offset)
      #expect(r.contains(reason), "reason was: \(r)")
    }
    let message = error.localizedDescription
    #expect(message.hasPrefix(path + ": "), "message must start with the file: \(message)")
    #expect(!message.contains("\n"))
    // Checkpoint (what `inspect` opens) refuses it the same way.
    #expect(throws: error) { _ = try Checkpoint(path: path) }
  }

  @Test("different defects give different messages")
  func messagesDiffer() {
    let dir = TempDir("corpus")
    var messages: [String: Malformed] = [:]
    for m in Corpus.cases {
      let path = dir.file("bad.safetensors")
      RawFile.write(m.bytes, to: path)
      do {
        _ = try SafeTensorsFile(path: path)
        Issue.record("\(m.name) was accepted")
      } catch {
        let text = error.localizedDescription
        if let other = messages[text], other.kind != m.kind {
          Issue.record("\(m.name) and \(other.name) give the same message: \(text)")
        }
        messages[text] = m
      }
    }
    #expect(Set(messages.values.map(\.kind)).count == Set(Corpus.cases.map(\.kind)).count)
    #expect(Set(Corpus.cases.map(\.kind)).count >= 35)
  }

  @Test("a file that is not there, a folder and a device are refused with cannotOpen")
  func cannotOpen() throws {
    let dir = TempDir("corpus")
    let missing = dir.file("missing.safetensors")
    #expect(throws: SafeTensorsError.cannotOpen(path: missing, reason: "No such file or directory")) {
      _ = try SafeTensorsFile(path: missing)
    }
    #expect(throws: SafeTensorsError.cannotOpen(path: dir.path, reason: "not a regular file")) {
      _ = try SafeTensorsFile(path: dir.path)
    }
    #expect(throws: SafeTensorsError.cannotOpen(path: "/dev/null", reason: "not a regular file")) {
      _ = try SafeTensorsFile(path: "/dev/null")
    }
  }

  @Test("edge cases the reference accepts are accepted")
  func acceptedEdgeCases() throws {
    let dir = TempDir("corpus")
    let cases: [(String, [UInt8], Int)] = [
      ("empty object, no data", Corpus.file("{}"), 0),
      ("only metadata", Corpus.file("{\"__metadata__\":{\"a\":\"b\"}}"), 0),
      ("white space around the object", Corpus.file(" \n\t{\(Corpus.a)} \r\n", Corpus.eight), 1),
      ("space padding", Corpus.file("{\(Corpus.a)}" + "     ", Corpus.eight), 1),
      ("scalar of shape []", Corpus.file("{\(entry("s", "F64", [], 0, 8))}", Corpus.eight), 1),
      ("empty tensors", Corpus.file("{\(entry("e", "F32", [0, 5], 0, 0)),\(entry("z", "I8", [3, 0], 0, 0))}"), 2),
      ("zero dimension with huge others", Corpus.file("{\(entry("h", "F32", [0, 1 << 62, 4], 0, 0))}"), 1),
      ("tensors listed out of data order", Corpus.file("{\(Corpus.b),\(Corpus.a)}", Corpus.sixteen), 2),
      ("escaped names", Corpus.file("{\(entry("q\\\"\\u00e9\\n", "U8", [8], 0, 8))}", Corpus.eight), 1),
      ("empty metadata object", Corpus.file("{\"__metadata__\":{},\(Corpus.a)}", Corpus.eight), 1),
    ]
    for (name, bytes, count) in cases {
      let path = dir.file("ok.safetensors")
      RawFile.write(bytes, to: path)
      let f = try SafeTensorsFile(path: path)
      #expect(f.tensors.count == count, "\(name)")
      #expect(f.file.size - f.dataStart == f.tensors.last?.end ?? 0, "\(name)")
      for t in f.tensors {
        #expect(t.elementCount * t.dtype.size == t.byteCount, "\(name)")
        _ = t.rowLength
        _ = t.rowCount
      }
    }
    let escaped = dir.file("escaped.safetensors")
    RawFile.write(Corpus.file("{\(entry("q\\\"\\u00e9\\n", "U8", [8], 0, 8))}", Corpus.eight), to: escaped)
    #expect(try SafeTensorsFile(path: escaped).info("q\"é\n") != nil)
  }
}
