import Foundation
import Testing

@testable import SafeTensors

/// Deterministic bytes for tensor `t` (a function of its name and position only).
func patternBytes(_ t: TensorInfo) -> [UInt8] {
  var rng = SplitMix(UInt64(t.name.utf8.reduce(0) { $0 &* 31 &+ Int($1) }))
  var out = [UInt8](repeating: 0, count: t.byteCount)
  var i = 0
  while i < out.count {
    let r = rng.next()
    for k in 0..<min(8, out.count - i) { out[i + k] = UInt8(truncatingIfNeeded: r >> (8 * UInt64(k))) }
    i += 8
  }
  return out
}

/// Writes `specs` feeding the writer the concatenated data in chunks of `chunk` bytes, which
/// may end inside a tensor or span several.
@discardableResult
func writeInChunks(_ path: String, specs: [TensorSpec], metadata: [String: String] = [:], chunk: Int) throws -> WriteResult {
  let w = try SafeTensorsWriter(path: path, specs: specs, metadata: metadata)
  let data = w.tensors.flatMap(patternBytes)
  var at = 0
  while at < data.count {
    let n = min(chunk, data.count - at)
    try data.withUnsafeBytes { try w.append(UnsafeRawBufferPointer(rebasing: $0[at..<(at + n)])) }
    at += n
  }
  return try w.finish()
}

@Suite("Canonical writer")
struct WriterTests {
  static let mixed: [TensorSpec] = [
    TensorSpec(name: "b", dtype: .f16, shape: [2]),
    TensorSpec(name: "a", dtype: .f16, shape: [1]),
    TensorSpec(name: "z", dtype: .f64, shape: [1]),
    TensorSpec(name: "m", dtype: .i8, shape: [3]),
    TensorSpec(name: "c", dtype: .bool, shape: [1]),
    TensorSpec(name: "u", dtype: .u64, shape: [1]),
    TensorSpec(name: "s", dtype: .f32, shape: []),
    TensorSpec(name: "e", dtype: .bf16, shape: [0]),
  ]

  @Test("header bytes: sorted metadata, dtype rank then name order, contiguous offsets, space padding to 8")
  func canonicalHeader() throws {
    let dir = TempDir("writer")
    let path = dir.file("canon.safetensors")
    let r = try writeCanonical(
      path, specs: Self.mixed, metadata: ["zeta": "1", "alpha": "x\"y", "Beta": "é\n"], bytes: patternBytes)
    let json =
      "{\"__metadata__\":{\"Beta\":\"é\\n\",\"alpha\":\"x\\\"y\",\"zeta\":\"1\"},"
      + "\"u\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]},"
      + "\"z\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]},"
      + "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[16,20]},"
      + "\"e\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[20,20]},"
      + "\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[20,22]},"
      + "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[22,26]},"
      + "\"m\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[26,29]},"
      + "\"c\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[29,30]}}"
    let text = Array(json.utf8)
    let padded = text + [UInt8](repeating: 0x20, count: (8 - text.count % 8) % 8)
    let bytes = fileBytes(path)
    #expect(Array(bytes.prefix(8)) == RawFile.prefix(UInt64(padded.count)))
    #expect(Array(bytes[8..<(8 + padded.count)]) == padded)
    #expect(padded.count % 8 == 0 && r.headerLength == padded.count)
    #expect(r.size == bytes.count && bytes.count == 8 + padded.count + 30)
    // The data follows in the same order.
    let f = try SafeTensorsFile(path: path)
    for t in f.tensors { f.withBytes(of: t) { #expect(Array($0) == patternBytes(t), "\(t.name)") } }
    #expect(f.metadata == ["zeta": "1", "alpha": "x\"y", "Beta": "é\n"])
  }

  @Test("the order follows the reference rank of every dtype, then names byte by byte")
  func orderRule() {
    let specs = DType.allCases.flatMap { d in
      ["b", "B", "a", "é", "a.10", "a.9"].map { TensorSpec(name: "\($0)-\(d.rawValue)", dtype: d, shape: [1]) }
    }
    let ordered = CanonicalLayout.order(specs.reversed())
    let ranks = ordered.map(\.dtype.referenceRank)
    #expect(ranks == ranks.sorted(by: >))
    #expect(Set(ranks).count == DType.allCases.count)
    for d in DType.allCases {
      let names = ordered.filter { $0.dtype == d }.map(\.name)
      #expect(names == names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
    }
    // Every tensor starts at a multiple of its element size, so nothing is misaligned.
    let (_, infos) = CanonicalLayout.header(for: specs, metadata: [:])
    #expect(infos.allSatisfy { $0.begin % $0.dtype.size == 0 })
  }

  @Test("same input, same bytes: spec order and metadata insertion order do not matter")
  func deterministic() throws {
    let dir = TempDir("writer")
    var meta1: [String: String] = [:]
    var meta2: [String: String] = [:]
    for k in ["x", "b", "a", "é", "A"] { meta1[k] = "v\(k)" }
    for k in ["A", "é", "a", "b", "x"] { meta2[k] = "v\(k)" }
    let r1 = try writeCanonical(dir.file("1.safetensors"), specs: Self.mixed, metadata: meta1, bytes: patternBytes)
    let r2 = try writeCanonical(dir.file("2.safetensors"), specs: Self.mixed.reversed(), metadata: meta2, bytes: patternBytes)
    #expect(fileBytes(dir.file("1.safetensors")) == fileBytes(dir.file("2.safetensors")))
    #expect(r1.sha256 == r2.sha256 && r1.tensorDataSHA256 == r2.tensorDataSHA256 && r1.tensorSHA256 == r2.tensorSHA256)
  }

  static let large: [TensorSpec] = [
    TensorSpec(name: "big.f32", dtype: .f32, shape: [1500, 1001]),  // ~6 MB
    TensorSpec(name: "big.f16", dtype: .f16, shape: [4099, 1031]),  // ~8.5 MB: crosses buffer edges
    TensorSpec(name: "empty", dtype: .f16, shape: [0]),
    TensorSpec(name: "odd.i8", dtype: .i8, shape: [3_000_017]),
    TensorSpec(name: "tiny", dtype: .u8, shape: [1]),
    TensorSpec(name: "z.empty", dtype: .u8, shape: [0, 7]),
  ]

  @Test(
    "streaming in odd chunk sizes gives the same file and hashes",
    arguments: [(false, 1), (false, 3), (false, 13), (true, 4093), (true, 1_048_579), (true, Int.max)])
  func chunkSizes(large: Bool, chunk: Int) throws {
    let dir = TempDir("writer")
    let specs = large ? Self.large : Self.mixed
    let reference = try writeInChunks(dir.file("ref.safetensors"), specs: specs, metadata: ["m": "1"], chunk: Int.max)
    let r = try writeInChunks(dir.file("chunked.safetensors"), specs: specs, metadata: ["m": "1"], chunk: chunk)
    #expect(fileBytes(dir.file("chunked.safetensors")) == fileBytes(dir.file("ref.safetensors")))
    #expect(r.sha256 == reference.sha256)
    #expect(r.tensorDataSHA256 == reference.tensorDataSHA256)
    #expect(r.tensorSHA256 == reference.tensorSHA256)
  }

  @Test(
    "WriteResult hashes equal an independent SHA-256 of the file, the data section and each tensor", arguments: [false, true])
  func hashesAreRight(large: Bool) throws {
    let dir = TempDir("writer")
    let path = dir.file("h.safetensors")
    let specs = large ? Self.large : Self.mixed
    let r = try writeInChunks(path, specs: specs, metadata: ["a": "b"], chunk: 65_537)
    let bytes = fileBytes(path)
    #expect(r.path == path && r.size == bytes.count)
    #expect(r.sha256 == sha256Hex(bytes))
    #expect(r.tensorDataSHA256 == sha256Hex(bytes[(8 + r.headerLength)...]))
    let f = try SafeTensorsFile(path: path)
    #expect(r.tensorSHA256.count == specs.count)
    for t in f.tensors {
      #expect(r.tensorSHA256[t.name] == sha256Hex(bytes[f.fileRange(of: t)]), "\(t.name)")
    }
    if large { #expect(r.tensorSHA256["empty"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") }
  }

  @Test("a file with no tensors, or only empty ones, is valid")
  func noData() throws {
    let dir = TempDir("writer")
    let none = try writeCanonical(dir.file("none.safetensors"), specs: [], bytes: { _ in [] })
    #expect(fileBytes(dir.file("none.safetensors")) == RawFile.prefix(8) + Array("{}      ".utf8))
    #expect(none.tensorSHA256.isEmpty && none.tensorDataSHA256 == sha256Hex([UInt8]()))
    let specs = [TensorSpec(name: "a", dtype: .f32, shape: [0]), TensorSpec(name: "b", dtype: .i64, shape: [2, 0])]
    let r = try writeCanonical(dir.file("empty.safetensors"), specs: specs, bytes: { _ in [] })
    let f = try SafeTensorsFile(path: dir.file("empty.safetensors"))
    #expect(f.tensors.count == 2 && r.tensorSHA256.count == 2)
  }

  @Test("a writer dropped unfinished leaves neither the file nor a temporary file", arguments: [0, 5, 9_000_000])
  func droppedWriter(bytesBeforeDrop: Int) throws {
    let dir = TempDir("writer")
    let path = dir.file("never.safetensors")
    do {
      let w = try SafeTensorsWriter(path: path, specs: Self.large, metadata: [:])
      let data = [UInt8](repeating: 7, count: bytesBeforeDrop)
      try data.withUnsafeBytes { try w.append($0) }
      #expect(dir.listing().count == 1, "the temporary file exists while writing")
      #expect(dir.listing().first?.hasPrefix(".never.safetensors.mixlab-tmp-") == true)
    }
    #expect(dir.listing().isEmpty, "left behind: \(dir.listing())")
  }

  @Test("more bytes than the header describes is refused, and nothing is left behind")
  func tooManyBytes() throws {
    let dir = TempDir("writer")
    let path = dir.file("over.safetensors")
    do {
      let w = try SafeTensorsWriter(path: path, specs: Self.mixed, metadata: [:])
      let total = w.tensors.last!.end
      let data = [UInt8](repeating: 1, count: total + 1)
      #expect(throws: SafeTensorsError.writerMisuse(path: path, reason: "more tensor bytes than the header describes")) {
        try data.withUnsafeBytes { try w.append($0) }
      }
    }
    #expect(dir.listing().isEmpty)
  }

  @Test("finishing before every tensor is complete is refused, and nothing is left behind")
  func finishEarly() throws {
    let dir = TempDir("writer")
    let path = dir.file("early.safetensors")
    do {
      let w = try SafeTensorsWriter(path: path, specs: Self.mixed, metadata: [:])
      // u (8 bytes) complete, z (8 bytes) half written.
      try [UInt8](repeating: 1, count: 12).withUnsafeBytes { try w.append($0) }
      #expect(throws: SafeTensorsError.writerMisuse(path: path, reason: "finished before tensor \"z\" was complete")) {
        try w.finish()
      }
    }
    #expect(dir.listing().isEmpty)
    // Nothing appended at all.
    do {
      let w = try SafeTensorsWriter(path: path, specs: Self.mixed, metadata: [:])
      #expect(throws: SafeTensorsError.writerMisuse(path: path, reason: "finished before tensor \"u\" was complete")) {
        try w.finish()
      }
    }
    #expect(dir.listing().isEmpty)
  }

  @Test("a folder that does not exist gives writeFailed naming the file")
  func missingFolder() {
    let dir = TempDir("writer")
    let path = dir.file("no/such/folder/x.safetensors")
    let error = #expect(throws: SafeTensorsError.self) { _ = try SafeTensorsWriter(path: path, specs: Self.mixed, metadata: [:]) }
    guard case .writeFailed(let p, let reason) = error else {
      Issue.record("unexpected \(String(describing: error))")
      return
    }
    #expect(p == path && reason.contains("No such file or directory"))
  }

  @Test("an existing file is replaced whole, and only on finish")
  func replacesExisting() throws {
    let dir = TempDir("writer")
    let path = dir.file("x.safetensors")
    try writeCanonical(path, specs: [TensorSpec(name: "old", dtype: .u8, shape: [4])], bytes: { _ in [1, 2, 3, 4] })
    let before = fileBytes(path)
    let w = try SafeTensorsWriter(path: path, specs: Self.mixed, metadata: [:])
    for t in w.tensors { try patternBytes(t).withUnsafeBytes { try w.append($0) } }
    #expect(fileBytes(path) == before, "the old file stays until finish")
    try w.finish()
    #expect(try SafeTensorsFile(path: path).tensors.count == Self.mixed.count)
    #expect(dir.listing() == ["x.safetensors"])
  }
}
