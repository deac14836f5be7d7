import Foundation
import MergeEngine
import Provenance
import Recipes
import SafeTensors

/// `mixlab publish HASH --to DIR`: a folder ready to upload — a Hugging Face model card, the
/// recipe, the run record, an in-toto attestation and, on request, the model.
///
/// Everything is derived from the run record (and, for model copies, the artifact), so the
/// same record gives the same bytes. Local paths, the user name and the host name are
/// replaced before anything is written, and every file is checked for them.
public enum Publish {
  /// Which model files go into the folder.
  public enum ModelCopy: String, Sendable, CaseIterable, Codable {
    /// None: the card, recipe, record and attestation only.
    case none
    /// The recorded output, byte for byte.
    case original
    /// A re-write of the output with the recipe, the manifest hash and A1111-style ancestry
    /// in `__metadata__` (same tensors, different file hash).
    case embedded
    case both
  }

  public struct Options: Sendable {
    public var model: ModelCopy = .none
    /// Replace files of an earlier publish in a non-empty folder.
    public var force = false
    public init() {}
  }

  public struct PublishedFile: Codable, Sendable, Equatable {
    public var name: String
    public var sha256: String
    public var size: Int
  }

  public struct Outcome: Codable, Sendable {
    public var folder: String
    public var runID: String
    public var outputSHA256: String
    public var recipeHash: String
    public var commit: String
    public var files: [PublishedFile]
    /// How many local paths, user or host names were replaced in notes and recipe text.
    public var redactions: Int

    enum CodingKeys: String, CodingKey {
      case folder, commit, files, redactions
      case runID = "run_id"
      case outputSHA256 = "output_sha256"
      case recipeHash = "recipe_hash"
    }
  }

  /// File names inside a published folder.
  public static let cardName = "README.md"
  public static let recipeName = "recipe.yaml"
  public static let manifestName = "manifest.json"
  public static let attestationName = "provenance.intoto.json"

  /// The URI naming mixlab's build type in the attestation (an identifier, not a web page).
  public static let buildType = "urn:mixlab:build-type:merge:v1"
  public static let builderID = "urn:mixlab:builder:cli"

  /// Publishes the run whose output SHA-256, run id or commit starts with `prefix`.
  ///
  /// - Parameters:
  ///   - prefix: at least 4 hex digits of the output SHA-256, run id or commit.
  ///   - dir: the folder to write (created; must be empty unless `options.force`).
  /// - Throws: `MixLabError` naming the run, a local detail that cannot be hidden, or an
  ///   artifact that no longer matches its record.
  public static func run(prefix: String, to dir: String, workspace ws: Workspace, options: Options) throws -> Outcome {
    let record = try History.find(prefix, workspace: ws)
    let commit = (try? ws.git().lastCommits(touching: "runs"))?[record.output.sha256] ?? ""
    let artifact = record.output.path.hasPrefix("/") ? record.output.path : ws.root + "/" + record.output.path
    let redactor = Redactor(workspaceRoot: ws.root, extraPaths: [artifact])
    var redactions = 0

    // The recipe: inputs point to models/<file>, pinned by SHA-256; then free text redacted.
    var newPaths: [String: String] = [:]
    var pins: [String: String] = [:]
    var publishedInputs: [InputRecord] = []
    for i in record.inputs {
      var copy = i
      if !i.path.hasPrefix("recipe:") && !i.path.hasPrefix("synth:") {
        let file = (i.path as NSString).lastPathComponent
        newPaths[i.name] = "models/" + file
        pins[i.name] = i.sha256
        copy.path = "models/" + file
      }
      publishedInputs.append(copy)
    }
    let recipeFile = ws.root + "/" + record.recipePath
    var recipeText: String
    do {
      recipeText = try InputPathRewrite.rewrite(record.recipeYAML, file: record.recipePath, paths: newPaths, pins: pins)
    } catch {
      throw MixLabError.message("cannot rewrite the input paths of the recorded recipe: \(error.localizedDescription)")
    }
    recipeText = redactor.redact(recipeText, count: &redactions)
    let parsed: Recipe
    do {
      parsed = try RecipeParser.parse(recipeText, file: recipeFile, name: record.recipeName)
    } catch {
      throw MixLabError.message(
        "the recipe of run \(record.runID.prefix(12)) no longer parses after hiding local paths (\(error.localizedDescription)); remove the local path, user or host name from the recipe and run it again"
      )
    }
    guard parsed.hash == record.recipeHash else {
      throw MixLabError.message(
        "hiding local paths, the user or host name changed what the recipe of run \(record.runID.prefix(12)) computes (a value in output.metadata, a pattern or a name holds one); remove it from the recipe, run it again and publish that run"
      )
    }

    // The run record, with the same substitutions.
    var published = record
    published.recipeYAML = recipeText
    published.recipePath =
      record.recipePath.hasPrefix("/") ? (record.recipePath as NSString).lastPathComponent : record.recipePath
    published.inputs = publishedInputs
    if published.output.path.hasPrefix("/") { published.output.path = (published.output.path as NSString).lastPathComponent }
    published.notes = record.notes.mapValues { redactor.redact($0, count: &redactions) }
    let userText =
      [published.experiment, published.recipeName, published.recipePath, published.output.path, recipeText]
      + published.inputs.flatMap { [$0.name, $0.path] } + Array(published.notes.values) + Array(published.notes.keys)
    for t in userText {
      let l = redactor.leaks(in: t)
      if !l.isEmpty {
        throw MixLabError.message(
          "run \(record.runID.prefix(12)) names \(l.joined(separator: " and ")) in `\(t.prefix(80))`, which publishing would reveal; rename it and run again"
        )
      }
    }
    let manifest = published.canonicalJSON()
    let manifestSHA = Digest.sha256(manifest)
    let recipeData = Data(recipeText.utf8)

    // Model files.
    let outputName = record.output.shards == nil ? "\(record.recipeName).safetensors" : record.recipeName
    let embeddedName = "\(record.recipeName).mixlab.safetensors"
    var modelFiles: [(name: String, write: (String) throws -> PublishedFile)] = []
    if options.model != .none {
      guard record.output.shards == nil else {
        throw MixLabError.message(
          "publishing the model of a sharded output is not supported yet; publish without --model and upload the shards of \(record.output.path) yourself"
        )
      }
      guard FileManager.default.fileExists(atPath: artifact),
        let current = try? fileSHA256(artifact), current == record.output.sha256
      else {
        throw MixLabError.message(
          "the artifact \(record.output.path) is missing or no longer has the recorded sha256 \(record.output.sha256.prefix(12)); rebuild it with `mixlab reproduce \(record.output.sha256.prefix(12)) --keep` first"
        )
      }
      if options.model == .original || options.model == .both {
        modelFiles.append(
          (outputName, { dst in try copyFile(artifact, to: dst, name: outputName) }))
      }
      if options.model == .embedded || options.model == .both {
        let meta = try embeddedMetadata(record: published, recipeText: recipeText, manifestSHA: manifestSHA)
        for (k, v) in meta {
          let l = redactor.leaks(in: v, words: false)
          if !l.isEmpty { throw MixLabError.message("the embedded metadata `\(k)` would reveal \(l.joined(separator: ", "))") }
        }
        modelFiles.append((embeddedName, { dst in try writeEmbedded(from: artifact, to: dst, name: embeddedName, extra: meta) }))
      }
    }

    // Write: model copies first (their hashes go into the attestation), then the text files.
    let folder = Workspace.absolute(dir)
    try prepareFolder(folder, force: options.force)
    var files: [PublishedFile] = []
    for m in modelFiles { files.append(try m.write(folder + "/" + m.name)) }
    let embeddedFile = files.first { $0.name == embeddedName }
    let attestation = try Attestation.make(
      record: published, commit: commit, outputName: outputName, embedded: embeddedFile, recipeText: recipeText,
      recipeSHA: Digest.sha256(recipeData), manifestSHA: manifestSHA)
    let card = Card.make(
      record: published, recipe: parsed, recipeText: recipeText, commit: commit, outputName: outputName,
      embedded: embeddedFile, includesOriginal: files.contains { $0.name == outputName })
    let texts: [(String, Data)] = [
      (recipeName, recipeData), (manifestName, manifest), (attestationName, attestation), (cardName, Data(card.utf8)),
    ]
    for (name, data) in texts {
      let l = redactor.leaks(in: String(decoding: data, as: UTF8.self), words: false)
      if !l.isEmpty {
        for f in files { try? FileManager.default.removeItem(atPath: folder + "/" + f.name) }
        throw MixLabError.message("\(name) would reveal \(l.joined(separator: ", ")); nothing was published")
      }
    }
    for (name, data) in texts {
      try data.write(to: URL(fileURLWithPath: folder + "/" + name), options: .atomic)
      files.append(PublishedFile(name: name, sha256: Digest.sha256(data), size: data.count))
    }
    return Outcome(
      folder: folder, runID: record.runID, outputSHA256: record.output.sha256, recipeHash: record.recipeHash, commit: commit,
      files: files.sorted { $0.name < $1.name }, redactions: redactions)
  }

  static func prepareFolder(_ folder: String, force: Bool) throws {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    if fm.fileExists(atPath: folder, isDirectory: &isDir) {
      guard isDir.boolValue else { throw MixLabError.message("\(folder) is a file; publish needs a folder") }
      let entries = (try? fm.contentsOfDirectory(atPath: folder)) ?? []
      if !entries.isEmpty && !force {
        throw MixLabError.message(
          "\(folder) is not empty; publish into a new folder, or pass --force to replace the files of an earlier publish")
      }
      if force {
        for e in entries where [cardName, recipeName, manifestName, attestationName].contains(e) || e.hasSuffix(".safetensors") {
          try fm.removeItem(atPath: folder + "/" + e)
        }
      }
    } else {
      try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }
  }

  /// SHA-256 of a file's bytes, read in 8 MiB pieces.
  static func fileSHA256(_ path: String) throws -> String {
    guard let h = FileHandle(forReadingAtPath: path) else { throw MixLabError.message("cannot read \(path)") }
    defer { try? h.close() }
    var sha = StreamingSHA256()
    while true {
      let chunk = h.readData(ofLength: 8 << 20)
      if chunk.isEmpty { break }
      chunk.withUnsafeBytes { sha.update($0) }
    }
    return sha.finalizeHex()
  }

  static func copyFile(_ src: String, to dst: String, name: String) throws -> PublishedFile {
    try? FileManager.default.removeItem(atPath: dst)
    try FileManager.default.copyItem(atPath: src, toPath: dst)
    let attrs = try FileManager.default.attributesOfItem(atPath: dst)
    return PublishedFile(name: name, sha256: try fileSHA256(dst), size: (attrs[.size] as? Int) ?? 0)
  }

  /// The embedded copy's extra `__metadata__`: the published recipe, the manifest hash, the
  /// recorded output hash, and `sd_merge_recipe` / `sd_merge_models` in the A1111 shape.
  static func embeddedMetadata(record: RunRecord, recipeText: String, manifestSHA: String) throws -> [String: String] {
    struct MergeRecipe: Encodable {
      var type = "mixlab"
      var primaryModelHash: String?
      var secondaryModelHash: String?
      var tertiaryModelHash: String?
      var interpMethod: String
      var recipeSHA256: String
      var outputSHA256: String
      var mixlabVersion: String
      var customName: String
      enum CodingKeys: String, CodingKey {
        case type
        case primaryModelHash = "primary_model_hash"
        case secondaryModelHash = "secondary_model_hash"
        case tertiaryModelHash = "tertiary_model_hash"
        case interpMethod = "interp_method"
        case recipeSHA256 = "mixlab_recipe_sha256"
        case outputSHA256 = "mixlab_output_sha256"
        case mixlabVersion = "mixlab_version"
        case customName = "custom_name"
      }
    }
    struct MergeModel: Encodable {
      var name: String
      var legacyHash: String?
      var sdMergeRecipe: String?
      enum CodingKeys: String, CodingKey {
        case name
        case legacyHash = "legacy_hash"
        case sdMergeRecipe = "sd_merge_recipe"
      }
      func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(legacyHash, forKey: .legacyHash)  // null: mixlab does not read the old A1111 hash
        try c.encode(sdMergeRecipe, forKey: .sdMergeRecipe)
      }
    }
    let shas = record.inputs.map(\.sha256)
    let recipe = try? RecipeParser.parse(record.recipeYAML, file: record.recipePath, name: record.recipeName)
    let methods = recipe.map { r in r.steps.map(\.method.rawValue).joined(separator: " + ") } ?? ""
    let mr = MergeRecipe(
      primaryModelHash: shas.first, secondaryModelHash: shas.count > 1 ? shas[1] : nil,
      tertiaryModelHash: shas.count > 2 ? shas[2] : nil, interpMethod: "mixlab: " + (methods.isEmpty ? "assembly" : methods),
      recipeSHA256: record.recipeHash, outputSHA256: record.output.sha256, mixlabVersion: record.engine.mixlabVersion,
      customName: record.recipeName)
    var models: [String: MergeModel] = [:]
    for i in record.inputs where models[i.sha256] == nil {
      models[i.sha256] = MergeModel(name: i.path.hasPrefix("models/") ? String(i.path.dropFirst(7)) : i.name)
    }
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return [
      "mixlab.recipe": recipeText,
      "mixlab.manifest_sha256": manifestSHA,
      "mixlab.source_sha256": record.output.sha256,
      "mixlab.run_id": record.runID,
      "sd_merge_recipe": String(decoding: try enc.encode(mr), as: UTF8.self),
      "sd_merge_models": String(decoding: try enc.encode(models), as: UTF8.self),
    ]
  }

  /// Re-writes `src` with the canonical writer and `extra` added to its metadata.
  static func writeEmbedded(from src: String, to dst: String, name: String, extra: [String: String]) throws -> PublishedFile {
    let file = try SafeTensorsFile(path: src)
    var meta = file.metadata
    for (k, v) in extra { meta[k] = v }
    let specs = file.tensors.map { TensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape) }
    let writer = try SafeTensorsWriter(path: dst, specs: specs, metadata: meta, hashTensors: false)
    for t in writer.tensors {
      guard let info = file.info(t.name) else { throw MixLabError.message("\(src) lost tensor \(t.name) while publishing") }
      try file.withBytes(of: info) { raw in try writer.append(raw) }
      file.release(info)
    }
    let r = try writer.finish()
    return PublishedFile(name: name, sha256: r.sha256, size: r.size)
  }
}
