import Foundation
import Provenance
import Testing

/// Inputs that change while a run reads them, and a disk that fills up: the run fails with a
/// message naming the input or the disk, and records and leaves nothing.
@Suite("Changing inputs and a full disk")
struct ChangingInputTests {
  /// A workspace whose experiment `e` reads private copies of the models (so a test can
  /// change them), and a folder for the pause handshake.
  final class Setup {
    let models: [String]
    let lab: Lab
    let pauseDir: String

    init() throws {
      let shared = SharedModels.shared
      let folder = FileManager.default.temporaryDirectory.path + "/mixlab-reliability-inputs-\(UUID().uuidString)"
      try FileManager.default.createDirectory(atPath: folder + "/pause", withIntermediateDirectories: true)
      models = try shared.paths.enumerated().map { i, p in
        let copy = folder + "/model\(i).safetensors"
        try FileManager.default.copyItem(atPath: p, toPath: copy)
        return copy
      }
      pauseDir = folder + "/pause"
      lab = try Lab(models: models)
    }

    deinit { try? FileManager.default.removeItem(atPath: (pauseDir as NSString).deletingLastPathComponent) }

    /// Runs `soup` until it reaches `point`, calls `change` while it waits there, lets it go on.
    func run(pausingAt point: String, _ change: () throws -> Void) throws -> Tool.Result {
      let running = try Tool.start(
        ["run", "experiments/e/soup.yaml"], in: lab.root,
        env: ["MIXLAB_TEST_PAUSE_AT": point, "MIXLAB_TEST_PAUSE_DIR": pauseDir])
      guard Tool.waitFor(pauseDir + "/\(point).paused") else {
        kill(running.process.processIdentifier, SIGKILL)
        throw LabError("the run never reached \(point): \(running.wait().describe)")
      }
      try change()
      _ = FileManager.default.createFile(atPath: pauseDir + "/\(point).resume", contents: nil)
      return running.wait()
    }

    /// Nothing recorded, nothing in place, nothing temporary left.
    func expectNothingRecorded(sourceLocation: SourceLocation = #_sourceLocation) throws {
      #expect(try lab.index().runs().isEmpty, sourceLocation: sourceLocation)
      #expect(try lab.git().tip() == nil, sourceLocation: sourceLocation)
      #expect(
        lab.listing("artifacts/e").filter { $0 != "REPORT.md" }.isEmpty, "left: \(lab.listing("artifacts/e"))",
        sourceLocation: sourceLocation)
    }
  }

  /// Overwrites 64 bytes near the end of `path` in place (same size, new mtime and ctime).
  static func scribble(_ path: String) throws {
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    let size = try handle.seekToEnd()
    try handle.seek(toOffset: size - 64)
    try handle.write(contentsOf: Data(repeating: 0x3C, count: 64))
  }

  /// Replaces `path` by `source`'s bytes the way downloaders and rsync do: a new file renamed over it.
  static func replace(_ path: String, with source: String) throws {
    let temp = path + ".part"
    try FileManager.default.copyItem(atPath: source, toPath: temp)
    guard rename(temp, path) == 0 else { throw LabError("rename failed") }
  }

  @Test("an input written to in place during the merge: the run fails naming it, records nothing")
  func modifiedDuringMerge() throws {
    let s = try Setup()
    let r = try s.run(pausingAt: "mid-tensor") { try Self.scribble(s.models[1]) }
    #expect(r.status != 0 && !r.signaled)
    #expect(r.stderr.contains("input `b`") && r.stderr.contains("was modified while the run read it"), "\(r.stderr)")
    #expect(r.stderr.contains("nothing was recorded"))
    try s.expectNothingRecorded()
  }

  @Test("an input replaced by different bytes during the merge: the run fails naming it, records nothing")
  func replacedDuringMerge() throws {
    let s = try Setup()
    let r = try s.run(pausingAt: "mid-tensor") { try Self.replace(s.models[1], with: s.models[2]) }
    #expect(r.status != 0 && !r.signaled)
    #expect(r.stderr.contains("input `b`") && r.stderr.contains("was replaced by another file"), "\(r.stderr)")
    try s.expectNothingRecorded()
  }

  @Test("an input replaced by the same bytes during the merge (a re-download): the run stands")
  func replacedBySameBytes() throws {
    let s = try Setup()
    let copy = s.models[1] + ".same"
    try FileManager.default.copyItem(atPath: s.models[1], toPath: copy)
    let r = try s.run(pausingAt: "mid-tensor") { try Self.replace(s.models[1], with: copy) }
    #expect(r.status == 0, "\(r.describe)")
    #expect(try s.lab.sha256("artifacts/e/soup.safetensors") == SharedModels.shared.expected["soup"])
    #expect(try s.lab.index().runs().count == 1)
  }

  @Test("an input written to while it is hashed: the run fails naming it, records nothing")
  func modifiedWhileHashed() throws {
    let s = try Setup()
    let r = try s.run(pausingAt: "hashing") { try Self.scribble(s.models[0]) }
    #expect(r.status != 0 && !r.signaled)
    #expect(r.stderr.contains("input `a`") && r.stderr.contains("while it was being hashed"), "\(r.stderr)")
    try s.expectNothingRecorded()
    // Nothing wrong was cached: the next run hashes the new bytes and completes.
    #expect(try s.lab.run(["run", "experiments/e/soup.yaml"]).status == 0)
    #expect(try s.lab.sha256("artifacts/e/soup.safetensors") != SharedModels.shared.expected["soup"])
  }

  @Test("an input changed after a recorded run is detected by its hash, and the output is rebuilt")
  func changedBetweenRuns() throws {
    let s = try Setup()
    try #require(try s.lab.run(["run", "experiments/e/soup.yaml"]).status == 0)
    try Self.scribble(s.models[2])
    let r = try s.lab.run(["run", "--json", "experiments/e/soup.yaml"])
    #expect(r.status == 0)
    let runs = try s.lab.index().runs()
    #expect(runs.count == 2 && Set(runs.map(\.outputSHA256)).count == 2, "the changed input gave a new run")
  }

  @Test("a full disk while writing (simulated ENOSPC): a clear error, nothing half-written or recorded")
  func diskFullSimulated() throws {
    let s = try Setup()
    let r = try s.lab.run(["run", "experiments/e/soup.yaml"], env: ["MIXLAB_TEST_FAIL": "enospc"])
    #expect(r.status != 0 && !r.signaled)
    #expect(r.stderr.contains("the disk is full") && r.stderr.contains("soup.safetensors"), "\(r.stderr)")
    try s.expectNothingRecorded()
  }

  @Test("a full disk for real (a 128 KiB tmpfs over the artifact folder, where user namespaces allow mounting)")
  func diskFullTmpfs() throws {
    let unshare = "/usr/bin/unshare"
    guard FileManager.default.isExecutableFile(atPath: unshare),
      (try? Tool.exec(unshare, ["-rm", "true"], in: "/"))?.status == 0,
      let bin = Tool.binary
    else {
      return  // no mount namespaces here; the simulated test above covers the writer's path
    }
    let s = try Setup()
    let folder = s.lab.path("artifacts/e")
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    // Inside a private mount namespace: mount, run, list what is left, all before the mount vanishes.
    let script = """
      mount -t tmpfs -o size=128k tmpfs "$1" || exit 90
      "$2" run experiments/e/soup.yaml 1>&2
      echo "status=$?"
      ls -A "$1"
      """
    let r = try Tool.exec(unshare, ["-rm", "sh", "-c", script, "sh", folder, bin], in: s.lab.root)
    guard r.status != 90 else { return }  // mounting refused
    let lines = r.stdout.split(separator: "\n").map(String.init)
    #expect(lines.first.map { $0.hasPrefix("status=") && $0 != "status=0" } ?? false, "\(r.stdout) \(r.stderr)")
    #expect(lines.dropFirst().isEmpty, "left on the full disk: \(lines.dropFirst())")
    #expect(r.stderr.contains("the disk is full"), "\(r.stderr)")
    #expect(try s.lab.index().runs().isEmpty)
    #expect(try s.lab.git().tip() == nil)
  }
}
