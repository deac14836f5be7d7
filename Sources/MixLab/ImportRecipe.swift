import Foundation
import Recipes

/// `mixlab import FILE [--out RECIPE]`: another tool's recipe as a mixlab recipe.
public enum ImportRecipe {
  public struct Outcome: Codable, Sendable {
    public var source: String
    public var format: String
    /// Where the recipe was written; nil when printed.
    public var recipe: String?
    public var notes: [String]
    public var yaml: String
  }

  /// Converts `file` and writes the recipe to `out` (or returns it for printing).
  ///
  /// - Parameters:
  ///   - format: `mergekit`, `mecha` or `a1111`; nil detects it from the extension.
  ///   - models: model reference → local path (`--model REF=PATH`).
  ///   - modelsDir: where sd-mecha / A1111 model names are looked up (default: the file's folder).
  ///   - shallow: A1111 only: do not expand the parents' own recipes.
  ///   - force: replace an existing `out`.
  /// - Throws: `ImportError` naming the unsupported construct, `MixLabError` for files.
  public static func run(
    file: String, out: String?, format: String?, models: [String: String], modelsDir: String?, shallow: Bool, force: Bool
  ) throws -> Outcome {
    let source = Workspace.absolute(file)
    guard FileManager.default.fileExists(atPath: source) else { throw MixLabError.message("\(file): no such file") }
    var fmt: ImportFormat?
    if let format {
      guard let f = ImportFormat(rawValue: format.lowercased()) else {
        throw MixLabError.message("--format must be mergekit, mecha or a1111 (got \"\(format)\")")
      }
      fmt = f
    }
    let outPath = out.map(Workspace.absolute)
    if let outPath, FileManager.default.fileExists(atPath: outPath), !force {
      throw MixLabError.message("\(out!) exists; choose another --out or pass --force to replace it")
    }
    let folder = outPath.map { ($0 as NSString).deletingLastPathComponent } ?? FileManager.default.currentDirectoryPath
    let options = ImportOptions(
      modelPaths: models, recipeFolder: folder, modelsFolder: modelsDir.map(Workspace.absolute), shallow: shallow)
    let result = try RecipeImport.convert(
      file: source, format: fmt, options: options, recipePath: outPath ?? folder + "/imported.yaml")
    if let outPath {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      try Data(result.yaml.utf8).write(to: URL(fileURLWithPath: outPath), options: .atomic)
    }
    return Outcome(source: file, format: result.format, recipe: out, notes: result.notes, yaml: result.yaml)
  }
}
