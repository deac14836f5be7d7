import Architectures
import Foundation
import MergeEngine
import Provenance
import Recipes
import SafeTensors

/// How `mixlab run` behaves; none of it changes output bytes.
public struct RunOptions: Sendable {
  public var threads: Int = 0
  public var memoryBudget: Int = 1 << 30
  public var dryRun = false
  public var force = false
  public var verify = false
  public var quiet = false
  /// Run the declared evaluators on outputs that are reused too (and record their results).
  public var evaluate = false
  /// Compare each new output with its inputs for the report (distance map, per-block diff):
  /// one streaming pass over the output and up to `RunComparisons.maxModels` inputs.
  public var compare = true
  public init() {}
}

/// One recipe's outcome. The snake_case JSON names are a public contract.
public struct RunResult: Codable, Sendable {
  public var experiment: String
  public var recipe: String
  public var artifact: String
  public var outputSHA256: String?
  public var autov2: String?
  public var runID: String?
  public var commit: String?
  public var reused: Bool
  public var seconds: Double
  public var peakRSSBytes: Int?
  public var recipeHash: String
  public var plan: PlanSummary?
  /// Why a dry run could not plan this recipe yet.
  public var note: String?
  /// Where the time went, and how many input bytes had to be read for hashing.
  public var timings: Timings?

  public struct Timings: Codable, Sendable {
    public var hashSeconds = 0.0
    public var planSeconds = 0.0
    public var mergeSeconds = 0.0
    public var recordSeconds = 0.0
    public var evaluateSeconds = 0.0
    /// The report's comparison of the output with its inputs (after the run is recorded).
    public var compareSeconds = 0.0
    public var hashedBytes = 0
    enum CodingKeys: String, CodingKey {
      case hashSeconds = "hash_seconds"
      case planSeconds = "plan_seconds"
      case mergeSeconds = "merge_seconds"
      case recordSeconds = "record_seconds"
      case evaluateSeconds = "evaluate_seconds"
      case compareSeconds = "compare_seconds"
      case hashedBytes = "hashed_bytes"
    }
  }

  enum CodingKeys: String, CodingKey {
    case experiment, recipe, artifact, autov2, commit, reused, seconds, plan, note, timings
    case outputSHA256 = "output_sha256"
    case runID = "run_id"
    case peakRSSBytes = "peak_rss_bytes"
    case recipeHash = "recipe_hash"
  }
}

/// An input opened and hashed for a run.
struct OpenedInput {
  var name: String
  var pathAsWritten: String
  var path: String
  var checkpoint: Checkpoint
  var sha256: String
  var tensorDataSHA256: String
  var nonFinite: [NonFinite]
  var architecture: Architecture
  /// False in a dry run when the hash cache had no entry (nothing was read).
  var hashed: Bool
}

/// `mixlab run`: one recipe or a whole experiment, in dependency order.
public final class Runner: @unchecked Sendable {
  // Sendable: used from one thread; the progress closure only touches its reporter.
  public let workspace: Workspace
  public let options: RunOptions
  /// Bytes read to hash inputs during the current recipe (0 when the cache answered).
  private var hashedBytes = 0

  public init(workspace: Workspace, options: RunOptions) {
    self.workspace = workspace
    self.options = options
  }

  /// Runs `path` (a recipe file or an experiment folder).
  public static func run(path: String, options: RunOptions) throws -> [RunResult] {
    let abs = Workspace.absolute(path)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: abs, isDirectory: &isDir) else {
      throw MixLabError.message("\(path): no such recipe or experiment folder")
    }
    let ws = try Workspace.find(from: abs)
    let runner = Runner(workspace: ws, options: options)
    if isDir.boolValue {
      let exp = try Experiment.load(abs)
      return try runner.run(exp, recipes: exp.recipes)
    }
    let exp = try Experiment.load((abs as NSString).deletingLastPathComponent)
    // A swept recipe file is several recipes (its points).
    let fromFile = exp.recipes.filter { Workspace.absolute($0.file) == abs }
    guard !fromFile.isEmpty else { throw MixLabError.message("\(path) is not a recipe of experiment \(exp.name)") }
    var wanted: [Recipe] = []
    for r in fromFile {
      for c in exp.closure(of: r.name) where !wanted.contains(where: { $0.name == c.name }) { wanted.append(c) }
    }
    return try runner.run(exp, recipes: exp.recipes.filter { r in wanted.contains { $0.name == r.name } })
  }

  public func run(_ exp: Experiment, recipes: [Recipe]) throws -> [RunResult] {
    var results: [RunResult] = []
    for r in recipes {
      results.append(try runRecipe(r, in: exp))
    }
    if !options.dryRun {
      try Report.write(experiment: exp, workspace: workspace)
    }
    return results
  }

  /// Where a recipe's output lives (a file, or a folder when sharded).
  public func artifactPath(experiment: String, recipe: Recipe) -> String {
    let base = workspace.artifactsDir + "/\(experiment)/\(recipe.name)"
    return recipe.output.shardBytes == nil ? base + ".safetensors" : base
  }

  func runRecipe(_ recipe: Recipe, in exp: Experiment) throws -> RunResult {
    let started = Date()
    if !options.quiet {
      for w in recipe.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
    }
    let lock = try FileLock(path: workspace.locksDir + "/\(exp.name)--\(recipe.name).lock")
    defer { withExtendedLifetime(lock) {} }
    let index = try workspace.index()
    let cache = HashCache(index: index)
    let artifact = artifactPath(experiment: exp.name, recipe: recipe)
    try checkOutputLocation(artifact, experiment: exp.name)
    if !options.dryRun { removeStaleTemporaries(of: recipe.name, artifact: artifact) }
    if options.dryRun {
      let missing = recipe.dependencies.filter { dep in
        !FileManager.default.fileExists(atPath: artifactPath(experiment: exp.name, recipe: exp.recipes.first { $0.name == dep }!))
      }
      if !missing.isEmpty {
        return RunResult(
          experiment: exp.name, recipe: recipe.name, artifact: workspace.relative(artifact), outputSHA256: nil, autov2: nil,
          runID: nil, commit: nil, reused: false, seconds: Date().timeIntervalSince(started), peakRSSBytes: nil,
          recipeHash: recipe.hash, plan: nil,
          note: "validated; its plan needs the output of \(missing.joined(separator: ", ")), which is not built yet")
      }
    }
    hashedBytes = 0
    let hashStart = Date()
    let inputs = try openInputs(recipe, experiment: exp, cache: cache)
    var timings = RunResult.Timings()
    timings.hashSeconds = Date().timeIntervalSince(hashStart)

    // Up to date: same recipe hash and the same input bytes under the same input names, and
    // the artifact still there. (The index matches the set of input hashes; two inputs that
    // swapped files have the same set but not the same output.)
    if !options.force && !options.dryRun,
      let row = try index.latestRun(recipeHash: recipe.hash, inputHashes: inputs.map(\.sha256)),
      Dictionary(try index.inputs(runID: row.runID).map { ($0.name, $0.sha256) }, uniquingKeysWith: { a, _ in a })
        == Dictionary(inputs.map { ($0.name, $0.sha256) }, uniquingKeysWith: { a, _ in a }),
      FileManager.default.fileExists(atPath: artifact),
      let current = try? Runner.hashOutput(artifact, cache: cache, verify: options.verify),
      current == row.outputSHA256
    {
      timings.hashedBytes = hashedBytes
      if options.evaluate, !Evaluators.declared(experiment: exp, recipe: recipe).isEmpty {
        try reevaluate(recipe, exp: exp, outputSHA256: row.outputSHA256, artifact: artifact, inputs: inputs)
      }
      return RunResult(
        experiment: exp.name, recipe: recipe.name, artifact: workspace.relative(artifact), outputSHA256: row.outputSHA256,
        autov2: Digest.autoV2(row.outputSHA256), runID: row.runID, commit: row.commitID, reused: true,
        seconds: Date().timeIntervalSince(started), peakRSSBytes: nil, recipeHash: recipe.hash, plan: nil, note: nil,
        timings: timings)
    }

    let planStart = Date()
    let spec = try SpecBuilder.build(recipe, inputs: inputs.map(\.checkpoint))
    var nonFinite: [Int: [String: NonFinite]] = [:]
    for (i, inp) in inputs.enumerated() where !inp.nonFinite.isEmpty {
      nonFinite[i] = Dictionary(uniqueKeysWithValues: inp.nonFinite.map { ($0.key, $0) })
    }
    let plan = try Runner.plan(spec, inputs: inputs.map(\.checkpoint), nonFinite: nonFinite, file: recipe.file)
    timings.planSeconds = Date().timeIntervalSince(planStart)
    if options.dryRun {
      let summary = PlanSummary.make(plan, spec: spec, inputs: inputs.map(\.checkpoint), options: options)
      return RunResult(
        experiment: exp.name, recipe: recipe.name, artifact: workspace.relative(artifact), outputSHA256: nil, autov2: nil,
        runID: nil, commit: nil, reused: false, seconds: Date().timeIntervalSince(started), peakRSSBytes: nil,
        recipeHash: recipe.hash, plan: summary,
        note: inputs.contains { !$0.hashed } ? "inputs not hashed yet: NaN/Inf checks and sha256 pins apply on the real run" : nil
      )
    }

    // Merge into place (temporary name, renamed when complete and hashed).
    let mergeStart = Date()
    try FileManager.default.createDirectory(
      atPath: (artifact as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let progress = ProgressReporter(label: recipe.name, totalBytes: plan.outputBytes, quiet: options.quiet)
    let exec = ExecutionOptions(threads: options.threads, memoryBudget: options.memoryBudget) { done, _, key in
      progress.update(done, detail: key)
    }
    let outcome = try mergeIntoPlace(
      plan, inputs: inputs, artifact: artifact, shardBytes: recipe.output.shardBytes, cache: cache, options: exec)
    progress.finish()
    timings.mergeSeconds = Date().timeIntervalSince(mergeStart)
    try Runner.rememberHashes(of: outcome, at: artifact, cache: cache)
    let wall = Date().timeIntervalSince(started)

    // Evaluators score the artifact; their numbers go into the record. A failing evaluator is
    // recorded as failed and the merge still counts.
    var record = makeRecord(
      recipe, exp: exp, inputs: inputs, plan: plan, outcome: outcome, artifact: artifact, started: started, wall: wall)
    let evaluators = Evaluators.declared(experiment: exp, recipe: recipe)
    if !evaluators.isEmpty {
      let evaluateStart = Date()
      let (evaluations, metrics) = Evaluators.run(
        evaluators, context: evaluationContext(recipe, exp: exp, artifact: artifact, sha256: outcome.sha256, inputs: inputs),
        quiet: options.quiet)
      record.evaluations = evaluations
      record.metrics += metrics
      timings.evaluateSeconds = Date().timeIntervalSince(evaluateStart)
    }
    // Record: manifest in git, then the index.
    let recordStart = Date()
    let commit = try workspace.git().commit(files: try record.gitFiles(), message: record.commitMessage, time: record.commitTime)
    var shapes: [String: (dtype: String, shape: [Int])] = [:]
    for t in plan.tensors { shapes[t.spec.name] = (t.spec.dtype.rawValue, t.spec.shape) }
    try index.record(record, commitID: commit, tensorShapes: shapes)
    timings.recordSeconds = Date().timeIntervalSince(recordStart)
    timings.hashedBytes = hashedBytes
    if options.compare {
      let compareStart = Date()
      RunComparisons.record(
        record, inputs: inputs, artifact: artifact, workspace: workspace, options: options, merged: outcome)
      timings.compareSeconds = Date().timeIntervalSince(compareStart)
    }
    return RunResult(
      experiment: exp.name, recipe: recipe.name, artifact: workspace.relative(artifact), outputSHA256: outcome.sha256,
      autov2: Digest.autoV2(outcome.sha256), runID: record.runID, commit: commit, reused: false, seconds: wall,
      peakRSSBytes: record.execution.peakRSSBytes, recipeHash: recipe.hash, plan: nil, note: nil, timings: timings)
  }

  func makeRecord(
    _ recipe: Recipe, exp: Experiment, inputs: [OpenedInput], plan: MergePlan, outcome: MergeOutcome, artifact: String,
    started: Date, wall: Double
  ) -> RunRecord {
    let names = plan.tensors.map(\.spec.name)
    var dtypes: [String: Int] = [:]
    var components: [String: Int] = [:]
    for t in plan.tensors {
      dtypes[t.spec.dtype.rawValue, default: 0] += 1
      components[t.component, default: 0] += 1
    }
    let startedText = RunRecord.iso8601(started)
    let runID = String(
      Digest.sha256(
        "\(recipe.hash)\n\(inputs.map(\.sha256).joined(separator: ","))\n\(startedText)\n\(getpid())\n\(UInt64.random(in: 0...UInt64.max))"
      )
      .prefix(16))
    let shards =
      outcome.files.count > 1 || recipe.output.shardBytes != nil
      ? outcome.files.map { ($0.path as NSString).lastPathComponent } : nil
    let output = OutputRecord(
      path: workspace.relative(artifact), sha256: outcome.sha256, autov2: Digest.autoV2(outcome.sha256),
      tensorDataSHA256: outcome.tensorDataSHA256, size: outcome.size, tensorCount: plan.tensors.count,
      tensorSHA256: outcome.tensorSHA256, dtypes: dtypes, components: components,
      layerCounts: Detection.layerCounts(of: names, in: plan.architecture), architecture: plan.architecture.rawValue,
      shards: shards)
    let inputRecords = inputs.map {
      InputRecord(
        name: $0.name, path: $0.pathAsWritten, sha256: $0.sha256, tensorDataSHA256: $0.tensorDataSHA256,
        size: $0.checkpoint.shards.reduce(0) { $0 + $1.file.size }, architecture: $0.architecture.rawValue,
        tensorCount: $0.checkpoint.entries.count)
    }
    let seeded = recipe.steps.contains { Catalog.info($0.method).seeded }
    return RunRecord(
      runID: runID, experiment: exp.name, recipeName: recipe.name, recipePath: workspace.relative(recipe.file),
      recipeYAML: recipe.text, recipeCanonical: recipe.canonical, recipeHash: recipe.hash, notes: exp.notes, inputs: inputRecords,
      output: output, seed: seeded ? recipe.output.seed : nil,
      engine: EngineRecord(
        mixlabVersion: Version.mixlab, engineVersion: Engine.version, methodSemantics: Catalog.semanticsVersions),
      platform: PlatformRecord.current(),
      execution: ExecutionRecord(
        threads: options.threads > 0 ? options.threads : ProcessInfo.processInfo.activeProcessorCount,
        memoryBudget: options.memoryBudget, chunkElements: Engine.groupElements, computeDType: recipe.output.compute.rawValue,
        startedAt: startedText, wallSeconds: wall, peakRSSBytes: ProcessMemory.peakResidentBytes, reused: false),
      metrics: outcome.metrics.map { MetricRecord(name: $0.name, scope: $0.scope, value: $0.value) })
  }

  func evaluationContext(_ recipe: Recipe, exp: Experiment, artifact: String, sha256: String, inputs: [OpenedInput])
    -> Evaluators.Context
  {
    Evaluators.Context(
      artifact: artifact, outputSHA256: sha256, recipeFile: recipe.file, experimentFolder: exp.folder, workspace: workspace,
      inputs: Dictionary(uniqueKeysWithValues: inputs.map { ($0.name, $0.path) }))
  }

  /// Runs the evaluators on a reused output and records the results as a new version of its
  /// manifest (evaluator metrics replaced, everything else kept).
  func reevaluate(_ recipe: Recipe, exp: Experiment, outputSHA256: String, artifact: String, inputs: [OpenedInput]) throws {
    let git = try workspace.git()
    guard let data = try git.read(path: "runs/\(outputSHA256)/manifest.json") else { return }
    var record = try RunRecord.decode(data)
    let (evaluations, metrics) = Evaluators.run(
      Evaluators.declared(experiment: exp, recipe: recipe),
      context: evaluationContext(recipe, exp: exp, artifact: artifact, sha256: outputSHA256, inputs: inputs), quiet: options.quiet
    )
    record.evaluations = evaluations
    record.metrics = record.metrics.filter { !$0.scope.hasPrefix("evaluator:") } + metrics
    let commit = try git.commit(
      files: try record.gitFiles(), message: record.commitMessage + " (evaluated)", time: record.commitTime)
    let index = try workspace.index()
    let shapes = try index.tensors(artifact: outputSHA256).reduce(into: [String: (dtype: String, shape: [Int])]()) { d, t in
      if let dt = t.dtype, let sh = t.shape { d[t.key] = (dt, sh) }
    }
    try index.record(record, commitID: commit, tensorShapes: shapes)
  }

  // MARK: Inputs

  /// Opens and hashes a recipe's inputs. `locate`, when given, supplies the path of each
  /// input (reproduce finds inputs by hash); otherwise paths come from the recipe.
  func openInputs(
    _ recipe: Recipe, experiment: Experiment?, cache: HashCache, locate: ((RecipeInput) throws -> String)? = nil
  ) throws -> [OpenedInput] {
    let folder = (recipe.file as NSString).deletingLastPathComponent
    var out: [OpenedInput] = []
    for input in recipe.inputs {
      var path: String
      let written: String
      switch input.source {
      case .file(let p):
        written = p
        path = p.hasPrefix("/") ? p : (folder + "/" + p as NSString).standardizingPath
      case .recipe(let name):
        written = "recipe:\(name)"
        guard let experiment, let dep = experiment.recipes.first(where: { $0.name == name }) else {
          path = ""
          break
        }
        path = artifactPath(experiment: experiment.name, recipe: dep)
        guard locate != nil || FileManager.default.fileExists(atPath: path) else {
          throw MixLabError.message(
            "\(recipe.file):\(input.line): input `\(input.name)` is the output of recipe `\(name)`, which has not been built; run the experiment folder to build both"
          )
        }
      case .synth(let s):
        path = locate == nil ? try materialize(s) : ""
        written = Runner.synthLabel(s)
      }
      if let locate { path = try locate(input) }
      let ckpt: Checkpoint
      do {
        ckpt = try Checkpoint(path: path)
      } catch {
        throw MixLabError.message("\(recipe.file):\(input.line): input `\(input.name)`: \(error.localizedDescription)")
      }
      var shardHashes: [(String, String)] = []
      var dataHashes: [(String, String)] = []
      var nonFinite: [NonFinite] = []
      var hashed = true
      for f in ckpt.shards {
        // A dry run reads headers only: hashes come from the cache or not at all.
        let h: FileHashes?
        do {
          h = options.dryRun ? try cache.cachedHashes(of: f) : try cache.hashes(of: f, verify: options.verify)
        } catch {
          throw MixLabError.message("\(recipe.file):\(input.line): input `\(input.name)`: \(error.localizedDescription)")
        }
        guard let h else {
          hashed = false
          continue
        }
        if !h.fromCache { hashedBytes += f.file.size }
        shardHashes.append(((f.path as NSString).lastPathComponent, h.sha256))
        dataHashes.append(((f.path as NSString).lastPathComponent, h.tensorDataSHA256))
        nonFinite += h.nonFinite
      }
      let sha = !hashed ? "" : ckpt.isSharded ? ShardDigest.combine(shardHashes) : shardHashes[0].1
      let dataSHA = !hashed ? "" : ckpt.isSharded ? ShardDigest.combine(dataHashes) : dataHashes[0].1
      if hashed, let pin = input.sha256, !sha.hasPrefix(pin) {
        throw MixLabError.message(
          "\(recipe.file):\(input.line): input `\(input.name)` changed: the recipe pins sha256 \(pin) but \(path) now has \(sha). Restore the original file or update the pin."
        )
      }
      let arch = Detection.architecture(of: ckpt.entries.map { ($0.info.name, $0.info.shape) })
      out.append(
        OpenedInput(
          name: input.name, pathAsWritten: written, path: path, checkpoint: ckpt, sha256: sha, tensorDataSHA256: dataSHA,
          nonFinite: nonFinite, architecture: arch, hashed: hashed))
    }
    return out
  }

  static func synthLabel(_ s: SynthInput) -> String {
    "synth:\(s.arch)/seed=\(s.seed)/index=\(s.index)/scale=\(s.scale)/\(s.dtype)"
  }

  /// Writes a declared synthetic input once into `.mixlab/synth/` and returns its path.
  func materialize(_ s: SynthInput) throws -> String {
    let synth = Synthesizer(
      architecture: Architecture(rawValue: s.arch)!, count: max(2, s.index + 1), seed: s.seed, scale: s.scale,
      dtype: DType(userSpelling: s.dtype)!)
    let folder = workspace.synthDir + "/\(s.arch)-seed\(s.seed)-scale\(s.scale)-\(s.dtype)"
    let path = synth.path(of: s.index, in: folder)
    if FileManager.default.fileExists(atPath: path) { return path }
    let lock = try FileLock(path: folder + ".lock")
    defer { withExtendedLifetime(lock) {} }
    if FileManager.default.fileExists(atPath: path) { return path }
    _ = try synth.write(model: s.index, to: folder)
    return path
  }

  /// Puts the hashes computed while writing into the hash cache, so reuse checks and recipes
  /// that read this output do not hash it again.
  static func rememberHashes(of outcome: MergeOutcome, at artifact: String, cache: HashCache) throws {
    let ckpt = try Checkpoint(path: artifact)
    let nonFinite = Dictionary(uniqueKeysWithValues: outcome.nonFinite.map { ($0.key, $0) })
    for shard in ckpt.shards {
      let name = (shard.path as NSString).lastPathComponent
      guard let r = outcome.files.first(where: { ($0.path as NSString).lastPathComponent == name }) else { continue }
      let nf = shard.tensors.compactMap { nonFinite[$0.name] }
      try cache.remember(
        shard,
        hashes: FileHashes(
          sha256: r.sha256, tensorDataSHA256: r.tensorDataSHA256, tensorSHA256: r.tensorSHA256, nonFinite: nf, fromCache: false))
    }
  }

  /// Plans, naming the recipe file in errors.
  static func plan(_ spec: MergeSpec, inputs: [Checkpoint], nonFinite: [Int: [String: NonFinite]], file: String) throws
    -> MergePlan
  {
    do {
      return try Planner.plan(spec, inputs: inputs, nonFinite: nonFinite)
    } catch {
      throw MixLabError.message("\(file): \(error.errorDescription ?? "\(error)")")
    }
  }

  /// SHA-256 of an artifact (file or sharded folder), through the hash cache.
  static func hashOutput(_ path: String, cache: HashCache, verify: Bool) throws -> String {
    let ckpt = try Checkpoint(path: path)
    var parts: [(String, String)] = []
    for f in ckpt.shards {
      parts.append(((f.path as NSString).lastPathComponent, try cache.hashes(of: f, verify: verify).sha256))
    }
    return ckpt.isSharded ? ShardDigest.combine(parts) : parts[0].1
  }
}
