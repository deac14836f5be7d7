import Foundation
import GRDB
import SafeTensors

/// The SQLite index of runs, artifacts, tensors, metrics and file hashes
/// (`.mixlab/index.sqlite`).
///
/// Everything except the hash cache can be rebuilt from the provenance repository
/// (`rebuild(from:)`), so the index is a fast, queryable copy, never the record of truth.
/// Several processes may write at once: the database is in WAL mode, writers wait up to
/// `busyTimeout` for each other, and every write is one short immediate transaction.
/// The schema is documented in docs/provenance.md.
public struct IndexDB: Sendable {
  /// The connection (pool) all access goes through.
  public let writer: any DatabaseWriter
  /// How long a writer waits for another process's transaction before failing.
  public static let busyTimeout: TimeInterval = 10

  /// Opens (creating if needed) the index at `path` as a WAL-mode `DatabasePool` and brings
  /// its schema up to date.
  ///
  /// - Parameter path: the database file, e.g. `.mixlab/index.sqlite`; missing parent
  ///   folders are created.
  /// - Throws: `ProvenanceError.database` when the file cannot be opened or migrated.
  public init(path: String) throws {
    var configuration = Configuration()
    configuration.busyMode = .timeout(IndexDB.busyTimeout)
    configuration.foreignKeysEnabled = true
    configuration.label = "mixlab.index"
    let pool: DatabasePool
    do {
      let parent = (path as NSString).deletingLastPathComponent
      if !parent.isEmpty { try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) }
      pool = try DatabasePool(path: path, configuration: configuration)
    } catch {
      throw ProvenanceError.database(path: path, operation: "opening the index", reason: IndexDB.reason(error))
    }
    try self.init(writer: pool)
  }

  /// Uses `writer` (a pool, or an in-memory queue in tests) and brings its schema up to date.
  ///
  /// - Throws: `ProvenanceError.database` when a migration fails.
  public init(writer: any DatabaseWriter) throws {
    self.writer = writer
    do {
      try IndexDB.migrator.migrate(writer)
    } catch {
      // Two processes opening a new index can both try migration v1; the loser fails on
      // "table already exists". That is success if the schema is now complete.
      let complete = (try? writer.read { try IndexDB.migrator.hasCompletedMigrations($0) }) ?? false
      if !complete {
        throw ProvenanceError.database(path: writer.path, operation: "migrating the schema", reason: IndexDB.reason(error))
      }
    }
  }

  /// The schema, one registered migration per version.
  public static var migrator: DatabaseMigrator {
    var migrator = DatabaseMigrator()
    migrator.registerMigration("v1") { db in
      try db.create(table: "artifacts") { t in
        t.primaryKey("sha256", .text)
        t.column("path", .text).notNull()
        t.column("size", .integer).notNull()
        t.column("autov2", .text).notNull()
        t.column("tensor_data_sha256", .text).notNull()
        t.column("architecture", .text).notNull()
        t.column("tensor_count", .integer).notNull()
        t.column("layer_counts", .text).notNull()  // JSON object
        t.column("components", .text).notNull()  // JSON object
      }
      try db.create(table: "tensors") { t in
        t.column("artifact_sha256", .text).notNull().references("artifacts", onDelete: .cascade)
        t.column("key", .text).notNull()
        t.column("dtype", .text)
        t.column("shape", .text)  // JSON array
        t.column("sha256", .text).notNull()
        t.primaryKey(["artifact_sha256", "key"])
      }
      try db.create(table: "runs") { t in
        t.primaryKey("run_id", .text)
        t.column("experiment", .text).notNull()
        t.column("recipe_name", .text).notNull()
        t.column("recipe_path", .text).notNull()
        t.column("recipe_hash", .text).notNull()
        t.column("output_sha256", .text).notNull().references("artifacts")
        t.column("commit_id", .text).notNull()
        t.column("started_at", .text).notNull()
        t.column("wall_seconds", .double).notNull()
        t.column("threads", .integer).notNull()
        t.column("reused", .boolean).notNull()
        t.column("status", .text).notNull()
      }
      try db.create(index: "runs_experiment", on: "runs", columns: ["experiment", "started_at"])
      try db.create(index: "runs_recipe_hash", on: "runs", columns: ["recipe_hash"])
      try db.create(index: "runs_output", on: "runs", columns: ["output_sha256"])
      try db.create(index: "runs_commit", on: "runs", columns: ["commit_id"])
      try db.create(table: "run_inputs") { t in
        t.column("run_id", .text).notNull().references("runs", onDelete: .cascade)
        t.column("name", .text).notNull()
        t.column("path", .text).notNull()
        t.column("sha256", .text).notNull()
        t.column("tensor_data_sha256", .text).notNull()
        t.primaryKey(["run_id", "name"])
      }
      try db.create(index: "run_inputs_sha256", on: "run_inputs", columns: ["sha256"])
      try db.create(table: "metrics") { t in
        t.column("run_id", .text).notNull().references("runs", onDelete: .cascade)
        t.column("name", .text).notNull()
        t.column("scope", .text).notNull()
        t.column("value", .double)  // NULL for NaN
        t.primaryKey(["run_id", "name", "scope"])
      }
      try db.create(table: "hash_cache") { t in
        t.primaryKey("path", .text)
        t.column("device", .integer).notNull()
        t.column("inode", .integer).notNull()
        t.column("size", .integer).notNull()
        t.column("mtime_ns", .integer).notNull()
        t.column("ctime_ns", .integer).notNull()
        t.column("sha256", .text).notNull()
        t.column("tensor_data_sha256", .text).notNull()
        t.column("tensor_sha256", .text)  // JSON object, NULL when not computed
        t.column("nonfinite", .text)  // JSON list of {key, nan, inf}, NULL when not scanned
      }
    }
    return migrator
  }

  // MARK: Recording runs

  /// Indexes `run` in one transaction: its output artifact and tensors, the run, its inputs
  /// and metrics. Recording the same `run_id` again replaces the earlier rows.
  ///
  /// - Parameters:
  ///   - run: the manifest.
  ///   - commitID: the provenance commit holding the manifest.
  ///   - tensorShapes: dtype and shape of each output tensor (the manifest lacks them);
  ///     tensors missing here get NULL dtype and shape.
  /// - Throws: `ProvenanceError.database`.
  public func record(_ run: RunRecord, commitID: String, tensorShapes: [String: (dtype: String, shape: [Int])]) throws {
    let rows = RunRows(run, commitID: commitID, shapes: tensorShapes)
    try write("recording run \(run.runID)") { db in
      try rows.insert(db)
      FaultInjection.reach(.sqlite)  // test hook: rows inserted, transaction not committed
    }
  }

  /// Replaces the index (not the hash cache) with the runs recorded on the `runs` branch.
  ///
  /// Reads `runs/<folder>/manifest.json` for every folder at one tip. A run's `commit_id` is
  /// the newest commit that changed its folder. Manifests do not carry tensor shapes: they
  /// come from `tensorShapes` when given, else from the rows being replaced when the same
  /// artifact and tensor hash were indexed before, else stay NULL. Everything is replaced in
  /// one transaction, so readers see the old index or the new one, never a mix.
  ///
  /// - Parameters:
  ///   - git: the provenance repository.
  ///   - tensorShapes: optional source of shapes per record (e.g. reading the output file
  ///     if it is still in the workspace); return nil when unknown.
  /// - Returns: the number of runs indexed.
  /// - Throws: `ProvenanceError.invalidManifest` naming a bad manifest, `.git`, `.database`.
  @discardableResult
  public func rebuild(
    from git: GitStore, tensorShapes: ((RunRecord) throws -> [String: (dtype: String, shape: [Int])]?)? = nil
  ) throws -> Int {
    guard let tip = try git.tip(branch: GitStore.defaultBranch) else {
      try write("clearing the index") { db in try IndexDB.clearRuns(db) }
      return 0
    }
    let commits = try git.lastCommits(touching: "runs", at: tip)
    var batches: [RunRows] = []
    for folder in try git.list(directory: "runs", at: tip) {
      let file = "runs/\(folder)/manifest.json"
      guard let data = try git.read(path: file, at: tip) else { continue }
      let run = try RunRecord.decode(data, source: "\(git.path):\(file)")
      let shapes = try tensorShapes?(run) ?? [:]
      batches.append(RunRows(run, commitID: commits[folder] ?? tip, shapes: shapes))
    }
    try write("rebuilding the index from \(git.path)") { db in
      var known: [String: (sha256: String, dtype: String, shape: [Int])] = [:]
      for row in try TensorRow.filter(TensorRow.CodingKeys.dtype != nil && TensorRow.CodingKeys.shape != nil).fetchAll(db) {
        known[row.artifactSHA256 + "\u{0}" + row.key] = (row.sha256, row.dtype!, row.shape!)
      }
      try IndexDB.clearRuns(db)
      for var batch in batches {
        for i in batch.tensors.indices where batch.tensors[i].dtype == nil {
          let t = batch.tensors[i]
          if let old = known[t.artifactSHA256 + "\u{0}" + t.key], old.sha256 == t.sha256 {
            batch.tensors[i].dtype = old.dtype
            batch.tensors[i].shape = old.shape
          }
        }
        try batch.insert(db)
      }
    }
    return batches.count
  }

  private static func clearRuns(_ db: Database) throws {
    for table in ["metrics", "run_inputs", "runs", "tensors", "artifacts"] {
      try db.execute(sql: "DELETE FROM \(table)")
    }
  }

  // MARK: Queries

  /// Runs, newest first (by `started_at`, then `run_id`).
  ///
  /// - Parameter experiment: only this experiment's runs; all when nil.
  public func runs(experiment: String? = nil) throws -> [RunRow] {
    try read("listing runs") { db in
      var request = RunRow.order(RunRow.CodingKeys.startedAt.desc, RunRow.CodingKeys.runID)
      if let experiment { request = request.filter(RunRow.CodingKeys.experiment == experiment) }
      return try request.fetchAll(db)
    }
  }

  /// The run with id `runID`, or nil.
  public func run(id runID: String) throws -> RunRow? {
    try read("reading run \(runID)") { db in try RunRow.fetchOne(db, key: runID) }
  }

  /// Runs whose run id, output SHA-256 or commit id starts with `prefix`, newest first.
  ///
  /// - Parameter prefix: hex digits, either case.
  /// - Throws: `ProvenanceError.invalidPrefix` when `prefix` is not hex.
  public func findRuns(prefix: String) throws -> [RunRow] {
    // Hex only (so no GLOB metacharacters); up to a full SHA-256 (commit ids are 40 digits).
    let lower = prefix.lowercased()
    guard !lower.isEmpty, lower.count <= 64, lower.allSatisfy(\.isHexDigit) else {
      throw ProvenanceError.invalidPrefix(prefix: prefix)
    }
    let pattern = lower + "*"
    return try read("finding runs by prefix \(prefix)") { db in
      try RunRow.fetchAll(
        db,
        sql: """
          SELECT * FROM runs WHERE run_id GLOB ? OR output_sha256 GLOB ? OR commit_id GLOB ?
          ORDER BY started_at DESC, run_id
          """, arguments: [pattern, pattern, pattern])
    }
  }

  /// The inputs of a run, in name order.
  public func inputs(runID: String) throws -> [RunInputRow] {
    try read("reading inputs of run \(runID)") { db in
      try RunInputRow.filter(RunInputRow.CodingKeys.runID == runID).order(RunInputRow.CodingKeys.name).fetchAll(db)
    }
  }

  /// The artifact with this whole-file SHA-256, or nil.
  public func artifact(sha256: String) throws -> ArtifactRow? {
    try read("reading artifact \(sha256)") { db in try ArtifactRow.fetchOne(db, key: sha256.lowercased()) }
  }

  /// The tensors of an artifact, in key order.
  public func tensors(artifact sha256: String) throws -> [TensorRow] {
    try read("reading tensors of \(sha256)") { db in
      try TensorRow.filter(TensorRow.CodingKeys.artifactSHA256 == sha256.lowercased())
        .order(TensorRow.CodingKeys.key).fetchAll(db)
    }
  }

  /// Tensor name → SHA-256 for an artifact; empty when unknown.
  public func tensorHashes(artifact sha256: String) throws -> [String: String] {
    Dictionary(uniqueKeysWithValues: try tensors(artifact: sha256).map { ($0.key, $0.sha256) })
  }

  /// Every path a file with this SHA-256 was known under, to find an input again: first the
  /// artifact's own path, then paths runs used it from, most recent run first; no duplicates.
  public func pathsKnown(forSHA256 sha256: String) throws -> [String] {
    let hash = sha256.lowercased()
    return try read("looking up paths of \(sha256)") { db in
      let own = try String.fetchAll(db, sql: "SELECT path FROM artifacts WHERE sha256 = ?", arguments: [hash])
      let used = try String.fetchAll(
        db,
        sql: """
          SELECT i.path FROM run_inputs i JOIN runs r ON r.run_id = i.run_id
          WHERE i.sha256 = ? ORDER BY r.started_at DESC, r.run_id
          """, arguments: [hash])
      var seen = Set<String>()
      return (own + used).filter { seen.insert($0).inserted }
    }
  }

  /// The newest run of this recipe on exactly these inputs, for reusing an up-to-date output.
  ///
  /// Inputs are compared as a multiset of whole-file SHA-256s (order does not matter, a model
  /// used twice counts twice). The caller still checks that the output file exists and has
  /// the recorded hash.
  ///
  /// - Parameters:
  ///   - recipeHash: the canonical recipe's hash.
  ///   - inputHashes: the SHA-256 of every input.
  public func latestRun(recipeHash: String, inputHashes: [String]) throws -> RunRow? {
    let wanted = inputHashes.map { $0.lowercased() }.sorted()
    return try read("looking up runs of recipe \(recipeHash)") { db in
      let candidates = try RunRow.filter(RunRow.CodingKeys.recipeHash == recipeHash)
        .order(RunRow.CodingKeys.startedAt.desc, RunRow.CodingKeys.runID).fetchAll(db)
      guard !candidates.isEmpty else { return nil }
      let rows = try Row.fetchAll(
        db,
        sql: """
          SELECT i.run_id, i.sha256 FROM run_inputs i JOIN runs r ON r.run_id = i.run_id WHERE r.recipe_hash = ?
          """, arguments: [recipeHash])
      var inputs: [String: [String]] = [:]
      for row in rows { inputs[row["run_id"], default: []].append(row["sha256"]) }
      return candidates.first { (inputs[$0.runID] ?? []).sorted() == wanted }
    }
  }

  // MARK: Metrics

  /// Adds or replaces metrics of an indexed run (e.g. evaluator results that arrive later).
  ///
  /// These rows live only in the index until the run's manifest is committed again with them.
  ///
  /// - Throws: `ProvenanceError.database`, also when `runID` is not indexed.
  public func addMetrics(_ metrics: [MetricRecord], runID: String) throws {
    try write("adding metrics to run \(runID)") { db in
      for m in metrics {
        try MetricRow(runID: runID, name: m.name, scope: m.scope, value: m.value.isNaN ? nil : m.value)
          .insert(db, onConflict: .replace)
      }
    }
  }

  /// Metrics of one run, by name then scope.
  public func metrics(runID: String) throws -> [MetricRow] {
    try read("reading metrics of run \(runID)") { db in
      try MetricRow.filter(MetricRow.CodingKeys.runID == runID)
        .order(MetricRow.CodingKeys.name, MetricRow.CodingKeys.scope).fetchAll(db)
    }
  }

  /// Metrics of every run (of one experiment when given), newest run first, then name and
  /// scope: the rows of a runs × metrics table.
  public func metrics(experiment: String?) throws -> [MetricRow] {
    try read("reading metrics") { db in
      try MetricRow.fetchAll(
        db,
        sql: """
          SELECT m.* FROM metrics m JOIN runs r ON r.run_id = m.run_id
          WHERE ?1 IS NULL OR r.experiment = ?1
          ORDER BY r.started_at DESC, r.run_id, m.name, m.scope
          """, arguments: [experiment])
    }
  }

  // MARK: Hash cache

  /// The cached hashes of `path` if the file still has exactly this identity.
  ///
  /// - Returns: nil when the path is unknown or any of device, inode, size, mtime or ctime
  ///   differs from what was stored.
  public func lookup(path: String, device: UInt64, inode: UInt64, size: Int, mtimeNs: Int64, ctimeNs: Int64) throws
    -> CachedHash?
  {
    try read("reading the hash cache") { db in
      guard let entry = try CachedHash.fetchOne(db, key: path) else { return nil }
      let same =
        entry.device == Int64(bitPattern: device) && entry.inode == Int64(bitPattern: inode) && entry.size == size
        && entry.mtimeNs == mtimeNs && entry.ctimeNs == ctimeNs
      return same ? entry : nil
    }
  }

  /// Stores `entry`, replacing any earlier entry for its path.
  public func store(_ entry: CachedHash) throws {
    try write("updating the hash cache") { db in try entry.insert(db, onConflict: .replace) }
  }

  // MARK: Plumbing

  private func read<T>(_ operation: String, _ body: (Database) throws -> T) throws -> T {
    do {
      return try writer.read(body)
    } catch let error as ProvenanceError {
      throw error
    } catch {
      throw ProvenanceError.database(path: writer.path, operation: operation, reason: IndexDB.reason(error))
    }
  }

  private func write<T>(_ operation: String, _ body: (Database) throws -> T) throws -> T {
    do {
      return try writer.write(body)
    } catch let error as ProvenanceError {
      throw error
    } catch {
      throw ProvenanceError.database(path: writer.path, operation: operation, reason: IndexDB.reason(error))
    }
  }

  static func reason(_ error: any Error) -> String {
    if let error = error as? DatabaseError {
      return error.message.map { "\($0) (SQLite code \(error.resultCode.rawValue))" } ?? "\(error.resultCode)"
    }
    return "\(error)"
  }
}

/// The rows one run contributes, computed outside the transaction so it stays short.
struct RunRows {
  var artifact: ArtifactRow
  var tensors: [TensorRow]
  var run: RunRow
  var inputs: [RunInputRow]
  var metrics: [MetricRow]

  init(_ record: RunRecord, commitID: String, shapes: [String: (dtype: String, shape: [Int])]) {
    let out = record.output
    let sha = out.sha256.lowercased()
    artifact = ArtifactRow(
      sha256: sha, path: out.path, size: out.size, autov2: out.autov2, tensorDataSHA256: out.tensorDataSHA256,
      architecture: out.architecture, tensorCount: out.tensorCount, layerCounts: out.layerCounts,
      components: out.components)
    tensors = out.tensorSHA256.keys.sorted().map { key in
      TensorRow(
        artifactSHA256: sha, key: key, dtype: shapes[key]?.dtype, shape: shapes[key]?.shape,
        sha256: out.tensorSHA256[key]!)
    }
    run = RunRow(
      runID: record.runID, experiment: record.experiment, recipeName: record.recipeName,
      recipePath: record.recipePath, recipeHash: record.recipeHash, outputSHA256: sha, commitID: commitID,
      startedAt: record.execution.startedAt, wallSeconds: record.execution.wallSeconds,
      threads: record.execution.threads, reused: record.execution.reused,
      status: record.execution.reused ? .reused : .completed)
    inputs = record.inputs.map {
      RunInputRow(
        runID: record.runID, name: $0.name, path: $0.path, sha256: $0.sha256.lowercased(),
        tensorDataSHA256: $0.tensorDataSHA256)
    }
    metrics = record.metrics.map {
      MetricRow(runID: record.runID, name: $0.name, scope: $0.scope, value: $0.value.isNaN ? nil : $0.value)
    }
  }

  /// Inserts the rows, replacing an earlier recording of the same run id and artifact.
  func insert(_ db: Database) throws {
    _ = try RunRow.deleteOne(db, key: run.runID)  // cascades to run_inputs and metrics
    try artifact.save(db)
    try TensorRow.filter(TensorRow.CodingKeys.artifactSHA256 == artifact.sha256).deleteAll(db)
    for tensor in tensors { try tensor.insert(db) }
    try run.insert(db)
    for input in inputs { try input.insert(db) }
    // A metric reported twice for one scope keeps the last value.
    for metric in metrics { try metric.insert(db, onConflict: .replace) }
  }
}
