import Foundation
import Testing

@testable import SafeTensors

/// Expected non-finite counts of raw tensor bytes, from the reference decoders.
func referenceNonFinite(_ dtype: DType, _ bytes: [UInt8]) -> (nan: Int, inf: Int) {
  var nan = 0
  var inf = 0
  for i in 0..<(bytes.count / dtype.size) {
    let b = Array(bytes[(i * dtype.size)..<((i + 1) * dtype.size)])
    let v: Double
    switch dtype {
    case .f16: v = Reference.half(UInt16(b[0]) | UInt16(b[1]) << 8)
    case .bf16: v = Reference.bf16(UInt16(b[0]) | UInt16(b[1]) << 8)
    case .f8e4m3: v = Reference.e4m3(b[0])
    case .f8e5m2: v = Reference.e5m2(b[0])
    case .f32:
      v = Double(Float(bitPattern: b.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }))
    case .f64: v = Double(bitPattern: b.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
    default: v = 0
    }
    if v.isNaN { nan += 1 }
    if v.isInfinite { inf += 1 }
  }
  return (nan, inf)
}

/// Random element bytes with roughly one element in five set to a NaN or infinity pattern.
func bytesWithSpecials(_ dtype: DType, count: Int, rng: inout SplitMix) -> [UInt8] {
  var out: [UInt8] = []
  for _ in 0..<count {
    let r = rng.next()
    var e = (0..<dtype.size).map { UInt8(truncatingIfNeeded: r >> (8 * UInt64($0))) }
    if rng.below(5) == 0 {
      let sign = UInt8(rng.below(2)) << 7
      let nan = rng.below(2) == 0
      switch dtype {
      case .f16: e = [nan ? 0x01 : 0x00, 0x7C | sign]
      case .bf16: e = [nan ? 0xC0 : 0x80, 0x7F | sign]
      case .f32: e = [nan ? 0x01 : 0, 0, 0x80, 0x7F | sign]
      case .f64: e = [0, 0, 0, 0, 0, 0, nan ? 0xF8 : 0xF0, 0x7F | sign]
      case .f8e4m3: e = [0x7F | sign]
      case .f8e5m2: e = [(nan ? 0x7E : 0x7C) | sign]
      case .i32: e = [0, 0, 0x80, 0x7F]  // the bits of +inf in an integer tensor: not counted
      default: break
      }
    }
    out += e
  }
  return out
}

@Suite("Scanner")
struct ScannerTests {
  @Test("scan hashes equal the writer's, per tensor too")
  func matchesWriter() throws {
    let dir = TempDir("scan")
    let path = dir.file("w.safetensors")
    let r = try writeInChunks(
      path,
      specs: WriterTests.large + WriterTests.mixed.map { TensorSpec(name: "m." + $0.name, dtype: $0.dtype, shape: $0.shape) },
      chunk: 1 << 20)
    let f = try SafeTensorsFile(path: path)
    let s = Scanner.scan(f, perTensor: true)
    #expect(s.sha256 == r.sha256)
    #expect(s.tensorDataSHA256 == r.tensorDataSHA256)
    #expect(s.tensorSHA256 == r.tensorSHA256)
    #expect(s.size == r.size)
    let plain = Scanner.scan(f, perTensor: false, scanNonFinite: false)
    #expect(plain.tensorSHA256 == nil && plain.sha256 == r.sha256 && plain.tensorDataSHA256 == r.tensorDataSHA256)
  }

  @Test("NaN and Inf are counted per float dtype; integer tensors are not scanned")
  func nonFiniteCounts() throws {
    let dir = TempDir("scan")
    let path = dir.file("nf.safetensors")
    let data: [String: (DType, [UInt8])] = [
      "f16": (.f16, leBytes([UInt16(0x7C00), 0xFC00, 0x7E00, 0x7C01, 0xFFFF, 0x3C00, 0x7BFF])),
      "bf16": (.bf16, leBytes([UInt16(0x7F80), 0xFF80, 0x7FC0, 0x7F81, 0x3F80])),
      "f32": (.f32, leBytes([Float.infinity, -.infinity, .nan, Float(bitPattern: 0x7F80_0001), 1, .greatestFiniteMagnitude])),
      "f64": (.f64, leBytes([Double.infinity, .nan, -.nan, 1, .greatestFiniteMagnitude])),
      "e4m3": (.f8e4m3, [0x7F, 0xFF, 0x7E, 0x78, 0xFE]),
      "e5m2": (.f8e5m2, [0x7C, 0xFC, 0x7D, 0x7F, 0xFE, 0x7B]),
      "finite": (.f32, leBytes([Float(1), 2, 3])),
      "i32": (.i32, leBytes([UInt32(0x7F80_0000), 0x7FC0_0000])),
      "u8": (.u8, [0xFF, 0x7F, 0x7C]),
    ]
    let specs = data.map { TensorSpec(name: $0.key, dtype: $0.value.0, shape: [$0.value.1.count / $0.value.0.size]) }
    try writeCanonical(path, specs: specs) { data[$0.name]!.1 }
    let s = Scanner.scan(try SafeTensorsFile(path: path), perTensor: false)
    #expect(
      s.nonFinite == [
        NonFinite(key: "bf16", nan: 2, inf: 2), NonFinite(key: "e4m3", nan: 2, inf: 0), NonFinite(key: "e5m2", nan: 3, inf: 2),
        NonFinite(key: "f16", nan: 3, inf: 2), NonFinite(key: "f32", nan: 2, inf: 2), NonFinite(key: "f64", nan: 2, inf: 1),
      ])
  }

  @Test(
    "countNonFinite over several screening blocks equals the reference count",
    arguments: [DType.f16, .bf16, .f32, .f64, .f8e4m3, .f8e5m2])
  func countNonFiniteBlocks(dtype: DType) {
    var rng = SplitMix(UInt64(dtype.referenceRank))
    // Finite random elements, then specials at block edges and at the ends.
    var bytes: [UInt8] = []
    while bytes.count < 10_001 * dtype.size {
      let e = bytesWithSpecials(dtype, count: 1, rng: &rng)
      if referenceNonFinite(dtype, e) == (0, 0) { bytes += e }
    }
    let specials = bytesWithSpecials(dtype, count: 400, rng: &rng)
    var placed = 0
    for i in [0, 4095, 4096, 8191, 8192, 10_000] {
      // The next non-finite pattern of the batch, at element i.
      var j = placed
      while referenceNonFinite(dtype, Array(specials[(j * dtype.size)..<((j + 1) * dtype.size)])) == (0, 0) { j += 1 }
      bytes.replaceSubrange((i * dtype.size)..<((i + 1) * dtype.size), with: specials[(j * dtype.size)..<((j + 1) * dtype.size)])
      placed = j + 1
    }
    let want = referenceNonFinite(dtype, bytes)
    #expect(want.nan + want.inf == 6)
    for offset in [0, 1, 3] {
      let shifted = [UInt8](repeating: 0, count: offset) + bytes
      let got = shifted.withUnsafeBytes { Codec.countNonFinite(dtype, $0.baseAddress! + offset, count: 10_001) }
      #expect(got == want, "offset \(offset)")
    }
    #expect(bytes.withUnsafeBytes { Codec.countNonFinite(.i32, $0.baseAddress!, count: 100) } == (0, 0))
  }

  /// A hand-built file whose header padding shifts every tensor against the window edges:
  /// empty tensors first, between and last, every float dtype, and an integer tensor with
  /// float-special bit patterns.
  static func windowFile(padding: Int, seed: UInt64) -> (
    bytes: [UInt8], expected: [String: (Int, Int)], tensors: [(String, Range<Int>)]
  ) {
    var rng = SplitMix(seed)
    let layout: [(String, DType, Int)] = [
      ("a.empty", .f32, 0), ("f64", .f64, 37), ("mid.empty", .f16, 0), ("f32", .f32, 41), ("f16", .f16, 53),
      ("bf16", .bf16, 47), ("e4m3", .f8e4m3, 29), ("e5m2", .f8e5m2, 31), ("i32", .i32, 19), ("z.empty", .bf16, 0),
    ]
    var parts: [String] = []
    var data: [UInt8] = []
    var expected: [String: (Int, Int)] = [:]
    var ranges: [(String, Range<Int>)] = []
    for (name, dtype, n) in layout {
      let b = bytesWithSpecials(dtype, count: n, rng: &rng)
      parts.append(entry(name, dtype.rawValue, [n], data.count, data.count + b.count))
      ranges.append((name, data.count..<(data.count + b.count)))
      let c = referenceNonFinite(dtype, b)
      if c.nan + c.inf > 0 { expected[name] = c }
      data += b
    }
    let header = "{" + parts.joined(separator: ",") + "}" + String(repeating: " ", count: padding)
    return (RawFile.bytes(header: header, data: data), expected, ranges)
  }

  @Test(
    "window edges anywhere: every element counted once, hashes unchanged",
    arguments: [8, 16, 24, 40, 64, 100, 4096], 0..<8)
  func smallWindows(window: Int, padding: Int) throws {
    let dir = TempDir("scan", memory: true)
    let path = dir.file("w.safetensors")
    let (bytes, expected, ranges) = Self.windowFile(padding: padding, seed: UInt64(window * 8 + padding))
    RawFile.write(bytes, to: path)
    let f = try SafeTensorsFile(path: path)
    let s = Scanner.scan(f, perTensor: true, scanNonFinite: true, windowBytes: window)
    #expect(s.sha256 == sha256Hex(bytes))
    #expect(s.tensorDataSHA256 == sha256Hex(bytes[f.dataStart...]))
    for (name, r) in ranges {
      #expect(s.tensorSHA256?[name] == sha256Hex(bytes[(f.dataStart + r.lowerBound)..<(f.dataStart + r.upperBound)]), "\(name)")
    }
    // Without per-tensor hashes the scan is split differently between the two threads.
    let plain = Scanner.scan(f, perTensor: false, scanNonFinite: true, windowBytes: window)
    #expect(plain.sha256 == s.sha256 && plain.tensorDataSHA256 == s.tensorDataSHA256 && plain.tensorSHA256 == nil)
    for result in [s, plain] {
      let got = Dictionary(uniqueKeysWithValues: result.nonFinite.map { ($0.key, ($0.nan, $0.inf)) })
      #expect(got.count == expected.count && got.keys.sorted() == expected.keys.sorted())
      for (k, v) in expected {
        #expect(got[k]?.0 == v.0 && got[k]?.1 == v.1, "\(k): got \(String(describing: got[k])), want \(v)")
      }
    }
  }

  @Test("a file over 64 MiB: NaN/Inf counted exactly around the window edge, hashes equal the data's", arguments: 0..<4)
  func beyondOneWindow(shift: Int) throws {
    let dir = TempDir("scan")
    let path = dir.file("big.safetensors")
    let n = 17_000_000  // 68 MB of F32: one real 64 MiB window edge
    // An empty tensor at offset 0 and a small F64 tensor after the big one.
    var header =
      "{\(entry("a.empty", "F32", [0], 0, 0)),\(entry("big", "F32", [n], 0, 4 * n)),\(entry("tail", "F64", [3], 4 * n, 4 * n + 24))}"
    while (8 + header.utf8.count) % 4 != shift { header += " " }
    var data = [UInt8](repeating: 0, count: 4 * n + 24)
    let dataStart = 8 + header.utf8.count
    let edge = Scanner.windowBytes - dataStart  // data offset of the window edge
    let straddling = edge / 4  // the element the edge cuts (or the first after it when aligned)
    func put(_ i: Int, _ bits: UInt32) { for k in 0..<4 { data[4 * i + k] = UInt8(truncatingIfNeeded: bits >> (8 * UInt32(k))) } }
    let nan: UInt32 = 0x7FC0_0001
    let inf: UInt32 = 0xFF80_0000
    let specials: [(Int, UInt32)] = [
      (0, nan), (straddling - 2, inf), (straddling - 1, nan), (straddling, nan), (straddling + 1, inf), (straddling + 2, nan),
      (n - 1, inf),
    ]
    for (i, bits) in specials { put(i, bits) }
    // tail: [NaN, 1.0, NaN] as F64.
    let tail = leBytes([Double.nan, 1, -.nan])
    data.replaceSubrange((4 * n)..<(4 * n + 24), with: tail)
    let file = RawFile.bytes(header: header, data: data)
    RawFile.write(file, to: path)
    let f = try SafeTensorsFile(path: path)
    #expect(f.file.size > Scanner.windowBytes)
    let s = Scanner.scan(f, perTensor: true)
    #expect(s.nonFinite == [NonFinite(key: "big", nan: 4, inf: 3), NonFinite(key: "tail", nan: 2, inf: 0)])
    let plain = Scanner.scan(f, perTensor: false)
    #expect(plain.nonFinite == s.nonFinite && plain.sha256 == s.sha256 && plain.tensorDataSHA256 == s.tensorDataSHA256)
    #expect(s.sha256 == sha256Hex(file))
    #expect(s.tensorDataSHA256 == sha256Hex(data))
    #expect(s.tensorSHA256?["a.empty"] == sha256Hex([UInt8]()))
    #expect(s.tensorSHA256?["big"] == sha256Hex(data[0..<(4 * n)]))
    #expect(s.tensorSHA256?["tail"] == sha256Hex(tail))
  }
}
