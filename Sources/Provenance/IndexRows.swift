import Foundation
import GRDB
import SafeTensors

// One Codable record type per table of the index. Property names are Swift's; column names
// (the CodingKeys) are the snake_case names of docs/provenance.md. Dictionaries and arrays
// are stored as JSON text with sorted keys (GRDB's encoding of nested Codable values).

/// A row of `artifacts`: one output file mixlab wrote.
public struct ArtifactRow: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "artifacts"
  public var sha256: String
  /// Relative to the workspace.
  public var path: String
  public var size: Int
  public var autov2: String
  public var tensorDataSHA256: String
  public var architecture: String
  public var tensorCount: Int
  public var layerCounts: [String: Int]
  public var components: [String: Int]

  public init(
    sha256: String, path: String, size: Int, autov2: String, tensorDataSHA256: String, architecture: String,
    tensorCount: Int, layerCounts: [String: Int], components: [String: Int]
  ) {
    self.sha256 = sha256
    self.path = path
    self.size = size
    self.autov2 = autov2
    self.tensorDataSHA256 = tensorDataSHA256
    self.architecture = architecture
    self.tensorCount = tensorCount
    self.layerCounts = layerCounts
    self.components = components
  }

  enum CodingKeys: String, CodingKey, ColumnExpression {
    case sha256, path, size, autov2, architecture, components
    case tensorDataSHA256 = "tensor_data_sha256"
    case tensorCount = "tensor_count"
    case layerCounts = "layer_counts"
  }
}

/// A row of `tensors`: one tensor of an artifact.
public struct TensorRow: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "tensors"
  public var artifactSHA256: String
  public var key: String
  /// Known when the run that recorded the artifact supplied it; nil after a rebuild from git
  /// when no shape source was available (the manifest does not carry shapes).
  public var dtype: String?
  public var shape: [Int]?
  public var sha256: String

  public init(artifactSHA256: String, key: String, dtype: String?, shape: [Int]?, sha256: String) {
    self.artifactSHA256 = artifactSHA256
    self.key = key
    self.dtype = dtype
    self.shape = shape
    self.sha256 = sha256
  }

  enum CodingKeys: String, CodingKey, ColumnExpression {
    case key, dtype, shape, sha256
    case artifactSHA256 = "artifact_sha256"
  }
}

/// What became of a run.
public enum RunStatus: String, Codable, Sendable {
  /// The output was computed.
  case completed
  /// The output was already up to date and reused.
  case reused
}

/// A row of `runs`.
public struct RunRow: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "runs"
  public var runID: String
  public var experiment: String
  public var recipeName: String
  public var recipePath: String
  public var recipeHash: String
  public var outputSHA256: String
  /// The provenance commit holding the run's manifest.
  public var commitID: String
  /// ISO 8601 UTC; sorts chronologically as text.
  public var startedAt: String
  public var wallSeconds: Double
  public var threads: Int
  public var reused: Bool
  public var status: RunStatus

  public init(
    runID: String, experiment: String, recipeName: String, recipePath: String, recipeHash: String,
    outputSHA256: String, commitID: String, startedAt: String, wallSeconds: Double, threads: Int, reused: Bool,
    status: RunStatus
  ) {
    self.runID = runID
    self.experiment = experiment
    self.recipeName = recipeName
    self.recipePath = recipePath
    self.recipeHash = recipeHash
    self.outputSHA256 = outputSHA256
    self.commitID = commitID
    self.startedAt = startedAt
    self.wallSeconds = wallSeconds
    self.threads = threads
    self.reused = reused
    self.status = status
  }

  enum CodingKeys: String, CodingKey, ColumnExpression {
    case experiment, threads, reused, status
    case runID = "run_id"
    case recipeName = "recipe_name"
    case recipePath = "recipe_path"
    case recipeHash = "recipe_hash"
    case outputSHA256 = "output_sha256"
    case commitID = "commit_id"
    case startedAt = "started_at"
    case wallSeconds = "wall_seconds"
  }
}

/// A row of `run_inputs`: one input of a run.
public struct RunInputRow: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "run_inputs"
  public var runID: String
  public var name: String
  /// As written in the recipe.
  public var path: String
  public var sha256: String
  public var tensorDataSHA256: String

  public init(runID: String, name: String, path: String, sha256: String, tensorDataSHA256: String) {
    self.runID = runID
    self.name = name
    self.path = path
    self.sha256 = sha256
    self.tensorDataSHA256 = tensorDataSHA256
  }

  enum CodingKeys: String, CodingKey, ColumnExpression {
    case name, path, sha256
    case runID = "run_id"
    case tensorDataSHA256 = "tensor_data_sha256"
  }
}

/// A row of `metrics`.
public struct MetricRow: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "metrics"
  public var runID: String
  public var name: String
  public var scope: String
  /// nil for NaN: SQLite stores NaN as NULL.
  public var value: Double?

  public init(runID: String, name: String, scope: String, value: Double?) {
    self.runID = runID
    self.name = name
    self.scope = scope
    self.value = value
  }

  enum CodingKeys: String, CodingKey, ColumnExpression {
    case name, scope, value
    case runID = "run_id"
  }
}

/// A row of `hash_cache`: the hashes of a file as it was when last read.
///
/// The entry is valid only while the file keeps the same device, inode, size, modification
/// and status-change times; any write, rename or `touch` changes one of them.
public struct CachedHash: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "hash_cache"
  /// Absolute path with symbolic links resolved.
  public var path: String
  /// Stored as the bit pattern of the `UInt64` (SQLite integers are signed).
  public var device: Int64
  public var inode: Int64
  public var size: Int
  public var mtimeNs: Int64
  public var ctimeNs: Int64
  public var sha256: String
  public var tensorDataSHA256: String
  /// Per-tensor hashes, when they were computed.
  public var tensorSHA256: [String: String]?
  /// Tensors holding NaN/Inf, from the same read; nil when not scanned.
  public var nonFinite: [NonFinite]?

  public init(
    path: String, device: UInt64, inode: UInt64, size: Int, mtimeNs: Int64, ctimeNs: Int64, sha256: String,
    tensorDataSHA256: String, tensorSHA256: [String: String]?, nonFinite: [NonFinite]? = nil
  ) {
    self.path = path
    self.device = Int64(bitPattern: device)
    self.inode = Int64(bitPattern: inode)
    self.size = size
    self.mtimeNs = mtimeNs
    self.ctimeNs = ctimeNs
    self.sha256 = sha256
    self.tensorDataSHA256 = tensorDataSHA256
    self.tensorSHA256 = tensorSHA256
    self.nonFinite = nonFinite
  }

  enum CodingKeys: String, CodingKey, ColumnExpression {
    case path, device, inode, size, sha256
    case mtimeNs = "mtime_ns"
    case ctimeNs = "ctime_ns"
    case tensorDataSHA256 = "tensor_data_sha256"
    case tensorSHA256 = "tensor_sha256"
    case nonFinite = "nonfinite"
  }
}
