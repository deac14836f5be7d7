import Foundation
import MergeEngine
import Provenance
import Recipes
import SafeTensors

/// `mixlab reproduce`: rebuild a recorded run from its recipe and inputs found by hash, and
/// compare every byte.
public enum Reproduce {
  public struct Outcome: Codable, Sendable {
    public var runID: String
    public var expectedSHA256: String
    public var actualSHA256: String
    public var identical: Bool
    /// Tensors whose bytes differ, in file order (first ones).
    public var differingTensors: [String]
    public var onlyInRecord: [String]
    public var onlyInRebuild: [String]
    public var inputs: [String: String]
    public var seconds: Double
    public var keptAt: String?

    enum CodingKeys: String, CodingKey {
      case identical, inputs, seconds
      case runID = "run_id"
      case expectedSHA256 = "expected_sha256"
      case actualSHA256 = "actual_sha256"
      case differingTensors = "differing_tensors"
      case onlyInRecord = "only_in_record"
      case onlyInRebuild = "only_in_rebuild"
      case keptAt = "kept_at"
    }
  }

  public static func run(
    prefix: String, workspace ws: Workspace, options: RunOptions, searchDirs: [String], keep: Bool
  ) throws -> Outcome {
    let started = Date()
    let record = try History.find(prefix, workspace: ws)
    let recipeFile = ws.root + "/" + record.recipePath
    let recipe = try RecipeParser.parse(record.recipeYAML, file: recipeFile, name: record.recipeName)
    guard recipe.hash == record.recipeHash else {
      throw MixLabError.message(
        "this mixlab reads the recorded recipe differently (canonical hash \(recipe.hash.prefix(12)) instead of \(record.recipeHash.prefix(12))); it was recorded by mixlab \(record.engine.mixlabVersion), use that version to reproduce it"
      )
    }
    let index = try ws.index()
    let cache = HashCache(index: index)
    let runner = Runner(workspace: ws, options: options)
    var searchCache: [String: String]?
    var found: [String: String] = [:]

    func locate(_ input: RecipeInput) throws -> String {
      guard let rec = record.inputs.first(where: { $0.name == input.name }) else {
        throw MixLabError.message("the record has no input named \(input.name)")
      }
      var candidates: [String] = []
      if case .file(let p) = input.source {
        candidates.append(
          p.hasPrefix("/") ? p : ((recipeFile as NSString).deletingLastPathComponent + "/" + p as NSString).standardizingPath)
      }
      if case .synth(let s) = input.source { candidates.append(try runner.materialize(s)) }
      candidates += try index.pathsKnown(forSHA256: rec.sha256).map { $0.hasPrefix("/") ? $0 : ws.root + "/" + $0 }
      for c in candidates where FileManager.default.fileExists(atPath: c) {
        if let h = try? Runner.hashOutput(c, cache: cache, verify: options.verify), h == rec.sha256 {
          found[input.name] = c
          return c
        }
      }
      if searchCache == nil { searchCache = try scan(searchDirs, cache: cache, verify: options.verify) }
      if let hit = searchCache?[rec.sha256] {
        found[input.name] = hit
        return hit
      }
      let seen = ([rec.path] + candidates).uniqued().joined(separator: ", ")
      throw MixLabError.message(
        "input `\(rec.name)` (sha256 \(rec.sha256)) was not found: last seen at \(seen). Put the file back, or pass --search DIR with a folder that holds it."
      )
    }

    let inputs = try runner.openInputs(recipe, experiment: nil, cache: cache, locate: locate)
    let spec = try SpecBuilder.build(recipe, inputs: inputs.map(\.checkpoint))
    var nonFinite: [Int: [String: NonFinite]] = [:]
    for (i, inp) in inputs.enumerated() where !inp.nonFinite.isEmpty {
      nonFinite[i] = Dictionary(uniqueKeysWithValues: inp.nonFinite.map { ($0.key, $0) })
    }
    let plan = try Runner.plan(spec, inputs: inputs.map(\.checkpoint), nonFinite: nonFinite, file: recipeFile)
    let dir = ws.stateDir + "/reproduce"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let target = dir + "/\(record.output.sha256.prefix(16))-\(getpid())" + (recipe.output.shardBytes == nil ? ".safetensors" : "")
    let progress = ProgressReporter(label: "reproduce", totalBytes: plan.outputBytes, quiet: options.quiet)
    let exec = ExecutionOptions(threads: options.threads, memoryBudget: options.memoryBudget) { done, _, key in
      progress.update(done, detail: key)
    }
    let outcome: MergeOutcome
    if let shard = recipe.output.shardBytes {
      outcome = try Executor.run(
        plan, inputs: inputs.map(\.checkpoint), to: .sharded(folder: target, maxShardBytes: shard), options: exec)
    } else {
      outcome = try Executor.run(plan, inputs: inputs.map(\.checkpoint), to: .file(target), options: exec)
    }
    progress.finish()
    if !keep { try? FileManager.default.removeItem(atPath: target) }
    let expected = record.output.tensorSHA256
    let order = plan.tensors.map(\.spec.name)
    let differing = order.filter { expected[$0] != nil && outcome.tensorSHA256[$0] != expected[$0] }
    let onlyRecord = expected.keys.filter { outcome.tensorSHA256[$0] == nil }.sorted()
    let onlyRebuild = order.filter { expected[$0] == nil }
    return Outcome(
      runID: record.runID, expectedSHA256: record.output.sha256, actualSHA256: outcome.sha256,
      identical: outcome.sha256 == record.output.sha256, differingTensors: Array(differing.prefix(50)), onlyInRecord: onlyRecord,
      onlyInRebuild: onlyRebuild, inputs: found, seconds: Date().timeIntervalSince(started),
      keptAt: keep ? ws.relative(target) : nil)
  }

  /// SHA-256 → path for every .safetensors file and sharded folder under `dirs`.
  static func scan(_ dirs: [String], cache: HashCache, verify: Bool) throws -> [String: String] {
    var out: [String: String] = [:]
    let fm = FileManager.default
    for d in dirs {
      let root = Workspace.absolute(d)
      guard let e = fm.enumerator(atPath: root) else {
        throw MixLabError.message("--search \(d): not a readable folder")
      }
      var candidates: [String] = []
      while let item = e.nextObject() as? String {
        if item.hasSuffix(".safetensors") { candidates.append(root + "/" + item) }
        if item.hasSuffix("model.safetensors.index.json") {
          candidates.append(root + "/" + (item as NSString).deletingLastPathComponent)
        }
      }
      for c in candidates {
        if let h = try? Runner.hashOutput(c, cache: cache, verify: verify), out[h] == nil { out[h] = c }
      }
    }
    return out
  }

  public static func text(_ o: Outcome) -> String {
    var lines: [String] = []
    for (name, path) in o.inputs.sorted(by: { $0.key < $1.key }) { lines.append("input \(name): \(path)") }
    if o.identical {
      lines.append("bit-identical: \(o.actualSHA256) (run \(o.runID), \(Format.seconds(o.seconds)))")
    } else {
      lines.append("DIFFERENT: expected \(o.expectedSHA256), rebuilt \(o.actualSHA256)")
      if !o.differingTensors.isEmpty {
        lines.append("first differing tensors:")
        for t in o.differingTensors.prefix(10) { lines.append("  \(t)") }
      }
      if !o.onlyInRecord.isEmpty { lines.append("only in the record: \(o.onlyInRecord.prefix(10).joined(separator: ", "))") }
      if !o.onlyInRebuild.isEmpty { lines.append("only in the rebuild: \(o.onlyInRebuild.prefix(10).joined(separator: ", "))") }
    }
    if let k = o.keptAt { lines.append("rebuilt file kept at \(k)") }
    return lines.joined(separator: "\n")
  }
}

extension Array where Element: Hashable {
  func uniqued() -> [Element] {
    var seen = Set<Element>()
    return filter { seen.insert($0).inserted }
  }
}
