import Foundation
import Recipes

/// An experiment folder: recipes (`*.yaml`) and notes (`*.md`).
public struct Experiment: Sendable {
  public var name: String
  public var folder: String
  /// Parsed recipes in dependency order.
  public var recipes: [Recipe]
  /// Notes by file name (NOTES.md first in reports).
  public var notes: [String: String]
  /// Evaluators every recipe of the experiment runs (`evaluators.yaml`).
  public var evaluators: [EvaluatorSpec] = []

  /// Loads every recipe and note of `folder`; all recipes are validated before anything runs.
  public static func load(_ folder: String) throws -> Experiment {
    let fm = FileManager.default
    let items = try fm.contentsOfDirectory(atPath: folder).sorted()
    var recipes: [Recipe] = []
    var notes: [String: String] = [:]
    var evaluators: [EvaluatorSpec] = []
    for item in items {
      let path = folder + "/" + item
      if item == "evaluators.yaml" || item == "evaluators.yml" {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        evaluators = try RecipeParser.parseEvaluators(text, file: path)
      } else if item.hasSuffix(".yaml") || item.hasSuffix(".yml") {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let name = (item as NSString).deletingPathExtension
        if let points = try Sweep.expand(text, file: path, name: name) {
          recipes += points
        } else {
          recipes.append(try RecipeParser.parse(text, file: path, name: name))
        }
      } else if item.hasSuffix(".md") {
        notes[item] = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
      }
    }
    guard !recipes.isEmpty else {
      throw MixLabError.message("\(folder): no recipes (*.yaml) in this experiment folder")
    }
    var names = Set<String>()
    for r in recipes {
      guard names.insert(r.name).inserted else {
        throw MixLabError.message("\(folder): two recipes are named `\(r.name)`; recipe names must be unique in an experiment")
      }
    }
    let name = (folder as NSString).lastPathComponent
    guard isValidName(name) else {
      throw MixLabError.message(
        "\(folder): the experiment name `\(name)` (the folder's name) must be 1–64 ASCII letters, digits, `_`, `-` or `.`, not starting with `.`, because outputs go to artifacts/<experiment>/; rename the folder"
      )
    }
    var exp = Experiment(name: name, folder: folder, recipes: try order(recipes, folder: folder), notes: notes)
    exp.evaluators = evaluators
    return exp
  }

  /// True for a name that is safe as a folder under artifacts/: 1–64 ASCII letters, digits,
  /// `_`, `-` or `.`, not starting with `.` (so never `.`, `..` or hidden).
  public static func isValidName(_ name: String) -> Bool {
    !name.isEmpty && name.utf8.count <= 64 && !name.hasPrefix(".")
      && name.utf8.allSatisfy { b in
        (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || b == 0x5F || b == 0x2D
          || b == 0x2E
      }
  }

  /// Dependency order over `recipe:` inputs; unknown or cyclic dependencies are errors.
  static func order(_ recipes: [Recipe], folder: String) throws -> [Recipe] {
    let byName = Dictionary(uniqueKeysWithValues: recipes.map { ($0.name, $0) })
    var state: [String: Int] = [:]
    var out: [Recipe] = []
    func visit(_ r: Recipe, _ path: [String]) throws {
      if state[r.name] == 2 { return }
      if state[r.name] == 1 {
        throw MixLabError.message(
          "\(folder): recipes depend on each other in a cycle: \((path + [r.name]).joined(separator: " → "))")
      }
      state[r.name] = 1
      for dep in r.dependencies {
        guard let d = byName[dep] else {
          let line = r.inputs.first { $0.source == .recipe(name: dep) }?.line ?? 1
          throw RecipeError(
            file: r.file, line: line, column: 1,
            message:
              "input uses recipe `\(dep)`, which is not in this experiment (recipes: \(byName.keys.sorted().joined(separator: ", ")))"
          )
        }
        try visit(d, path + [r.name])
      }
      state[r.name] = 2
      out.append(r)
    }
    for r in recipes { try visit(r, []) }
    return out
  }

  /// The recipes needed to build `name`: its dependencies first, then itself.
  public func closure(of name: String) -> [Recipe] {
    let byName = Dictionary(uniqueKeysWithValues: recipes.map { ($0.name, $0) })
    var needed = Set<String>()
    func mark(_ n: String) {
      guard needed.insert(n).inserted, let r = byName[n] else { return }
      for d in r.dependencies { mark(d) }
    }
    mark(name)
    return recipes.filter { needed.contains($0.name) }
  }
}
