import Foundation
import MixLab
import Provenance
import Recipes
import SafeTensors
import Testing

/// Issue 9: weight-space metrics recorded with every run, external evaluators, sweeps.
@Suite("Metrics, evaluators and sweeps")
struct MetricsEvaluationTests {
  /// Every F16/F32 tensor of `path` as Double, by name.
  func tensors(_ path: String) throws -> [String: [Double]] {
    let f = try SafeTensorsFile(path: path)
    var out: [String: [Double]] = [:]
    for t in f.tensors where t.dtype.isFloat {
      var v = [Double](repeating: 0, count: t.elementCount)
      v.withUnsafeMutableBufferPointer { f.read(t, elements: 0..<t.elementCount, into: $0.baseAddress!) }
      out[t.name] = v
    }
    return out
  }

  func metrics(_ t: TempWorkspace, recipe: String) throws -> [String: Double] {
    let ws = Workspace(root: t.root)
    let run = try #require(try ws.index().runs().first { $0.recipeName == recipe })
    var out: [String: Double] = [:]
    for m in try ws.index().metrics(runID: run.runID) { out[m.name + "|" + m.scope] = m.value }
    return out
  }

  @Test("relative L2, cosine and norm ratio against each input and the base match a direct computation")
  func weightMetrics() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe(
      "e", "ws.yaml",
      """
      mixlab: 1
      inputs: {a: \(m[1]), b: \(m[2])}
      steps: {w: {method: weighted_sum, models: [a, b], alpha: 0.3}}
      output: {from: w, dtype: f32}
      """)
    let r = try #require(try t.run("experiments/e").first)
    let got = try metrics(t, recipe: "ws")
    let out = try tensors(t.root + "/" + r.artifact)
    let a = try tensors(m[1])
    let b = try tensors(m[2])
    // Every merged (float) tensor counts: sums over all of them.
    var oo = 0.0, aa = 0.0, bb = 0.0, oa = 0.0, ob = 0.0, da = 0.0, db = 0.0
    var unetDA = 0.0, unetAA = 0.0
    for (k, o) in out {
      guard let x = a[k], let y = b[k] else { continue }
      for i in o.indices {
        oo += o[i] * o[i]
        aa += x[i] * x[i]
        bb += y[i] * y[i]
        oa += o[i] * x[i]
        ob += o[i] * y[i]
        da += (o[i] - x[i]) * (o[i] - x[i])
        db += (o[i] - y[i]) * (o[i] - y[i])
        if k.hasPrefix("model.diffusion_model.") {
          unetDA += (o[i] - x[i]) * (o[i] - x[i])
          unetAA += x[i] * x[i]
        }
      }
    }
    func close(_ key: String, _ expected: Double) {
      let v = got[key]
      #expect(v != nil && abs(v! - expected) <= 1e-6 * max(1, abs(expected)), "\(key): \(String(describing: v)) vs \(expected)")
    }
    close("rel_l2@a|overall", (da / aa).squareRoot())
    close("rel_l2@b|overall", (db / bb).squareRoot())
    close("cosine@a|overall", oa / (oo * aa).squareRoot())
    close("cosine@b|overall", ob / (oo * bb).squareRoot())
    close("rel_l2|overall", (da / aa).squareRoot())  // the base is `a`, the reference input
    close("norm_ratio|overall", (oo / aa).squareRoot())
    close("rel_l2|component:unet", (unetDA / unetAA).squareRoot())
    #expect(got["nonfinite|overall"] == 0)
    #expect(got["rel_l2@a|block:IN04"] != nil && got["cosine|block:M00"] != nil)
  }

  @Test("TIES reports the kept fraction and the sign agreement of the kept entries")
  func taskMetrics() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe(
      "e", "ties.yaml",
      """
      mixlab: 1
      inputs: {base: \(m[0]), a: \(m[1]), b: \(m[2]), c: \(m[3])}
      steps: {t: {method: ties, base: base, models: [a, b, c], density: 0.4}}
      output: {from: t}
      """)
    _ = try t.run("experiments/e")
    let got = try metrics(t, recipe: "ties")
    let kept = try #require(got["kept_fraction|overall"])
    #expect(abs(kept - 0.4) < 0.01, "exact top-k keeps 40 % of each delta: \(kept)")
    let agree = try #require(got["sign_agreement|overall"])
    #expect(agree > 0.5 && agree < 1)
  }

  @Test("evaluators: numbers become metrics; failures, timeouts and bad output are recorded; the merge stands")
  func evaluators() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    let script = t.root + "/experiments/e/score.sh"
    try t.recipe("e", "score.sh", "#!/bin/sh\necho \"scoring $1\"\necho '{\"score\": 0.75, \"flag\": true, \"name\": \"x\"}'\n")
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
    try t.recipe(
      "e", "evaluators.yaml",
      """
      mixlab: 1
      evaluate:
        - name: good
          command: ["{experiment}/score.sh", "{artifact}"]
        - name: broken
          command: "echo oops >&2; exit 3"
        - name: slow
          command: "sleep 5"
          timeout: 0.5
        - name: garbage
          command: "echo not json"
      """)
    try t.recipe(
      "e", "soup.yaml",
      """
      mixlab: 1
      inputs: {a: \(m[1]), b: \(m[2])}
      steps: {s: {method: average, models: [a, b]}}
      output: {from: s}
      """)
    let r = try #require(try t.run("experiments/e").first)
    #expect(!r.reused && FileManager.default.fileExists(atPath: t.root + "/" + r.artifact))
    let got = try metrics(t, recipe: "soup")
    #expect(got["score|evaluator:good"] == 0.75)
    #expect(got["flag|evaluator:good"] == nil, "booleans are not metrics")
    let record = try History.find(r.outputSHA256!, workspace: Workspace(root: t.root))
    let byName = Dictionary(uniqueKeysWithValues: record.evaluations.map { ($0.name, $0) })
    #expect(byName["good"]?.status == "ok")
    #expect(byName["good"]?.files["experiments/e/score.sh"] == Digest.sha256(try Data(contentsOf: URL(fileURLWithPath: script))))
    #expect(byName["good"]?.command == ["{experiment}/score.sh", "{artifact}"], "the command is recorded unexpanded")
    #expect(byName["broken"]?.status == "failed" && byName["broken"]?.exitCode == 3)
    #expect(byName["broken"]?.message?.contains("oops") == true)
    #expect(byName["slow"]?.status == "timeout")
    #expect(byName["garbage"]?.status == "invalid_output")
    // The metrics table shows the evaluator's number.
    let table = try MetricsTable.build(workspace: Workspace(root: t.root), experiment: "e")
    #expect(table.columns.contains("score") && table.rows.first?.metrics["score"] == 0.75)
  }

  @Test("run --evaluate scores reused outputs and records the result")
  func evaluateReused() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe(
      "e", "soup.yaml",
      """
      mixlab: 1
      inputs: {a: \(m[1]), b: \(m[2])}
      steps: {s: {method: average, models: [a, b]}}
      output: {from: s}
      """)
    _ = try t.run("experiments/e")
    try t.recipe("e", "evaluators.yaml", "mixlab: 1\nevaluate: [{name: later, command: \"echo '{\\\"n\\\": 2}'\"}]\n")
    let reused = try #require(try t.run("experiments/e") { $0.evaluate = true }.first)
    #expect(reused.reused)
    #expect(try metrics(t, recipe: "soup")["n|evaluator:later"] == 2)
  }

  @Test("sweeps expand into named points with the listed, ranged and sampled values")
  func sweepExpansion() throws {
    let text = """
      mixlab: 1
      inputs: {a: a.safetensors, b: b.safetensors}
      steps:
        w:
          method: weighted_sum
          models: [a, b]
          alpha: {sweep: {from: 0, to: 1, steps: 3}}
      output: {from: w}
      """
    let points = try #require(try Sweep.expand(text, file: "/x/blend.yaml", name: "blend"))
    #expect(points.map(\.name) == ["blend-00", "blend-01", "blend-02"])
    #expect(points.map { $0.sweepPoint!.values[0].value } == [0, 0.5, 1])
    #expect(Set(points.map(\.hash)).count == 3)
    // A plain recipe with the same value has the same hash as the point.
    let plain = try RecipeParser.parse(
      text.replacingOccurrences(of: "{sweep: {from: 0, to: 1, steps: 3}}", with: "0.5"), file: "/x/p.yaml")
    #expect(plain.hash == points[1].hash)

    let sampled = text.replacingOccurrences(
      of: "{sweep: {from: 0, to: 1, steps: 3}}",
      with: "{sweep: {blocks: {IN04: [0, 1], M00: [0.5, 1]}, samples: 5, seed: 2, default: 0.3}}")
    let a = try #require(try Sweep.expand(sampled, file: "/x/s.yaml", name: "s"))
    let b = try #require(try Sweep.expand(sampled, file: "/x/s.yaml", name: "s"))
    #expect(a.count == 5 && a.map(\.hash) == b.map(\.hash), "seeded samples are deterministic")
    for p in a {
      let v = Dictionary(uniqueKeysWithValues: p.sweepPoint!.values.map { ($0.path, $0.value) })
      #expect((0...1).contains(v["steps.w.alpha.blocks.IN04"]!) && (0.5...1).contains(v["steps.w.alpha.blocks.M00"]!))
    }
    // Two sweeps combine as a product; too many points is an error.
    let two = text.replacingOccurrences(of: "alpha: {sweep: {from: 0, to: 1, steps: 3}}", with: "alpha: {sweep: [0.1, 0.2]}")
      .replacingOccurrences(of: "models: [a, b]", with: "models: [a, b]")
    #expect(try Sweep.expand(two, file: "/x/t.yaml", name: "t")?.count == 2)
    let huge = text.replacingOccurrences(of: "steps: 3", with: "steps: 1001")
    #expect(throws: RecipeError.self) { try Sweep.expand(huge, file: "/x/h.yaml", name: "h") }
    #expect(
      try Sweep.expand(
        text.replacingOccurrences(of: "{sweep: {from: 0, to: 1, steps: 3}}", with: "0.4"), file: "/x/n.yaml", name: "n") == nil)
  }

  @Test("a sweep runs one recorded run per point, reuses them, and the report finds the best point")
  func sweepRunAndReport() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    // Score: closeness of alpha to 0.6, read from the point's recorded recipe hash… simpler:
    // the evaluator scores by the output's cosine with b, which grows with alpha.
    try t.recipe(
      "e", "blend.yaml",
      """
      mixlab: 1
      inputs: {a: \(m[1]), b: \(m[2])}
      steps: {w: {method: weighted_sum, models: [a, b], alpha: {sweep: [0.2, 0.6, 0.9]}}}
      output: {from: w}
      """)
    let first = try t.run("experiments/e")
    #expect(first.map(\.recipe) == ["blend-00", "blend-01", "blend-02"] && first.allSatisfy { !$0.reused })
    #expect(try t.run("experiments/e/blend.yaml").allSatisfy(\.reused))
    let exp = try Experiment.load(t.root + "/experiments/e")
    let results = try SweepReport.run(experiment: exp, workspace: Workspace(root: t.root), metric: "cosine@b", minimize: nil)
    let r = try #require(results.first)
    #expect(r.best == "blend-02", "cosine with b is highest at alpha 0.9")
    #expect(r.plots.count == 1 && FileManager.default.fileExists(atPath: t.root + "/" + r.plots[0]))
    let svg = try String(contentsOfFile: t.root + "/" + r.plots[0], encoding: .utf8)
    #expect(svg.hasPrefix("<svg") && svg.contains("</svg>") && svg.contains("best"))
    let best = try RecipeParser.load(t.root + "/" + r.bestRecipe!)
    #expect(best.hash == exp.recipes.first { $0.name == "blend-02" }!.hash, "the best recipe is the point, as a plain recipe")
    let report = try String(contentsOfFile: t.root + "/artifacts/e/REPORT.md", encoding: .utf8)
    #expect(report.contains("## Sweeps") && report.contains("sweeps/blend."))
  }
}
