import Foundation
import Provenance
import SafeTensors

/// `mixlab log` and `mixlab show`: the recorded runs.
public enum History {
  public struct LogEntry: Codable, Sendable {
    public var runID: String
    public var experiment: String
    public var recipe: String
    public var outputSHA256: String
    public var autov2: String
    public var commit: String
    public var startedAt: String
    public var seconds: Double
    enum CodingKeys: String, CodingKey {
      case experiment, recipe, autov2, commit, seconds
      case runID = "run_id"
      case outputSHA256 = "output_sha256"
      case startedAt = "started_at"
    }
  }

  public static func log(workspace ws: Workspace, experiment: String? = nil) throws -> [LogEntry] {
    let rows = try ws.index().runs(experiment: experiment)
    if rows.isEmpty, try ws.git().tip() != nil {
      throw MixLabError.message(
        "the index has no runs but the provenance repository has; rebuild the index with `mixlab index rebuild`")
    }
    return rows.map {
      LogEntry(
        runID: $0.runID, experiment: $0.experiment, recipe: $0.recipeName, outputSHA256: $0.outputSHA256,
        autov2: Digest.autoV2($0.outputSHA256), commit: $0.commitID, startedAt: $0.startedAt, seconds: $0.wallSeconds)
    }
  }

  public static func logText(_ entries: [LogEntry]) -> String {
    if entries.isEmpty { return "no runs recorded yet" }
    var lines = ["started                 experiment/recipe                  autov2      run id            commit"]
    for e in entries {
      let name = "\(e.experiment)/\(e.recipe)"
      lines.append(
        "\(e.startedAt.prefix(19).replacingOccurrences(of: "T", with: " "))     \(name.padding(toLength: 34, withPad: " ", startingAt: 0)) \(e.autov2)  \(e.runID)  \(e.commit.prefix(10))"
      )
    }
    return lines.joined(separator: "\n")
  }

  /// The record whose run id, output SHA-256 or commit starts with `prefix`; the index is
  /// asked first, then the provenance repository itself (so a cloned repository works
  /// before `mixlab index rebuild`).
  public static func find(_ prefix: String, workspace ws: Workspace) throws -> RunRecord {
    let p = prefix.lowercased()
    guard p.count >= 4, p.allSatisfy({ $0.isHexDigit }) else {
      throw MixLabError.message(
        "`\(prefix)` is not a hash prefix: give at least 4 hex digits of an output SHA-256, run id or commit")
    }
    let git = try ws.git()
    var shas = Set(try ws.index().findRuns(prefix: p).map(\.outputSHA256))
    if shas.isEmpty {
      for folder in (try? git.list(directory: "runs")) ?? [] where folder.hasPrefix(p) { shas.insert(folder) }
      if p.count <= 40, let commit = try? git.resolveCommit(prefix: p) {
        for folder in (try? git.list(directory: "runs", at: commit)) ?? [] {
          if let d = try? git.read(path: "runs/\(folder)/manifest.json", at: commit), let r = try? RunRecord.decode(d) {
            let lastTouch = (try? git.lastCommits(touching: "runs", at: commit))?[folder]
            if lastTouch == commit { shas.insert(r.output.sha256) }
          }
        }
      }
    }
    guard !shas.isEmpty else { throw MixLabError.message("no recorded run matches `\(prefix)` (see `mixlab log`)") }
    guard shas.count == 1 else {
      throw MixLabError.message(
        "`\(prefix)` matches \(shas.count) outputs (\(shas.sorted().prefix(5).map { String($0.prefix(12)) }.joined(separator: ", "))); give more digits"
      )
    }
    let sha = shas.first!
    guard let data = try git.read(path: "runs/\(sha)/manifest.json") else {
      throw MixLabError.message(
        "the index names output \(sha) but the provenance repository has no manifest for it; run `mixlab index rebuild`")
    }
    return try RunRecord.decode(data)
  }

  public static func showText(_ r: RunRecord) -> String {
    var lines: [String] = []
    func row(_ k: String, _ v: String) { lines.append(k.padding(toLength: 16, withPad: " ", startingAt: 0) + v) }
    row("run", r.runID)
    row("recipe", "\(r.experiment)/\(r.recipeName) (\(r.recipePath))")
    row("recipe hash", r.recipeHash)
    row("output", r.output.path)
    row("sha256", r.output.sha256)
    row("autov2", r.output.autov2)
    row("size", Format.bytes(r.output.size))
    row("architecture", r.output.architecture)
    row("tensors", "\(r.output.tensorCount)")
    row("components", r.output.components.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    row("started", r.execution.startedAt)
    row("wall time", Format.seconds(r.execution.wallSeconds))
    row("threads", "\(r.execution.threads)")
    row("peak memory", Format.bytes(r.execution.peakRSSBytes))
    row("mixlab", "\(r.engine.mixlabVersion) (engine \(r.engine.engineVersion))")
    row("platform", "\(r.platform.os) \(r.platform.arch)")
    if let s = r.seed { row("seed", "\(s)") }
    lines.append("inputs")
    for i in r.inputs { lines.append("  \(i.name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(i.sha256)  \(i.path)") }
    if !r.metrics.isEmpty {
      lines.append("metrics")
      for m in r.metrics { lines.append("  \(m.name) [\(m.scope)] = \(m.value)") }
    }
    lines.append("reproduce       mixlab reproduce \(r.output.sha256.prefix(12))")
    return lines.joined(separator: "\n")
  }
}
