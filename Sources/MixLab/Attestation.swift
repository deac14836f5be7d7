import Foundation
import Provenance
import SafeTensors

/// The in-toto Statement v1 with a SLSA Provenance v1 predicate that `mixlab publish` writes
/// as `provenance.intoto.json`, and that `mixlab verify` reads back.
///
/// `subject` and `predicate.buildDefinition` depend only on the recipe, the inputs' bytes and
/// the engine: they are what a rebuild must reproduce. Everything about one particular run
/// (run id, times, machine) is in `predicate.runDetails`.
public struct Attestation: Codable, Sendable {
  public static let statementType = "https://in-toto.io/Statement/v1"
  public static let predicateType = "https://slsa.dev/provenance/v1"

  public struct ResourceDescriptor: Codable, Sendable, Equatable {
    public var name: String
    public var digest: [String: String]
    public var annotations: [String: String]?
  }

  public struct RecipeParameters: Codable, Sendable {
    /// The recipe's name (its file name in the workspace, without `.yaml`).
    public var name: String
    /// The recipe hash: SHA-256 of `canonical`.
    public var sha256: String
    /// The canonical form (compact JSON, every default written out).
    public var canonical: String
    /// The published file and the SHA-256 of its bytes.
    public var file: String
    public var fileSHA256: String
    enum CodingKeys: String, CodingKey {
      case name, sha256, canonical, file
      case fileSHA256 = "file_sha256"
    }
  }

  public struct ExternalParameters: Codable, Sendable {
    public var recipe: RecipeParameters
  }

  public struct InternalParameters: Codable, Sendable {
    public var recipeFormat: Int
    public var engineVersion: String
    public var methodSemantics: [String: String]
    public var seed: UInt64?
    enum CodingKeys: String, CodingKey {
      case seed
      case recipeFormat = "recipe_format"
      case engineVersion = "engine_version"
      case methodSemantics = "method_semantics"
    }
    public func encode(to encoder: any Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(recipeFormat, forKey: .recipeFormat)
      try c.encode(engineVersion, forKey: .engineVersion)
      try c.encode(methodSemantics, forKey: .methodSemantics)
      try c.encode(seed, forKey: .seed)
    }
  }

  public struct BuildDefinition: Codable, Sendable {
    public var buildType: String
    public var externalParameters: ExternalParameters
    public var internalParameters: InternalParameters
    public var resolvedDependencies: [ResourceDescriptor]
  }

  public struct Builder: Codable, Sendable {
    public var id: String
    public var version: [String: String]
  }

  public struct BuildMetadata: Codable, Sendable {
    public var invocationId: String
    public var startedOn: String
    public var finishedOn: String
  }

  public struct RunDetails: Codable, Sendable {
    public var builder: Builder
    public var metadata: BuildMetadata
    public var byproducts: [ResourceDescriptor]
  }

  public struct Predicate: Codable, Sendable {
    public var buildDefinition: BuildDefinition
    public var runDetails: RunDetails
  }

  public var type: String
  public var subject: [ResourceDescriptor]
  public var predicateType: String
  public var predicate: Predicate

  enum CodingKeys: String, CodingKey {
    case type = "_type"
    case subject, predicateType, predicate
  }

  /// Subject annotation `mixlab.role`: `output` (the recorded artifact) or `embedded-copy`.
  public static let roleKey = "mixlab.role"

  /// The attestation bytes for a (published) record.
  static func make(
    record: RunRecord, commit: String, outputName: String, embedded: Publish.PublishedFile?, recipeText: String,
    recipeSHA: String, manifestSHA: String
  ) throws -> Data {
    var subjects = [
      ResourceDescriptor(
        name: outputName, digest: ["sha256": record.output.sha256],
        annotations: [
          roleKey: "output", "mixlab.autov2": record.output.autov2,
          "mixlab.tensor_data_sha256": record.output.tensorDataSHA256,
        ])
    ]
    if let e = embedded {
      subjects.append(
        ResourceDescriptor(
          name: e.name, digest: ["sha256": e.sha256],
          annotations: [
            roleKey: "embedded-copy", "mixlab.derived_from": record.output.sha256,
            "mixlab.tensor_data_sha256": record.output.tensorDataSHA256,
          ]))
    }
    let deps = record.inputs.map { i in
      ResourceDescriptor(
        name: i.name, digest: ["sha256": i.sha256],
        annotations: [
          "mixlab.path": i.path, "mixlab.tensor_data_sha256": i.tensorDataSHA256, "mixlab.architecture": i.architecture,
          "mixlab.size": String(i.size),
        ])
    }
    let start = record.execution.startedAt
    let finished = finishTime(start: start, wall: record.execution.wallSeconds)
    let statement = Attestation(
      type: statementType, subject: subjects, predicateType: predicateType,
      predicate: Predicate(
        buildDefinition: BuildDefinition(
          buildType: Publish.buildType,
          externalParameters: ExternalParameters(
            recipe: RecipeParameters(
              name: record.recipeName, sha256: record.recipeHash, canonical: record.recipeCanonical, file: Publish.recipeName,
              fileSHA256: recipeSHA)),
          internalParameters: InternalParameters(
            recipeFormat: 1, engineVersion: record.engine.engineVersion, methodSemantics: record.engine.methodSemantics,
            seed: record.seed),
          resolvedDependencies: deps),
        runDetails: RunDetails(
          builder: Builder(
            id: Publish.builderID,
            version: [
              "mixlab": record.engine.mixlabVersion, "engine": record.engine.engineVersion,
              "swift": record.platform.swiftVersion, "os": record.platform.os, "arch": record.platform.arch,
            ]),
          metadata: BuildMetadata(invocationId: record.runID, startedOn: start, finishedOn: finished),
          byproducts: [
            ResourceDescriptor(name: Publish.recipeName, digest: ["sha256": recipeSHA], annotations: nil),
            ResourceDescriptor(
              name: Publish.manifestName, digest: ["sha256": manifestSHA],
              annotations: commit.isEmpty ? nil : ["mixlab.record_commit": commit]),
          ])))
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    var data = try enc.encode(statement)
    data.append(0x0A)
    return data
  }

  /// `start` plus `wall` seconds, in the same ISO 8601 form (milliseconds, `Z`).
  static func finishTime(start: String, wall: Double) -> String {
    guard let whole = RunRecord.seconds(fromISO8601: start) else { return start }
    var millis = 0
    if let dot = start.firstIndex(of: ".") {
      let digits = start[start.index(after: dot)...].prefix { $0.isNumber }.prefix(3)
      millis = (Int(digits) ?? 0) * Int(pow(10, Double(3 - digits.count)))
    }
    let total = Double(whole) + Double(millis) / 1000 + max(0, wall)
    return RunRecord.iso8601(Date(timeIntervalSince1970: total))
  }

  /// Reads `provenance.intoto.json`.
  public static func read(_ data: Data) throws -> Attestation {
    try JSONDecoder().decode(Attestation.self, from: data)
  }
}
