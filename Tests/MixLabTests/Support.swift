import Architectures
import Foundation
import MixLab
import Provenance
import SafeTensors
import Testing

/// A fresh workspace in a temporary folder, removed when the value goes away.
final class TempWorkspace {
  let root: String
  let workspace: Workspace

  init() throws {
    root = FileManager.default.temporaryDirectory.path + "/mixlab-tests-\(UUID().uuidString)"
    workspace = try Workspace.initialize(at: root)
  }

  deinit { try? FileManager.default.removeItem(atPath: root) }

  /// Writes `text` to `experiments/<experiment>/<file>` and returns its path.
  @discardableResult
  func recipe(_ experiment: String, _ file: String, _ text: String) throws -> String {
    let dir = "\(root)/experiments/\(experiment)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try text.write(toFile: "\(dir)/\(file)", atomically: true, encoding: .utf8)
    return "\(dir)/\(file)"
  }

  /// Copies the shared synthetic SD1 models into `<root>/models/` (so a test may move them).
  func copyModels() throws -> [String] {
    let dir = root + "/models"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return try (try Models.sd1).map { src in
      let dst = dir + "/" + (src as NSString).lastPathComponent
      try FileManager.default.copyItem(atPath: src, toPath: dst)
      return dst
    }
  }

  /// Runs `path` (relative to the workspace root) quietly.
  func run(_ path: String, _ configure: (inout RunOptions) -> Void = { _ in }) throws -> [RunResult] {
    var o = RunOptions()
    o.quiet = true
    configure(&o)
    return try Runner.run(path: root + "/" + path, options: o)
  }

  /// Number of runs in the index and the provenance repository's tip.
  func recorded() throws -> (runs: Int, tip: String?) {
    let ws = Workspace(root: root)
    return (try ws.index().runs().count, try ws.git().tip())
  }
}

/// Small synthetic models shared by the tests that only read them (written once per process).
enum Models {
  static let folder: String = {
    let dir = FileManager.default.temporaryDirectory.path + "/mixlab-tests-models-\(getpid())"
    atexit { try? FileManager.default.removeItem(atPath: Models.folder) }
    return dir
  }()

  /// SD1 layout at scale 0.02: a base and three variants.
  static var sd1: [String] { get throws { try sd1Result.get() } }
  /// SDXL layout at scale 0.01: a base and one variant.
  static var sdxl: [String] { get throws { try sdxlResult.get() } }

  private static let sd1Result = Result {
    try Synthesizer(architecture: .sd1, count: 4, seed: 11, scale: 0.02, dtype: .f16).write(to: folder + "/sd1").map(\.path)
  }
  private static let sdxlResult = Result {
    try Synthesizer(architecture: .sdxl, count: 2, seed: 12, scale: 0.01, dtype: .f16).write(to: folder + "/sdxl").map(\.path)
  }
}

/// SHA-256 of a file's bytes, computed here rather than by the code under test.
func fileSHA256(_ path: String) throws -> String {
  Digest.sha256(try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// The raw bytes of tensor `name` in the safetensors file at `path`.
func tensorBytes(_ path: String, _ name: String) throws -> [UInt8] {
  let f = try SafeTensorsFile(path: path)
  let t = try #require(f.info(name), "\(path) has no tensor \(name)")
  return f.withBytes(of: t) { Array($0) }
}

/// The text of an error as a user sees it.
func message(_ error: any Error) -> String {
  (error as? LocalizedError)?.errorDescription ?? "\(error)"
}

/// A two-model soup with paths as written in the recipe (relative to `experiments/<exp>/`).
func soupRecipe(_ a: String, _ b: String, weights: String = "[1, 1]", aExtra: String = "") -> String {
  """
  mixlab: 1
  inputs:
    a: {path: \(a)\(aExtra)}
    b: \(b)
  steps:
    soup:
      method: average
      models: [a, b]
      weights: \(weights)
  output:
    from: soup
    dtype: f16

  """
}
