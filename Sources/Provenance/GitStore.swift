internal import CGit2
import Foundation
import SafeTensors

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// One commit of the provenance repository, as `log` reports it.
public struct CommitInfo: Sendable, Hashable, Codable {
  /// Full 40-digit hex id.
  public var id: String
  /// Committer time, seconds since 1970 (UTC).
  public var time: Int64
  /// The message as committed, without the trailing newline git conventions add.
  public var message: String
  /// Parent ids, first parent first; empty for the first commit of a branch.
  public var parentIDs: [String]

  public init(id: String, time: Int64, message: String, parentIDs: [String]) {
    self.id = id
    self.time = time
    self.message = message
    self.parentIDs = parentIDs
  }
}

/// A bare git repository of run records, written through libgit2.
///
/// Records live on their own branch (`runs` by default) that HEAD points at, so a plain
/// `git clone` or `git log` of the repository shows them. Commits carry a fixed signature
/// (`mixlab <mixlab@localhost>`) and a caller-supplied time, so the same files on the same
/// parent at the same time give the same commit id on any machine. Branch updates are
/// compare-and-swap on the ref file, retried on conflict, so several processes can commit
/// to one repository at once without losing a commit. The store never has a working tree,
/// an index, or touches any repository other than its own.
public final class GitStore: @unchecked Sendable {
  // Sendable: libgit2 forbids using one git_repository from two threads at once, so every
  // method holds `lock` for all its libgit2 calls; `path` and `repo` never change after init.
  // Separate GitStore instances (in one process or several) coordinate through libgit2's
  // lock files and the compare-and-swap in `commit`.

  /// Where the repository is (the folder holding `HEAD`, `objects/`, `refs/`).
  public let path: String
  /// The branch run records go to and that HEAD names.
  public static let defaultBranch = "runs"
  /// How many times `commit` rebuilds on a moved tip before giving up.
  public static let maxCommitAttempts = 50
  /// The fixed author and committer of every commit.
  public static let signatureName = "mixlab"
  public static let signatureEmail = "mixlab@localhost"

  private let repo: OpaquePointer
  private let lock = NSLock()

  /// `git_libgit2_init` runs once per process: a lazily initialised static is guaranteed by
  /// Swift to run exactly once even when first touched from several threads.
  private static let libraryInitialised: Int32 = {
    let n = git_libgit2_init()
    // Records must survive a power loss once `commit` returns.
    _ = mixlab_git_enable_fsync()
    return n
  }()

  /// Opens the bare repository at `path`, or creates it.
  ///
  /// A new repository's HEAD is `refs/heads/runs`, so clones check out the run records.
  ///
  /// - Parameters:
  ///   - path: the repository folder, e.g. `.mixlab/provenance.git`.
  ///   - create: initialise a bare repository when `path` is missing or empty.
  /// - Throws: `ProvenanceError.repositoryMissing` when the repository is absent and `create`
  ///   is false, `.notARepository` when `path` holds something else, `.git` on libgit2 errors.
  public init(path: String, create: Bool) throws {
    _ = GitStore.libraryInitialised
    self.path = path
    var handle: OpaquePointer?
    let code = git_repository_open_bare(&handle, path)
    if code == 0, let handle {
      repo = handle
      return
    }
    guard create else {
      switch GitStore.folderState(path) {
      case .occupied: throw ProvenanceError.notARepository(path: path)
      case .missing, .empty: throw ProvenanceError.repositoryMissing(path: path)
      case .partialRepository: throw GitStore.failure(code, "git_repository_open_bare", path)
      }
    }
    // Creation is serialized across processes and threads by a lock file beside the
    // repository, so two first runs in a new workspace cannot interleave their inits.
    let lockPath = path.hasSuffix("/") ? String(path.dropLast()) + ".init-lock" : path + ".init-lock"
    try? FileManager.default.createDirectory(
      atPath: (lockPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    if lockFD >= 0 {
      while flock(lockFD, LOCK_EX) != 0 && errno == EINTR {}
    }
    defer {
      if lockFD >= 0 {
        flock(lockFD, LOCK_UN)
        close(lockFD)
      }
    }
    repo = try GitStore.openOrCreate(path, create: true)
  }

  deinit {
    git_repository_free(repo)
  }

  // MARK: Writing

  /// Commits `files` on `branch`, on top of whatever the branch holds when the commit lands.
  ///
  /// The new tree is the tip's tree with `files` added or replaced (missing folders are
  /// created). When that tree equals the tip's, nothing is written and the tip is returned,
  /// so recording the same run twice is harmless. The branch moves by compare-and-swap
  /// against the tip the commit was built on; if another writer got there first, the commit
  /// is rebuilt on the new tip after a short random pause, up to `maxCommitAttempts` times.
  ///
  /// - Parameters:
  ///   - files: repository paths (`runs/<sha256>/manifest.json`) and their bytes.
  ///   - message: the commit message (a trailing newline is added).
  ///   - time: author and committer time in seconds since 1970, offset 0; derive it from the
  ///     record, never from the clock, so equal records give equal commits.
  ///   - branch: the branch to commit on.
  /// - Returns: the 40-digit hex id of the branch tip holding `files`.
  /// - Throws: `ProvenanceError.invalidRepositoryPath`, `.invalidBranch`,
  ///   `.concurrentUpdate` when every attempt lost the race, `.git` on libgit2 errors.
  @discardableResult
  public func commit(files: [String: Data], message: String, time: Int64, branch: String = defaultBranch) throws
    -> String
  {
    let refName = try GitStore.refName(branch)
    try GitStore.validate(paths: Array(files.keys))
    let text = GitStore.normalise(message: message)
    return try locked {
      let blobs = try files.keys.sorted().map { path in (path: path, id: try writeBlob(files[path]!)) }
      var signature: UnsafeMutablePointer<git_signature>?
      try check(
        git_signature_new(&signature, GitStore.signatureName, GitStore.signatureEmail, git_time_t(time), 0),
        "git_signature_new")
      defer { git_signature_free(signature) }
      FaultInjection.reach(.gitCommit)  // test hook: objects written, branch not moved
      let releaseCommitLock = commitLock()
      defer { releaseCommitLock() }
      removeStaleLock(of: refName)
      for attempt in 1...GitStore.maxCommitAttempts {
        let parent = try tipID(refName)
        if let id = try attemptCommit(
          parent: parent, blobs: blobs, signature: signature, refName: refName, message: text)
        {
          FaultInjection.reach(.afterGitCommit)  // test hook: committed, not yet indexed
          return id
        }
        // Lost the race: back off a random 1…(5 × attempt, at most 50) ms so writers spread out.
        let ceiling = UInt32(min(attempt, 10) * 5_000)
        usleep(UInt32.random(in: 1_000...ceiling))
      }
      throw ProvenanceError.concurrentUpdate(branch: branch, attempts: GitStore.maxCommitAttempts, repository: path)
    }
  }

  /// An exclusive lock (flock) on a file beside the repository, held while the branch moves.
  ///
  /// Every mixlab writer takes it, so the ref's own lock file (`refs/heads/runs.lock`,
  /// libgit2's) is only ever held by the holder of this lock; one found while holding it was
  /// left by a process that died mid-update. flock is released by the kernel when a process
  /// dies, so this lock itself can never be stale. Without the file (read-only folder), commits
  /// still work through the compare-and-swap alone.
  private func commitLock() -> () -> Void {
    let lockPath = (path.hasSuffix("/") ? String(path.dropLast()) : path) + ".commit-lock"
    let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return {} }
    while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
    return {
      flock(fd, LOCK_UN)
      close(fd)
    }
  }

  /// Removes `<ref>.lock` left by a process killed while moving the branch (called with the
  /// commit lock held). A git process outside mixlab may hold it for a moment, so the file is
  /// removed only if it is still there after a second.
  private func removeStaleLock(of refName: String) {
    let lockFile = (path as NSString).appendingPathComponent(refName + ".lock")
    for _ in 0..<100 {
      guard FileManager.default.fileExists(atPath: lockFile) else { return }
      usleep(10_000)
    }
    unlink(lockFile)
  }

  /// Builds one commit on `parent` and tries to move the branch to it.
  ///
  /// - Returns: the id the branch now holds, or nil when another writer moved the branch
  ///   first (the caller retries on the new tip).
  private func attemptCommit(
    parent: git_oid?, blobs: [(path: String, id: git_oid)], signature: UnsafeMutablePointer<git_signature>?,
    refName: String, message: String
  ) throws -> String? {
    var parentCommit: OpaquePointer?
    var baseTree: OpaquePointer?
    defer {
      git_tree_free(baseTree)
      git_commit_free(parentCommit)
    }
    if var parentID = parent {
      try check(git_commit_lookup(&parentCommit, repo, &parentID), "git_commit_lookup")
      try check(git_commit_tree(&baseTree, parentCommit), "git_commit_tree")
    }
    var treeID = git_oid()
    try withCStrings(blobs.map(\.path)) { cPaths in
      var updates = blobs.indices.map { i in
        git_tree_update(action: GIT_TREE_UPDATE_UPSERT, id: blobs[i].id, filemode: GIT_FILEMODE_BLOB, path: cPaths[i])
      }
      try check(
        git_tree_create_updated(&treeID, repo, baseTree, updates.count, &updates), "git_tree_create_updated")
    }
    if let baseTree, let parent, GitStore.equal(treeID, git_tree_id(baseTree).pointee) {
      return parent.hex  // Nothing new: the branch already holds these files.
    }
    var tree: OpaquePointer?
    try check(git_tree_lookup(&tree, repo, &treeID), "git_tree_lookup")
    defer { git_tree_free(tree) }
    var commitID = git_oid()
    var parents: [OpaquePointer?] = parentCommit.map { [$0] } ?? []
    try check(
      git_commit_create(&commitID, repo, nil, signature, signature, nil, message, tree, parents.count, &parents),
      "git_commit_create")
    let logMessage = "mixlab: " + (message.split(separator: "\n").first.map(String.init) ?? "commit")
    guard var expected = parent else {
      return try createBranch(refName, target: commitID, signature: signature, logMessage: logMessage)
    }
    var ref: OpaquePointer?
    let code = git_reference_create_matching(&ref, repo, refName, &commitID, 1, &expected, logMessage)
    git_reference_free(ref)
    if code == 0 { return commitID.hex }
    if GitStore.isRace(code) { return nil }
    throw GitStore.failure(code, "git_reference_create_matching", path)
  }

  /// Creates `refName` at `target` only if it still does not exist.
  ///
  /// `git_reference_create_matching` cannot express "expect absent" on every libgit2
  /// version, so creation takes the ref's lock through a transaction and checks under it.
  private func createBranch(
    _ refName: String, target: git_oid, signature: UnsafeMutablePointer<git_signature>?, logMessage: String
  ) throws -> String? {
    var transaction: OpaquePointer?
    try check(git_transaction_new(&transaction, repo), "git_transaction_new")
    defer { git_transaction_free(transaction) }  // releases the lock when not committed
    let code = git_transaction_lock_ref(transaction, refName)
    if GitStore.isRace(code) { return nil }
    try check(code, "git_transaction_lock_ref")
    if try tipID(refName) != nil { return nil }  // created by someone else meanwhile
    var id = target
    try check(git_transaction_set_target(transaction, refName, &id, signature, logMessage), "git_transaction_set_target")
    let commitCode = git_transaction_commit(transaction)
    if GitStore.isRace(commitCode) { return nil }
    try check(commitCode, "git_transaction_commit")
    return id.hex
  }

  private func writeBlob(_ data: Data) throws -> git_oid {
    var id = git_oid()
    var empty: UInt8 = 0
    let code =
      data.isEmpty
      ? withUnsafeBytes(of: &empty) { git_blob_create_from_buffer(&id, repo, $0.baseAddress, 0) }
      : data.withUnsafeBytes { git_blob_create_from_buffer(&id, repo, $0.baseAddress, $0.count) }
    try check(code, "git_blob_create_from_buffer")
    return id
  }

  // MARK: Reading

  /// The bytes of the file at `path` in revision `rev`.
  ///
  /// - Parameters:
  ///   - path: a repository path such as `runs/<sha256>/manifest.json`.
  ///   - rev: a branch name, or a full or abbreviated commit id.
  /// - Returns: the file's bytes, or nil when the revision has no such file (or the branch
  ///   has no commit yet).
  /// - Throws: `ProvenanceError.unknownRevision`, `.ambiguousPrefix`, `.wrongEntryKind` when
  ///   `path` is a folder, `.git` on libgit2 errors.
  public func read(path file: String, at rev: String = defaultBranch) throws -> Data? {
    try locked {
      guard let commit = try resolve(rev) else { return nil }
      return try withTree(of: commit) { tree -> Data? in
        var entry: OpaquePointer?
        let code = git_tree_entry_bypath(&entry, tree, file)
        if code == GIT_ENOTFOUND.rawValue { return nil }
        try check(code, "git_tree_entry_bypath")
        defer { git_tree_entry_free(entry) }
        guard git_tree_entry_type(entry) == GIT_OBJECT_BLOB else {
          throw ProvenanceError.wrongEntryKind(path: file, revision: rev, expected: "file")
        }
        var blob: OpaquePointer?
        try check(git_blob_lookup(&blob, repo, git_tree_entry_id(entry)), "git_blob_lookup")
        defer { git_blob_free(blob) }
        let size = Int(git_blob_rawsize(blob))
        guard size > 0, let bytes = git_blob_rawcontent(blob) else { return Data() }
        return Data(bytes: bytes, count: size)
      }
    }
  }

  /// The names of the entries of folder `directory` in revision `rev`, in git's order.
  ///
  /// - Parameters:
  ///   - directory: a folder path such as `runs`; `""` lists the top level.
  ///   - rev: a branch name, or a full or abbreviated commit id.
  /// - Returns: file and folder names (not paths); empty when the folder or the branch
  ///   does not exist.
  /// - Throws: `ProvenanceError.wrongEntryKind` when `directory` is a file, `.unknownRevision`,
  ///   `.ambiguousPrefix`, `.git` on libgit2 errors.
  public func list(directory: String, at rev: String = defaultBranch) throws -> [String] {
    try locked {
      guard let commit = try resolve(rev) else { return [] }
      return try entries(of: directory, in: commit, revision: rev).map(\.name)
    }
  }

  /// The commits of `branch`, newest first (children before parents).
  ///
  /// - Parameters:
  ///   - branch: the branch to walk.
  ///   - limit: stop after this many commits.
  /// - Returns: the history; empty when the branch has no commit.
  /// - Throws: `ProvenanceError.invalidBranch`, `.git` on libgit2 errors.
  public func log(branch: String = defaultBranch, limit: Int? = nil) throws -> [CommitInfo] {
    let refName = try GitStore.refName(branch)
    return try locked {
      guard let start = try tipID(refName) else { return [] }
      var result: [CommitInfo] = []
      try walk(from: start) { id, commit in
        if let limit, result.count >= limit { return false }
        var parents: [String] = []
        for i in 0..<git_commit_parentcount(commit) {
          if let p = git_commit_parent_id(commit, i) { parents.append(p.pointee.hex) }
        }
        var message = git_commit_message(commit).map { String(cString: $0) } ?? ""
        if message.hasSuffix("\n") { message.removeLast() }
        result.append(CommitInfo(id: id.hex, time: Int64(git_commit_time(commit)), message: message, parentIDs: parents))
        return true
      }
      return result
    }
  }

  /// The one commit whose id starts with `prefix`.
  ///
  /// Only commits reachable from a ref are candidates: a commit that lost a race in
  /// `commit` and was never referenced does not count.
  ///
  /// - Parameter prefix: one to 40 hex digits, either case.
  /// - Returns: the full hex id, or nil when no commit matches.
  /// - Throws: `ProvenanceError.invalidPrefix`, `.ambiguousPrefix` naming how many commits
  ///   match, `.git` on libgit2 errors.
  public func resolveCommit(prefix: String) throws -> String? {
    let normalised = try GitStore.hexPrefix(prefix)
    return try locked { try resolvePrefix(normalised)?.hex }
  }

  /// The commit `branch` points at, or nil when it has none yet.
  ///
  /// - Throws: `ProvenanceError.invalidBranch`, `.git` on libgit2 errors.
  public func tip(branch: String = defaultBranch) throws -> String? {
    let refName = try GitStore.refName(branch)
    return try locked { try tipID(refName)?.hex }
  }

  /// For each entry of `directory` in revision `rev`, the newest commit that changed it.
  ///
  /// With one run per folder under `runs/`, this maps each run folder to the commit that
  /// recorded it. Walks first parents from `rev` and stops once every entry is placed.
  ///
  /// - Parameters:
  ///   - directory: a folder path such as `runs`.
  ///   - rev: a branch name, or a full or abbreviated commit id.
  /// - Returns: entry name → 40-digit commit id; empty when the folder or branch is absent.
  /// - Throws: `ProvenanceError.unknownRevision`, `.wrongEntryKind`, `.git` on libgit2 errors.
  public func lastCommits(touching directory: String, at rev: String = defaultBranch) throws -> [String: String] {
    try locked {
      guard let tip = try resolve(rev) else { return [:] }
      func ids(at commit: git_oid) throws -> [String: git_oid] {
        Dictionary(uniqueKeysWithValues: try entries(of: directory, in: commit, revision: rev).map { ($0.name, $0.id) })
      }
      // An entry's newest change is the first commit, walking back from the tip, whose parent
      // holds a different version of it (or none).
      var pending = try ids(at: tip)
      var result: [String: String] = [:]
      var current = tip
      while !pending.isEmpty {
        let parent = try firstParent(of: current)
        let before = try parent.map(ids(at:)) ?? [:]
        for (name, id) in pending where before[name].map({ !GitStore.equal($0, id) }) ?? true {
          result[name] = current.hex
          pending[name] = nil
        }
        guard let parent else { break }
        current = parent
      }
      return result
    }
  }

  // MARK: Internals (called with `lock` held)

  private func locked<T>(_ body: () throws -> T) rethrows -> T {
    lock.lock()
    defer { lock.unlock() }
    return try body()
  }

  private func check(_ code: Int32, _ function: String) throws {
    if code < 0 { throw GitStore.failure(code, function, path) }
  }

  private func tipID(_ refName: String) throws -> git_oid? {
    var id = git_oid()
    let code = git_reference_name_to_id(&id, repo, refName)
    if code == GIT_ENOTFOUND.rawValue { return nil }
    try check(code, "git_reference_name_to_id")
    return id
  }

  /// A branch's tip, or the commit a hex prefix names; nil for a branch without commits.
  private func resolve(_ rev: String) throws -> git_oid? {
    if let refName = try? GitStore.refName(rev), let id = try tipID(refName) { return id }
    if let prefix = try? GitStore.hexPrefix(rev), rev.count >= 4 {
      guard let id = try resolvePrefix(prefix) else {
        throw ProvenanceError.unknownRevision(revision: rev, repository: path)
      }
      return id
    }
    if (try? GitStore.refName(rev)) != nil { return nil }  // a branch with no commit yet
    throw ProvenanceError.unknownRevision(revision: rev, repository: path)
  }

  private func resolvePrefix(_ prefix: String) throws -> git_oid? {
    if prefix.count == 40, var id = GitStore.oid(hex: prefix) {
      var commit: OpaquePointer?
      let code = git_commit_lookup(&commit, repo, &id)
      git_commit_free(commit)
      if code == GIT_ENOTFOUND.rawValue { return nil }
      try check(code, "git_commit_lookup")
      return id
    }
    var walker: OpaquePointer?
    try check(git_revwalk_new(&walker, repo), "git_revwalk_new")
    defer { git_revwalk_free(walker) }
    try check(git_revwalk_push_glob(walker, "refs/*"), "git_revwalk_push_glob")
    var matches: [git_oid] = []
    var id = git_oid()
    while true {
      let code = git_revwalk_next(&id, walker)
      if code == GIT_ITEROVER.rawValue { break }
      try check(code, "git_revwalk_next")
      if id.hex.hasPrefix(prefix) { matches.append(id) }
    }
    if matches.count > 1 { throw ProvenanceError.ambiguousPrefix(prefix: prefix, candidates: matches.count) }
    return matches.first
  }

  /// Calls `body` for each commit reachable from `start`, children first, until it returns false.
  private func walk(from start: git_oid, _ body: (git_oid, OpaquePointer?) throws -> Bool) throws {
    var walker: OpaquePointer?
    try check(git_revwalk_new(&walker, repo), "git_revwalk_new")
    defer { git_revwalk_free(walker) }
    try check(git_revwalk_sorting(walker, GIT_SORT_TOPOLOGICAL.rawValue), "git_revwalk_sorting")
    var first = start
    try check(git_revwalk_push(walker, &first), "git_revwalk_push")
    var id = git_oid()
    while true {
      let code = git_revwalk_next(&id, walker)
      if code == GIT_ITEROVER.rawValue { return }
      try check(code, "git_revwalk_next")
      var commit: OpaquePointer?
      try check(git_commit_lookup(&commit, repo, &id), "git_commit_lookup")
      defer { git_commit_free(commit) }
      if try !body(id, commit) { return }
    }
  }

  private func firstParent(of id: git_oid) throws -> git_oid? {
    var commit: OpaquePointer?
    var lookup = id
    try check(git_commit_lookup(&commit, repo, &lookup), "git_commit_lookup")
    defer { git_commit_free(commit) }
    guard git_commit_parentcount(commit) > 0, let parent = git_commit_parent_id(commit, 0) else { return nil }
    return parent.pointee
  }

  private func withTree<T>(of commitID: git_oid, _ body: (OpaquePointer?) throws -> T) throws -> T {
    var id = commitID
    var commit: OpaquePointer?
    try check(git_commit_lookup(&commit, repo, &id), "git_commit_lookup")
    defer { git_commit_free(commit) }
    var tree: OpaquePointer?
    try check(git_commit_tree(&tree, commit), "git_commit_tree")
    defer { git_tree_free(tree) }
    return try body(tree)
  }

  /// The entries of folder `directory` of a commit's tree; empty when it does not exist.
  private func entries(of directory: String, in commitID: git_oid, revision: String) throws -> [(name: String, id: git_oid)] {
    let trimmed = directory.split(separator: "/").joined(separator: "/")
    return try withTree(of: commitID) { root in
      var owned: OpaquePointer?
      defer { git_tree_free(owned) }
      if !trimmed.isEmpty {
        var entry: OpaquePointer?
        let code = git_tree_entry_bypath(&entry, root, trimmed)
        if code == GIT_ENOTFOUND.rawValue { return [] }
        try check(code, "git_tree_entry_bypath")
        defer { git_tree_entry_free(entry) }
        guard git_tree_entry_type(entry) == GIT_OBJECT_TREE else {
          throw ProvenanceError.wrongEntryKind(path: directory, revision: revision, expected: "folder")
        }
        try check(git_tree_lookup(&owned, repo, git_tree_entry_id(entry)), "git_tree_lookup")
      }
      let tree = owned ?? root
      return (0..<git_tree_entrycount(tree)).compactMap { i in
        guard let entry = git_tree_entry_byindex(tree, i), let name = git_tree_entry_name(entry) else { return nil }
        return (String(cString: name), git_tree_entry_id(entry).pointee)
      }
    }
  }

  // MARK: Static helpers

  private enum FolderState {
    case missing
    case empty
    case partialRepository
    case occupied
  }

  /// Opens the repository, creating it when allowed, while tolerating other processes doing
  /// the same at the same moment.
  ///
  /// A folder holding only git's files is taken to be a repository another process is
  /// creating: opening is retried for a while before it is (re-)initialised, which is safe
  /// on a complete or partial repository.
  private static func openOrCreate(_ path: String, create: Bool) throws -> OpaquePointer {
    var lastError = ProvenanceError.repositoryMissing(path: path)
    for attempt in 0..<40 {
      var handle: OpaquePointer?
      let code = git_repository_open_bare(&handle, path)
      if code == 0, let handle { return handle }
      lastError = failure(code, "git_repository_open_bare", path)
      switch folderState(path) {
      case .occupied:
        throw ProvenanceError.notARepository(path: path)
      case .missing, .empty:
        guard create else { throw ProvenanceError.repositoryMissing(path: path) }
        do {
          return try initialise(path)
        } catch let error as ProvenanceError {
          lastError = error  // typically a lock held by a concurrent init: retry
        }
      case .partialRepository:
        if create && attempt >= 10 {
          do {
            return try initialise(path)
          } catch let error as ProvenanceError {
            lastError = error
          }
        }
      }
      usleep(UInt32.random(in: 5_000...25_000))
    }
    throw lastError
  }

  private static func folderState(_ path: String) -> FolderState {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return .missing }
    guard isDirectory.boolValue, let contents = try? FileManager.default.contentsOfDirectory(atPath: path) else {
      return .occupied
    }
    if contents.isEmpty { return .empty }
    let gitNames: Set<String> = [
      "HEAD", "objects", "refs", "config", "description", "info", "hooks", "branches", "logs", "packed-refs",
    ]
    let onlyGit = contents.allSatisfy { gitNames.contains($0) || $0.hasSuffix(".lock") }
    return onlyGit ? .partialRepository : .occupied
  }

  private static func initialise(_ path: String) throws -> OpaquePointer {
    let parent = (path as NSString).deletingLastPathComponent
    if !parent.isEmpty { try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) }
    var options = git_repository_init_options()
    var code = git_repository_init_options_init(&options, UInt32(GIT_REPOSITORY_INIT_OPTIONS_VERSION))
    if code < 0 { throw failure(code, "git_repository_init_options_init", path) }
    options.flags = GIT_REPOSITORY_INIT_BARE.rawValue | GIT_REPOSITORY_INIT_MKPATH.rawValue
    var handle: OpaquePointer?
    code = defaultBranch.withCString { head in
      options.initial_head = head
      return git_repository_init_ext(&handle, path, &options)
    }
    guard code == 0, let handle else { throw failure(code, "git_repository_init_ext", path) }
    return handle
  }

  static func failure(_ code: Int32, _ function: String, _ repository: String) -> ProvenanceError {
    var message = "no detail from libgit2"
    if let error = git_error_last(), let text = error.pointee.message {
      message = String(cString: text).trimmingCharacters(in: .whitespacesAndNewlines)
    }
    return .git(function: function, code: code, message: message, repository: repository)
  }

  /// Codes meaning "another writer holds or moved the ref": rebuild and retry.
  private static func isRace(_ code: Int32) -> Bool {
    code == GIT_EMODIFIED.rawValue || code == GIT_ELOCKED.rawValue || code == GIT_EEXISTS.rawValue
      || code == GIT_ENOTFOUND.rawValue
  }

  private static func refName(_ branch: String) throws -> String {
    let name = "refs/heads/" + branch
    var valid: Int32 = 0
    guard !branch.isEmpty, !branch.hasPrefix("-"), git_reference_name_is_valid(&valid, name) == 0, valid == 1 else {
      throw ProvenanceError.invalidBranch(name: branch)
    }
    return name
  }

  /// Lower-cased `prefix` when it is 1…40 ASCII hex digits.
  static func hexPrefix(_ prefix: String) throws -> String {
    let lower = prefix.lowercased()
    let isHex = lower.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    guard !lower.isEmpty, lower.utf8.count <= 40, isHex else { throw ProvenanceError.invalidPrefix(prefix: prefix) }
    return lower
  }

  /// Refuses paths git would store badly or that would clash with each other.
  static func validate(paths: [String]) throws {
    let all = Set(paths)
    for path in paths {
      func refuse(_ reason: String) -> ProvenanceError { .invalidRepositoryPath(path: path, reason: reason) }
      guard !path.isEmpty else { throw refuse("the path is empty") }
      guard !path.utf8.contains(0) else { throw refuse("it contains a NUL byte") }
      let parts = path.split(separator: "/", omittingEmptySubsequences: false)
      for part in parts {
        switch part {
        case "": throw refuse("it has an empty folder name (leading, trailing or doubled \"/\")")
        case ".", "..": throw refuse("it contains \"\(part)\"")
        case _ where part.lowercased() == ".git": throw refuse("it contains \".git\"")
        default: continue
        }
      }
      for end in parts.indices.dropLast() where all.contains(parts[...end].joined(separator: "/")) {
        throw refuse("\"\(parts[...end].joined(separator: "/"))\" is also given as a file")
      }
    }
  }

  private static func normalise(message: String) -> String {
    var text = message
    while text.hasSuffix("\n") || text.hasSuffix(" ") { text.removeLast() }
    return text + "\n"
  }

  static func equal(_ a: git_oid, _ b: git_oid) -> Bool {
    var a = a
    var b = b
    return git_oid_equal(&a, &b) != 0
  }

  static func oid(hex: String) -> git_oid? {
    var id = git_oid()
    return git_oid_fromstrn(&id, hex, hex.utf8.count) == 0 ? id : nil
  }
}

extension git_oid {
  /// Lower-case 40-digit hex.
  var hex: String { withUnsafeBytes(of: id) { Digest.hex($0) } }
}

/// Calls `body` with C strings for `strings`, all valid for the duration of the call.
private func withCStrings<T>(_ strings: [String], _ body: ([UnsafePointer<CChar>]) throws -> T) rethrows -> T {
  let copies = strings.map { strdup($0)! }
  defer { copies.forEach { free($0) } }
  return try body(copies.map { UnsafePointer($0) })
}
