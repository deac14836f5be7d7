import Foundation
import SafeTensors

/// A temporary folder removed when the value goes away.
final class TempDir {
  let path: String

  /// - Parameter memory: prefer a RAM-backed folder (/dev/shm) for tests that write many
  ///   small files.
  init(_ label: String = "st", memory: Bool = false) {
    var isDir: ObjCBool = false
    let shm = memory && FileManager.default.fileExists(atPath: "/dev/shm", isDirectory: &isDir) && isDir.boolValue
    let base = shm ? "/dev/shm" : FileManager.default.temporaryDirectory.path
    path = "\(base)/mixlab-test-\(label)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: path) }

  func file(_ name: String) -> String { "\(path)/\(name)" }

  /// Every entry of the folder, hidden ones included.
  func listing() -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
  }
}

/// SplitMix64: a tiny deterministic generator for test data (independent of the code under test).
struct SplitMix {
  var state: UInt64

  init(_ seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// Builds safetensors files byte by byte, valid or not, independently of the writer.
enum RawFile {
  /// The 8-byte little-endian length prefix.
  static func prefix(_ n: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) }
  }

  /// Prefix + header text + data; the prefix states the header's real length unless given.
  static func bytes(header: [UInt8], data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    prefix(declaredLength ?? UInt64(header.count)) + header + data
  }

  static func bytes(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    bytes(header: Array(header.utf8), data: data, declaredLength: declaredLength)
  }

  static func write(_ bytes: [UInt8], to path: String) {
    precondition(FileManager.default.createFile(atPath: path, contents: Data(bytes)), "cannot write \(path)")
  }
}

/// Little-endian bytes of fixed-width values.
func leBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
  var out: [UInt8] = []
  out.reserveCapacity(values.count * MemoryLayout<T>.size)
  for v in values {
    withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
  }
  return out
}

func leBytes(_ values: [Float]) -> [UInt8] { leBytes(values.map(\.bitPattern)) }
func leBytes(_ values: [Double]) -> [UInt8] { leBytes(values.map(\.bitPattern)) }

/// Writes `specs` with the canonical writer, taking each tensor's bytes from `bytes`.
@discardableResult
func writeCanonical(
  _ path: String, specs: [TensorSpec], metadata: [String: String] = [:], bytes: (TensorInfo) -> [UInt8]
) throws -> WriteResult {
  let w = try SafeTensorsWriter(path: path, specs: specs, metadata: metadata)
  for t in w.tensors {
    let b = bytes(t)
    precondition(b.count == t.byteCount, "test data for \(t.name) has the wrong length")
    try b.withUnsafeBytes { try w.append($0) }
  }
  return try w.finish()
}

/// Reads a whole file.
func fileBytes(_ path: String) -> [UInt8] {
  Array(FileManager.default.contents(atPath: path) ?? Data())
}

func sha256Hex(_ bytes: some Collection<UInt8>) -> String { Digest.sha256(Array(bytes)) }
