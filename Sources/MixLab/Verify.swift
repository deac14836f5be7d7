import Foundation
import Provenance
import Recipes
import SafeTensors

/// `mixlab verify DIR`: checks a folder written by `mixlab publish` against its attestation.
///
/// Every file the attestation names and the folder holds must have the attested SHA-256;
/// the recipe must parse to the attested recipe hash; the manifest, the card and any embedded
/// copy must agree with the attestation. Nothing needs the workspace or the inputs.
public enum Verify {
  public struct Check: Codable, Sendable {
    public var name: String
    public var ok: Bool
    public var detail: String
  }

  public struct Outcome: Codable, Sendable {
    public var folder: String
    public var ok: Bool
    public var checks: [Check]
    /// What to run to rebuild the model.
    public var reproduce: [String]
  }

  /// Verifies `dir`.
  ///
  /// - Throws: `MixLabError` only when the folder cannot be read at all; every mismatch is a
  ///   failed check in the outcome.
  public static func run(folder dir: String) throws -> Outcome {
    let folder = Workspace.absolute(dir)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
      throw MixLabError.message("\(dir) is not a folder")
    }
    var checks: [Check] = []
    func check(_ name: String, _ ok: Bool, _ detail: String) { checks.append(Check(name: name, ok: ok, detail: detail)) }
    func path(_ name: String) -> String { folder + "/" + name }
    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name)) }

    // The attestation.
    guard let attData = FileManager.default.contents(atPath: path(Publish.attestationName)) else {
      check(Publish.attestationName, false, "missing: this folder was not written by `mixlab publish`")
      return Outcome(folder: folder, ok: false, checks: checks, reproduce: [])
    }
    let att: Attestation
    do {
      att = try Attestation.read(attData)
    } catch {
      check(Publish.attestationName, false, "not a readable in-toto statement: \(error)")
      return Outcome(folder: folder, ok: false, checks: checks, reproduce: [])
    }
    let typeOK = att.type == Attestation.statementType && att.predicateType == Attestation.predicateType
    check(
      Publish.attestationName, typeOK,
      typeOK
        ? "in-toto Statement v1, SLSA provenance v1"
        : "_type \(att.type) / predicateType \(att.predicateType) are not an in-toto v1 statement with SLSA v1 provenance")
    let recipeParams = att.predicate.buildDefinition.externalParameters.recipe
    let output = att.subject.first { $0.annotations?[Attestation.roleKey] == "output" } ?? att.subject.first
    let outputSHA = output?.digest["sha256"] ?? ""

    // Files the attestation names.
    var hashes: [String: String] = [:]
    func sha(_ name: String) -> String? {
      if let h = hashes[name] { return h }
      guard exists(name), let h = try? Publish.fileSHA256(path(name)) else { return nil }
      hashes[name] = h
      return h
    }
    for s in att.subject {
      let want = s.digest["sha256"] ?? ""
      guard exists(s.name) else {
        check(s.name, true, "not included in this folder (attested sha256 \(want.prefix(12)))")
        continue
      }
      let got = sha(s.name) ?? ""
      check(s.name, got == want, got == want ? "sha256 \(got) as attested" : "sha256 \(got) but the attestation says \(want)")
    }
    for b in att.predicate.runDetails.byproducts {
      let want = b.digest["sha256"] ?? ""
      guard let got = sha(b.name) else {
        check(b.name, false, "missing (the attestation lists it with sha256 \(want.prefix(12)))")
        continue
      }
      check(b.name, got == want, got == want ? "sha256 \(got) as attested" : "sha256 \(got) but the attestation says \(want)")
    }
    let listed = Set(att.subject.map(\.name) + att.predicate.runDetails.byproducts.map(\.name))
    for f in ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
    where f.hasSuffix(".safetensors") && !listed.contains(f) {
      check(f, false, "a model file the attestation does not list")
    }

    // The recipe.
    if let data = FileManager.default.contents(atPath: path(Publish.recipeName)) {
      let text = String(decoding: data, as: UTF8.self)
      do {
        let recipe = try RecipeParser.parse(text, file: path(Publish.recipeName), name: recipeParams.name)
        let ok = recipe.hash == recipeParams.sha256
        check(
          "recipe hash", ok,
          ok
            ? "\(recipe.hash) as attested"
            : "the recipe's canonical hash is \(recipe.hash) but the attestation says \(recipeParams.sha256)")
      } catch {
        check("recipe hash", false, "\(Publish.recipeName) does not parse: \(error.localizedDescription)")
      }
    }
    let canonicalOK = Digest.sha256(recipeParams.canonical) == recipeParams.sha256
    check(
      "canonical recipe", canonicalOK,
      canonicalOK
        ? "SHA-256 of the attested canonical form is the recipe hash"
        : "the attested canonical form does not hash to the recipe hash")

    // The manifest.
    var manifest: RunRecord?
    if let data = FileManager.default.contents(atPath: path(Publish.manifestName)) {
      do {
        let m = try RunRecord.decode(data, source: Publish.manifestName)
        manifest = m
        var problems: [String] = []
        if m.recipeHash != recipeParams.sha256 { problems.append("recipe_hash \(m.recipeHash.prefix(12))") }
        if m.output.sha256 != outputSHA { problems.append("output sha256 \(m.output.sha256.prefix(12))") }
        if m.runID != att.predicate.runDetails.metadata.invocationId { problems.append("run_id \(m.runID)") }
        let deps = Dictionary(
          att.predicate.buildDefinition.resolvedDependencies.map { ($0.name, $0.digest["sha256"] ?? "") },
          uniquingKeysWith: { a, _ in a })
        let inputs = Dictionary(m.inputs.map { ($0.name, $0.sha256) }, uniquingKeysWith: { a, _ in a })
        if deps != inputs { problems.append("inputs \(inputs.keys.sorted().joined(separator: ", "))") }
        check(
          Publish.manifestName + " content", problems.isEmpty,
          problems.isEmpty
            ? "run \(m.runID), inputs and output agree with the attestation"
            : "differs from the attestation: \(problems.joined(separator: "; "))")
      } catch {
        check(Publish.manifestName + " content", false, error.localizedDescription)
      }
    }

    // The card names the same hashes.
    if let data = FileManager.default.contents(atPath: path(Publish.cardName)) {
      let card = String(decoding: data, as: UTF8.self)
      var missing: [String] = []
      if !card.hasPrefix("---\n") || !card.contains("base_model_relation: merge") { missing.append("the front matter") }
      if !card.contains(outputSHA) { missing.append("the output sha256") }
      if !card.contains(recipeParams.sha256) { missing.append("the recipe hash") }
      for d in att.predicate.buildDefinition.resolvedDependencies where !card.contains(d.digest["sha256"] ?? "-") {
        missing.append("input `\(d.name)`'s sha256")
      }
      for s in att.subject
      where s.annotations?[Attestation.roleKey] == "embedded-copy" && !card.contains(s.digest["sha256"] ?? "-") {
        missing.append("the embedded copy's sha256")
      }
      check(
        Publish.cardName, missing.isEmpty,
        missing.isEmpty ? "names the attested output, inputs and recipe hash" : "does not name \(missing.joined(separator: ", "))"
      )
    } else {
      check(Publish.cardName, false, "missing")
    }

    // An embedded copy holds the recorded tensors and points at this recipe and manifest.
    for s in att.subject where s.annotations?[Attestation.roleKey] == "embedded-copy" && exists(s.name) {
      do {
        let f = try SafeTensorsFile(path: path(s.name))
        var problems: [String] = []
        if f.metadata["mixlab.recipe_sha256"] != recipeParams.sha256 { problems.append("mixlab.recipe_sha256") }
        if f.metadata["mixlab.source_sha256"] != outputSHA { problems.append("mixlab.source_sha256") }
        if let text = FileManager.default.contents(atPath: path(Publish.recipeName)),
          f.metadata["mixlab.recipe"] != String(decoding: text, as: UTF8.self)
        {
          problems.append("mixlab.recipe (not \(Publish.recipeName))")
        }
        if let m = sha(Publish.manifestName), f.metadata["mixlab.manifest_sha256"] != m {
          problems.append("mixlab.manifest_sha256")
        }
        let scan = Scanner.scan(f, perTensor: false, scanNonFinite: false)
        let want = s.annotations?["mixlab.tensor_data_sha256"] ?? manifest?.output.tensorDataSHA256 ?? ""
        if scan.tensorDataSHA256 != want { problems.append("tensor data sha256 \(scan.tensorDataSHA256.prefix(12))") }
        check(
          s.name + " content", problems.isEmpty,
          problems.isEmpty
            ? "same tensor data as the recorded output; metadata names this recipe and manifest"
            : "does not match: \(problems.joined(separator: ", "))")
      } catch {
        check(s.name + " content", false, error.localizedDescription)
      }
    }

    var reproduce: [String] = []
    if !outputSHA.isEmpty {
      reproduce.append("in the workspace that recorded it: mixlab reproduce \(outputSHA.prefix(12))")
      reproduce.append(
        "anywhere: copy \(Publish.recipeName) to experiments/<name>/ of a mixlab workspace, put these inputs in experiments/<name>/models/, run `mixlab run experiments/<name>/\(Publish.recipeName)` and expect sha256 \(outputSHA)"
      )
      for d in att.predicate.buildDefinition.resolvedDependencies {
        reproduce.append("  \(d.name): sha256 \(d.digest["sha256"] ?? "?")  (\(d.annotations?["mixlab.path"] ?? ""))")
      }
    }
    return Outcome(folder: folder, ok: checks.allSatisfy(\.ok), checks: checks, reproduce: reproduce)
  }

  public static func text(_ o: Outcome) -> String {
    var lines: [String] = []
    for c in o.checks { lines.append("\(c.ok ? "ok  " : "FAIL") \(c.name): \(c.detail)") }
    let failed = o.checks.filter { !$0.ok }.count
    lines.append(o.ok ? "verified: every published file matches the attestation" : "NOT VERIFIED: \(failed) check(s) failed")
    if !o.reproduce.isEmpty {
      lines.append("to reproduce:")
      for r in o.reproduce { lines.append("  " + r) }
    }
    return lines.joined(separator: "\n")
  }
}
