import Foundation
import GRDB
import Testing

@testable import Provenance

/// Every row of every rebuildable table, in key order.
struct IndexSnapshot: Equatable {
  var artifacts: [ArtifactRow]
  var tensors: [TensorRow]
  var runs: [RunRow]
  var inputs: [RunInputRow]
  var metrics: [MetricRow]

  init(_ index: IndexDB) throws {
    (artifacts, tensors, runs, inputs, metrics) = try index.writer.read { db in
      (
        try ArtifactRow.order(Column("sha256")).fetchAll(db),
        try TensorRow.order(Column("artifact_sha256"), Column("key")).fetchAll(db),
        try RunRow.order(Column("run_id")).fetchAll(db),
        try RunInputRow.order(Column("run_id"), Column("name")).fetchAll(db),
        try MetricRow.order(Column("run_id"), Column("name"), Column("scope")).fetchAll(db)
      )
    }
  }
}

@Suite("IndexDB")
struct IndexDBTests {
  static func commitID(_ i: Int) -> String { String(Fixture.hex("commit \(i)").prefix(40)) }

  @Test("opening creates the v1 schema in WAL mode; reopening migrates nothing")
  func schema() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file(".mixlab/index.sqlite")
    let index = try IndexDB(path: path)
    try index.writer.read { db in
      #expect(try IndexDB.migrator.appliedMigrations(db) == ["v1"])
      for table in ["artifacts", "tensors", "runs", "run_inputs", "metrics", "hash_cache"] {
        #expect(try db.tableExists(table), "missing table \(table)")
      }
      #expect(try String.fetchOne(db, sql: "PRAGMA journal_mode") == "wal")
      #expect(try Bool.fetchOne(db, sql: "PRAGMA foreign_keys") == true)
      let runColumns = try db.columns(in: "runs").map(\.name)
      #expect(
        runColumns == [
          "run_id", "experiment", "recipe_name", "recipe_path", "recipe_hash", "output_sha256", "commit_id",
          "started_at", "wall_seconds", "threads", "reused", "status",
        ])
      #expect(try db.primaryKey("metrics").columns == ["run_id", "name", "scope"])
      #expect(try db.primaryKey("tensors").columns == ["artifact_sha256", "key"])
      #expect(try db.primaryKey("run_inputs").columns == ["run_id", "name"])
    }
    let again = try IndexDB(path: path)
    #expect(try again.writer.read { try IndexDB.migrator.appliedMigrations($0) } == ["v1"])
  }

  @Test("a recorded run is found by run id, output hash and commit prefixes")
  func recordAndFind() throws {
    let dir = try TemporaryDirectory()
    let index = try IndexDB(path: dir.file("index.sqlite"))
    let records = (0..<5).map { Fixture.record($0) }
    for (i, r) in records.enumerated() {
      try index.record(r, commitID: Self.commitID(i), tensorShapes: Fixture.shapes)
    }
    #expect(try index.runs().map(\.runID) == records.reversed().map(\.runID))  // newest first
    let r2 = records[2]
    let row = try #require(try index.run(id: r2.runID))
    #expect(row.outputSHA256 == r2.output.sha256)
    #expect(row.startedAt == r2.execution.startedAt)
    #expect(row.recipePath == "experiments/soup/r2.yaml")
    #expect(row.status == .completed && !row.reused && row.threads == 2 && row.wallSeconds == 14.5)
    #expect(try index.findRuns(prefix: String(r2.runID.prefix(8))).map(\.runID) == [r2.runID])
    #expect(try index.findRuns(prefix: r2.output.autov2.uppercased()).map(\.runID) == [r2.runID])
    #expect(try index.findRuns(prefix: String(Self.commitID(2).prefix(9))).map(\.runID) == [r2.runID])
    #expect(try index.findRuns(prefix: "fffffffffff").isEmpty)
    #expect(throws: ProvenanceError.invalidPrefix(prefix: "%")) { try index.findRuns(prefix: "%") }

    let artifact = try #require(try index.artifact(sha256: r2.output.sha256))
    #expect(artifact.autov2 == r2.output.autov2)
    #expect(artifact.layerCounts == ["unet": 25, "text_encoder": 12])
    #expect(artifact.components == ["unet": 2])
    #expect(try index.tensorHashes(artifact: r2.output.sha256) == r2.output.tensorSHA256)
    let tensors = try index.tensors(artifact: r2.output.sha256)
    #expect(tensors.map(\.key) == ["model.diffusion_model.out.2.bias", "model.diffusion_model.out.2.weight"])
    #expect(tensors[1].dtype == "F16" && tensors[1].shape == [4, 320, 3, 3])
    #expect(try index.inputs(runID: r2.runID).map(\.sha256) == r2.inputs.map(\.sha256))

    // JSON columns hold sorted-key JSON a person can query with sqlite3.
    let json = try index.writer.read { db in
      try String.fetchOne(db, sql: "SELECT layer_counts FROM artifacts WHERE sha256 = ?", arguments: [r2.output.sha256])
    }
    #expect(json == "{\"text_encoder\":12,\"unet\":25}")
  }

  @Test("runs can be filtered by experiment")
  func experiments() throws {
    let dir = try TemporaryDirectory()
    let index = try IndexDB(path: dir.file("index.sqlite"))
    for i in 0..<3 { try index.record(Fixture.record(i, experiment: "soup"), commitID: Self.commitID(i), tensorShapes: [:]) }
    for i in 0..<2 { try index.record(Fixture.record(i, experiment: "ties"), commitID: Self.commitID(i), tensorShapes: [:]) }
    #expect(try index.runs(experiment: "ties").count == 2)
    #expect(try index.runs(experiment: "soup").count == 3)
    #expect(try index.runs(experiment: "none").isEmpty)
    #expect(try index.runs().count == 5)
  }

  @Test("recording the same run again replaces its rows")
  func rerecord() throws {
    let dir = try TemporaryDirectory()
    let index = try IndexDB(path: dir.file("index.sqlite"))
    var record = Fixture.record(1)
    try index.record(record, commitID: Self.commitID(1), tensorShapes: Fixture.shapes)
    record.metrics = [MetricRecord(name: "only", scope: "overall", value: 1)]
    record.inputs.removeLast()
    try index.record(record, commitID: Self.commitID(2), tensorShapes: Fixture.shapes)
    let snapshot = try IndexSnapshot(index)
    #expect(snapshot.runs.count == 1 && snapshot.runs[0].commitID == Self.commitID(2))
    #expect(snapshot.metrics.map(\.name) == ["only"])
    #expect(snapshot.inputs.count == 1)
    #expect(snapshot.artifacts.count == 1 && snapshot.tensors.count == 2)
  }

  @Test("latestRun finds the newest run of a recipe on the same inputs, in any order")
  func reuseLookup() throws {
    let dir = try TemporaryDirectory()
    let index = try IndexDB(path: dir.file("index.sqlite"))
    let recipe = Fixture.hex("shared recipe")
    let (a, b, c) = (Fixture.hex("A"), Fixture.hex("B"), Fixture.hex("C"))
    let old = Fixture.record(1, recipeHash: recipe, inputs: [a, b], minutes: 1)
    let new = Fixture.record(2, recipeHash: recipe, inputs: [a, b], minutes: 5)
    let other = Fixture.record(3, recipeHash: recipe, inputs: [a, c], minutes: 9)
    let twice = Fixture.record(4, recipeHash: recipe, inputs: [a, a, b], minutes: 10)
    for (i, r) in [old, new, other, twice].enumerated() {
      try index.record(r, commitID: Self.commitID(i), tensorShapes: [:])
    }
    #expect(try index.latestRun(recipeHash: recipe, inputHashes: [b, a])?.runID == new.runID)
    #expect(try index.latestRun(recipeHash: recipe, inputHashes: [c, a])?.runID == other.runID)
    #expect(try index.latestRun(recipeHash: recipe, inputHashes: [a, b, a])?.runID == twice.runID)
    #expect(try index.latestRun(recipeHash: recipe, inputHashes: [a, b, b]) == nil)
    #expect(try index.latestRun(recipeHash: recipe, inputHashes: [a]) == nil)
    #expect(try index.latestRun(recipeHash: Fixture.hex("other recipe"), inputHashes: [a, b]) == nil)
  }

  @Test("pathsKnown lists the artifact path, then input paths by most recent use")
  func paths() throws {
    let dir = try TemporaryDirectory()
    let index = try IndexDB(path: dir.file("index.sqlite"))
    let first = Fixture.record(1, minutes: 1)
    var second = Fixture.record(2, minutes: 2)
    // The second run uses the first run's output as an input, from another path.
    second.inputs[1] = InputRecord(
      name: "m1", path: "../shared/r1.safetensors", sha256: first.output.sha256,
      tensorDataSHA256: first.output.tensorDataSHA256, size: 1, architecture: "sd1", tensorCount: 2)
    var third = Fixture.record(3, minutes: 3)
    third.inputs[1] = second.inputs[1]
    third.inputs[0].path = "models/base-copy.safetensors"
    for (i, r) in [first, second, third].enumerated() { try index.record(r, commitID: Self.commitID(i), tensorShapes: [:]) }
    #expect(
      try index.pathsKnown(forSHA256: first.output.sha256) == ["artifacts/soup/r1.safetensors", "../shared/r1.safetensors"])
    #expect(
      try index.pathsKnown(forSHA256: Fixture.hex("base")) == ["models/base-copy.safetensors", "models/m0.safetensors"])
    #expect(try index.pathsKnown(forSHA256: Fixture.hex("nothing")).isEmpty)
  }

  @Test("metrics are stored with the run, can be added later, and NaN is kept as NULL")
  func metrics() throws {
    let dir = try TemporaryDirectory()
    let index = try IndexDB(path: dir.file("index.sqlite"))
    let soup = Fixture.record(1, experiment: "soup")
    let ties = Fixture.record(2, experiment: "ties")
    try index.record(soup, commitID: Self.commitID(1), tensorShapes: [:])
    try index.record(ties, commitID: Self.commitID(2), tensorShapes: [:])
    let rows = try index.metrics(runID: soup.runID)
    #expect(
      rows.map { "\($0.name)@\($0.scope)" } == [
        "cosine_to_base@block:IN04", "cosine_to_base@component:unet", "l2_to_base@overall",
      ])
    #expect(rows[2].value == 1.0 / 3)
    try index.addMetrics(
      [
        MetricRecord(name: "clip_score", scope: "overall", value: 0.31),
        MetricRecord(name: "l2_to_base", scope: "overall", value: .nan),
      ],
      runID: soup.runID)
    let after = try index.metrics(runID: soup.runID)
    #expect(after.count == 4)
    #expect(after.first { $0.name == "clip_score" }?.value == 0.31)
    #expect(after.first { $0.name == "l2_to_base" }?.value == nil)
    #expect(try index.metrics(experiment: "ties").map(\.runID) == Array(repeating: ties.runID, count: 3))
    #expect(try index.metrics(experiment: nil).count == 7)
    #expect(throws: ProvenanceError.self) {
      try index.addMetrics([MetricRecord(name: "x", scope: "overall", value: 1)], runID: "no-such-run")
    }
  }

  @Test("rebuilding from git gives the same rows, and survives losing the index")
  func rebuild() throws {
    let dir = try TemporaryDirectory()
    let git = try GitStore(path: dir.file("provenance.git"), create: true)
    let index = try IndexDB(path: dir.file("index.sqlite"))
    var records = (0..<6).map { Fixture.record($0, experiment: $0 % 2 == 0 ? "soup" : "ties") }
    records[5].execution.reused = true
    for r in records { try Fixture.store(r, git: git, index: index) }
    // Later commits outside a run's folder do not change which commit recorded it.
    try git.commit(files: ["README.md": Data("runs\n".utf8)], message: "readme", time: 0)
    let before = try IndexSnapshot(index)
    #expect(before.runs.count == 6 && before.runs.contains { $0.status == .reused })
    try index.store(
      CachedHash(
        path: "/kept", device: 1, inode: 2, size: 3, mtimeNs: 4, ctimeNs: 5, sha256: "s", tensorDataSHA256: "t",
        tensorSHA256: nil))

    #expect(try index.rebuild(from: git) == 6)
    #expect(try IndexSnapshot(index) == before)
    #expect(try index.lookup(path: "/kept", device: 1, inode: 2, size: 3, mtimeNs: 4, ctimeNs: 5) != nil)

    // A brand-new index has everything but the shapes, unless a shape source is given.
    let fresh = try IndexDB(path: dir.file("fresh.sqlite"))
    #expect(try fresh.rebuild(from: git) == 6)
    var withoutShapes = before
    for i in withoutShapes.tensors.indices {
      withoutShapes.tensors[i].dtype = nil
      withoutShapes.tensors[i].shape = nil
    }
    #expect(try IndexSnapshot(fresh) == withoutShapes)
    try fresh.rebuild(from: git) { _ in Fixture.shapes }
    #expect(try IndexSnapshot(fresh) == before)

    // An empty repository rebuilds to an empty index.
    let empty = try GitStore(path: dir.file("empty.git"), create: true)
    #expect(try fresh.rebuild(from: empty) == 0)
    #expect(try IndexSnapshot(fresh).runs.isEmpty)
  }

  @Test("a damaged manifest stops the rebuild with its path and leaves the index untouched")
  func rebuildRefusesBadManifest() throws {
    let dir = try TemporaryDirectory()
    let git = try GitStore(path: dir.file("provenance.git"), create: true)
    let index = try IndexDB(path: dir.file("index.sqlite"))
    try Fixture.store(Fixture.record(1), git: git, index: index)
    let before = try IndexSnapshot(index)
    try git.commit(files: ["runs/broken/manifest.json": Data("{}".utf8)], message: "broken", time: 0)
    #expect {
      try index.rebuild(from: git)
    } throws: { error in
      (error as? ProvenanceError)?.errorDescription?.contains("runs/broken/manifest.json") ?? false
    }
    #expect(try IndexSnapshot(index) == before)
  }

  @Test("writers on separate connections from several threads lose nothing")
  func concurrentWriters() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("index.sqlite")
    let failures = Failures()
    // Each writer opens its own pool on a brand-new file, so opening and migrating race too.
    DispatchQueue.concurrentPerform(iterations: 4) { writer in
      do {
        let index = try IndexDB(path: path)
        for i in 0..<10 {
          try index.record(
            Fixture.record(i, experiment: "w\(writer)"), commitID: Self.commitID(i), tensorShapes: Fixture.shapes)
        }
      } catch {
        failures.add("\(error)")
      }
    }
    #expect(failures.all.isEmpty, "\(failures.all)")
    let snapshot = try IndexSnapshot(try IndexDB(path: path))
    #expect(snapshot.runs.count == 40)
    #expect(snapshot.metrics.count == 120)
    #expect(snapshot.tensors.count == 80)
  }
}

/// Errors collected from several threads.
final class Failures: @unchecked Sendable {
  // Sendable: `items` is only touched with `lock` held.
  private let lock = NSLock()
  private var items: [String] = []

  func add(_ item: String) {
    lock.lock()
    items.append(item)
    lock.unlock()
  }

  var all: [String] {
    lock.lock()
    defer { lock.unlock() }
    return items
  }
}
