import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The provenance manifest of one run: what went in, what came out, and how.
///
/// Stored as `runs/<output sha256>/manifest.json` in the provenance repository, in canonical
/// JSON (`canonicalJSON()`), and indexed in SQLite. Every field is always written, optional
/// ones as `null`, so the schema a reader sees never depends on the run. JSON names are
/// snake_case.
public struct RunRecord: Codable, Sendable, Equatable {
  /// The manifest format this code writes and reads.
  public static let currentFormatVersion = 1

  public var formatVersion: Int
  /// Hex id derived by the runner.
  public var runID: String
  public var experiment: String
  public var recipeName: String
  /// The recipe's path as given, relative to the workspace.
  public var recipePath: String
  /// The recipe file, byte for byte.
  public var recipeYAML: String
  public var recipeCanonical: String
  public var recipeHash: String
  /// Note file name (e.g. `NOTES.md`) → text.
  public var notes: [String: String]
  public var inputs: [InputRecord]
  public var output: OutputRecord
  public var seed: UInt64?
  public var engine: EngineRecord
  public var platform: PlatformRecord
  public var execution: ExecutionRecord
  public var metrics: [MetricRecord]
  /// External evaluators run on the output (their numbers are in `metrics`, scope
  /// `evaluator:<name>`); empty in manifests written before evaluators existed.
  public var evaluations: [EvaluationRecord] = []

  public init(
    formatVersion: Int = RunRecord.currentFormatVersion, runID: String, experiment: String, recipeName: String,
    recipePath: String, recipeYAML: String, recipeCanonical: String, recipeHash: String, notes: [String: String],
    inputs: [InputRecord], output: OutputRecord, seed: UInt64?, engine: EngineRecord, platform: PlatformRecord,
    execution: ExecutionRecord, metrics: [MetricRecord]
  ) {
    self.formatVersion = formatVersion
    self.runID = runID
    self.experiment = experiment
    self.recipeName = recipeName
    self.recipePath = recipePath
    self.recipeYAML = recipeYAML
    self.recipeCanonical = recipeCanonical
    self.recipeHash = recipeHash
    self.notes = notes
    self.inputs = inputs
    self.output = output
    self.seed = seed
    self.engine = engine
    self.platform = platform
    self.execution = execution
    self.metrics = metrics
  }

  enum CodingKeys: String, CodingKey {
    case formatVersion = "format_version"
    case runID = "run_id"
    case experiment
    case recipeName = "recipe_name"
    case recipePath = "recipe_path"
    case recipeYAML = "recipe_yaml"
    case recipeCanonical = "recipe_canonical"
    case recipeHash = "recipe_hash"
    case notes, inputs, output, seed, engine, platform, execution, metrics, evaluations
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    formatVersion = try c.decode(Int.self, forKey: .formatVersion)
    runID = try c.decode(String.self, forKey: .runID)
    experiment = try c.decode(String.self, forKey: .experiment)
    recipeName = try c.decode(String.self, forKey: .recipeName)
    recipePath = try c.decode(String.self, forKey: .recipePath)
    recipeYAML = try c.decode(String.self, forKey: .recipeYAML)
    recipeCanonical = try c.decode(String.self, forKey: .recipeCanonical)
    recipeHash = try c.decode(String.self, forKey: .recipeHash)
    notes = try c.decode([String: String].self, forKey: .notes)
    inputs = try c.decode([InputRecord].self, forKey: .inputs)
    output = try c.decode(OutputRecord.self, forKey: .output)
    seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
    engine = try c.decode(EngineRecord.self, forKey: .engine)
    platform = try c.decode(PlatformRecord.self, forKey: .platform)
    execution = try c.decode(ExecutionRecord.self, forKey: .execution)
    metrics = try c.decode([MetricRecord].self, forKey: .metrics)
    evaluations = try c.decodeIfPresent([EvaluationRecord].self, forKey: .evaluations) ?? []
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(formatVersion, forKey: .formatVersion)
    try c.encode(runID, forKey: .runID)
    try c.encode(experiment, forKey: .experiment)
    try c.encode(recipeName, forKey: .recipeName)
    try c.encode(recipePath, forKey: .recipePath)
    try c.encode(recipeYAML, forKey: .recipeYAML)
    try c.encode(recipeCanonical, forKey: .recipeCanonical)
    try c.encode(recipeHash, forKey: .recipeHash)
    try c.encode(notes, forKey: .notes)
    try c.encode(inputs, forKey: .inputs)
    try c.encode(output, forKey: .output)
    try c.encode(seed, forKey: .seed)  // `null` when unseeded, never omitted
    try c.encode(engine, forKey: .engine)
    try c.encode(platform, forKey: .platform)
    try c.encode(execution, forKey: .execution)
    try c.encode(metrics, forKey: .metrics)
    try c.encode(evaluations, forKey: .evaluations)
  }

  // MARK: Canonical JSON

  /// The manifest bytes: sorted keys, two-space pretty printing, unescaped slashes and a
  /// trailing newline, so equal records give equal bytes (and equal git blobs).
  ///
  /// Non-finite metric values are written as the strings `"NaN"`, `"Infinity"` and
  /// `"-Infinity"`, since JSON has no numbers for them.
  public func canonicalJSON() -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(
      positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    // Cannot fail: every value is a string, integer, boolean or (thanks to the strategy
    // above) a representable double.
    var data = try! encoder.encode(self)
    data.append(0x0A)
    return data
  }

  /// Reads a manifest written by `canonicalJSON()` (or any JSON with the same fields).
  ///
  /// - Parameters:
  ///   - data: the manifest bytes.
  ///   - source: where the bytes came from, for error messages.
  /// - Throws: `ProvenanceError.invalidManifest` naming the missing or mistyped field, an
  ///   unsupported `format_version` or an unreadable `execution.started_at`.
  public static func decode(_ data: Data, source: String = "manifest.json") throws -> RunRecord {
    let decoder = JSONDecoder()
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(
      positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    let record: RunRecord
    do {
      record = try decoder.decode(RunRecord.self, from: data)
    } catch let error as DecodingError {
      throw ProvenanceError.invalidManifest(source: source, reason: describe(error))
    } catch {
      throw ProvenanceError.invalidManifest(source: source, reason: "\(error)")
    }
    guard record.formatVersion == currentFormatVersion else {
      throw ProvenanceError.invalidManifest(
        source: source,
        reason: "format_version \(record.formatVersion) is not supported (this mixlab reads version "
          + "\(currentFormatVersion)); use the mixlab version that wrote it")
    }
    guard RunRecord.seconds(fromISO8601: record.execution.startedAt) != nil else {
      throw ProvenanceError.invalidManifest(
        source: source, reason: "execution.started_at \"\(record.execution.startedAt)\" is not an ISO 8601 UTC time")
    }
    return record
  }

  private static func describe(_ error: DecodingError) -> String {
    func path(_ context: DecodingError.Context) -> String {
      let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
      return keys.isEmpty ? "top level" : keys.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
    }
    switch error {
    case .keyNotFound(let key, let context):
      let parent = path(context)
      return "missing field \"\(key.stringValue)\"" + (context.codingPath.isEmpty ? "" : " in \(parent)")
    case .typeMismatch(let type, let context):
      return "\(path(context)) is not a \(type)"
    case .valueNotFound(let type, let context):
      return "\(path(context)) is null but must be a \(type)"
    case .dataCorrupted(let context):
      return "\(path(context)): \(context.debugDescription)"
    @unknown default:
      return "\(error)"
    }
  }

  // MARK: Git

  /// The git commit time of this record: `execution.started_at` in whole seconds since 1970.
  ///
  /// Derived from the record, never from the clock, so committing an equal record on an equal
  /// parent gives an equal commit id. 0 when `started_at` is not a valid time (`decode`
  /// refuses such manifests; only a hand-built record can have one).
  public var commitTime: Int64 {
    RunRecord.seconds(fromISO8601: execution.startedAt) ?? 0
  }

  /// The folder of this run in the provenance repository: `runs/<output sha256>`.
  ///
  /// One folder per output artifact: a later run producing the same bytes replaces the
  /// manifest there; the earlier one stays in the branch history.
  public var gitFolder: String { "runs/" + output.sha256 }

  /// The files recording this run: `manifest.json`, `recipe.yaml` (verbatim) and
  /// `notes/<name>` for each note, under `gitFolder`.
  ///
  /// - Throws: `ProvenanceError.invalidManifest` when `output.sha256` is not 64 lower-case hex
  ///   digits, `.invalidRepositoryPath` when a note name cannot be a file name.
  public func gitFiles() throws -> [String: Data] {
    let hexDigits = output.sha256.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    guard output.sha256.utf8.count == 64, hexDigits else {
      throw ProvenanceError.invalidManifest(
        source: "run \(runID)", reason: "output.sha256 \"\(output.sha256)\" is not 64 lower-case hex digits")
    }
    var files: [String: Data] = [
      gitFolder + "/manifest.json": canonicalJSON(),
      gitFolder + "/recipe.yaml": Data(recipeYAML.utf8),
    ]
    for (name, text) in notes {
      guard !name.contains("/") else {
        throw ProvenanceError.invalidRepositoryPath(path: name, reason: "a note name cannot contain \"/\"")
      }
      files[gitFolder + "/notes/" + name] = Data(text.utf8)
    }
    try GitStore.validate(paths: Array(files.keys))
    return files
  }

  /// A commit message whose first line reads well in `git log --oneline`.
  public var commitMessage: String {
    """
    \(experiment)/\(recipeName): \(output.autov2) (run \(runID.prefix(12)))

    output \(output.sha256)
    recipe \(recipeHash)
    inputs \(inputs.map { "\($0.name)=\($0.sha256.prefix(10))" }.joined(separator: " "))
    """
  }

  // MARK: Timestamps

  /// `date` as the ISO 8601 UTC text `started_at` holds, e.g. `2025-01-31T12:00:00.250Z`
  /// (milliseconds, always `Z`).
  public static func iso8601(_ date: Date) -> String {
    let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    let seconds = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
    let fraction = Int(milliseconds - seconds * 1000)
    let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
    let secondOfDay = Int(seconds - days * 86_400)
    let (y, m, d) = civil(fromDays: days)
    func pad(_ v: Int64, _ width: Int) -> String {
      let s = String(v)
      return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(Int64(secondOfDay / 3600), 2)):"
      + "\(pad(Int64(secondOfDay / 60 % 60), 2)):\(pad(Int64(secondOfDay % 60), 2)).\(pad(Int64(fraction), 3))Z"
  }

  /// Whole seconds since 1970 for an ISO 8601 time `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
  ///
  /// A small exact parser rather than a formatter: the result must not depend on the
  /// platform's date library. Fractions are truncated.
  ///
  /// - Returns: nil when `text` is not in that form or names an impossible date.
  public static func seconds(fromISO8601 text: String) -> Int64? {
    let b = Array(text.utf8)
    func number(_ range: Range<Int>) -> Int64? {
      guard range.upperBound <= b.count else { return nil }
      var v: Int64 = 0
      for i in range {
        guard (0x30...0x39).contains(b[i]) else { return nil }
        v = v * 10 + Int64(b[i] - 0x30)
      }
      return v
    }
    guard b.count >= 20, b[4] == 0x2D, b[7] == 0x2D, b[10] == 0x54 || b[10] == 0x74, b[13] == 0x3A, b[16] == 0x3A,
      let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
      let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
    else { return nil }
    guard (1...12).contains(month), day >= 1, day <= daysInMonth(year, month), hour < 24, minute < 60, second < 61
    else { return nil }
    var i = 19
    if b[i] == 0x2E {
      i += 1
      let start = i
      while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
      guard i > start else { return nil }
    }
    var offset: Int64 = 0
    guard i < b.count else { return nil }
    if b[i] == 0x5A || b[i] == 0x7A {
      i += 1
    } else if b[i] == 0x2B || b[i] == 0x2D {
      guard let oh = number((i + 1)..<(i + 3)), i + 3 < b.count, b[i + 3] == 0x3A, let om = number((i + 4)..<(i + 6)),
        oh < 24, om < 60
      else { return nil }
      offset = (oh * 3600 + om * 60) * (b[i] == 0x2B ? 1 : -1)
      i += 6
    } else {
      return nil
    }
    guard i == b.count else { return nil }
    return days(fromCivil: year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset
  }

  private static func daysInMonth(_ year: Int64, _ month: Int64) -> Int64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][Int(month) - 1]
  }

  /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
  private static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
  }

  private static func civil(fromDays z: Int64) -> (Int64, Int64, Int64) {
    let z = z + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
  }
}

/// One input model of a run.
public struct InputRecord: Codable, Sendable, Equatable {
  /// The name the recipe gives the input.
  public var name: String
  /// The path as written in the recipe.
  public var path: String
  public var sha256: String
  public var tensorDataSHA256: String
  public var size: Int
  public var architecture: String
  public var tensorCount: Int

  public init(
    name: String, path: String, sha256: String, tensorDataSHA256: String, size: Int, architecture: String,
    tensorCount: Int
  ) {
    self.name = name
    self.path = path
    self.sha256 = sha256
    self.tensorDataSHA256 = tensorDataSHA256
    self.size = size
    self.architecture = architecture
    self.tensorCount = tensorCount
  }

  enum CodingKeys: String, CodingKey {
    case name, path, sha256, size, architecture
    case tensorDataSHA256 = "tensor_data_sha256"
    case tensorCount = "tensor_count"
  }
}

/// The artifact a run wrote.
public struct OutputRecord: Codable, Sendable, Equatable {
  /// Relative to the workspace.
  public var path: String
  public var sha256: String
  /// First 10 hex digits of `sha256`, as Stable Diffusion tools show it.
  public var autov2: String
  public var tensorDataSHA256: String
  public var size: Int
  public var tensorCount: Int
  /// Tensor name → SHA-256 of its bytes.
  public var tensorSHA256: [String: String]
  /// dtype name → number of tensors.
  public var dtypes: [String: Int]
  /// Component (unet, text_encoder, vae, …) → number of tensors.
  public var components: [String: Int]
  /// Component → number of layers (blocks).
  public var layerCounts: [String: Int]
  public var architecture: String
  /// Shard file names when the output is sharded, else nil.
  public var shards: [String]?

  public init(
    path: String, sha256: String, autov2: String, tensorDataSHA256: String, size: Int, tensorCount: Int,
    tensorSHA256: [String: String], dtypes: [String: Int], components: [String: Int], layerCounts: [String: Int],
    architecture: String, shards: [String]? = nil
  ) {
    self.path = path
    self.sha256 = sha256
    self.autov2 = autov2
    self.tensorDataSHA256 = tensorDataSHA256
    self.size = size
    self.tensorCount = tensorCount
    self.tensorSHA256 = tensorSHA256
    self.dtypes = dtypes
    self.components = components
    self.layerCounts = layerCounts
    self.architecture = architecture
    self.shards = shards
  }

  enum CodingKeys: String, CodingKey {
    case path, sha256, autov2, size, dtypes, components, architecture, shards
    case tensorDataSHA256 = "tensor_data_sha256"
    case tensorCount = "tensor_count"
    case tensorSHA256 = "tensor_sha256"
    case layerCounts = "layer_counts"
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(path, forKey: .path)
    try c.encode(sha256, forKey: .sha256)
    try c.encode(autov2, forKey: .autov2)
    try c.encode(tensorDataSHA256, forKey: .tensorDataSHA256)
    try c.encode(size, forKey: .size)
    try c.encode(tensorCount, forKey: .tensorCount)
    try c.encode(tensorSHA256, forKey: .tensorSHA256)
    try c.encode(dtypes, forKey: .dtypes)
    try c.encode(components, forKey: .components)
    try c.encode(layerCounts, forKey: .layerCounts)
    try c.encode(architecture, forKey: .architecture)
    try c.encode(shards, forKey: .shards)  // `null` when not sharded, never omitted
  }
}

/// Versions of the code that computed the output.
public struct EngineRecord: Codable, Sendable, Equatable {
  public var mixlabVersion: String
  public var engineVersion: String
  /// Merge method → version of its semantics.
  public var methodSemantics: [String: String]

  public init(mixlabVersion: String, engineVersion: String, methodSemantics: [String: String]) {
    self.mixlabVersion = mixlabVersion
    self.engineVersion = engineVersion
    self.methodSemantics = methodSemantics
  }

  enum CodingKeys: String, CodingKey {
    case mixlabVersion = "mixlab_version"
    case engineVersion = "engine_version"
    case methodSemantics = "method_semantics"
  }
}

/// The machine a run executed on.
public struct PlatformRecord: Codable, Sendable, Equatable {
  public var os: String
  public var arch: String
  public var cpu: String
  public var swiftVersion: String

  public init(os: String, arch: String, cpu: String, swiftVersion: String) {
    self.os = os
    self.arch = arch
    self.cpu = cpu
    self.swiftVersion = swiftVersion
  }

  enum CodingKeys: String, CodingKey {
    case os, arch, cpu
    case swiftVersion = "swift_version"
  }

  /// The machine this process runs on: kernel name and release, architecture, CPU model (from
  /// `/proc/cpuinfo` on Linux), and the Swift compiler version mixlab was built with.
  public static func current() -> PlatformRecord {
    var info = utsname()
    uname(&info)
    func field<T>(_ value: T) -> String {
      withUnsafeBytes(of: value) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
    }
    var cpu = "unknown"
    if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
      let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
      let colon = line.firstIndex(of: ":")
    {
      cpu = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    #if swift(>=7.0)
      let swift = "7.0+"
    #elseif swift(>=6.3)
      let swift = "6.3"
    #elseif swift(>=6.2)
      let swift = "6.2"
    #elseif swift(>=6.1)
      let swift = "6.1"
    #else
      let swift = "6.0"
    #endif
    return PlatformRecord(
      os: "\(field(info.sysname)) \(field(info.release))", arch: field(info.machine), cpu: cpu, swiftVersion: swift)
  }
}

/// How a run executed. None of this affects the output bytes.
public struct ExecutionRecord: Codable, Sendable, Equatable {
  public var threads: Int
  /// Memory budget in bytes.
  public var memoryBudget: Int
  public var chunkElements: Int
  public var computeDType: String
  /// ISO 8601 UTC, e.g. `2025-01-31T12:00:00.250Z` (see `RunRecord.iso8601`).
  public var startedAt: String
  public var wallSeconds: Double
  public var peakRSSBytes: Int
  /// True when the output was already up to date and nothing was recomputed.
  public var reused: Bool

  public init(
    threads: Int, memoryBudget: Int, chunkElements: Int, computeDType: String, startedAt: String,
    wallSeconds: Double, peakRSSBytes: Int, reused: Bool
  ) {
    self.threads = threads
    self.memoryBudget = memoryBudget
    self.chunkElements = chunkElements
    self.computeDType = computeDType
    self.startedAt = startedAt
    self.wallSeconds = wallSeconds
    self.peakRSSBytes = peakRSSBytes
    self.reused = reused
  }

  enum CodingKeys: String, CodingKey {
    case threads, reused
    case memoryBudget = "memory_budget"
    case chunkElements = "chunk_elements"
    case computeDType = "compute_dtype"
    case startedAt = "started_at"
    case wallSeconds = "wall_seconds"
    case peakRSSBytes = "peak_rss_bytes"
  }
}

/// One number measured for a run.
public struct MetricRecord: Codable, Sendable, Equatable {
  public var name: String
  /// What the number covers: `overall`, `component:unet`, `block:IN04`, …
  public var scope: String
  public var value: Double

  public init(name: String, scope: String, value: Double) {
    self.name = name
    self.scope = scope
    self.value = value
  }
}

/// One external evaluator run on a run's output.
public struct EvaluationRecord: Codable, Sendable, Equatable {
  public var name: String
  /// The command as declared, placeholders unexpanded (so no local paths are recorded).
  public var command: [String]
  /// Files the command names (relative to the workspace) and their SHA-256.
  public var files: [String: String]
  /// `ok`, `failed` (non-zero exit), `timeout`, `invalid_output` (stdout is not a JSON object
  /// of numbers) or `error` (could not start).
  public var status: String
  public var exitCode: Int32?
  public var seconds: Double
  /// The last lines of standard error when the evaluator did not succeed.
  public var message: String?

  public init(
    name: String, command: [String], files: [String: String], status: String, exitCode: Int32?, seconds: Double,
    message: String?
  ) {
    self.name = name
    self.command = command
    self.files = files
    self.status = status
    self.exitCode = exitCode
    self.seconds = seconds
    self.message = message
  }

  enum CodingKeys: String, CodingKey {
    case name, command, files, status, seconds, message
    case exitCode = "exit_code"
  }
}
