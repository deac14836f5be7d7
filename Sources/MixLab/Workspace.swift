import Foundation
import Provenance

/// Problems with the workspace or with what a command was asked to do.
public enum MixLabError: Error, LocalizedError, Sendable {
  case notAWorkspace(String)
  case message(String)

  public var errorDescription: String? {
    switch self {
    case .notAWorkspace(let path):
      return
        "\(path) is not inside a mixlab workspace (no .mixlab folder above it). Create one with `mixlab init <folder>` and keep experiments in <folder>/experiments/<name>/."
    case .message(let m):
      return m
    }
  }
}

/// A workspace: `experiments/`, `artifacts/`, `.mixlab/` (index and provenance repository).
public final class Workspace: @unchecked Sendable {
  // Sendable: immutable paths; the lazily opened stores are guarded by `lock`.
  public let root: String
  private let lock = NSLock()
  private var _git: GitStore?
  private var _index: IndexDB?

  public var experimentsDir: String { root + "/experiments" }
  public var artifactsDir: String { root + "/artifacts" }
  public var stateDir: String { root + "/.mixlab" }
  public var gitPath: String { stateDir + "/provenance.git" }
  public var indexPath: String { stateDir + "/index.sqlite" }
  public var synthDir: String { stateDir + "/synth" }
  public var locksDir: String { stateDir + "/locks" }

  public init(root: String) {
    self.root = (root as NSString).standardizingPath
  }

  /// Creates (or completes) a workspace at `path`.
  @discardableResult
  public static func initialize(at path: String) throws -> Workspace {
    let abs = absolute(path)
    let ws = Workspace(root: abs)
    for d in [ws.experimentsDir, ws.artifactsDir, ws.stateDir, ws.synthDir, ws.locksDir] {
      try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    }
    _ = try ws.git()
    _ = try ws.index()
    let gi = ws.root + "/.gitignore"
    if !FileManager.default.fileExists(atPath: gi) {
      try "artifacts/\n.mixlab/index.sqlite*\n.mixlab/synth/\n.mixlab/locks/\n".write(
        toFile: gi, atomically: true, encoding: .utf8)
    }
    return ws
  }

  /// The workspace containing `path` (walking up), or an error telling how to create one.
  public static func find(from path: String) throws -> Workspace {
    var dir = absolute(path)
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), !isDir.boolValue {
      dir = (dir as NSString).deletingLastPathComponent
    }
    while true {
      if FileManager.default.fileExists(atPath: dir + "/.mixlab") { return Workspace(root: dir) }
      let parent = (dir as NSString).deletingLastPathComponent
      if parent == dir || parent.isEmpty { throw MixLabError.notAWorkspace(path) }
      dir = parent
    }
  }

  public static func absolute(_ path: String) -> String {
    let p = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    return (p as NSString).standardizingPath
  }

  /// `path` relative to the workspace root when inside it.
  public func relative(_ path: String) -> String {
    let abs = Workspace.absolute(path)
    return abs.hasPrefix(root + "/") ? String(abs.dropFirst(root.count + 1)) : abs
  }

  public func git() throws -> GitStore {
    lock.lock()
    defer { lock.unlock() }
    if let g = _git { return g }
    let g = try GitStore(path: gitPath, create: true)
    _git = g
    return g
  }

  public func index() throws -> IndexDB {
    lock.lock()
    defer { lock.unlock() }
    if let i = _index { return i }
    try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
    let i = try IndexDB(path: indexPath)
    _index = i
    return i
  }
}

/// An exclusive advisory lock on a file (flock), released on `unlock` or process exit, so a
/// killed run never leaves a stale lock behind.
public final class FileLock {
  private let fd: Int32

  public init(path: String) throws {
    try FileManager.default.createDirectory(
      atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw MixLabError.message("cannot open lock file \(path): \(String(cString: strerror(errno)))") }
    while flock(fd, LOCK_EX) != 0 {
      if errno != EINTR {
        close(fd)
        throw MixLabError.message("cannot lock \(path): \(String(cString: strerror(errno)))")
      }
    }
  }

  deinit {
    flock(fd, LOCK_UN)
    close(fd)
  }
}
