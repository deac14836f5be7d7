import Foundation
import Testing

@testable import Provenance

@Suite("GitStore")
struct GitStoreTests {
  static let time: Int64 = 1_735_689_600  // 2025-01-01T00:00:00Z

  @Test("a new repository is bare, with HEAD on the runs branch and no commit")
  func createsBareRepository() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file(".mixlab/provenance.git")
    let store = try GitStore(path: path, create: true)
    #expect(try store.tip() == nil)
    #expect(try store.log().isEmpty)
    #expect(try store.read(path: "runs/x/manifest.json") == nil)
    #expect(try store.list(directory: "runs").isEmpty)
    let head = try String(contentsOfFile: path + "/HEAD", encoding: .utf8)
    #expect(head == "ref: refs/heads/runs\n")
    #expect(!FileManager.default.fileExists(atPath: path + "/.git"))
    // Reopening works, and refusing to create reports the missing repository.
    _ = try GitStore(path: path, create: false)
    #expect(throws: ProvenanceError.repositoryMissing(path: dir.file("none.git"))) {
      try GitStore(path: dir.file("none.git"), create: false)
    }
  }

  @Test("a folder holding other files is not turned into a repository")
  func refusesOccupiedFolder() throws {
    let dir = try TemporaryDirectory()
    try Data("hello".utf8).write(to: URL(fileURLWithPath: dir.file("notes.txt")))
    #expect(throws: ProvenanceError.notARepository(path: dir.path)) {
      try GitStore(path: dir.path, create: true)
    }
  }

  @Test("files are readable back, nested folders are created, the tree accumulates")
  func commitAndRead() throws {
    let dir = try TemporaryDirectory()
    let store = try GitStore(path: dir.file("p.git"), create: true)
    let first = try store.commit(
      files: [
        "runs/aa/manifest.json": Data("{\"a\":1}\n".utf8),
        "runs/aa/notes/NOTES.md": Data("# notes\n".utf8),
        "runs/aa/notes/deep/more.txt": Data(),
        "runs/aa/recipe.yaml": Data("method: linear\n".utf8),
      ], message: "run aa", time: Self.time)
    let second = try store.commit(
      files: ["runs/bb/manifest.json": Data("{\"b\":2}\n".utf8)], message: "run bb", time: Self.time + 1)
    #expect(first != second)
    #expect(try store.tip() == second)
    #expect(try store.read(path: "runs/aa/manifest.json") == Data("{\"a\":1}\n".utf8))
    #expect(try store.read(path: "runs/aa/notes/NOTES.md") == Data("# notes\n".utf8))
    #expect(try store.read(path: "runs/aa/notes/deep/more.txt") == Data())
    #expect(try store.read(path: "runs/bb/manifest.json") == Data("{\"b\":2}\n".utf8))
    #expect(try store.read(path: "runs/cc/manifest.json") == nil)
    #expect(try store.list(directory: "runs") == ["aa", "bb"])
    #expect(try store.list(directory: "runs/aa") == ["manifest.json", "notes", "recipe.yaml"])
    #expect(try store.list(directory: "") == ["runs"])
    // Older revisions by full id and by prefix.
    #expect(try store.read(path: "runs/bb/manifest.json", at: first) == nil)
    #expect(try store.list(directory: "runs", at: String(first.prefix(12))) == ["aa"])
    #expect(throws: ProvenanceError.self) { try store.read(path: "runs/aa", at: "runs") }
    #expect(throws: ProvenanceError.self) { try store.list(directory: "runs/aa/recipe.yaml") }
  }

  @Test("replacing a file makes a new commit; the old content stays in history")
  func replaceFile() throws {
    let dir = try TemporaryDirectory()
    let store = try GitStore(path: dir.file("p.git"), create: true)
    let a = try store.commit(files: ["runs/x/manifest.json": Data("1".utf8)], message: "one", time: Self.time)
    let b = try store.commit(files: ["runs/x/manifest.json": Data("2".utf8)], message: "two", time: Self.time)
    #expect(a != b)
    #expect(try store.read(path: "runs/x/manifest.json") == Data("2".utf8))
    #expect(try store.read(path: "runs/x/manifest.json", at: a) == Data("1".utf8))
  }

  @Test("committing what the branch already holds returns the tip and creates nothing")
  func idempotentCommit() throws {
    let dir = try TemporaryDirectory()
    let store = try GitStore(path: dir.file("p.git"), create: true)
    let files = ["runs/x/manifest.json": Data("same".utf8)]
    let first = try store.commit(files: files, message: "run x", time: Self.time)
    let again = try store.commit(files: files, message: "a different message", time: Self.time + 99)
    #expect(again == first)
    #expect(try store.log().count == 1)
  }

  @Test("same files, time and parent give the same commit ids in two fresh repositories")
  func deterministicCommits() throws {
    let dir = try TemporaryDirectory()
    var ids: [[String]] = []
    for name in ["one.git", "two.git"] {
      let store = try GitStore(path: dir.file(name), create: true)
      var chain: [String] = []
      for i in 0..<3 {
        let files = [
          "runs/r\(i)/manifest.json": Data("record \(i)\n".utf8), "runs/r\(i)/recipe.yaml": Data("x: \(i)\n".utf8),
        ]
        chain.append(try store.commit(files: files, message: "run r\(i)", time: Self.time + Int64(i)))
      }
      ids.append(chain)
    }
    #expect(ids[0] == ids[1])
    #expect(Set(ids[0]).count == 3)
    // The same files on a branch without a parent give a different commit.
    let store = try GitStore(path: dir.file("one.git"), create: false)
    let other = try store.commit(
      files: ["runs/r1/manifest.json": Data("record 1\n".utf8), "runs/r1/recipe.yaml": Data("x: 1\n".utf8)],
      message: "run r1", time: Self.time + 1, branch: "other")
    #expect(other != ids[0][1])
    #expect(try store.tip(branch: "other") == other)
  }

  @Test("log lists commits newest first with times, messages and parents")
  func logOrder() throws {
    let dir = try TemporaryDirectory()
    let store = try GitStore(path: dir.file("p.git"), create: true)
    // Times deliberately out of order: history order, not time, decides.
    let times: [Int64] = [Self.time + 50, Self.time, Self.time + 10]
    var ids: [String] = []
    for (i, t) in times.enumerated() {
      ids.append(try store.commit(files: ["runs/\(i)/m": Data("\(i)".utf8)], message: "run \(i)\n\nbody", time: t))
    }
    let log = try store.log()
    #expect(log.map(\.id) == ids.reversed())
    #expect(log.map(\.time) == times.reversed())
    #expect(log[0].message == "run 2\n\nbody")
    #expect(log[0].parentIDs == [ids[1]])
    #expect(log[2].parentIDs.isEmpty)
    #expect(try store.log(limit: 2).map(\.id) == [ids[2], ids[1]])
    #expect(try store.log(branch: "nothing").isEmpty)
  }

  @Test("commit prefixes resolve uniquely, report ambiguity, reject non-hex")
  func prefixes() throws {
    let dir = try TemporaryDirectory()
    let store = try GitStore(path: dir.file("p.git"), create: true)
    var ids: [String] = []
    for i in 0..<40 {
      ids.append(try store.commit(files: ["runs/\(i)/m": Data("\(i)".utf8)], message: "run \(i)", time: Self.time))
    }
    #expect(try store.resolveCommit(prefix: ids[7]) == ids[7])
    #expect(try store.resolveCommit(prefix: String(ids[7].prefix(10)).uppercased()) == ids[7])
    #expect(try store.resolveCommit(prefix: String(repeating: "0", count: 40)) == nil)
    // 40 commits over 16 first digits: some digit is shared by several commits.
    let groups = Dictionary(grouping: ids, by: { String($0.prefix(1)) })
    let shared = try #require(groups.first { $0.value.count > 1 })
    #expect(throws: ProvenanceError.ambiguousPrefix(prefix: shared.key, candidates: shared.value.count)) {
      try store.resolveCommit(prefix: shared.key)
    }
    #expect(throws: ProvenanceError.invalidPrefix(prefix: "xyz")) { try store.resolveCommit(prefix: "xyz") }
    #expect(throws: ProvenanceError.self) { try store.read(path: "runs/1/m", at: "deadbeef00") }
  }

  @Test("bad repository paths and branch names are refused before anything is written")
  func validation() throws {
    let dir = try TemporaryDirectory()
    let store = try GitStore(path: dir.file("p.git"), create: true)
    for bad in ["", "/abs", "a//b", "a/../b", "a/./b", "trailing/", ".git/config", "a/.GIT/b"] {
      #expect(throws: ProvenanceError.self) { try store.commit(files: [bad: Data()], message: "m", time: 0) }
    }
    #expect(throws: ProvenanceError.self) {
      try store.commit(files: ["a": Data(), "a/b": Data()], message: "m", time: 0)
    }
    #expect(throws: ProvenanceError.invalidBranch(name: "bad..name")) {
      try store.commit(files: ["a": Data()], message: "m", time: 0, branch: "bad..name")
    }
    #expect(try store.tip() == nil)
  }

  @Test("a stale branch lock left by a crashed process is removed and the commit lands")
  func staleLock() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("p.git")
    let store = try GitStore(path: path, create: true)
    let tip = try store.commit(files: ["runs/a/m": Data("1".utf8)], message: "a", time: 0)
    // What a process killed inside libgit2's ref update leaves behind.
    try Data().write(to: URL(fileURLWithPath: path + "/refs/heads/runs.lock"))
    let next = try store.commit(files: ["runs/b/m": Data("1".utf8)], message: "b", time: 0)
    #expect(next != tip)
    #expect(try store.tip() == next)
    #expect(try store.log().map(\.id) == [next, tip])
    #expect(!FileManager.default.fileExists(atPath: path + "/refs/heads/runs.lock"))
  }

  @Test("lastCommits maps each run folder to the commit that last changed it")
  func lastCommitsTouching() throws {
    let dir = try TemporaryDirectory()
    let store = try GitStore(path: dir.file("p.git"), create: true)
    let a = try store.commit(files: ["runs/a/m": Data("1".utf8)], message: "a", time: Self.time)
    let b = try store.commit(files: ["runs/b/m": Data("1".utf8)], message: "b", time: Self.time)
    let a2 = try store.commit(files: ["runs/a/m": Data("2".utf8)], message: "a again", time: Self.time)
    let c = try store.commit(files: ["other/c": Data("1".utf8)], message: "c", time: Self.time)
    #expect(a != a2 && c != b)
    #expect(try store.lastCommits(touching: "runs") == ["a": a2, "b": b])
    #expect(try store.lastCommits(touching: "missing").isEmpty)
  }

  @Test("plain git reads the repository: log, show, fsck and clone")
  func plainGitReads() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("p.git")
    let store = try GitStore(path: path, create: true)
    let manifest = Data("{\n  \"run_id\" : \"abc\"\n}\n".utf8)
    let id = try store.commit(
      files: ["runs/abc/manifest.json": manifest, "runs/abc/recipe.yaml": Data("a: 1\n".utf8)],
      message: "run abc", time: Self.time)
    guard let log = try runGit(["--git-dir", path, "log", "--oneline", "runs"]) else { return }
    #expect(log.status == 0)
    #expect(log.stdout == "\(id.prefix(7)) run abc\n")
    let show = try #require(try runGit(["--git-dir", path, "show", "runs:runs/abc/manifest.json"]))
    #expect(show.stdout == String(decoding: manifest, as: UTF8.self))
    let author = try #require(try runGit(["--git-dir", path, "log", "-1", "--format=%an <%ae> %at %ai|%cn %ct"]))
    #expect(author.stdout == "mixlab <mixlab@localhost> \(Self.time) 2025-01-01 00:00:00 +0000|mixlab \(Self.time)\n")
    let fsck = try #require(try runGit(["--git-dir", path, "fsck", "--strict", "--no-dangling"]))
    #expect(fsck.status == 0, "\(fsck.stdout)\(fsck.stderr)")
    // A clone checks out the runs branch.
    let clone = try #require(try runGit(["clone", "-q", path, dir.file("clone")]))
    #expect(clone.status == 0, "\(clone.stderr)")
    #expect(FileManager.default.fileExists(atPath: dir.file("clone/runs/abc/recipe.yaml")))
  }
}
