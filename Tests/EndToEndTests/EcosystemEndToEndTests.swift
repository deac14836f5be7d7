import Foundation
import SafeTensors
import Testing

/// `mixlab publish`, `verify` and `import` through the built binary.
@Suite("End to end: publish, verify, import")
struct EcosystemEndToEndTests {
  func mixlab(_ args: [String], in cwd: String) throws -> RunE2E.Result {
    let bin = try #require(RunE2E.binary, "build the mixlab binary first (swift build)")
    return try RunE2E.exec(bin, args, in: cwd)
  }

  func workspace() throws -> String {
    let dir = FileManager.default.temporaryDirectory.path + "/mixlab-e2e-eco-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    #expect(try mixlab(["init", "."], in: dir).status == 0)
    #expect(
      try mixlab(["synth", "--arch", "sd1", "--count", "3", "--seed", "4", "--scale", "0.02", "--out", "models"], in: dir).status
        == 0)
    return dir
  }

  @Test("run → publish --model embedded → verify exits 0; a flipped byte makes verify exit 1 naming the file")
  func publishVerify() throws {
    let dir = try workspace()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.createDirectory(atPath: dir + "/experiments/e", withIntermediateDirectories: true)
    try """
    mixlab: 1
    inputs:
      base: ../../models/sd1-00.safetensors
      a: \(dir)/models/sd1-01.safetensors
      b: ../../models/sd1-02.safetensors
    steps:
      merged: {method: ties, base: base, models: [a, b], density: 0.5}
    output: {from: merged}
    """.write(toFile: dir + "/experiments/e/ties.yaml", atomically: true, encoding: .utf8)
    let run = try mixlab(["run", "experiments/e", "--json"], in: dir)
    #expect(run.status == 0, "\(run.stderr)")
    let sha = try #require(((try run.json()["runs"] as? [[String: Any]])?.first?["output_sha256"]) as? String)

    let pub = try mixlab(["publish", String(sha.prefix(10)), "--to", "out", "--model", "embedded"], in: dir)
    #expect(pub.status == 0, "\(pub.stderr)")
    #expect(pub.stdout.contains("ties.mixlab.safetensors"))
    for name in ["README.md", "recipe.yaml", "manifest.json", "provenance.intoto.json"] {
      let text = try String(contentsOfFile: dir + "/out/" + name, encoding: .utf8)
      #expect(!text.contains(dir), "\(name) holds the workspace path")
    }
    let ok = try mixlab(["verify", "out"], in: dir)
    #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
    #expect(ok.stdout.contains("verified") && ok.stdout.contains("mixlab reproduce \(sha.prefix(12))"))

    // A reproduce from the published record's folder still works in the workspace.
    let again = try mixlab(["reproduce", String(sha.prefix(12))], in: dir)
    #expect(again.status == 0, "\(again.stdout)\(again.stderr)")

    let path = dir + "/out/ties.mixlab.safetensors"
    var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    bytes[bytes.count - 5] ^= 0x01
    try bytes.write(to: URL(fileURLWithPath: path))
    let bad = try mixlab(["verify", "out", "--json"], in: dir)
    #expect(bad.status == 1)
    let checks = try #require(try bad.json()["checks"] as? [[String: Any]])
    let failed = checks.filter { ($0["ok"] as? Bool) == false }.compactMap { $0["name"] as? String }
    #expect(failed.contains("ties.mixlab.safetensors"), "\(bad.stdout)")
  }

  @Test("import a mergekit config (a hub id mapped with --model), run it, and get a TIES merge")
  func importMergekit() throws {
    let dir = try workspace()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try """
    merge_method: ties
    base_model: models/sd1-00.safetensors
    models:
      - model: org/anime
        parameters: {weight: 1.0, density: 0.6}
      - model: models/sd1-02.safetensors
        parameters: {weight: 0.5, density: 0.6}
    dtype: float32
    out_dtype: float16
    """.write(toFile: dir + "/mk.yaml", atomically: true, encoding: .utf8)
    let missing = try mixlab(["import", "mk.yaml", "--out", "experiments/mk/ties.yaml"], in: dir)
    #expect(missing.status != 0)
    #expect(missing.stderr.contains("org/anime") && missing.stderr.contains("--model"), "\(missing.stderr)")
    let imp = try mixlab(
      ["import", "mk.yaml", "--out", "experiments/mk/ties.yaml", "--model", "org/anime=models/sd1-01.safetensors"], in: dir)
    #expect(imp.status == 0, "\(imp.stderr)")
    let recipe = try String(contentsOfFile: dir + "/experiments/mk/ties.yaml", encoding: .utf8)
    #expect(recipe.contains("method: ties") && recipe.contains("path: \"../../models/sd1-01.safetensors\""))
    let run = try mixlab(["run", "experiments/mk"], in: dir)
    #expect(run.status == 0, "\(run.stderr)")
    #expect(FileManager.default.fileExists(atPath: dir + "/artifacts/mk/ties.safetensors"))
  }
}
