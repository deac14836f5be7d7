import Foundation
import MixLab
import SafeTensors
import Testing

/// `mixlab publish` and `mixlab verify` on a real run in a temporary workspace.
@Suite("Publish and verify")
struct PublishTests {
  /// A soup whose recipe names one input by absolute path, with notes full of local details.
  func recorded(_ t: TempWorkspace) throws -> RunResult {
    let m = try t.copyModels()
    let home = ProcessInfo.processInfo.environment["HOME"] ?? "/home/someone"
    let user = ProcessInfo.processInfo.environment["USER"] ?? NSUserName()
    let host = ProcessInfo.processInfo.hostName
    try t.recipe(
      "e", "soup.yaml",
      """
      # merged from \(m[1]) on \(host) by \(user)
      mixlab: 1
      description: A soup for \(home)/somewhere
      inputs:
        a: \(m[1])
        b:
          path: \(m[2])
      steps:
        soup: {method: average, models: [a, b], weights: [1, 3]}
      output:
        from: soup
        metadata: {license: apache-2.0}
      """)
    try "Tried on \(host) as \(user); files in \(t.root)/models and \(home)/Downloads/x.safetensors\n".write(
      toFile: t.root + "/experiments/e/NOTES.md", atomically: true, encoding: .utf8)
    return try #require(try t.run("experiments/e").first)
  }

  func publish(_ t: TempWorkspace, _ sha: String, _ dir: String, model: Publish.ModelCopy = .both) throws -> Publish.Outcome {
    var o = Publish.Options()
    o.model = model
    return try Publish.run(prefix: String(sha.prefix(12)), to: dir, workspace: t.workspace, options: o)
  }

  @Test("publish writes card, recipe, manifest, attestation and both model files; verify passes")
  func roundTrip() throws {
    let t = try TempWorkspace()
    let run = try recorded(t)
    let sha = try #require(run.outputSHA256)
    let dir = t.root + "/published"
    let outcome = try publish(t, sha, dir)
    #expect(
      outcome.files.map(\.name) == [
        "README.md", "manifest.json", "provenance.intoto.json", "recipe.yaml", "soup.mixlab.safetensors", "soup.safetensors",
      ])
    #expect(try fileSHA256(dir + "/soup.safetensors") == sha)
    let embedded = try fileSHA256(dir + "/soup.mixlab.safetensors")
    #expect(embedded != sha, "the embedded copy has other metadata, so another hash")

    // The attestation: statement type, subjects (both model files), dependencies, recipe.
    let att =
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/provenance.intoto.json")))
      as! [String: Any]
    #expect(att["_type"] as? String == "https://in-toto.io/Statement/v1")
    #expect(att["predicateType"] as? String == "https://slsa.dev/provenance/v1")
    let subjects = att["subject"] as! [[String: Any]]
    #expect(subjects.map { ($0["digest"] as! [String: String])["sha256"]! } == [sha, embedded])
    let predicate = att["predicate"] as! [String: Any]
    let build = predicate["buildDefinition"] as! [String: Any]
    let deps = build["resolvedDependencies"] as! [[String: Any]]
    #expect(deps.map { $0["name"] as! String } == ["a", "b"])
    let recipe = (build["externalParameters"] as! [String: Any])["recipe"] as! [String: Any]
    #expect(recipe["sha256"] as? String == run.recipeHash)
    let meta = (predicate["runDetails"] as! [String: Any])["metadata"] as! [String: Any]
    #expect(meta["invocationId"] as? String == run.runID)
    #expect(meta["startedOn"] != nil && meta["finishedOn"] != nil)
    #expect(!String(decoding: try JSONSerialization.data(withJSONObject: build), as: UTF8.self).contains("startedOn"))

    // The card's front matter.
    let card = try String(contentsOfFile: dir + "/README.md", encoding: .utf8)
    #expect(card.hasPrefix("---\nbase_model:\n- \"a\"\n- \"b\"\nbase_model_relation: merge\ntags:\n- merge\n- mixlab\n"))
    #expect(card.contains("license: \"apache-2.0\""))
    #expect(card.contains("mixlab reproduce \(sha.prefix(12))"))

    // The embedded copy: same tensor data, recipe and manifest hash in the metadata, A1111 keys.
    let f = try SafeTensorsFile(path: dir + "/soup.mixlab.safetensors")
    #expect(f.metadata["mixlab.recipe_sha256"] == run.recipeHash)
    #expect(f.metadata["mixlab.manifest_sha256"] == (try fileSHA256(dir + "/manifest.json")))
    #expect(f.metadata["mixlab.source_sha256"] == sha)
    #expect(f.metadata["sd_merge_recipe"]?.contains("\"primary_model_hash\"") == true)
    #expect(f.metadata["sd_merge_models"] != nil)
    #expect(
      Scanner.scan(f, perTensor: false).tensorDataSHA256
        == Scanner.scan(try SafeTensorsFile(path: dir + "/soup.safetensors"), perTensor: false).tensorDataSHA256)

    // The published recipe parses to the recorded hash, with pinned inputs under models/.
    let text = try String(contentsOfFile: dir + "/recipe.yaml", encoding: .utf8)
    #expect(text.contains("path: \"models/sd1-01.safetensors\", sha256: "))
    #expect(text.contains("path: \"models/sd1-02.safetensors\"\n    sha256: "))

    let v = try Verify.run(folder: dir)
    #expect(v.ok, "\(Verify.text(v))")
    #expect(v.reproduce.first?.contains("mixlab reproduce \(sha.prefix(12))") == true)
  }

  @Test("the embedded copy imports back into the same recipe, which rebuilds the same bytes from the inputs")
  func embeddedRoundTrip() throws {
    let t = try TempWorkspace()
    let run = try recorded(t)
    let dir = t.root + "/published"
    _ = try publish(t, run.outputSHA256!, dir, model: .embedded)
    // A downloader puts the inputs next to the model, under models/ as the recipe names them.
    try FileManager.default.createDirectory(atPath: dir + "/models", withIntermediateDirectories: true)
    for m in try Models.sd1 {
      try FileManager.default.copyItem(atPath: m, toPath: dir + "/models/" + (m as NSString).lastPathComponent)
    }
    let (out, yaml) = try importAndRun(t, source: dir + "/soup.mixlab.safetensors", experiment: "back", name: "soup")
    #expect(yaml.contains("from the mixlab recipe embedded in soup.mixlab.safetensors"))
    #expect(try fileSHA256(out) == run.outputSHA256)
  }

  @Test("nothing published holds the workspace path, the home folder, the user or the host name")
  func noLocalDetails() throws {
    let t = try TempWorkspace()
    let run = try recorded(t)
    let dir = FileManager.default.temporaryDirectory.path + "/mixlab-pub-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    _ = try publish(t, run.outputSHA256!, dir)
    let home = ProcessInfo.processInfo.environment["HOME"] ?? ""
    let user = ProcessInfo.processInfo.environment["USER"] ?? NSUserName()
    let host = ProcessInfo.processInfo.hostName
    for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
      var text: String
      if name.hasSuffix(".safetensors") {
        let f = try SafeTensorsFile(path: dir + "/" + name)
        text = f.metadata.map { "\($0.key)=\($0.value)" }.joined(separator: "\n") + f.tensors.map(\.name).joined()
      } else {
        text = try String(contentsOfFile: dir + "/" + name, encoding: .utf8)
      }
      #expect(!text.contains(t.root), "\(name) names the workspace")
      #expect(!text.contains(dir), "\(name) names the publish folder")
      if home.count > 1 { #expect(!text.contains(home), "\(name) names $HOME") }
      for word in [user, host] where word.count >= 2 {
        #expect(!containsWord(text, word), "\(name) names `\(word)`")
      }
    }
  }

  @Test("the same record publishes to the same bytes")
  func deterministic() throws {
    let t = try TempWorkspace()
    let run = try recorded(t)
    let a = try publish(t, run.outputSHA256!, t.root + "/pub-a")
    let b = try publish(t, run.outputSHA256!, t.root + "/pub-b")
    #expect(a.files == b.files)
  }

  @Test("verify names a tampered model file, an edited recipe and an unlisted model, and exits with failures")
  func tampered() throws {
    let t = try TempWorkspace()
    let run = try recorded(t)
    let dir = t.root + "/published"
    _ = try publish(t, run.outputSHA256!, dir)
    // Flip one byte of tensor data in the original copy.
    let h = try #require(FileHandle(forUpdatingAtPath: dir + "/soup.safetensors"))
    let size = try h.seekToEnd()
    try h.seek(toOffset: size - 3)
    let byte = try h.read(upToCount: 1)![0]
    try h.seek(toOffset: size - 3)
    try h.write(contentsOf: Data([byte ^ 0x40]))
    try h.close()
    var v = try Verify.run(folder: dir)
    #expect(!v.ok)
    #expect(v.checks.filter { !$0.ok }.map(\.name) == ["soup.safetensors"])

    // Editing the recipe changes its file hash and, when the change matters, its recipe hash.
    let recipe = dir + "/recipe.yaml"
    let text = try String(contentsOfFile: recipe, encoding: .utf8).replacingOccurrences(
      of: "weights: [1, 3]", with: "weights: [1, 2]")
    try text.write(toFile: recipe, atomically: true, encoding: .utf8)
    try Data().write(to: URL(fileURLWithPath: dir + "/extra.safetensors"))
    v = try Verify.run(folder: dir)
    let failed = Set(v.checks.filter { !$0.ok }.map(\.name))
    #expect(
      failed == ["soup.safetensors", "recipe.yaml", "recipe hash", "extra.safetensors", "soup.mixlab.safetensors content"],
      "\(Verify.text(v))")
  }

  @Test("publishing into a non-empty folder needs --force; an unknown hash is a clear error")
  func folderAndHash() throws {
    let t = try TempWorkspace()
    let run = try recorded(t)
    let dir = t.root + "/published"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try "x".write(toFile: dir + "/keep.txt", atomically: true, encoding: .utf8)
    #expect {
      _ = try publish(t, run.outputSHA256!, dir, model: .none)
    } throws: { message($0).contains("not empty") }
    var o = Publish.Options()
    o.force = true
    _ = try Publish.run(prefix: String(run.outputSHA256!.prefix(12)), to: dir, workspace: t.workspace, options: o)
    #expect(FileManager.default.fileExists(atPath: dir + "/keep.txt"))
    #expect(try Verify.run(folder: dir).ok)
    #expect {
      _ = try Publish.run(prefix: "ffffffffff", to: t.root + "/p2", workspace: t.workspace, options: o)
    } throws: { message($0).contains("no recorded run matches") }
  }
}

/// True when `word` occurs in `text` not preceded or followed by a letter, digit or `_`.
func containsWord(_ text: String, _ word: String) -> Bool {
  let chars = Array(text.unicodeScalars)
  let w = Array(word.unicodeScalars)
  func isWord(_ u: Unicode.Scalar) -> Bool { CharacterSet.alphanumerics.contains(u) || u == "_" }
  guard w.count <= chars.count else { return false }
  for i in 0...(chars.count - w.count) where Array(chars[i..<(i + w.count)]) == w {
    let before = i > 0 ? isWord(chars[i - 1]) : false
    let after = i + w.count < chars.count ? isWord(chars[i + w.count]) : false
    if !before && !after { return true }
  }
  return false
}
