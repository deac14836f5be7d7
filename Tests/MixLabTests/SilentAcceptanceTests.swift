import Foundation
import MixLab
import Provenance
import Recipes
import Testing

/// Issue 16 item 4: commands that used to accept a mistake silently (an empty table, exit 0)
/// now say what is wrong; evaluators declare which way their metrics point.
@Suite("Silent acceptance: metrics, sweeps, evaluators, unused inputs")
struct SilentAcceptanceTests {
  /// A workspace with experiment `e`: two weighted sums scored by an evaluator whose metric
  /// `dist` is a distance (lower is better) although its name says nothing.
  func scored(minimize: Bool = true) throws -> TempWorkspace {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    let direction = minimize ? "\n    minimize: [dist]" : ""
    try t.recipe(
      "e", "evaluators.yaml",
      """
      mixlab: 1
      evaluate:
        - name: judge
          command: "echo '{\\"dist\\": '$(basename {artifact} .safetensors | tr -cd 0-9)'}'"\(direction)
      """)
    for (name, alpha) in [("w1", 0.2), ("w2", 0.7)] {
      try t.recipe(
        "e", "\(name).yaml",
        """
        mixlab: 1
        inputs: {a: \(m[1]), b: \(m[2])}
        steps: {w: {method: weighted_sum, models: [a, b], alpha: \(alpha)}}
        output: {from: w}
        """)
    }
    _ = try t.run("experiments/e")
    return t
  }

  @Test("metrics takes an experiment folder as run does, and refuses an unknown experiment naming the known ones")
  func experimentByPathOrName() throws {
    let t = try scored()
    let ws = Workspace(root: t.root)
    let byName = try MetricsTable.build(workspace: ws, experiment: "e")
    #expect(byName.rows.count == 2)
    let byPath = try MetricsTable.build(workspace: ws, experiment: t.root + "/experiments/e")
    #expect(byPath.rows.map(\.recipe) == byName.rows.map(\.recipe))
    let byFile = try MetricsTable.build(workspace: ws, experiment: t.root + "/experiments/e/w1.yaml")
    #expect(byFile.rows.count == 2)
    let e = #expect(throws: MixLabError.self) { try MetricsTable.build(workspace: ws, experiment: "nosuchexp") }
    #expect(e.map(message)?.contains("no experiment `nosuchexp`") == true)
    #expect(e.map(message)?.contains("experiments: e") == true)
  }

  @Test("metrics --sort and --metric refuse a metric nobody recorded, listing the recorded ones")
  func unknownMetric() throws {
    let t = try scored()
    let ws = Workspace(root: t.root)
    let e = #expect(throws: MixLabError.self) { try MetricsTable.build(workspace: ws, experiment: "e", sort: "bogus") }
    #expect(e.map(message)?.contains("no metric `bogus`") == true)
    #expect(e.map(message)?.contains("dist") == true)
    #expect(throws: MixLabError.self) { try MetricsTable.build(workspace: ws, experiment: "e", metrics: ["cosin"]) }
    #expect(throws: MixLabError.self) { try MetricsTable.build(workspace: ws, experiment: "e", minimize: true) }
  }

  @Test("an evaluator's declared direction ranks its metric; --minimize overrides the sort metric's direction")
  func declaredDirection() throws {
    let t = try scored()
    let ws = Workspace(root: t.root)
    // dist = the digits of the artifact's name: w1 → 1, w2 → 2.
    let declared = try MetricsTable.build(workspace: ws, experiment: "e", sort: "dist")
    #expect(declared.rows.map(\.recipe) == ["w1", "w2"], "minimize: [dist] puts the smaller distance first")
    #expect(declared.best["dist"] == "w1")
    #expect(declared.lowerIsBetter.contains("dist"))
    #expect(MetricsTable.text(declared).contains("lower is better for dist"))
    let flipped = try MetricsTable.build(workspace: ws, experiment: "e", sort: "dist", minimize: false)
    #expect(flipped.rows.map(\.recipe) == ["w2", "w1"])
    #expect(flipped.best["dist"] == "w2")

    let undeclared = try scored(minimize: false)
    let byName = try MetricsTable.build(workspace: Workspace(root: undeclared.root), experiment: "e", sort: "dist")
    #expect(byName.rows.map(\.recipe) == ["w2", "w1"], "without a declaration an unknown name counts as higher-is-better")
  }

  @Test("a failing evaluator's record and message give its exit status and standard error")
  func failedEvaluatorSaysWhy() throws {
    let silent = Evaluators.failureMessage(reason: .exit, status: 3, stderrTail: "", command: "/bin/sh")
    #expect(silent == "exit status 3; it wrote nothing to standard error")
    let missing = Evaluators.failureMessage(reason: .exit, status: 127, stderrTail: "env: nope: No such file", command: "nope")
    #expect(missing.contains("exit status 127 (command not found: nope)") && missing.contains("No such file"))
    #expect(Evaluators.failureMessage(reason: .uncaughtSignal, status: 9, stderrTail: "", command: "x").hasPrefix("killed by signal 9"))

    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe(
      "e", "soup.yaml",
      """
      mixlab: 1
      inputs: {a: \(m[1]), b: \(m[2])}
      steps: {s: {method: average, models: [a, b]}}
      output: {from: s}
      evaluate: [{name: quiet, command: "exit 4"}]
      """)
    let r = try #require(try t.run("experiments/e").first)
    let record = try History.find(r.outputSHA256!, workspace: Workspace(root: t.root))
    let quiet = try #require(record.evaluations.first)
    #expect(quiet.status == "failed" && quiet.exitCode == 4)
    #expect(quiet.message == "exit status 4; it wrote nothing to standard error")
  }

  @Test("sweep report --metric refuses a metric nobody recorded")
  func sweepUnknownMetric() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe(
      "s", "sw.yaml",
      """
      mixlab: 1
      inputs: {a: \(m[1]), b: \(m[2])}
      steps: {w: {method: weighted_sum, models: [a, b], alpha: {sweep: [0.2, 0.6]}}}
      output: {from: w}
      """)
    _ = try t.run("experiments/s")
    let exp = try Experiment.load(t.root + "/experiments/s")
    let ws = Workspace(root: t.root)
    let e = #expect(throws: MixLabError.self) {
      try SweepReport.run(experiment: exp, workspace: ws, metric: "bogus", minimize: nil)
    }
    #expect(e.map(message)?.contains("no metric `bogus`") == true)
    #expect(e.map(message)?.contains("cosine") == true)
    #expect(try SweepReport.run(experiment: exp, workspace: ws, metric: "cosine", minimize: nil).first?.best != nil)
  }

  @Test("an input or step nothing reads is warned about at its line and is no parent of the mix; an evaluator's reference input is neither")
  func unusedInputsAndSteps() throws {
    let unused = """
      mixlab: 1
      inputs:
        a: a.safetensors
        b: b.safetensors
        extra: c.safetensors
      steps:
        w: {method: weighted_sum, models: [a, b], alpha: 0.5}
        v: {method: average, models: [a, extra]}
      output: {from: w}
      """
    let r = try RecipeParser.parse(unused, file: "r.yaml", name: "r")
    #expect(r.mergeInputs == ["a", "b"])
    #expect(r.warnings.count == 2)
    #expect(r.warnings.first?.hasPrefix("r.yaml:5: input `extra` is never used") == true)
    #expect(r.warnings.last?.hasPrefix("r.yaml:8: step `v` is never used") == true)

    let reference = """
      mixlab: 1
      inputs: {a: a.safetensors, b: b.safetensors, target: t.safetensors}
      steps: {w: {method: weighted_sum, models: [a, b], alpha: 0.5}}
      output: {from: w}
      evaluate: [{name: close, command: [score, "{artifact}", "{input:target}"], minimize: [dist]}]
      """
    let scored = try RecipeParser.parse(reference, file: "r.yaml", name: "r")
    #expect(scored.mergeInputs == ["a", "b"], "the scoring reference is not a parent of the mix")
    #expect(scored.warnings.isEmpty)
    #expect(scored.evaluators.first?.minimize == ["dist"])
    let both = reference.replacingOccurrences(of: "minimize: [dist]", with: "minimize: [dist], maximize: [dist]")
    #expect(throws: RecipeError.self) { try RecipeParser.parse(both, file: "r.yaml", name: "r") }
  }
}
