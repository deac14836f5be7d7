import Foundation
import Provenance
import SafeTensors
import Testing

/// A run killed with SIGKILL at each point of its life (`MIXLAB_TEST_KILL_AT`, see
/// docs/reliability.md) leaves nothing that looks valid but is not, no index row pointing at a
/// missing file, a repository `git fsck --strict` accepts, and a workspace the next run
/// completes in.
@Suite("Crash safety: SIGKILL at chosen points, then the next run")
struct CrashTests {
  /// `point#n`: the n-th time the point is reached; in a fresh workspace the run builds
  /// `soup` then `mix`, so `#2` of a writer or recording point is in `mix`.
  static let points = [
    "hashing#3", "mid-tensor", "before-rename", "after-rename", "git-commit", "after-git-commit", "sqlite", "mid-tensor#2",
    "sqlite#2",
  ]

  @Test("killed in a fresh workspace, then run again", arguments: points)
  func killFresh(point: String) throws {
    let models = SharedModels.shared
    let lab = try Lab(models: models.paths)
    let killed = try lab.run(["run", "experiments/e"], env: ["MIXLAB_TEST_KILL_AT": point])
    try #require(killed.killed, "the run was not killed at \(point): \(killed.describe)")
    try lab.checkConsistent(expected: models.expected)
    try recover(lab, models: models)
  }

  @Test("killed again and again while replacing recorded outputs (--force), then run again")
  func killForced() throws {
    let models = SharedModels.shared
    let lab = try Lab(models: models.paths)
    try #require(try lab.run(["run", "experiments/e"]).status == 0)
    for point in ["mid-tensor", "after-rename", "git-commit", "sqlite#2"] {
      let runsBefore = try lab.index().runs().count
      let killed = try lab.run(["run", "--force", "experiments/e"], env: ["MIXLAB_TEST_KILL_AT": point])
      try #require(killed.killed, "the run was not killed at \(point): \(killed.describe)")
      try lab.checkConsistent(expected: models.expected)
      // The earlier outputs are still in place and still recorded.
      for r in ["soup", "mix"] {
        #expect(try lab.sha256("artifacts/e/\(r).safetensors") == models.expected[r], "\(point)")
      }
      #expect(try lab.index().runs().count >= runsBefore)
    }
    try recover(lab, models: models, thenUpToDate: true)
  }

  @Test("killed at random moments, several times in a row, then run again")
  func killAtRandomTimes() throws {
    let models = SharedModels.shared
    let lab = try Lab(models: models.paths)
    var rng = SystemRandomNumberGenerator()
    for _ in 0..<3 {
      let running = try Tool.start(["run", "--force", "--verify", "experiments/e"], in: lab.root)
      usleep(UInt32.random(in: 50_000...900_000, using: &rng))
      kill(running.process.processIdentifier, SIGKILL)
      _ = running.wait()  // killed, or finished before the signal
      try lab.checkConsistent(expected: models.expected)
    }
    try recover(lab, models: models, thenUpToDate: true)
  }

  @Test("a branch lock left by a process killed inside libgit2 does not block the next run")
  func staleBranchLock() throws {
    let models = SharedModels.shared
    let lab = try Lab(models: models.paths)
    try #require(try lab.run(["run", "experiments/f"]).status == 0)
    try Data().write(to: URL(fileURLWithPath: lab.path(".mixlab/provenance.git/refs/heads/runs.lock")))
    try recover(lab, models: models)
    #expect(!FileManager.default.fileExists(atPath: lab.path(".mixlab/provenance.git/refs/heads/runs.lock")))
  }

  /// The next run completes, records every recipe with the clean run's bytes, and leaves
  /// nothing temporary behind.
  func recover(
    _ lab: Lab, models: SharedModels, thenUpToDate: Bool = false, sourceLocation: SourceLocation = #_sourceLocation
  ) throws {
    let again = try lab.run(["run", "--json", "experiments/e"])
    try #require(again.status == 0, "the next run failed: \(again.describe)", sourceLocation: sourceLocation)
    try lab.checkConsistent(expected: models.expected, sourceLocation: sourceLocation)
    #expect(lab.leftovers("e").isEmpty, "left behind: \(lab.leftovers("e"))", sourceLocation: sourceLocation)
    let runs = try lab.index().runs(experiment: "e")
    for r in ["soup", "mix"] {
      #expect(
        runs.contains { $0.recipeName == r && $0.outputSHA256 == models.expected[r] }, "\(r) is not recorded",
        sourceLocation: sourceLocation)
      #expect(try lab.sha256("artifacts/e/\(r).safetensors") == models.expected[r], sourceLocation: sourceLocation)
    }
    guard thenUpToDate else { return }
    // A third run finds everything up to date.
    let third = try lab.run(["run", "--json", "experiments/e"])
    let runs3 = try #require(try JSONSerialization.jsonObject(with: Data(third.stdout.utf8)) as? [String: Any])["runs"]
    let reused = (runs3 as? [[String: Any]])?.map { $0["reused"] as? Bool }
    #expect(third.status == 0 && reused == [true, true], "\(third.stdout)", sourceLocation: sourceLocation)
  }
}
