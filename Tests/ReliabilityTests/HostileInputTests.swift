import Foundation
import Recipes
import Testing

/// Recipes and workspaces built to hurt: each is refused with a message that says what and
/// where, before anything is written.
@Suite("Hostile recipes and output locations")
struct HostileInputTests {
  static let valid = """
    mixlab: 1
    inputs:
      a: ../../models/a.safetensors
      b: /models/b.safetensors
    steps:
      m: {method: weighted_sum, models: [a, b], alpha: 0.5}
    output: {from: m}

    """

  /// (what, recipe text, a fragment the error must contain)
  static let refused: [(String, String, String)] = [
    (
      "alias bomb", "mixlab: 1\na: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n",
      "anchors and aliases (& and *) are not allowed"
    ),
    ("merge key", "mixlab: 1\nd: &d {alpha: 1}\nsteps: {m: {<<: *d}}\n", "anchors and aliases"),
    ("deep flow nesting", "mixlab: 1\ninputs: " + String(repeating: "[", count: 100) + "\n", "nesting deeper than 32 levels"),
    ("deep block nesting", "mixlab: 1\ndescription:\n  " + String(repeating: "- ", count: 3000) + "x\n", "nesting"),
    ("larger than 1 MiB", "mixlab: 1\ndescription: " + String(repeating: "x", count: 1 << 20) + "\n", "larger than 1 MiB"),
    ("enormous weight", valid.replacingOccurrences(of: "alpha: 0.5", with: "alpha: 1e308"), "beyond the ±1e9"),
    ("overflowing number", valid.replacingOccurrences(of: "alpha: 0.5", with: "alpha: 1e400"), "must be a finite number"),
    ("NaN", valid.replacingOccurrences(of: "alpha: 0.5", with: "alpha: .nan"), "must be a finite number"),
    ("enormous version", valid.replacingOccurrences(of: "mixlab: 1", with: "mixlab: 99999999999999999999"), "whole number"),
    (
      "enormous seed",
      valid.replacingOccurrences(of: "output: {from: m}", with: "output: {from: m, seed: 1844674407370955161600}"),
      "whole number from 0 to 18446744073709551615"
    ),
    ("recipe name climbing out", "name: ../../../tmp/x\n" + valid, "recipe name `../../../tmp/x` must be"),
    ("absolute recipe name", "name: /tmp/x\n" + valid, "recipe name `/tmp/x` must be"),
    ("hidden recipe name", "name: .x\n" + valid, "recipe name `.x` must be"),
    ("recipe name like a temporary", "name: x.mixlab-tmp-1\n" + valid, "recipe name `x.mixlab-tmp-1` must be"),
    ("recipe name with ..", "name: x..y\n" + valid, "recipe name `x..y` must be"),
    ("input name with a path", valid.replacingOccurrences(of: "  b: /models", with: "  ../b: /models"), "input name `../b`"),
    ("two documents", valid + "---\n" + valid, "holds one YAML document"),
  ]

  @Test("hostile recipe text is refused with a located message", arguments: refused.indices)
  func hostileRecipe(_ i: Int) throws {
    let (what, text, fragment) = Self.refused[i]
    let start = Date()
    #expect(throws: RecipeError.self, "\(what)") { _ = try RecipeParser.parse(text, file: "/w/experiments/e/r.yaml") }
    do {
      _ = try RecipeParser.parse(text, file: "/w/experiments/e/r.yaml")
    } catch {
      #expect(error.message.contains(fragment), "\(what): \(error.message)")
      #expect(error.file == "/w/experiments/e/r.yaml" && error.line >= 1)
    }
    #expect(Date().timeIntervalSince(start) < 5, "\(what) took too long")
  }

  @Test("a recipe whose file name is not a valid recipe name is refused unless it sets `name:`")
  func nameFromFile() throws {
    #expect(throws: RecipeError.self) { _ = try RecipeParser.parse(Self.valid, file: "/w/experiments/e/my soup.yaml") }
    #expect(try RecipeParser.parse("name: my-soup\n" + Self.valid, file: "/w/experiments/e/my soup.yaml").name == "my-soup")
    // Dots are fine inside a name (sweep and publish outputs use them).
    #expect(try RecipeParser.parse(Self.valid, file: "/w/experiments/e/blend.best.yaml").name == "blend.best")
  }

  @Test("input paths may leave the workspace: relative with ../ and absolute, kept as written")
  func inputPathsAnywhere() throws {
    let r = try RecipeParser.parse(Self.valid, file: "/w/experiments/e/r.yaml")
    #expect(r.inputs.map(\.source) == [.file(path: "../../models/a.safetensors"), .file(path: "/models/b.safetensors")])
  }

  @Test("an artifact folder linked outside the workspace is refused, and nothing is written there")
  func symlinkedArtifactsOutside() throws {
    let models = SharedModels.shared
    for linked in ["artifacts/f", "artifacts"] {
      let lab = try Lab(models: models.paths)
      let outside = FileManager.default.temporaryDirectory.path + "/mixlab-outside-\(UUID().uuidString)"
      try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(atPath: outside) }
      try? FileManager.default.removeItem(atPath: lab.path(linked))
      try FileManager.default.createSymbolicLink(atPath: lab.path(linked), withDestinationPath: outside)
      let r = try lab.run(["run", "experiments/f"])
      #expect(r.status != 0)
      #expect(r.stderr.contains("is a symbolic link to \(outside)") && r.stderr.contains("outside the workspace"), "\(r.stderr)")
      #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
      #expect(try lab.index().runs().isEmpty)
    }
  }

  @Test("a link that stays inside the workspace is fine; a dangling one is refused")
  func symlinkInside() throws {
    let models = SharedModels.shared
    let lab = try Lab(models: models.paths)
    try FileManager.default.createDirectory(atPath: lab.path("big-disk/f"), withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(atPath: lab.path("artifacts/f"), withDestinationPath: lab.path("big-disk/f"))
    let ok = try lab.run(["run", "experiments/f"])
    #expect(ok.status == 0, "\(ok.describe)")
    #expect(try lab.sha256("big-disk/f/pair.safetensors") == models.expected["pair"])

    let other = try Lab(models: models.paths)
    try FileManager.default.createSymbolicLink(atPath: other.path("artifacts/f"), withDestinationPath: "/nonexistent/mixlab")
    let r = try other.run(["run", "experiments/f"])
    #expect(r.status != 0 && r.stderr.contains("/nonexistent/mixlab (missing)"), "\(r.stderr)")
  }

  @Test("an experiment folder whose name is not safe under artifacts/ is refused")
  func experimentName() throws {
    let lab = try Lab(models: SharedModels.shared.paths)
    try FileManager.default.moveItem(atPath: lab.path("experiments/f"), toPath: lab.path("experiments/my pair"))
    let r = try lab.run(["run", "experiments/my pair"])
    #expect(r.status != 0 && r.stderr.contains("experiment name `my pair`") && r.stderr.contains("rename the folder"))
    #expect(!FileManager.default.fileExists(atPath: lab.path("artifacts/my pair")))
  }

  @Test("special files as inputs (a FIFO, a device) are refused at once instead of blocking")
  func specialFiles() throws {
    let lab = try Lab(models: SharedModels.shared.paths)
    let fifo = lab.path("models.fifo")
    try #require(mkfifo(fifo, 0o644) == 0)
    for special in [fifo, "/dev/zero"] {
      try lab.write(
        "experiments/g/r.yaml",
        Self.valid.replacingOccurrences(of: "../../models/a.safetensors", with: special).replacingOccurrences(
          of: "/models/b.safetensors", with: SharedModels.shared.paths[0]))
      let start = Date()
      let r = try lab.run(["run", "experiments/g"])
      #expect(r.status != 0 && r.stderr.contains("input `a`") && r.stderr.contains("not a regular file"), "\(r.stderr)")
      #expect(Date().timeIntervalSince(start) < 20)
    }
  }
}
