import Foundation
import MixLab
import Recipes
import Testing

@Suite("Experiment: loading a folder of recipes")
struct ExperimentTests {
  /// A recipe averaging `m`, reading the outputs of `deps`.
  static func recipe(deps: [String], name: String? = nil) -> String {
    var inputs = ["  m: m.safetensors"]
    for d in deps { inputs.append("  \(d): {recipe: \(d)}") }
    return "mixlab: 1\n" + (name.map { "name: \($0)\n" } ?? "") + "inputs:\n" + inputs.joined(separator: "\n")
      + "\nsteps:\n  s: {method: average, models: [m\(deps.map { ", \($0)" }.joined())]}\noutput: {from: s}\n"
  }

  @Test("recipes come in dependency order, file order among independent ones; notes are kept")
  func order() throws {
    let t = try TempWorkspace()
    try t.recipe("e", "a.yaml", Self.recipe(deps: ["c"]))
    try t.recipe("e", "b.yaml", Self.recipe(deps: []))
    try t.recipe("e", "c.yaml", Self.recipe(deps: ["d"]))
    try t.recipe("e", "d.yml", Self.recipe(deps: []))
    try t.recipe("e", "z.yaml", Self.recipe(deps: ["a", "b"]))
    try t.recipe("e", "NOTES.md", "# Notes\n")
    try t.recipe("e", "ideas.md", "later\n")
    try t.recipe("e", "data.csv", "ignored\n")
    let exp = try Experiment.load(t.root + "/experiments/e")
    #expect(exp.name == "e")
    #expect(exp.recipes.map(\.name) == ["d", "c", "a", "b", "z"])
    #expect(exp.notes == ["NOTES.md": "# Notes\n", "ideas.md": "later\n"])
    #expect(exp.closure(of: "a").map(\.name) == ["d", "c", "a"])
    #expect(exp.closure(of: "b").map(\.name) == ["b"])
    #expect(exp.closure(of: "z").map(\.name) == ["d", "c", "a", "b", "z"])
  }

  @Test("a cycle between recipes is refused, naming it")
  func cycle() throws {
    let t = try TempWorkspace()
    try t.recipe("e", "a.yaml", Self.recipe(deps: ["b"]))
    try t.recipe("e", "b.yaml", Self.recipe(deps: ["c"]))
    try t.recipe("e", "c.yaml", Self.recipe(deps: ["a"]))
    #expect {
      try Experiment.load(t.root + "/experiments/e")
    } throws: { error in
      message(error).contains("recipes depend on each other in a cycle: a → b → c → a")
    }
  }

  @Test("an unknown recipe dependency is refused at its input's line, naming the recipes there are")
  func unknownDependency() throws {
    let t = try TempWorkspace()
    try t.recipe("e", "a.yaml", Self.recipe(deps: ["sop"]))
    try t.recipe("e", "soup.yaml", Self.recipe(deps: []))
    do {
      _ = try Experiment.load(t.root + "/experiments/e")
      Issue.record("loaded")
    } catch let e as RecipeError {
      #expect(e.file.hasSuffix("experiments/e/a.yaml") && e.line == 4)
      #expect(e.message.contains("recipe `sop`, which is not in this experiment") && e.message.contains("recipes: a, soup"))
    }
  }

  @Test("two recipes with one name, an invalid recipe, or no recipe at all are refused before anything runs")
  func invalidFolders() throws {
    let t = try TempWorkspace()
    try t.recipe("dup", "one.yaml", Self.recipe(deps: [], name: "same"))
    try t.recipe("dup", "two.yaml", Self.recipe(deps: [], name: "same"))
    #expect { try Experiment.load(t.root + "/experiments/dup") } throws: { message($0).contains("two recipes are named `same`") }

    try t.recipe("bad", "ok.yaml", Self.recipe(deps: []))
    try t.recipe("bad", "typo.yaml", "mixlab: 1\ninptus: {}\n")
    #expect {
      try Experiment.load(t.root + "/experiments/bad")
    } throws: { message($0).hasSuffix("typo.yaml:2:1: unknown key `inptus` in the recipe — did you mean `inputs`?") }

    try t.recipe("empty", "NOTES.md", "nothing yet\n")
    #expect { try Experiment.load(t.root + "/experiments/empty") } throws: { message($0).contains("no recipes (*.yaml)") }
    #expect(throws: (any Error).self) { try Experiment.load(t.root + "/experiments/missing") }
  }

  @Test("running outside a workspace says how to create one")
  func notAWorkspace() throws {
    let dir = FileManager.default.temporaryDirectory.path + "/not-a-workspace-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir + "/e", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try Self.recipe(deps: []).write(toFile: dir + "/e/r.yaml", atomically: true, encoding: .utf8)
    #expect {
      try Runner.run(path: dir + "/e", options: RunOptions())
    } throws: { message($0).contains("mixlab init") }
    #expect { try Runner.run(path: dir + "/nothing", options: RunOptions()) } throws: { message($0).contains("no such recipe") }
  }
}
