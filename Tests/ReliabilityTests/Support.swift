import Foundation
import Provenance
import SafeTensors
import Testing

/// Running the built `mixlab` (with test hooks in its environment) and inspecting what a
/// workspace holds afterwards.
enum Tool {
  struct Result {
    var status: Int32
    /// True when the process died of a signal (`status` is then the signal number).
    var signaled: Bool
    var stdout: String
    var stderr: String

    var killed: Bool { signaled && status == SIGKILL }
    var describe: String { "status \(status)\(signaled ? " (signal)" : ""), stderr: \(stderr)" }
  }

  /// The package root (this file is Tests/ReliabilityTests/…).
  static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

  /// The built `mixlab`: next to the test bundle, else in `.build/debug`.
  static let binary: String? = {
    var candidates: [String] = []
    let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    candidates.append(me.deletingLastPathComponent().appendingPathComponent("mixlab").path)
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
      candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("mixlab").path)
    }
    candidates.append(packageRoot + "/.build/debug/mixlab")
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
  }()

  static let git: String? = ["/usr/bin/git", "/usr/local/bin/git"].first { FileManager.default.isExecutableFile(atPath: $0) }

  /// A started process whose output is collected in the background.
  final class Running: @unchecked Sendable {
    // Sendable: `out` and `err` are written by one reader thread each and read after `group.wait()`.
    let process = Process()
    private let group = DispatchGroup()
    private var out = Data()
    private var err = Data()

    init(_ executable: String, _ args: [String], in cwd: String, env: [String: String]) throws {
      process.executableURL = URL(fileURLWithPath: executable)
      process.arguments = args
      process.currentDirectoryURL = URL(fileURLWithPath: cwd)
      var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("MIXLAB_TEST_") }
      environment.merge(env) { _, new in new }
      process.environment = environment
      let outPipe = Pipe()
      let errPipe = Pipe()
      process.standardOutput = outPipe
      process.standardError = errPipe
      try process.run()
      DispatchQueue.global().async(group: group) { self.out = outPipe.fileHandleForReading.readDataToEndOfFile() }
      DispatchQueue.global().async(group: group) { self.err = errPipe.fileHandleForReading.readDataToEndOfFile() }
    }

    func wait() -> Result {
      group.wait()
      process.waitUntilExit()
      return Result(
        status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal,
        stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }
  }

  static func start(_ args: [String], in cwd: String, env: [String: String] = [:]) throws -> Running {
    let bin = try #require(binary, "the mixlab binary was not found; run `swift build` first")
    return try Running(bin, args, in: cwd, env: env)
  }

  static func mixlab(_ args: [String], in cwd: String, env: [String: String] = [:]) throws -> Result {
    try start(args, in: cwd, env: env).wait()
  }

  static func exec(_ executable: String, _ args: [String], in cwd: String) throws -> Result {
    try Running(executable, args, in: cwd, env: [:]).wait()
  }

  /// Waits until `path` exists (a paused process announcing itself), at most `seconds`.
  static func waitFor(_ path: String, seconds: Double = 60) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      if FileManager.default.fileExists(atPath: path) { return true }
      usleep(10_000)
    }
    return false
  }
}

/// Three small SD1-layout models, synthesized once for the whole test run and read by
/// absolute path (inputs may live outside a workspace), and the outputs a clean sequential
/// run makes from them.
final class SharedModels: Sendable {
  let folder: String
  let paths: [String]
  /// Recipe name → SHA-256 of the output of a clean sequential run.
  let expected: [String: String]

  static let shared: SharedModels = {
    do {
      return try SharedModels()
    } catch {
      fatalError("cannot prepare the shared models: \(error)")
    }
  }()

  private init() throws {
    let folder = FileManager.default.temporaryDirectory.path + "/mixlab-reliability-models-\(getpid())"
    self.folder = folder
    try? FileManager.default.removeItem(atPath: folder)
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let synth = try Tool.mixlab(
      ["synth", "--arch", "sd1", "--count", "3", "--seed", "7", "--out", folder, "--scale", "0.02"], in: folder)
    guard synth.status == 0 else { throw LabError("mixlab synth failed: \(synth.describe)") }
    paths = (0..<3).map { folder + "/sd1-0\($0).safetensors" }
    // The reference: one clean sequential run of both experiments.
    let lab = try Lab(models: paths)
    let run = try lab.run(["run", "experiments/e"])
    let other = try lab.run(["run", "experiments/f"])
    guard run.status == 0, other.status == 0 else { throw LabError("reference run failed: \(run.describe) \(other.describe)") }
    var expected: [String: String] = [:]
    for r in ["soup", "mix"] { expected[r] = try lab.sha256("artifacts/e/\(r).safetensors") }
    expected["pair"] = try lab.sha256("artifacts/f/pair.safetensors")
    self.expected = expected
  }
}

struct LabError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// A workspace made by `mixlab init` with two experiments over the given models:
/// `e` = `soup` (average of the three) and `mix` (soup blended with model 1), `f` = `pair`
/// (weighted sum of models 0 and 2). Removed when the value goes away.
final class Lab {
  let root: String

  init(models: [String]) throws {
    root = FileManager.default.temporaryDirectory.path + "/mixlab-reliability-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    let r = try Tool.mixlab(["init", "."], in: root)
    guard r.status == 0 else { throw LabError("mixlab init failed: \(r.describe)") }
    try write(
      "experiments/e/soup.yaml",
      """
      mixlab: 1
      inputs:
        a: \(models[0])
        b: \(models[1])
        c: \(models[2])
      steps:
        m: {method: average, models: [a, b, c]}
      output: {from: m}

      """)
    try write(
      "experiments/e/mix.yaml",
      """
      mixlab: 1
      inputs:
        s: {recipe: soup}
        b: \(models[1])
      steps:
        m: {method: weighted_sum, models: [s, b], alpha: 0.3}
      output: {from: m, dtype: f16}

      """)
    try write(
      "experiments/f/pair.yaml",
      """
      mixlab: 1
      inputs:
        a: \(models[0])
        c: \(models[2])
      steps:
        m: {method: weighted_sum, models: [a, c], alpha: 0.25}
      output: {from: m}

      """)
  }

  deinit { try? FileManager.default.removeItem(atPath: root) }

  func path(_ relative: String) -> String { root + "/" + relative }

  func write(_ relative: String, _ text: String) throws {
    let p = path(relative)
    try FileManager.default.createDirectory(
      atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try text.write(toFile: p, atomically: true, encoding: .utf8)
  }

  func run(_ args: [String], env: [String: String] = [:]) throws -> Tool.Result {
    try Tool.mixlab(args, in: root, env: env)
  }

  func sha256(_ relative: String) throws -> String {
    Digest.sha256(try Data(contentsOf: URL(fileURLWithPath: path(relative)), options: .alwaysMapped))
  }

  func listing(_ relative: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path(relative))) ?? []).sorted()
  }

  func index() throws -> IndexDB { try IndexDB(path: path(".mixlab/index.sqlite")) }
  func git() throws -> GitStore { try GitStore(path: path(".mixlab/provenance.git"), create: false) }

  /// `git fsck --strict` output when it reports a problem, nil when clean (dangling objects,
  /// left by commits that lost a race, are not problems).
  func fsckProblems() throws -> String? {
    guard let git = Tool.git else { return nil }
    let r = try Tool.exec(git, ["--git-dir", path(".mixlab/provenance.git"), "fsck", "--strict", "--no-progress"], in: root)
    let text = r.stdout + r.stderr
    let bad = text.split(separator: "\n").filter {
      !$0.hasPrefix("dangling ") && !$0.hasPrefix("Checking ") && !$0.hasPrefix("notice: ")
    }
    return r.status == 0 && bad.isEmpty ? nil : "fsck status \(r.status): \(text)"
  }

  /// Temporary files and moved-aside artifacts in an artifact folder.
  func leftovers(_ experiment: String) -> [String] {
    listing("artifacts/\(experiment)").filter { $0.contains(".mixlab-tmp-") || $0.contains(".mixlab-old-") }
  }

  /// What must hold at any moment, even right after a kill: every file at an artifact's final
  /// path is complete (the bytes a clean run makes); every indexed run points at an existing
  /// file with its hash and at a commit of the provenance repository, whose manifest exists;
  /// the repository passes `git fsck --strict`; nothing else lies in the artifact folders.
  func checkConsistent(expected: [String: String], sourceLocation: SourceLocation = #_sourceLocation) throws {
    for experiment in ["e", "f"] {
      for name in listing("artifacts/\(experiment)") {
        // The report and its pictures (docs/compare.md) are regenerated after every run.
        if name == "REPORT.md" || name.contains(".mixlab-tmp-") { continue }
        if [".compare.json", ".diff.svg", ".map.svg"].contains(where: { name.hasSuffix($0) }) { continue }
        guard name.hasSuffix(".safetensors"), let want = expected[String(name.dropLast(12))] else {
          Issue.record("unexpected file artifacts/\(experiment)/\(name)", sourceLocation: sourceLocation)
          continue
        }
        let file = path("artifacts/\(experiment)/\(name)")
        #expect(throws: Never.self, "\(name) must be a valid safetensors file", sourceLocation: sourceLocation) {
          _ = try SafeTensorsFile(path: file)
        }
        #expect(try sha256("artifacts/\(experiment)/\(name)") == want, "\(name) is incomplete", sourceLocation: sourceLocation)
      }
    }
    let index = try index()
    let git = try git()
    for run in try index.runs() {
      let artifact = try #require(try index.artifact(sha256: run.outputSHA256), sourceLocation: sourceLocation)
      let file = path(artifact.path)
      #expect(
        FileManager.default.fileExists(atPath: file), "run \(run.runID) points at missing \(artifact.path)",
        sourceLocation: sourceLocation)
      if FileManager.default.fileExists(atPath: file) {
        #expect(try sha256(artifact.path) == run.outputSHA256, sourceLocation: sourceLocation)
      }
      #expect(try git.resolveCommit(prefix: run.commitID) == run.commitID, sourceLocation: sourceLocation)
      #expect(try git.read(path: "runs/\(run.outputSHA256)/manifest.json") != nil, sourceLocation: sourceLocation)
    }
    if let problem = try fsckProblems() { Issue.record("git fsck: \(problem)", sourceLocation: sourceLocation) }
  }
}
