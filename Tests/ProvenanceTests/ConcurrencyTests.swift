import Foundation
import Testing

@testable import Provenance

/// Several writers recording runs into one workspace at once, as concurrent `mixlab run`
/// invocations do: every run must end up in git and in the index.
@Suite("Concurrent writers")
struct ConcurrencyTests {
  static let repoVariable = "MIXLAB_PROV_CHILD_REPO"
  static let indexVariable = "MIXLAB_PROV_CHILD_INDEX"
  static let tagVariable = "MIXLAB_PROV_CHILD_TAG"
  static let runsPerWriter = 10

  /// Records `runsPerWriter` runs tagged `tag`, with its own GitStore and IndexDB handles.
  static func writer(tag: String, repo: String, index indexPath: String) throws {
    let git = try GitStore(path: repo, create: true)
    let index = try IndexDB(path: indexPath)
    for i in 0..<runsPerWriter {
      try Fixture.store(Fixture.record(i, experiment: tag), git: git, index: index)
    }
  }

  /// Checks that the runs of `tags` are all on the branch and in the index, the history is
  /// linear with one commit per run, and `git fsck` finds nothing wrong.
  static func verify(tags: [String], repo: String, index indexPath: String) throws {
    let git = try GitStore(path: repo, create: false)
    let expected = Set(tags.flatMap { tag in (0..<runsPerWriter).map { Fixture.record($0, experiment: tag).output.sha256 } })
    #expect(Set(try git.list(directory: "runs")) == expected)
    let log = try git.log()
    #expect(log.count == expected.count)
    #expect(log.dropLast().allSatisfy { $0.parentIDs.count == 1 } && log.last?.parentIDs == [])
    let index = try IndexDB(path: indexPath)
    #expect(Set(try index.runs().map(\.outputSHA256)) == expected)
    for row in try index.runs() {
      // The recorded commit holds the run's manifest.
      #expect(try git.read(path: "runs/\(row.outputSHA256)/manifest.json", at: row.commitID) != nil)
    }
    if let fsck = try runGit(["--git-dir", repo, "fsck", "--strict", "--no-dangling"]) {
      #expect(fsck.status == 0, "\(fsck.stdout)\(fsck.stderr)")
    }
  }

  @Test("four threads with their own handles commit 10 runs each: all 40 are kept")
  func threads() throws {
    let dir = try TemporaryDirectory()
    let repo = dir.file(".mixlab/provenance.git")
    let index = dir.file(".mixlab/index.sqlite")
    let failures = Failures()
    DispatchQueue.concurrentPerform(iterations: 4) { t in
      do { try Self.writer(tag: "thread\(t)", repo: repo, index: index) } catch { failures.add("\(error)") }
    }
    #expect(failures.all.isEmpty, "\(failures.all)")
    try Self.verify(tags: (0..<4).map { "thread\($0)" }, repo: repo, index: index)
  }

  @Test("eight writers creating the same repository at once all open it and commit")
  func concurrentCreation() throws {
    for _ in 0..<5 {
      let dir = try TemporaryDirectory()
      let repo = dir.file(".mixlab/provenance.git")
      let failures = Failures()
      DispatchQueue.concurrentPerform(iterations: 8) { t in
        do {
          let git = try GitStore(path: repo, create: true)
          try git.commit(files: ["runs/\(t)/m": Data("\(t)".utf8)], message: "run \(t)", time: 0)
        } catch {
          failures.add("\(error)")
        }
      }
      #expect(failures.all.isEmpty, "\(failures.all)")
      #expect(try GitStore(path: repo, create: false).list(directory: "runs").count == 8)
      #expect(try String(contentsOfFile: repo + "/HEAD", encoding: .utf8) == "ref: refs/heads/runs\n")
    }
  }

  @Test("two processes and two threads write at once: all 40 runs are kept")
  func processes() throws {
    guard let executable = Self.testExecutable() else { return }  // no way to re-run this binary
    let dir = try TemporaryDirectory()
    let repo = dir.file(".mixlab/provenance.git")
    let index = dir.file(".mixlab/index.sqlite")
    var children: [(Process, Pipe)] = []
    for p in 0..<2 {
      let child = Process()
      child.executableURL = URL(fileURLWithPath: executable)
      child.arguments = ["--testing-library", "swift-testing", "--filter", "ConcurrencyTests/childWriter"]
      var environment = ProcessInfo.processInfo.environment
      environment[Self.repoVariable] = repo
      environment[Self.indexVariable] = index
      environment[Self.tagVariable] = "process\(p)"
      child.environment = environment
      let output = Pipe()
      child.standardOutput = output
      child.standardError = output
      try child.run()
      children.append((child, output))
    }
    let failures = Failures()
    DispatchQueue.concurrentPerform(iterations: 2) { t in
      do { try Self.writer(tag: "thread\(t)", repo: repo, index: index) } catch { failures.add("\(error)") }
    }
    for (child, output) in children {
      let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      child.waitUntilExit()
      #expect(child.terminationStatus == 0, "\(text)")
      #expect(text.contains("childWriter") || text.contains("passed"), "the child did not run the writer: \(text)")
    }
    #expect(failures.all.isEmpty, "\(failures.all)")
    try Self.verify(tags: ["thread0", "thread1", "process0", "process1"], repo: repo, index: index)
  }

  /// The body of the child processes started by `processes()`; skipped in a normal run.
  @Test(.enabled(if: ProcessInfo.processInfo.environment[ConcurrencyTests.repoVariable] != nil))
  func childWriter() throws {
    let environment = ProcessInfo.processInfo.environment
    try Self.writer(
      tag: try #require(environment[Self.tagVariable]), repo: try #require(environment[Self.repoVariable]),
      index: try #require(environment[Self.indexVariable]))
  }

  /// This test binary, when it can be re-run directly (SwiftPM on Linux); nil elsewhere.
  static func testExecutable() -> String? {
    guard let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
      path.hasSuffix(".xctest")
    else { return nil }
    return path
  }
}
