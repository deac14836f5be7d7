import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Test-only fault injection, driven by environment variables that normal use never sets.
///
/// The reliability tests (docs/reliability.md) stop a real `mixlab run` at chosen points to
/// check what a crash, a concurrent writer or a full disk leaves behind. Each point is one
/// call in the code path; when no variable is set, `active` is false and a call costs one
/// load of a constant.
///
/// - `MIXLAB_TEST_KILL_AT=<point>[#n]`: the process sends itself SIGKILL the n-th time
///   (default: the first) it reaches `<point>`.
/// - `MIXLAB_TEST_PAUSE_AT=<point>[#n]` with `MIXLAB_TEST_PAUSE_DIR=<folder>`: at `<point>`
///   the process creates `<folder>/<point>.paused` and waits (at most 120 s) until
///   `<folder>/<point>.resume` exists.
/// - `MIXLAB_TEST_FAIL=enospc`: every write of the safetensors writer fails as if the disk
///   were full.
public enum FaultInjection {
  /// The places a test can stop a run.
  public enum Point: String, Sendable, CaseIterable {
    /// Input files are being hashed (windows submitted, digests not yet taken).
    case hashing
    /// The output's temporary file holds part of a tensor, past the middle of the file.
    case midTensor = "mid-tensor"
    /// The temporary file is complete and fsynced, not yet renamed.
    case beforeRename = "before-rename"
    /// The artifact is at its final path; nothing is recorded yet.
    case afterRename = "after-rename"
    /// The commit's objects are written; the branch has not moved.
    case gitCommit = "git-commit"
    /// The branch holds the run's commit; the SQLite index does not yet.
    case afterGitCommit = "after-git-commit"
    /// Inside the SQLite transaction that indexes the run, rows inserted, not committed.
    case sqlite
  }

  private struct Trigger: Sendable {
    var point: String
    var occurrence: Int
  }

  private struct Config: Sendable {
    var kill: Trigger?
    var pause: Trigger?
    var pauseDirectory: String?
    var diskFull = false
  }

  private static let config: Config? = {
    let env = ProcessInfo.processInfo.environment
    func trigger(_ name: String) -> Trigger? {
      guard let value = env[name], !value.isEmpty else { return nil }
      let parts = value.split(separator: "#", maxSplits: 1)
      return Trigger(point: String(parts[0]), occurrence: parts.count > 1 ? max(1, Int(parts[1]) ?? 1) : 1)
    }
    let c = Config(
      kill: trigger("MIXLAB_TEST_KILL_AT"), pause: trigger("MIXLAB_TEST_PAUSE_AT"),
      pauseDirectory: env["MIXLAB_TEST_PAUSE_DIR"], diskFull: env["MIXLAB_TEST_FAIL"] == "enospc")
    return c.kill == nil && c.pause == nil && !c.diskFull ? nil : c
  }()

  /// True when any test variable is set; guards work done only to reach a point.
  public static let active = config != nil

  /// True when writes must fail with ENOSPC (`MIXLAB_TEST_FAIL=enospc`).
  public static let simulateDiskFull = config?.diskFull ?? false

  private static let counts = Counter()

  /// Kills or pauses the process if a test asked for `point`; otherwise does nothing.
  public static func reach(_ point: Point) {
    guard let config else { return }
    let n = counts.increment(point.rawValue)
    if let k = config.kill, k.point == point.rawValue, k.occurrence == n {
      kill(getpid(), SIGKILL)
      while true { pause() }
    }
    if let p = config.pause, p.point == point.rawValue, p.occurrence == n, let dir = config.pauseDirectory {
      let paused = dir + "/" + point.rawValue + ".paused"
      let resume = dir + "/" + point.rawValue + ".resume"
      _ = FileManager.default.createFile(atPath: paused, contents: Data("\(getpid())\n".utf8))
      let deadline = Date().addingTimeInterval(120)
      while !FileManager.default.fileExists(atPath: resume) && Date() < deadline { usleep(5_000) }
    }
  }

  /// How many times each point was reached.
  private final class Counter: @unchecked Sendable {
    // Sendable: `counts` is only touched with `lock` held.
    private let lock = NSLock()
    private var counts: [String: Int] = [:]

    func increment(_ key: String) -> Int {
      lock.lock()
      defer { lock.unlock() }
      counts[key, default: 0] += 1
      return counts[key]!
    }
  }
}
