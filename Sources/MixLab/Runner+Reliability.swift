import Foundation
import MergeEngine
import Provenance
import Recipes
import SafeTensors

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

// What keeps a run from losing or faking anything when it is killed, runs next to another
// one, or its inputs change under it. docs/reliability.md states the guarantees.
extension Runner {
  /// Refuses an output location that leaves the workspace through a symbolic link.
  ///
  /// Inputs may live anywhere, but outputs go to `artifacts/<experiment>/<recipe>…` only
  /// (both names are validated, so the path itself cannot climb out); a link on the way
  /// (`artifacts`, `artifacts/<experiment>` or the artifact itself) must resolve inside the
  /// workspace.
  ///
  /// - Throws: `MixLabError.message` naming the link and where it points.
  func checkOutputLocation(_ artifact: String, experiment: String) throws {
    let root = Runner.resolved(workspace.root) ?? workspace.root
    for path in [workspace.artifactsDir, workspace.artifactsDir + "/" + experiment, artifact] {
      var st = stat()
      guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK else { continue }
      let target = Runner.resolved(path)
      if let target, target == root || target.hasPrefix(root + "/") { continue }
      let destination =
        target ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: path)).map { "\($0) (missing)" } ?? "?"
      throw MixLabError.message(
        "\(workspace.relative(path)) is a symbolic link to \(destination), outside the workspace \(workspace.root); mixlab writes outputs only inside the workspace. Replace the link with a folder (to use another disk, keep the whole workspace there)."
      )
    }
  }

  /// Removes what a killed run of `recipe` left next to its artifact: temporary files and
  /// folders (`.<recipe>.safetensors.mixlab-tmp-…`, `.<recipe>.mixlab-tmp-…`) and a sharded
  /// artifact moved aside (`<recipe>.mixlab-old-…`), which is put back if the artifact itself
  /// is missing.
  ///
  /// Call it holding the recipe's lock: every process writing these names holds that lock,
  /// so whatever is found belongs to a process that died (pids are not trusted: they are
  /// reused, and differ between containers sharing a folder).
  func removeStaleTemporaries(of recipe: String, artifact: String) {
    let folder = (artifact as NSString).deletingLastPathComponent
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
    for name in names {
      let path = folder + "/" + name
      if name.hasPrefix(".\(recipe).safetensors.mixlab-tmp-") || name.hasPrefix(".\(recipe).mixlab-tmp-") {
        try? FileManager.default.removeItem(atPath: path)
      } else if name.hasPrefix(recipe + ".mixlab-old-") {
        if !FileManager.default.fileExists(atPath: artifact) {
          try? FileManager.default.moveItem(atPath: path, toPath: artifact)
        } else {
          try? FileManager.default.removeItem(atPath: path)
        }
      }
    }
  }

  /// Merges into a temporary file or folder and moves it to `artifact` only when complete,
  /// fsynced, and every input is still the file that was hashed.
  ///
  /// - Throws: the merge's errors, or `SafeTensorsError.abandoned` / `MixLabError` when an
  ///   input changed during the merge; nothing is then left at `artifact`'s temporary names
  ///   and an earlier artifact there is untouched.
  func mergeIntoPlace(
    _ plan: MergePlan, inputs: [OpenedInput], artifact: String, shardBytes: Int?, cache: HashCache, options: ExecutionOptions
  ) throws -> MergeOutcome {
    let check: @Sendable () -> String? = { Runner.changedInput(inputs, cache: cache) }
    let outcome: MergeOutcome
    if let shardBytes {
      let folder = (artifact as NSString).deletingLastPathComponent
      let name = (artifact as NSString).lastPathComponent
      let temp = folder + "/.\(name).mixlab-tmp-\(getpid())"
      try? FileManager.default.removeItem(atPath: temp)
      do {
        outcome = try Executor.run(
          plan, inputs: inputs.map(\.checkpoint), to: .sharded(folder: temp, maxShardBytes: shardBytes), options: options)
        if let reason = check() { throw MixLabError.message("\(artifact) was not written: \(reason)") }
      } catch {
        try? FileManager.default.removeItem(atPath: temp)
        throw error
      }
      SafeTensorsWriter.syncDirectory(of: temp + "/model.safetensors.index.json")
      let old = artifact + ".mixlab-old-\(getpid())"
      if FileManager.default.fileExists(atPath: artifact) { try FileManager.default.moveItem(atPath: artifact, toPath: old) }
      try FileManager.default.moveItem(atPath: temp, toPath: artifact)
      try? FileManager.default.removeItem(atPath: old)
      SafeTensorsWriter.syncDirectory(of: artifact)
    } else {
      var options = options
      options.beforeRename = check
      outcome = try Executor.run(plan, inputs: inputs.map(\.checkpoint), to: .file(artifact), options: options)
    }
    FaultInjection.reach(.afterRename)  // test hook: in place, not recorded
    return outcome
  }

  /// Why the bytes a run read may not be the bytes it hashed, or nil when every input file
  /// is unchanged.
  ///
  /// Each input file was mapped when opened and its identity (device, inode, size, mtime,
  /// ctime) taken then; hashes were checked against that identity. The same inode with
  /// another size or time was written to while mapped: the merge may have read new bytes.
  /// A different inode at the path means the file was replaced: the mapping still holds the
  /// hashed bytes, but the record names the path, so the run stands only if the new file has
  /// the same SHA-256 (as when a concurrent run rebuilt a dependency byte for byte).
  static func changedInput(_ inputs: [OpenedInput], cache: HashCache) -> String? {
    for input in inputs where input.hashed {
      for shard in input.checkpoint.shards {
        let m = shard.file
        var st = stat()
        guard stat(shard.path, &st) == 0 else {
          return
            "input `\(input.name)` (\(shard.path)) was removed while the run read it; nothing was recorded. Restore it and run again."
        }
        let replaced = UInt64(st.st_dev) != m.device || UInt64(st.st_ino) != m.inode
        if !replaced {
          #if canImport(Glibc)
            let (mtime, ctime) = (Runner.nanoseconds(st.st_mtim), Runner.nanoseconds(st.st_ctim))
          #else
            let (mtime, ctime) = (Runner.nanoseconds(st.st_mtimespec), Runner.nanoseconds(st.st_ctimespec))
          #endif
          if Int(st.st_size) == m.size && mtime == m.mtimeNanoseconds && ctime == m.ctimeNanoseconds {
            continue
          }
          return
            "input `\(input.name)` (\(shard.path)) was modified while the run read it, so the output would match neither its old nor its new bytes; nothing was recorded. Run again once nothing writes to it."
        }
        let now = try? Runner.hashOutput(input.path, cache: cache, verify: false)
        if now == input.sha256 { break }  // the whole checkpoint was re-hashed
        return
          "input `\(input.name)` (\(shard.path)) was replaced by another file while the run read it (sha256 \(input.sha256.prefix(12))… when hashed, \(now.map { String($0.prefix(12)) + "…" } ?? "unreadable") now); nothing was recorded. Run again once nothing writes to it."
      }
    }
    return nil
  }

  static func nanoseconds(_ t: timespec) -> Int64 { Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec) }

  /// `path` with symbolic links resolved, or nil when it does not resolve.
  static func resolved(_ path: String) -> String? {
    guard let r = realpath(path, nil) else { return nil }
    defer { free(r) }
    return String(cString: r)
  }
}
