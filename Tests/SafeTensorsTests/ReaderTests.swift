import Foundation
import Testing

@testable import SafeTensors

/// A tensor for a hand-built file: its raw little-endian bytes and the exact values a reader
/// must produce in `Float` and in `Double`.
struct Sample {
  var name: String
  var dtype: DType
  var bytes: [UInt8]
  var asDouble: [Double]
  var asFloat: [Float]

  init(_ name: String, _ dtype: DType, _ bytes: [UInt8], _ asDouble: [Double], asFloat: [Float]? = nil) {
    self.name = name
    self.dtype = dtype
    self.bytes = bytes
    self.asDouble = asDouble
    self.asFloat = asFloat ?? asDouble.map { Float($0) }
  }

  static let all: [Sample] = [
    Sample(
      "f64", .f64, leBytes([1.5, -0.0, 1e300, -.infinity, .nan, 0x1p-1074, 0.1]),
      [1.5, -0.0, 1e300, -.infinity, .nan, 0x1p-1074, 0.1]),
    Sample(
      "f32", .f32, leBytes([Float(1.5), -0.0, .greatestFiniteMagnitude, .infinity, .nan, 0x1p-149, 0.1]),
      [1.5, -0.0, Double(Float.greatestFiniteMagnitude), .infinity, .nan, 0x1p-149, Double(Float(0.1))]),
    Sample(
      "f16", .f16, leBytes([UInt16(0x3C00), 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00, 0xFE00, 0x3555]),
      [1, -2, 65504, 0x1p-24, -0.0, .infinity, .nan, 0x1.554p-2]),
    Sample(
      "bf16", .bf16, leBytes([UInt16(0x3F80), 0xC000, 0x7F7F, 0x0001, 0x8000, 0xFF80, 0x7FC1, 0x3EAB]),
      [1, -2, 0x1.FEp127, 0x1p-133, -0.0, -.infinity, .nan, 0x1.56p-2]),
    Sample("f8e4m3", .f8e4m3, [0x38, 0xC0, 0x7E, 0x01, 0x80, 0x7F, 0x08], [1, -2, 448, 0x1p-9, -0.0, .nan, 0x1p-6]),
    Sample("f8e5m2", .f8e5m2, [0x3C, 0xC0, 0x7B, 0x01, 0x7C, 0xFF, 0x80], [1, -2, 57344, 0x1p-16, .infinity, .nan, -0.0]),
    Sample(
      "i64", .i64, leBytes([Int64.min, -1, 0, 1, 1 << 53, -(1 << 62), Int64.max]),
      [-0x1p63, -1, 0, 1, 0x1p53, -0x1p62, 0x1p63]),
    Sample("u64", .u64, leBytes([UInt64(0), 1, 1 << 53, UInt64.max]), [0, 1, 0x1p53, 0x1p64]),
    Sample(
      "i32", .i32, leBytes([Int32.min, -1, 0, 1, 16_777_217, Int32.max]),
      [-0x1p31, -1, 0, 1, 16_777_217, 2_147_483_647], asFloat: [-0x1p31, -1, 0, 1, 16_777_216, 0x1p31]),
    Sample("u32", .u32, leBytes([UInt32(0), 1, UInt32.max]), [0, 1, 4_294_967_295], asFloat: [0, 1, 0x1p32]),
    Sample("i16", .i16, leBytes([Int16.min, -1, 0, 1, Int16.max]), [-32768, -1, 0, 1, 32767]),
    Sample("u16", .u16, leBytes([UInt16(0), 1, UInt16.max]), [0, 1, 65535]),
    Sample("i8", .i8, [0x80, 0xFF, 0x00, 0x01, 0x7F], [-128, -1, 0, 1, 127]),
    Sample("u8", .u8, [0, 1, 128, 255], [0, 1, 128, 255]),
    Sample("bool", .bool, [0, 1, 1, 0], [0, 1, 1, 0]),
  ]

  var count: Int { bytes.count / dtype.size }
}

/// A file of `samples` laid out in the given order, with `padding` spaces after the JSON so
/// that every data offset in the file shifts by that much.
func handBuiltFile(_ samples: [Sample], padding: Int, metadata: String? = nil) -> [UInt8] {
  var parts: [String] = []
  if let metadata { parts.append("\"__metadata__\":\(metadata)") }
  var offset = 0
  var data: [UInt8] = []
  for s in samples {
    parts.append(entry(s.name, s.dtype.rawValue, [s.count], offset, offset + s.bytes.count))
    offset += s.bytes.count
    data += s.bytes
  }
  let header = "{" + parts.joined(separator: ",") + "}" + String(repeating: " ", count: padding)
  return RawFile.bytes(header: header, data: data)
}

@Suite("Reader")
struct ReaderTests {
  @Test("every dtype reads exact values into Float and Double, at any alignment", arguments: 0..<8)
  func everyDTypeAtEveryAlignment(padding: Int) throws {
    let dir = TempDir("reader")
    let path = dir.file("all.safetensors")
    // Odd-sized tensors first so that the wide ones land on unaligned addresses too.
    let samples = Sample.all.sorted { ($0.dtype.size, $0.name) < ($1.dtype.size, $1.name) }
    RawFile.write(handBuiltFile(samples, padding: padding), to: path)
    let f = try SafeTensorsFile(path: path)
    #expect(f.dataStart % 8 == (8 + f.headerLength) % 8)
    #expect(Set(f.tensors.map(\.dtype)) == Set(DType.allCases))
    for s in samples {
      let t = try #require(f.info(s.name))
      #expect(t.dtype == s.dtype && t.shape == [s.count])
      var floats = [Float](repeating: 42, count: s.count)
      var doubles = [Double](repeating: 42, count: s.count)
      f.read(t, elements: 0..<s.count, into: &floats)
      f.read(t, elements: 0..<s.count, into: &doubles)
      for i in 0..<s.count {
        #expect(sameValue(doubles[i], s.asDouble[i]), "\(s.name)[\(i)] as Double: \(doubles[i]) ≠ \(s.asDouble[i])")
        #expect(sameValue(Double(floats[i]), Double(s.asFloat[i])), "\(s.name)[\(i)] as Float: \(floats[i]) ≠ \(s.asFloat[i])")
      }
      // A slice in the middle reads the same elements.
      if s.count >= 4 {
        var part = [Double](repeating: 42, count: 2)
        f.read(t, elements: 1..<3, into: &part)
        #expect(sameValue(part[0], s.asDouble[1]) && sameValue(part[1], s.asDouble[2]), "\(s.name)[1..<3]")
      }
      f.withBytes(of: t) { raw in #expect(Array(raw) == s.bytes) }
    }
  }

  @Test(
    "large decodes cross the Double path's internal 4096-element blocks correctly", arguments: [DType.f8e4m3, .i8, .u16, .i32])
  func longDecodes(dtype: DType) throws {
    let dir = TempDir("reader")
    let path = dir.file("long.safetensors")
    let n = 10_007
    var rng = SplitMix(9)
    let bytes = (0..<(n * dtype.size)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    RawFile.write(RawFile.bytes(header: "{\(entry("x", dtype.rawValue, [n], 0, bytes.count))} ", data: bytes), to: path)
    let f = try SafeTensorsFile(path: path)
    let t = try #require(f.info("x"))
    var floats = [Float](repeating: 0, count: n)
    var doubles = [Double](repeating: 0, count: n)
    f.read(t, elements: 0..<n, into: &floats)
    f.read(t, elements: 0..<n, into: &doubles)
    func reference(_ i: Int) -> Double {
      let b = Array(bytes[(i * dtype.size)..<((i + 1) * dtype.size)])
      switch dtype {
      case .f8e4m3: return Reference.e4m3(b[0])
      case .i8: return Double(Int8(bitPattern: b[0]))
      case .u16: return Double(UInt16(b[0]) | UInt16(b[1]) << 8)
      default: return Double(Int32(bitPattern: UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24))
      }
    }
    var mismatches = 0
    for i in 0..<n where !sameValue(doubles[i], reference(i)) || !sameValue(Double(floats[i]), Double(Float(reference(i)))) {
      mismatches += 1
    }
    #expect(mismatches == 0)
  }

  @Test("metadata, names and lookups")
  func metadataAndLookup() throws {
    let dir = TempDir("reader")
    let path = dir.file("meta.safetensors")
    let samples = Array(Sample.all.prefix(3))
    RawFile.write(handBuiltFile(samples, padding: 3, metadata: "{\"format\":\"pt\",\"note\":\"a\\\"b\\u00e9\\n\"}"), to: path)
    let f = try SafeTensorsFile(path: path)
    #expect(f.metadata == ["format": "pt", "note": "a\"bé\n"])
    #expect(f.info("nope") == nil)
    #expect(f.tensors.map(\.name) == samples.map(\.name))
    let t = try #require(f.info("f32"))
    #expect(f.fileRange(of: t) == (f.dataStart + t.begin)..<(f.dataStart + t.end))
  }
}

@Suite("Sharded checkpoints")
struct CheckpointTests {
  /// Writes a sharded checkpoint: each shard a canonical file, plus an index (overridable).
  static func makeShards(
    in dir: TempDir, shards: [[TensorSpec]], weightMap override: [String: String]? = nil,
    indexName: String = "model.safetensors.index.json"
  ) throws {
    var weightMap: [String: String] = [:]
    for (i, specs) in shards.enumerated() {
      let name = Sharding.shardName(i, of: shards.count)
      try writeCanonical(dir.file(name), specs: specs, metadata: ["shard": "\(i)"]) { t in
        (0..<t.byteCount).map { UInt8(truncatingIfNeeded: $0 &+ t.name.utf8.count) }
      }
      for s in specs { weightMap[s.name] = name }
    }
    let index = Sharding.indexJSON(weightMap: override ?? weightMap, totalSize: 1234)
    try Data(index).write(to: URL(fileURLWithPath: dir.file(indexName)))
  }

  static let first = [TensorSpec(name: "w.a", dtype: .f32, shape: [2, 3]), TensorSpec(name: "w.b", dtype: .f16, shape: [5])]
  static let second = [TensorSpec(name: "w.c", dtype: .bf16, shape: [4]), TensorSpec(name: "pos", dtype: .i64, shape: [1, 3])]

  @Test("a sharded folder opens with every tensor, its shard and merged metadata")
  func opensShards() throws {
    let dir = TempDir("ckpt")
    try Self.makeShards(in: dir, shards: [Self.first, Self.second])
    let c = try Checkpoint(path: dir.path)
    #expect(c.isSharded)
    #expect(c.indexPath == dir.file("model.safetensors.index.json"))
    #expect(c.shards.count == 2)
    #expect(c.entries.map(\.info.name) == ["pos", "w.a", "w.b", "w.c"])
    #expect(c.metadata["total_size"] == "1234")
    #expect(c.metadata["shard"] == "0")  // first shard wins for keys the index does not set
    let e = try #require(c.entry("w.c"))
    #expect(c.file(of: e).path == dir.file(Sharding.shardName(1, of: 2)))
    var values = [Float](repeating: 0, count: 4)
    c.file(of: e).read(e.info, elements: 0..<4, into: &values)
    let raw: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: $0 &+ 3) }
    #expect(values == (0..<4).map { FloatBits.bf16ToFloat(UInt16(raw[2 * $0]) | UInt16(raw[2 * $0 + 1]) << 8) })
    #expect(c.dataBytes == c.shards.reduce(0) { $0 + $1.file.size - $1.dataStart })
  }

  @Test("a single file opens as a one-shard checkpoint")
  func singleFile() throws {
    let dir = TempDir("ckpt")
    let path = dir.file("one.safetensors")
    try writeCanonical(path, specs: Self.first, metadata: ["k": "v"]) { [UInt8](repeating: 0, count: $0.byteCount) }
    let c = try Checkpoint(path: path)
    #expect(!c.isSharded && c.shards.count == 1 && c.metadata == ["k": "v"])
    #expect(c.entries.map(\.info.name) == ["w.a", "w.b"])
  }

  @Test("a Hugging Face folder with one model.safetensors and no index opens as that file")
  func unindexedFolder() throws {
    let dir = TempDir("ckpt")
    try writeCanonical(dir.file("model.safetensors"), specs: Self.first, metadata: ["k": "v"]) {
      [UInt8](repeating: 1, count: $0.byteCount)
    }
    try Data("{}".utf8).write(to: URL(fileURLWithPath: dir.file("config.json")))
    let c = try Checkpoint(path: dir.path)
    #expect(!c.isSharded && c.path == dir.path && c.shards.map(\.path) == [dir.file("model.safetensors")])
    #expect(c.entries.map(\.info.name) == ["w.a", "w.b"] && c.metadata == ["k": "v"])
  }

  @Test("a tensor listed in the index but missing from its shard is refused")
  func missingFromShard() throws {
    let dir = TempDir("ckpt")
    var map = Dictionary(uniqueKeysWithValues: Self.first.map { ($0.name, Sharding.shardName(0, of: 1)) })
    map["ghost"] = Sharding.shardName(0, of: 1)
    try Self.makeShards(in: dir, shards: [Self.first], weightMap: map)
    #expect(
      throws: SafeTensorsError.shardIndex(
        path: dir.file("model.safetensors.index.json"),
        reason: "tensor \"ghost\" is listed in the weight_map but not found in its shard")
    ) { _ = try Checkpoint(path: dir.path) }
  }

  @Test("a tensor in a shard but not in the index is refused")
  func unlisted() throws {
    let dir = TempDir("ckpt")
    var map: [String: String] = [:]
    for s in Self.first { map[s.name] = Sharding.shardName(0, of: 2) }
    for s in Self.second { map[s.name] = Sharding.shardName(1, of: 2) }
    map["w.b"] = nil
    try Self.makeShards(in: dir, shards: [Self.first, Self.second], weightMap: map)
    #expect(
      throws: SafeTensorsError.shardIndex(
        path: dir.file("model.safetensors.index.json"),
        reason: "shard model-00001-of-00002.safetensors holds tensor \"w.b\" that the weight_map does not list")
    ) { _ = try Checkpoint(path: dir.path) }
  }

  @Test("a tensor present in two shards is refused", arguments: [false, true])
  func duplicateAcrossShards(indexNamesSecond: Bool) throws {
    let dir = TempDir("ckpt")
    let dup = TensorSpec(name: "dup", dtype: .f32, shape: [1])
    let owner = Sharding.shardName(indexNamesSecond ? 1 : 0, of: 2)
    let other = Sharding.shardName(indexNamesSecond ? 0 : 1, of: 2)
    var map: [String: String] = ["dup": owner]
    for s in Self.first { map[s.name] = Sharding.shardName(0, of: 2) }
    for s in Self.second { map[s.name] = Sharding.shardName(1, of: 2) }
    try Self.makeShards(in: dir, shards: [Self.first + [dup], Self.second + [dup]], weightMap: map)
    let error = #expect(throws: SafeTensorsError.self) { _ = try Checkpoint(path: dir.path) }
    #expect(
      error
        == .shardIndex(
          path: dir.file("model.safetensors.index.json"),
          reason: "tensor \"dup\" is in shard \(other) but the weight_map says \(owner)"))
  }

  @Test(
    "weight_map file names must be plain names inside the folder",
    arguments: ["../x.safetensors", "sub/x.safetensors", "..", ".", "", "a\\b"])
  func pathEscapes(name: String) throws {
    let dir = TempDir("ckpt")
    var map = Dictionary(uniqueKeysWithValues: Self.first.map { ($0.name, Sharding.shardName(0, of: 1)) })
    map["w.a"] = name
    try Self.makeShards(in: dir, shards: [Self.first], weightMap: map)
    #expect(
      throws: SafeTensorsError.shardIndex(
        path: dir.file("model.safetensors.index.json"),
        reason: "weight_map entry \"w.a\" names \"\(name)\", which is not a plain file name in the folder")
    ) { _ = try Checkpoint(path: dir.path) }
  }

  @Test("folder and index problems are refused with a message naming the folder or index")
  func indexProblems() throws {
    let empty = TempDir("ckpt")
    let noIndex = try #require(#expect(throws: SafeTensorsError.self) { _ = try Checkpoint(path: empty.path) })
    #expect(noIndex.localizedDescription.contains("has neither model.safetensors.index.json nor model.safetensors"))

    let two = TempDir("ckpt")
    try Self.makeShards(in: two, shards: [Self.first], indexName: "a.safetensors.index.json")
    try Data("{}".utf8).write(to: URL(fileURLWithPath: two.file("b.safetensors.index.json")))
    let several = try #require(#expect(throws: SafeTensorsError.self) { _ = try Checkpoint(path: two.path) })
    #expect(several.localizedDescription.contains("several index files"))

    // A lone index with another name is used.
    let other = TempDir("ckpt")
    try Self.makeShards(in: other, shards: [Self.first], indexName: "diffusion_pytorch_model.safetensors.index.json")
    #expect(try Checkpoint(path: other.path).entries.count == 2)

    let badJSON = TempDir("ckpt")
    try Self.makeShards(in: badJSON, shards: [Self.first])
    try Data("{\"weight_map\": {\"a\": \"x\", \"a\": \"y\"}}".utf8).write(
      to: URL(fileURLWithPath: badJSON.file("model.safetensors.index.json")))
    let dup = try #require(#expect(throws: SafeTensorsError.self) { _ = try Checkpoint(path: badJSON.path) })
    #expect(
      dup
        == .shardIndex(
          path: badJSON.file("model.safetensors.index.json"), reason: "not valid JSON at byte 26: duplicate key \"a\""))

    try Data("{\"metadata\": {}}".utf8).write(to: URL(fileURLWithPath: badJSON.file("model.safetensors.index.json")))
    #expect(
      throws: SafeTensorsError.shardIndex(
        path: badJSON.file("model.safetensors.index.json"), reason: "weight_map is missing or empty")
    ) { _ = try Checkpoint(path: badJSON.path) }

    try Data("{\"weight_map\": {\"a\": \"absent.safetensors\"}}".utf8).write(
      to: URL(fileURLWithPath: badJSON.file("model.safetensors.index.json")))
    #expect(throws: SafeTensorsError.cannotOpen(path: badJSON.file("absent.safetensors"), reason: "No such file or directory")) {
      _ = try Checkpoint(path: badJSON.path)
    }

    #expect(throws: SafeTensorsError.cannotOpen(path: empty.file("nothing"), reason: "no such file or folder")) {
      _ = try Checkpoint(path: empty.file("nothing"))
    }
  }

  @Test("a damaged shard is refused with the shard's own error")
  func damagedShard() throws {
    let dir = TempDir("ckpt")
    try Self.makeShards(in: dir, shards: [Self.first, Self.second])
    let shard = dir.file(Sharding.shardName(1, of: 2))
    var bytes = fileBytes(shard)
    bytes.removeLast()
    RawFile.write(bytes, to: shard)
    let error = try #require(#expect(throws: SafeTensorsError.self) { _ = try Checkpoint(path: dir.path) })
    guard case .dataLengthMismatch(let p, _, _) = error else {
      Issue.record("unexpected \(error)")
      return
    }
    #expect(p == shard)
  }
}
