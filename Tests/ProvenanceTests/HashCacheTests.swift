import Foundation
import SafeTensors
import Testing

@testable import Provenance

@Suite("HashCache")
struct HashCacheTests {
  /// Writes a small model whose bytes depend on `variant`; returns what the writer hashed.
  @discardableResult
  static func writeModel(_ path: String, variant: UInt8 = 0) throws -> WriteResult {
    let specs = [
      TensorSpec(name: "model.diffusion_model.out.2.weight", dtype: .f32, shape: [4, 8]),
      TensorSpec(name: "model.diffusion_model.out.2.bias", dtype: .f16, shape: [4]),
      TensorSpec(name: "empty", dtype: .f32, shape: [0]),
    ]
    let writer = try SafeTensorsWriter(path: path, specs: specs, metadata: ["format": "pt"])
    let total = specs.reduce(0) { $0 + $1.byteCount }
    let bytes = (0..<total).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(variant)) }
    try bytes.withUnsafeBytes { try writer.append($0) }
    return try writer.finish()
  }

  @Test("the second call hits the cache and returns the same hashes as the writer computed")
  func cacheHit() throws {
    let dir = try TemporaryDirectory()
    let cache = HashCache(index: try IndexDB(path: dir.file("index.sqlite")))
    let written = try Self.writeModel(dir.file("a.safetensors"))
    let first = try cache.hashes(of: try SafeTensorsFile(path: dir.file("a.safetensors")))
    #expect(!first.fromCache)
    #expect(first.sha256 == written.sha256)
    #expect(first.tensorDataSHA256 == written.tensorDataSHA256)
    #expect(first.tensorSHA256 == written.tensorSHA256)
    #expect(first.tensorSHA256.count == 3)
    let second = try cache.hashes(of: try SafeTensorsFile(path: dir.file("a.safetensors")))
    #expect(second.fromCache)
    #expect(second.sha256 == first.sha256 && second.tensorSHA256 == first.tensorSHA256)
    #expect(second.tensorDataSHA256 == first.tensorDataSHA256)
  }

  @Test("touching the file (new mtime) invalidates the entry")
  func touchInvalidates() throws {
    let dir = try TemporaryDirectory()
    let cache = HashCache(index: try IndexDB(path: dir.file("index.sqlite")))
    let path = dir.file("a.safetensors")
    try Self.writeModel(path)
    _ = try cache.hashes(of: try SafeTensorsFile(path: path))
    #expect(try cache.hashes(of: try SafeTensorsFile(path: path)).fromCache)
    try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -3600)], ofItemAtPath: path)
    let afterTouch = try cache.hashes(of: try SafeTensorsFile(path: path))
    #expect(!afterTouch.fromCache)
    #expect(try cache.hashes(of: try SafeTensorsFile(path: path)).fromCache)
  }

  @Test("replacing the file with other bytes gives the new hashes")
  func replacedFile() throws {
    let dir = try TemporaryDirectory()
    let cache = HashCache(index: try IndexDB(path: dir.file("index.sqlite")))
    let path = dir.file("a.safetensors")
    let old = try Self.writeModel(path, variant: 0)
    _ = try cache.hashes(of: try SafeTensorsFile(path: path))
    let new = try Self.writeModel(path, variant: 1)
    #expect(old.sha256 != new.sha256)
    let hashes = try cache.hashes(of: try SafeTensorsFile(path: path))
    #expect(!hashes.fromCache)
    #expect(hashes.sha256 == new.sha256)
  }

  @Test("verify reads the file even when the cache is fresh")
  func verifyRecomputes() throws {
    let dir = try TemporaryDirectory()
    let cache = HashCache(index: try IndexDB(path: dir.file("index.sqlite")))
    let path = dir.file("a.safetensors")
    let written = try Self.writeModel(path)
    _ = try cache.hashes(of: try SafeTensorsFile(path: path))
    let verified = try cache.hashes(of: try SafeTensorsFile(path: path), verify: true)
    #expect(!verified.fromCache)
    #expect(verified.sha256 == written.sha256)
    #expect(try cache.hashes(of: try SafeTensorsFile(path: path)).fromCache)
  }

  @Test("a symbolic link and a relative path share the entry of the file they name")
  func resolvedPaths() throws {
    let dir = try TemporaryDirectory()
    let index = try IndexDB(path: dir.file("index.sqlite"))
    let cache = HashCache(index: index)
    let path = dir.file("a.safetensors")
    try Self.writeModel(path)
    _ = try cache.hashes(of: try SafeTensorsFile(path: path))
    try FileManager.default.createSymbolicLink(atPath: dir.file("link.safetensors"), withDestinationPath: path)
    #expect(try cache.hashes(of: try SafeTensorsFile(path: dir.file("link.safetensors"))).fromCache)
    let rows = try index.writer.read { try CachedHash.fetchAll($0) }
    #expect(rows.count == 1)
    #expect(rows.first?.path == (try HashCache.resolvedPath(path)))
  }
}
