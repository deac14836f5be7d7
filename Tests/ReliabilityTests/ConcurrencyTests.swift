import Foundation
import Provenance
import Testing

/// Several `mixlab run` processes in one workspace at once.
@Suite("Concurrent runs in one workspace")
struct ConcurrencyTests {
  @Test("three runs at once (same and different experiments): every run recorded once, index = git, clean-run bytes")
  func threeAtOnce() throws {
    let models = SharedModels.shared
    let lab = try Lab(models: models.paths)

    // Round 1: two runs of experiment e and one of f, on an empty workspace.
    var results = try Self.together(
      lab, [["run", "--json", "experiments/e"], ["run", "--json", "experiments/e"], ["run", "--json", "experiments/f"]])
    for r in results { try #require(r.status == 0, "a concurrent run failed: \(r.describe)") }
    // The same recipe run twice at once is merged once: the second waits for the first and reuses it.
    var runs = try lab.index().runs()
    #expect(runs.filter { $0.recipeName == "soup" }.count == 1)
    #expect(runs.filter { $0.recipeName == "mix" }.count == 1)
    #expect(runs.filter { $0.recipeName == "pair" }.count == 1)
    try Self.checkRecords(lab, models: models, runs: runs)

    // Round 2: forced, so every process really merges and records.
    results = try Self.together(
      lab,
      [
        ["run", "--force", "experiments/e"], ["run", "--force", "experiments/e"], ["run", "--force", "experiments/f"],
        ["run", "--force", "experiments/e/mix.yaml"],
      ])
    for r in results { try #require(r.status == 0, "a concurrent run failed: \(r.describe)") }
    runs = try lab.index().runs()
    // soup: 1 + 3 forced (two experiment runs and mix.yaml's closure); mix: 1 + 3; pair: 1 + 1.
    #expect(runs.filter { $0.recipeName == "soup" }.count == 4)
    #expect(runs.filter { $0.recipeName == "mix" }.count == 4)
    #expect(runs.filter { $0.recipeName == "pair" }.count == 2)
    try Self.checkRecords(lab, models: models, runs: runs)
    // The notebook was regenerated last by a process that saw every run.
    let report = try String(contentsOfFile: lab.path("artifacts/e/REPORT.md"), encoding: .utf8)
    #expect(report.contains("### soup") && report.contains("### mix") && !report.contains("Not run yet"))
  }

  /// Starts every command at once and waits for all.
  static func together(_ lab: Lab, _ commands: [[String]]) throws -> [Tool.Result] {
    let running = try commands.map { try Tool.start($0, in: lab.root) }
    return running.map { $0.wait() }
  }

  /// Index and git agree run for run; outputs are the clean sequential run's bytes.
  static func checkRecords(_ lab: Lab, models: SharedModels, runs: [RunRow]) throws {
    let git = try lab.git()
    let log = try git.log()
    #expect(log.count == runs.count, "\(log.count) commits for \(runs.count) indexed runs")
    #expect(Set(log.map(\.id)) == Set(runs.map(\.commitID)), "every commit is one indexed run")
    for (i, c) in log.enumerated() where i + 1 < log.count {
      #expect(c.parentIDs == [log[i + 1].id], "history is linear")
    }
    for run in runs {
      #expect(run.outputSHA256 == models.expected[run.recipeName], "\(run.recipeName): output differs from a sequential run")
      let commit = try #require(log.first { $0.id == run.commitID })
      #expect(commit.message.contains(run.runID.prefix(12)), "commit \(commit.id) records run \(run.runID)")
    }
    try lab.checkConsistent(expected: models.expected)
    #expect(lab.leftovers("e").isEmpty && lab.leftovers("f").isEmpty)
  }
}
