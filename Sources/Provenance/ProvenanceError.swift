import Foundation

/// Every way recording, reading or indexing provenance can fail.
///
/// Each case names the repository, database, file, path or libgit2 function involved, so the
/// message tells a person what to look at and what to do.
public enum ProvenanceError: Error, LocalizedError, Equatable, Sendable {
  /// A libgit2 call failed; `function` is the libgit2 function, `message` its own text.
  case git(function: String, code: Int32, message: String, repository: String)
  /// `path` exists but is not a bare git repository and is not empty, so it was left alone.
  case notARepository(path: String)
  /// The repository does not exist and `create` was false.
  case repositoryMissing(path: String)
  /// A branch name git would refuse.
  case invalidBranch(name: String)
  /// A file path inside the repository that git cannot store (empty, `..`, `.git`, …).
  case invalidRepositoryPath(path: String, reason: String)
  /// A revision that is neither a branch nor the prefix of a known commit.
  case unknownRevision(revision: String, repository: String)
  /// A hash prefix that is empty or not hexadecimal.
  case invalidPrefix(prefix: String)
  /// A hash prefix shared by several commits.
  case ambiguousPrefix(prefix: String, candidates: Int)
  /// `path` names a directory where a file was expected, or the reverse.
  case wrongEntryKind(path: String, revision: String, expected: String)
  /// The branch kept moving under us: another writer committed on every one of our attempts.
  case concurrentUpdate(branch: String, attempts: Int, repository: String)
  /// A manifest that does not decode or breaks a rule of the record format.
  case invalidManifest(source: String, reason: String)
  /// A SQLite error from the index; `operation` says what mixlab was doing.
  case database(path: String, operation: String, reason: String)
  /// A file could not be inspected for the hash cache.
  case fileStatus(path: String, reason: String)
  /// A file was written to or replaced while it was being hashed.
  case changedWhileHashing(path: String)

  public var errorDescription: String? {
    switch self {
    case .git(let function, let code, let message, let repository):
      return "\(repository): libgit2 \(function) failed (code \(code)): \(message)."
    case .notARepository(let path):
      return
        "\(path): not a bare git repository and not empty, so mixlab will not initialise one there; "
        + "move the folder away or point mixlab at another location."
    case .repositoryMissing(let path):
      return "\(path): no provenance repository here; run `mixlab init` to create the workspace."
    case .invalidBranch(let name):
      return "\"\(name)\" is not a valid git branch name."
    case .invalidRepositoryPath(let path, let reason):
      return "cannot store \"\(path)\" in the provenance repository: \(reason)."
    case .unknownRevision(let revision, let repository):
      return
        "\(repository): \"\(revision)\" is neither a branch nor the prefix of a recorded commit; "
        + "`mixlab log` lists the recorded runs."
    case .invalidPrefix(let prefix):
      return "\"\(prefix)\" is not a hash prefix: use one or more hexadecimal digits (0-9, a-f)."
    case .ambiguousPrefix(let prefix, let candidates):
      return "hash prefix \"\(prefix)\" matches \(candidates) commits; give more digits."
    case .wrongEntryKind(let path, let revision, let expected):
      return "\"\(path)\" at \(revision) is not a \(expected)."
    case .concurrentUpdate(let branch, let attempts, let repository):
      return
        "\(repository): branch \(branch) changed under each of \(attempts) attempts to commit; "
        + "other mixlab processes are writing heavily, or a stale lock file (refs/heads/\(branch).lock) "
        + "was left by a crashed process: remove it if no mixlab process is running, then retry."
    case .invalidManifest(let source, let reason):
      return "\(source): invalid run manifest: \(reason)."
    case .database(let path, let operation, let reason):
      return
        "\(path): SQLite index error while \(operation): \(reason). The index can be rebuilt from the "
        + "provenance repository if it is damaged."
    case .fileStatus(let path, let reason):
      return "\(path): cannot read file status: \(reason)."
    case .changedWhileHashing(let path):
      return
        "\(path) changed (was written to or replaced) while it was being hashed, so its hash describes no version of it; nothing was recorded. Run again once nothing writes to it."
    }
  }
}
