import ArgumentParser
import Foundation
import MixLab

struct DiffCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "diff",
    abstract: "Compare two recipes, runs or safetensors files: recipe parameters, then tensors per block and component.",
    discussion: """
      A and B may each be a recipe (.yaml), a run's hash prefix (output SHA-256, run id or commit) or a \
      .safetensors file / checkpoint folder. Tensors with equal recorded SHA-256 are equal without being read. \
      Metrics per block: rel_l2 = ‖a − b‖/‖a‖, cosine, max_abs = max |a − b|.
      """)

  @Argument(help: "First recipe, run hash or file (side A, the reference of rel_l2).") var a: String
  @Argument(help: "Second recipe, run hash or file (side B).") var b: String
  @Option(help: "Write the per-block heatmap to this file (.svg, or .html for a page holding it).") var svg: String?
  @Option(help: "Worker threads (default: all cores). Never changes results.") var threads: Int = 0
  @Flag(help: "Exit with status 1 when A and B differ (recipes or tensors), like `git diff --exit-code`.") var exitCode =
    false
  @Flag(help: "Print JSON (tensors_differing, only_in_a, only_in_b, blocks: [{block, rel_l2, cosine, max_abs}], …).")
  var json = false

  func validate() throws {
    guard threads >= 0 && threads <= 1024 else { throw ValidationError("--threads must be between 0 (all cores) and 1024") }
  }

  func run() throws {
    var o = Diff.Options()
    o.threads = threads
    o.quiet = json
    let report = try Diff.run(a, b, options: o)
    if let svg {
      guard report.blocks != nil else {
        throw ValidationError("--svg draws per-block tensor differences; \(a) and \(b) have no tensors to compare")
      }
      try writeFile(Diff.picture(report, html: svg.lowercased().hasSuffix(".html")), to: svg)
    }
    print(json ? try Format.json(report) : Diff.text(report))
    if exitCode && Diff.differs(report) { throw ExitCode(1) }
  }
}

struct DistanceCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "distance",
    abstract: "Pairwise L2 distance and cosine similarity of models per component, a 2-D map (MDS) and outliers.",
    discussion: """
      FILE may be a .safetensors file, a checkpoint folder or a run's hash prefix (its output; with --inputs also \
      its inputs, to show where a mix sits among its parents). One streaming pass accumulates the Gram matrix of all \
      models; memory does not grow with model size.
      """)

  @Argument(help: "Models: files, checkpoint folders or run hashes (at least two models in all).") var files: [String]
  @Flag(help: "Also place the inputs of every run given by hash.") var inputs = false
  @Option(help: "Write the map to this file (.svg, or .html for a page holding it).") var svg: String?
  @Option(help: "Worker threads (default: all cores). Never changes results.") var threads: Int = 0
  @Flag(help: "Print JSON (models, components with l2/cosine matrices and map coordinates, outliers).") var json = false

  func validate() throws {
    guard !files.isEmpty else { throw ValidationError("give at least two models") }
    guard threads >= 0 && threads <= 1024 else { throw ValidationError("--threads must be between 0 (all cores) and 1024") }
  }

  func run() throws {
    let ws = try? Workspace.find(from: FileManager.default.currentDirectoryPath)
    let models = try Distance.resolve(files, withInputs: inputs, workspace: ws)
    var o = Distance.Options()
    o.threads = threads
    o.quiet = json
    let report = try Distance.run(models, options: o)
    if let svg {
      try writeFile(Distance.picture(report, html: svg.lowercased().hasSuffix(".html")), to: svg)
    }
    print(json ? try Format.json(report) : Distance.text(report))
  }
}

/// Writes a picture, naming the file when that fails.
func writeFile(_ text: String, to path: String) throws {
  do {
    try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
  } catch {
    throw ValidationError("cannot write \(path): \(error.localizedDescription)")
  }
}
