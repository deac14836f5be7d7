import Foundation
import Testing

@testable import SafeTensors

@Suite("Strict reader: mutation fuzz")
struct ReaderFuzzTests {
  /// A small valid file holding every dtype, metadata, a scalar and an empty tensor.
  static func seedFile(in dir: TempDir) throws -> [UInt8] {
    var specs: [TensorSpec] = DType.allCases.map { TensorSpec(name: "t_\($0.rawValue)", dtype: $0, shape: [3]) }
    specs.append(TensorSpec(name: "scalar", dtype: .f32, shape: []))
    specs.append(TensorSpec(name: "empty", dtype: .f16, shape: [0, 4]))
    specs.append(TensorSpec(name: "matrix", dtype: .bf16, shape: [2, 3]))
    let path = dir.file("seed.safetensors")
    var rng = SplitMix(1)
    try writeCanonical(path, specs: specs, metadata: ["format": "pt", "note": "fuzz seed ✓"]) { t in
      (0..<t.byteCount).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }
    return fileBytes(path)
  }

  /// One random edit: bit flips, byte changes, inserts, deletes, length-prefix changes,
  /// truncation, JSON-significant characters and digit changes in the header, and slice copies.
  static func mutate(_ input: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
    var b = input
    func lengthPrefix() -> UInt64 {
      b.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }
    // End of the header as the prefix declares it, clamped to the file.
    let headerEnd = b.count >= 8 ? 8 + Int(min(lengthPrefix(), UInt64(b.count - 8))) : 0
    func headerPosition() -> Int { 8 + rng.below(headerEnd - 8) }
    switch rng.below(9) {
    case 0 where !b.isEmpty:
      b[rng.below(b.count)] ^= 1 << UInt8(rng.below(8))
    case 1 where !b.isEmpty:
      b[rng.below(b.count)] = UInt8(truncatingIfNeeded: rng.next())
    case 2:
      b.insert(UInt8(truncatingIfNeeded: rng.next()), at: rng.below(b.count + 1))
    case 3 where !b.isEmpty:
      b.remove(at: rng.below(b.count))
    case 4 where b.count >= 8:
      var n = lengthPrefix()
      switch rng.below(4) {
      case 0: n = n &+ UInt64(rng.below(16)) &+ 1
      case 1: n = n &- UInt64(rng.below(16)) &- 1
      case 2: n = rng.next()
      default: n = UInt64(rng.below(b.count + 16))
      }
      for i in 0..<8 { b[i] = UInt8(truncatingIfNeeded: n >> (8 * UInt64(i))) }
    case 5:
      b = Array(b.prefix(rng.below(b.count + 1)))
    case 6 where headerEnd > 8:
      let specials = Array("{}[]\",:-.eE \\u0\u{0}".utf8)
      b[headerPosition()] = specials[rng.below(specials.count)]
    case 7 where headerEnd > 8:
      // Change a digit: offsets and shapes shift by small amounts.
      let digits = (8..<headerEnd).filter { b[$0] >= 0x30 && b[$0] <= 0x39 }
      if let i = digits.isEmpty ? nil : digits[rng.below(digits.count)] { b[i] = 0x30 + UInt8(rng.below(10)) }
    case 8 where b.count > 2:
      let start = rng.below(b.count)
      let length = min(b.count - start, 1 + rng.below(16))
      let slice = Array(b[start..<(start + length)])
      b.insert(contentsOf: slice, at: rng.below(b.count + 1))
    default:
      break
    }
    return b
  }

  @Test("20,000 mutations of a valid file: no crash; each is refused with a SafeTensorsError or reads consistently")
  func mutationFuzz() throws {
    let dir = TempDir("fuzz", memory: true)
    let seed = try Self.seedFile(in: dir)
    let path = dir.file("mutant.safetensors")
    var rng = SplitMix(20_250_101)
    var accepted = 0
    var refusedKinds: [String: Int] = [:]
    for _ in 0..<20_000 {
      var bytes = seed
      for _ in 0...rng.below(3) { bytes = Self.mutate(bytes, &rng) }
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      let file: SafeTensorsFile
      do {
        file = try SafeTensorsFile(path: path)
      } catch {
        let message = error.localizedDescription
        if !message.hasPrefix(path + ": ") { Issue.record("message does not name the file: \(message)") }
        refusedKinds["\(error)".prefix { $0 != "(" }.description, default: 0] += 1
        continue
      }
      accepted += 1
      try checkInvariants(file, bytes: bytes)
    }
    // The fuzz is only meaningful if it explores both outcomes and many kinds of refusal.
    #expect(accepted > 300, "accepted \(accepted), refused \(refusedKinds)")
    #expect(refusedKinds.count >= 9, "refusals seen: \(refusedKinds)")
  }

  /// What must hold for any file the reader accepts.
  func checkInvariants(_ f: SafeTensorsFile, bytes: [UInt8]) throws {
    #expect(f.dataStart == 8 + f.headerLength)
    var expected = 0
    for t in f.tensors {
      #expect(t.begin == expected)
      #expect(t.elementCount * t.dtype.size == t.byteCount)
      #expect(f.info(t.name) == t)
      expected = t.end
    }
    #expect(expected == bytes.count - f.dataStart)
    var floats: [Float] = []
    var doubles: [Double] = []
    for t in f.tensors {
      let n = t.elementCount
      floats = [Float](repeating: 0, count: n)
      doubles = [Double](repeating: 0, count: n)
      f.read(t, elements: 0..<n, into: &floats)
      f.read(t, elements: 0..<n, into: &doubles)
      for i in 0..<n where !(floats[i].isNaN && doubles[i].isNaN) && Double(floats[i]) != Double(Float(doubles[i])) {
        Issue.record("\(t.name)[\(i)]: Float \(floats[i]) vs Double \(doubles[i])")
      }
    }
    let scan = Scanner.scan(f, perTensor: true)
    #expect(scan.sha256 == sha256Hex(bytes))
    #expect(scan.tensorDataSHA256 == sha256Hex(bytes[f.dataStart...]))
    for t in f.tensors {
      let r = f.fileRange(of: t)
      #expect(scan.tensorSHA256?[t.name] == sha256Hex(bytes[r]))
    }
    for nf in scan.nonFinite {
      let t = try #require(f.info(nf.key))
      #expect(t.dtype.isFloat && nf.nan + nf.inf > 0 && nf.nan + nf.inf <= t.elementCount)
    }
  }
}
