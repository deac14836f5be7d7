import Foundation
import MixLab
import Provenance
import Testing

/// `mixlab run`, `reproduce` and the index, on tiny synthetic models in a temporary workspace.
@Suite("Runner: runs, reuse, determinism, provenance")
struct RunnerTests {
  @Test("a run writes the output, records it, and a second run reuses it")
  func runThenReuse() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2]))
    let first = try #require(try t.run("experiments/e").first)
    #expect(!first.reused && first.experiment == "e" && first.recipe == "soup")
    #expect(first.artifact == "artifacts/e/soup.safetensors")
    let artifact = t.root + "/" + first.artifact
    #expect(try fileSHA256(artifact) == first.outputSHA256)
    #expect(first.autov2 == String(first.outputSHA256!.prefix(10)))
    #expect(FileManager.default.fileExists(atPath: t.root + "/artifacts/e/REPORT.md"))
    let afterFirst = try t.recorded()
    #expect(afterFirst.runs == 1 && afterFirst.tip != nil)

    let second = try #require(try t.run("experiments/e").first)
    #expect(second.reused)
    #expect(second.outputSHA256 == first.outputSHA256 && second.runID == first.runID && second.commit == first.commit)
    #expect(try t.recorded().runs == 1)
    #expect(try t.recorded().tip == afterFirst.tip, "a reused run adds no commit")

    // Running the recipe file runs just it, with the same outcome.
    let single = try t.run("experiments/e/soup.yaml")
    #expect(single.map(\.recipe) == ["soup"] && single[0].reused)
  }

  @Test("force recomputes identical bytes, with a new run record")
  func force() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2]))
    let first = try #require(try t.run("experiments/e").first)
    let bytes = try Data(contentsOf: URL(fileURLWithPath: t.root + "/" + first.artifact))
    let forced = try #require(try t.run("experiments/e") { $0.force = true }.first)
    #expect(!forced.reused)
    #expect(forced.outputSHA256 == first.outputSHA256)
    #expect(forced.runID != first.runID)
    #expect(try Data(contentsOf: URL(fileURLWithPath: t.root + "/" + forced.artifact)) == bytes)
  }

  @Test("changing a recipe parameter re-runs; changing it back gives the first bytes again")
  func parameterChange() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2]))
    let first = try #require(try t.run("experiments/e").first)
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2], weights: "[1, 3]"))
    let changed = try #require(try t.run("experiments/e").first)
    #expect(!changed.reused && changed.outputSHA256 != first.outputSHA256 && changed.recipeHash != first.recipeHash)
    // A comment or a different layout is not a change.
    try t.recipe("e", "soup.yaml", "# weighted 1:3\n" + soupRecipe(m[1], m[2], weights: "[1.0, 3.0]"))
    #expect(try t.run("experiments/e").first?.reused == true)
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2]))
    let back = try #require(try t.run("experiments/e").first)
    #expect(back.outputSHA256 == first.outputSHA256)
  }

  @Test("swapping which file an input names re-runs, even though the set of input hashes is the same")
  func swappedInputs() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2], weights: "[1, 3]"))
    let first = try #require(try t.run("experiments/e").first)
    try t.recipe("e", "soup.yaml", soupRecipe(m[2], m[1], weights: "[1, 3]"))
    let swapped = try #require(try t.run("experiments/e").first)
    #expect(!swapped.reused, "the output of the other assignment was reused")
    #expect(swapped.outputSHA256 != first.outputSHA256)
  }

  @Test("1 and 2 threads, and a small memory budget, write identical bytes (seeded DARE with sign election)")
  func threads() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe(
      "e", "dare.yaml",
      """
      mixlab: 1
      inputs: {base: \(m[0]), a: \(m[1]), b: \(m[2]), c: \(m[3])}
      steps:
        dropped:
          method: dare
          base: base
          models: [a, b, c]
          drop: 0.7
          sign: magnitude_sum
          seed: 42
      output: {from: dropped}
      """)
    let one = try #require(try t.run("experiments/e") { $0.threads = 1 }.first)
    let two = try #require(
      try t.run("experiments/e") {
        $0.threads = 2; $0.force = true
      }.first)
    #expect(one.outputSHA256 == two.outputSHA256)
    let small = try #require(
      try t.run("experiments/e") {
        $0.threads = 2; $0.force = true; $0.memoryBudget = 16 << 20
      }.first)
    #expect(small.outputSHA256 == one.outputSHA256, "the memory budget changed the bytes")
  }

  @Test("a sha256 pin that does not match is an error naming the input, the pin and the file")
  func pins() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2], aExtra: ", sha256: 0000000000"))
    #expect {
      try t.run("experiments/e")
    } throws: { error in
      let text = message(error)
      return text.contains("input `a` changed") && text.contains("0000000000") && text.contains(m[1])
        && text.contains("soup.yaml:3")
    }
    #expect(try t.recorded().runs == 0)
    #expect(!FileManager.default.fileExists(atPath: t.root + "/artifacts/e/soup.safetensors"))
    // The right pin, as an AutoV2-length prefix or in full, runs.
    let sha = try fileSHA256(m[1])
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2], aExtra: ", sha256: \(sha.prefix(10).uppercased())"))
    #expect(try t.run("experiments/e").first?.reused == false)
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2], aExtra: ", sha256: \(sha)"))
    #expect(try t.run("experiments/e").first?.reused == true, "a pin is not part of the recipe hash")
  }

  @Test("a dry run plans from headers and writes no artifact and no record")
  func dryRun() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2]))
    try t.recipe(
      "e", "next.yaml",
      """
      mixlab: 1
      inputs: {soup: {recipe: soup}, base: \(m[0])}
      steps: {t: {method: weighted_sum, models: [base, soup], alpha: 0.3}}
      output: {from: t}
      """)
    let results = try t.run("experiments/e") { $0.dryRun = true }
    #expect(results.map(\.recipe) == ["soup", "next"])
    let plan = try #require(results[0].plan)
    #expect(plan.architecture == "sd1" && plan.tensors > 1000 && plan.outputBytes > 0)
    #expect(results[0].outputSHA256 == nil && results[0].runID == nil)
    #expect(results[1].plan == nil && results[1].note?.contains("needs the output of soup") == true)
    #expect(!FileManager.default.fileExists(atPath: t.root + "/artifacts/e"))
    let recorded = try t.recorded()
    #expect(recorded.runs == 0 && recorded.tip == nil)
  }

  @Test("reproduce rebuilds a run bit for bit, also after the index is deleted and rebuilt")
  func reproduceAndRebuild() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2]))
    let run = try #require(try t.run("experiments/e").first)
    let sha = try #require(run.outputSHA256)
    var quiet = RunOptions()
    quiet.quiet = true
    let outcome = try Reproduce.run(
      prefix: String(sha.prefix(12)), workspace: Workspace(root: t.root), options: quiet, searchDirs: [], keep: false)
    #expect(outcome.identical && outcome.actualSHA256 == sha && outcome.differingTensors.isEmpty)
    #expect(Set(outcome.inputs.keys) == ["a", "b"])
    // By run id too.
    let byRun = try Reproduce.run(
      prefix: try #require(run.runID), workspace: Workspace(root: t.root), options: quiet, searchDirs: [], keep: false)
    #expect(byRun.identical)

    // Delete the index: the log says how to recover; rebuilding restores it from git.
    for f in try FileManager.default.contentsOfDirectory(atPath: t.root + "/.mixlab") where f.hasPrefix("index.sqlite") {
      try FileManager.default.removeItem(atPath: t.root + "/.mixlab/" + f)
    }
    let fresh = Workspace(root: t.root)
    #expect {
      try History.log(workspace: fresh)
    } throws: { message($0).contains("mixlab index rebuild") }
    #expect(try fresh.index().rebuild(from: try fresh.git()) == 1)
    let log = try History.log(workspace: fresh)
    #expect(log.map(\.outputSHA256) == [sha] && log.first?.runID == run.runID)
    let again = try Reproduce.run(prefix: String(sha.prefix(8)), workspace: fresh, options: quiet, searchDirs: [], keep: false)
    #expect(again.identical)
    // The rebuilt index still knows the run: an unchanged recipe is reused.
    #expect(try t.run("experiments/e").first?.reused == true)
  }

  @Test("reproduce finds a moved input by hash in --search folders; a missing one is named with hash and last path")
  func movedInput() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2]))
    let run = try #require(try t.run("experiments/e").first)
    let sha = try #require(run.outputSHA256)
    let inputSHA = try fileSHA256(m[1])
    let elsewhere = t.root + "-elsewhere"
    try FileManager.default.createDirectory(atPath: elsewhere + "/deep/er", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: elsewhere) }
    try FileManager.default.moveItem(atPath: m[1], toPath: elsewhere + "/deep/er/renamed.safetensors")
    var quiet = RunOptions()
    quiet.quiet = true
    let ws = Workspace(root: t.root)
    #expect {
      try Reproduce.run(prefix: String(sha.prefix(12)), workspace: ws, options: quiet, searchDirs: [], keep: false)
    } throws: { error in
      let text = message(error)
      return text.contains("input `a`") && text.contains(inputSHA) && text.contains(m[1]) && text.contains("--search")
    }
    let found = try Reproduce.run(
      prefix: String(sha.prefix(12)), workspace: ws, options: quiet, searchDirs: [elsewhere], keep: true)
    #expect(found.identical)
    #expect(found.inputs["a"] == elsewhere + "/deep/er/renamed.safetensors")
    let kept = try #require(found.keptAt)
    #expect(try fileSHA256(t.root + "/" + kept) == sha)
  }

  @Test("a missing input file is an error naming the recipe line, the input and the path")
  func missingInputFile() throws {
    let t = try TempWorkspace()
    try t.recipe("e", "soup.yaml", soupRecipe("no/such.safetensors", try Models.sd1[1]))
    #expect {
      try t.run("experiments/e")
    } throws: { error in
      let text = message(error)
      return text.contains("soup.yaml:3") && text.contains("input `a`") && text.contains("no/such.safetensors")
    }
  }

  @Test("synth inputs are written once into .mixlab/synth and shared by recipes")
  func synthInputs() throws {
    let t = try TempWorkspace()
    let synth = "{synth: {arch: sd1, seed: 5, index: 1, scale: 0.02}}"
    try t.recipe(
      "e", "one.yaml", "mixlab: 1\ninputs: {m: \(synth)}\nsteps: {s: {method: average, models: [m]}}\noutput: {from: s}\n")
    try t.recipe(
      "e", "two.yaml",
      "mixlab: 1\ninputs: {m: \(synth), o: {recipe: one}}\nsteps: {s: {method: weighted_sum, models: [m, o]}}\noutput: {from: s}\n"
    )
    let results = try t.run("experiments/e")
    #expect(results.map(\.recipe) == ["one", "two"])
    let files = try FileManager.default.contentsOfDirectory(atPath: t.root + "/.mixlab/synth/sd1-seed5-scale0.02-f16")
    #expect(files == ["sd1-01.safetensors"])
    // Averaging one model and blending a model with itself both return it unchanged.
    let model = t.root + "/.mixlab/synth/sd1-seed5-scale0.02-f16/sd1-01.safetensors"
    let key = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight"
    #expect(try tensorBytes(t.root + "/artifacts/e/two.safetensors", key) == (try tensorBytes(model, key)))
  }
}
