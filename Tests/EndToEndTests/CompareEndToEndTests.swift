import Foundation
import Testing

/// `mixlab diff` and `mixlab distance` through the built binary, on synthetic models in a
/// workspace made by `mixlab init`.
@Suite("mixlab diff and distance, end to end")
struct CompareEndToEndTests {
  @Test("diff of files and runs (--json contract, --svg, --exit-code), distance with --inputs, errors")
  func compare() throws {
    let ws = try RunE2E.Space()
    try ws.synthSD1(count: 3, seed: 4, scale: "0.02")
    let a = "models/sd1-00.safetensors"
    let b = "models/sd1-01.safetensors"

    // Files: the JSON contract and a heatmap.
    let d = try RunE2E.mixlab("diff", a, b, "--json", "--svg", "diff.svg", in: ws.root)
    try #require(d.status == 0, "\(d.stderr)")
    let j = try d.json()
    let differing = try #require(j["tensors_differing"] as? [String])
    #expect(differing.count == 1130)
    #expect((j["only_in_a"] as? [String]) == [] && (j["only_in_b"] as? [String]) == [])
    let blocks = try #require(j["blocks"] as? [[String: Any]])
    #expect(blocks.count == 28)
    for row in blocks {
      #expect(row["block"] is String && row["rel_l2"] is Double && row["cosine"] is Double && row["max_abs"] is Double)
    }
    #expect(blocks.first?["block"] as? String == "BASE")
    let svg = try String(contentsOfFile: ws.root + "/diff.svg", encoding: .utf8)
    #expect(svg.hasPrefix("<?xml") && svg.contains("<svg") && svg.contains(">OUT11<"))

    // Text output and --exit-code.
    let text = try RunE2E.mixlab("diff", a, b, "--exit-code", in: ws.root)
    #expect(text.status == 1 && text.stdout.contains("block") && text.stdout.contains("rel_l2"))
    let same = try RunE2E.mixlab("diff", a, a, "--exit-code", in: ws.root)
    #expect(same.status == 0 && same.stdout.contains("1131 compared, 0 differ"), "\(same.stdout)\(same.stderr)")

    // Runs: a soup of the two models; its diff against model a by run hash.
    for (name, w) in [("soup", "[1, 1]"), ("tilt", "[3, 1]")] {
      try ws.recipe(
        "e", name,
        """
        mixlab: 1
        inputs:
          a: ../../\(a)
          b: ../../\(b)
        steps:
          mix:
            method: average
            models: [a, b]
            weights: \(w)
        output:
          from: mix
          dtype: f16

        """)
    }
    let run = try RunE2E.mixlab("run", "--json", "experiments/e", in: ws.root)
    try #require(run.status == 0, "\(run.stderr)")
    let runs = try #require(try run.json()["runs"] as? [[String: Any]])
    let soup = try #require(runs.first { $0["recipe"] as? String == "soup" }?["output_sha256"] as? String)
    let tilt = try #require(runs.first { $0["recipe"] as? String == "tilt" }?["output_sha256"] as? String)
    let rr = try RunE2E.mixlab("diff", String(soup.prefix(10)), String(tilt.prefix(10)), "--json", in: ws.root)
    try #require(rr.status == 0, "\(rr.stderr)")
    let rj = try rr.json()
    let changes = try #require((rj["recipe"] as? [String: Any])?["changes"] as? [[String: Any]])
    #expect(changes.map { $0["path"] as? String } == ["steps.mix.weights"])
    #expect((rj["a"] as? [String: Any])?["kind"] as? String == "run")
    let rt = try RunE2E.mixlab("diff", String(soup.prefix(10)), String(tilt.prefix(10)), in: ws.root)
    #expect(rt.stdout.contains("step mix: weights [1, 1] → [3, 1]"), "\(rt.stdout)")

    // The report embeds the map and the diff of each recipe.
    let report = try String(contentsOfFile: ws.root + "/artifacts/e/REPORT.md", encoding: .utf8)
    #expect(report.contains("(soup.map.svg)") && report.contains("(tilt.diff.svg)"))

    // Distance of a run with its inputs, and of plain files.
    let dist = try RunE2E.mixlab("distance", String(soup.prefix(10)), "--inputs", "--json", "--svg", "map.svg", in: ws.root)
    try #require(dist.status == 0, "\(dist.stderr)")
    let dj = try dist.json()
    let models = try #require(dj["models"] as? [[String: Any]])
    #expect(models.map { $0["name"] as? String } == ["soup", "a", "b"])
    #expect(models.map { $0["role"] as? String } == ["output", "reference", "input"])
    let comps = try #require(dj["components"] as? [[String: Any]])
    #expect(comps.map { $0["component"] as? String } == ["all", "unet", "clip_l", "vae"])
    let l2 = try #require(comps[0]["l2"] as? [[Double]])
    // The average sits halfway: ‖soup − a‖ ≈ ‖soup − b‖ ≈ ‖a − b‖ / 2 (f16 rounding aside).
    #expect(abs(l2[0][1] - l2[1][2] / 2) < 0.01 * l2[1][2] && abs(l2[0][2] - l2[1][2] / 2) < 0.01 * l2[1][2])
    #expect(FileManager.default.fileExists(atPath: ws.root + "/map.svg"))
    let plain = try RunE2E.mixlab(
      "distance", "models/sd1-00.safetensors", "models/sd1-01.safetensors", "models/sd1-02.safetensors", in: ws.root)
    #expect(plain.status == 0 && plain.stdout.contains("all: L2 distance") && plain.stdout.contains("outliers: none"))

    // Errors name what is wrong and exit non-zero.
    let missing = try RunE2E.mixlab("diff", a, "models/nope.safetensors", in: ws.root)
    #expect(missing.status != 0 && missing.stderr.contains("models/nope.safetensors"))
    let one = try RunE2E.mixlab("distance", a, in: ws.root)
    #expect(one.status != 0 && one.stderr.contains("at least two models"))
    let unknownRun = try RunE2E.mixlab("diff", "deadbeef", a, in: ws.root)
    #expect(unknownRun.status != 0 && unknownRun.stderr.contains("no recorded run matches"))
  }

  @Test("a soup of more inputs than the map places: the report compares with the reference only; --no-compare skips it")
  func manyInputs() throws {
    let ws = try RunE2E.Space()
    try ws.synthSD1(count: 18, seed: 9, scale: "0.01")
    let names = (1...17).map { String(format: "m%02d", $0) }
    let inputs = names.enumerated().map { "  \($1): ../../models/sd1-\(String(format: "%02d", $0 + 1)).safetensors" }
    for recipe in ["soup", "quick"] {
      try ws.recipe(
        "many", recipe,
        """
        mixlab: 1
        inputs:
        \(inputs.joined(separator: "\n"))
        steps:
          mix: {method: average, models: [\(names.joined(separator: ", "))]}
        output: {from: mix, dtype: \(recipe == "quick" ? "f32" : "f16")}

        """)
    }
    let run = try RunE2E.mixlab("run", "--json", "experiments/many/soup.yaml", in: ws.root)
    try #require(run.status == 0, "\(run.stderr)")
    let report = try String(contentsOfFile: ws.root + "/artifacts/many/REPORT.md", encoding: .utf8)
    #expect(report.contains("17 distinct inputs exceed the report's 8"), "\(report)")
    #expect(report.contains("(soup.map.svg)") && report.contains("(soup.diff.svg)"))
    let stored = try String(contentsOfFile: ws.root + "/artifacts/many/soup.compare.json", encoding: .utf8)
    #expect(stored.components(separatedBy: "\"role\"").count - 1 == 2, "output and reference only")
    let timings = try #require((try run.json()["runs"] as? [[String: Any]])?.first?["timings"] as? [String: Any])
    #expect(timings["compare_seconds"] is Double)

    let quick = try RunE2E.mixlab("run", "--no-compare", "experiments/many/quick.yaml", in: ws.root)
    try #require(quick.status == 0, "\(quick.stderr)")
    #expect(!FileManager.default.fileExists(atPath: ws.root + "/artifacts/many/quick.compare.json"))
  }

  @Test("the report's comparison, made from the merge's own sums, equals distance and diff read from the files")
  func fusedEqualsRead() throws {
    let ws = try RunE2E.Space()
    try ws.synthSD1(count: 3, seed: 12, scale: "0.02")
    // f32 output: the merge's values are the file's; the VAE is copied (read from the file).
    try ws.recipe(
      "f", "blend",
      """
      mixlab: 1
      inputs:
        a: ../../models/sd1-00.safetensors
        b: ../../models/sd1-01.safetensors
        c: ../../models/sd1-02.safetensors
      steps:
        mix: {method: average, models: [a, b, c], weights: [2, 1, 1]}
      output:
        from: mix
        dtype: f32
        assemble:
          - {components: [vae], from: c}

      """)
    let run = try RunE2E.mixlab("run", "--json", "experiments/f", in: ws.root)
    try #require(run.status == 0, "\(run.stderr)")
    let sha = try #require((try run.json()["runs"] as? [[String: Any]])?.first?["output_sha256"] as? String)
    let stored = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: ws.root + "/artifacts/f/blend.compare.json")))
        as? [String: Any])
    func near(_ x: Double, _ y: Double, _ what: String) {
      #expect(abs(x - y) <= 1e-5 * max(1, abs(y)), "\(what): \(x) vs \(y)")
    }
    // The map: every pairwise L2 per component, against a full read of the files.
    let dist = try RunE2E.mixlab("distance", String(sha.prefix(12)), "--inputs", "--json", in: ws.root)
    try #require(dist.status == 0, "\(dist.stderr)")
    let read = try #require(try dist.json()["components"] as? [[String: Any]])
    let fused = try #require((stored["distance"] as? [String: Any])?["components"] as? [[String: Any]])
    #expect(read.count == fused.count && read.count >= 3)
    for (r, f) in zip(read, fused) {
      let rl = try #require(r["l2"] as? [[Double]])
      let fl = try #require(f["l2"] as? [[Double]])
      for i in rl.indices { for j in rl[i].indices { near(fl[i][j], rl[i][j], "\(r["component"] ?? "") l2[\(i)][\(j)]") } }
    }
    // The per-block diff against the reference input `a`, against `mixlab diff` of the files.
    let diff = try RunE2E.mixlab("diff", "models/sd1-00.safetensors", "artifacts/f/blend.safetensors", "--json", in: ws.root)
    try #require(diff.status == 0, "\(diff.stderr)")
    let readBlocks = try #require(try diff.json()["blocks"] as? [[String: Any]])
    let fusedBlocks = try #require(stored["blocks"] as? [[String: Any]])
    #expect(readBlocks.count == fusedBlocks.count)
    let byName = Dictionary(uniqueKeysWithValues: fusedBlocks.compactMap { b in (b["block"] as? String).map { ($0, b) } })
    for r in readBlocks {
      let name = try #require(r["block"] as? String)
      let f = try #require(byName[name], "block \(name)")
      let fm = (f["metrics"] as? [String: Any]) ?? f
      for metric in ["rel_l2", "cosine", "max_abs"] {
        let x = try #require(fm[metric] as? Double, "\(name) \(metric) in \(f)")
        let y = try #require(r[metric] as? Double)
        near(x, y, "\(name) \(metric)")
      }
    }
  }
}
