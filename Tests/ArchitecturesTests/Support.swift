import Foundation

/// A temporary folder removed when the value goes away.
final class TempDir {
  let path: String

  init(_ label: String) {
    path = FileManager.default.temporaryDirectory.path + "/mixlab-test-\(label)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: path) }

  func file(_ name: String) -> String { "\(path)/\(name)" }

  func listing(_ sub: String = "") -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: sub.isEmpty ? path : file(sub))) ?? []).sorted()
  }
}

func fileBytes(_ path: String) -> [UInt8] {
  Array(FileManager.default.contents(atPath: path) ?? Data())
}
