import Foundation
import Provenance
import Recipes

/// `mixlab metrics`: runs × metrics of an experiment (the latest run of each recipe), with
/// the best run per metric.
public enum MetricsTable {
  public struct Row: Codable, Sendable {
    public var experiment: String
    public var recipe: String
    public var runID: String
    public var outputSHA256: String
    public var metrics: [String: Double]
    enum CodingKeys: String, CodingKey {
      case experiment, recipe, metrics
      case runID = "run_id"
      case outputSHA256 = "output_sha256"
    }
  }

  public struct Table: Codable, Sendable {
    public var columns: [String]
    public var rows: [Row]
    /// Metric → recipe of the best run (by the metric's direction).
    public var best: [String: String]
    /// Columns for which lower is better (declared by an evaluator's `minimize`, given with
    /// `--minimize`, or a distance, loss or error by its name).
    public var lowerIsBetter: [String] = []
    /// Why some directions are not known from declarations (a recipe that does not parse).
    public var notes: [String] = []
    enum CodingKeys: String, CodingKey {
      case columns, rows, best, notes
      case lowerIsBetter = "lower_is_better"
    }
  }

  /// Weight-space metrics shown by default (overall scope).
  public static let defaultWeightMetrics = ["rel_l2", "cosine", "norm_ratio", "kept_fraction", "sign_agreement", "nonfinite"]

  /// Lower is better for distances, errors and losses; higher for everything else. Used only
  /// when no evaluator declares the metric's direction.
  public static func lowerIsBetter(_ name: String) -> Bool {
    let n = name.lowercased()
    return n.hasPrefix("rel_l2") || n.hasPrefix("loss") || n.hasPrefix("error") || n.hasPrefix("distance")
      || n.hasPrefix("nonfinite") || n.hasSuffix("_error") || n.hasSuffix("_loss") || n.hasSuffix("_distance")
      || n.hasPrefix("mse") || n.hasSuffix("_mse")
  }

  /// The metric's column name: overall weight metrics by name, evaluator metrics by name (or
  /// `evaluator.name` when two evaluators report the same name), other scopes `name/scope`.
  static func column(_ m: MetricRow) -> String? {
    if m.scope == "overall" { return m.name }
    if m.scope.hasPrefix("evaluator:") { return m.name }
    return nil
  }

  /// The experiment a user named: a name known to the index or under `experiments/`, or a
  /// path to an experiment folder (as `mixlab run` takes).
  ///
  /// - Throws: when it names nothing known, listing the experiments there are.
  public static func resolveExperiment(_ given: String, workspace ws: Workspace) throws -> String {
    let known = try knownExperiments(workspace: ws)
    if known.contains(given) { return given }
    var isDir: ObjCBool = false
    let abs = Workspace.absolute(given)
    if FileManager.default.fileExists(atPath: abs, isDirectory: &isDir) {
      let folder = isDir.boolValue ? abs : (abs as NSString).deletingLastPathComponent
      let name = (folder as NSString).lastPathComponent
      if known.contains(name) || (folder as NSString).deletingLastPathComponent == ws.experimentsDir { return name }
    }
    let list = known.sorted()
    throw MixLabError.message(
      "no experiment `\(given)` in the workspace \(ws.root)"
        + (list.isEmpty
          ? "; it has no experiments yet (create experiments/<name>/ with recipes and run it)"
          : " (experiments: \(list.joined(separator: ", ")))\(suggestion(given, among: list))")
        + "; give an experiment's name or its folder")
  }

  /// Experiment names with recorded runs or a folder under `experiments/`.
  static func knownExperiments(workspace ws: Workspace) throws -> Set<String> {
    var names = Set(try ws.index().runs().map(\.experiment))
    let folders = (try? FileManager.default.contentsOfDirectory(atPath: ws.experimentsDir)) ?? []
    for f in folders {
      var isDir: ObjCBool = false
      if FileManager.default.fileExists(atPath: ws.experimentsDir + "/" + f, isDirectory: &isDir), isDir.boolValue {
        names.insert(f)
      }
    }
    return names
  }

  static func suggestion(_ name: String, among names: [String]) -> String {
    let close = names.filter { editDistance($0.lowercased(), name.lowercased()) <= max(1, name.count / 3) }
    return close.isEmpty ? "" : "; did you mean `\(close[0])`?"
  }

  static func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
    var row = Array(0...b.count)
    for i in 1...a.count {
      var prev = row[0]
      row[0] = i
      for j in 1...b.count {
        let cur = row[j]
        row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
        prev = cur
      }
    }
    return row[b.count]
  }

  /// Directions declared by the evaluators of the experiments' folders (`minimize:` /
  /// `maximize:` of `evaluators.yaml` and of each recipe's `evaluate:`): metric → lower is
  /// better. Files that do not parse are named in `notes`.
  static func declaredDirections(workspace ws: Workspace, experiments: [String]) -> (
    directions: [String: Bool], notes: [String]
  ) {
    var directions: [String: Bool] = [:]
    var notes: [String] = []
    for exp in experiments.sorted() {
      let folder = ws.experimentsDir + "/" + exp
      guard let items = try? FileManager.default.contentsOfDirectory(atPath: folder) else { continue }
      for item in items.sorted() where item.hasSuffix(".yaml") || item.hasSuffix(".yml") {
        let path = folder + "/" + item
        do {
          let specs: [EvaluatorSpec]
          if item == "evaluators.yaml" || item == "evaluators.yml" {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            specs = try RecipeParser.parseEvaluators(text, file: path)
          } else {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let name = (item as NSString).deletingPathExtension
            let recipes = try Sweep.expand(text, file: path, name: name) ?? [RecipeParser.parse(text, file: path, name: name)]
            specs = recipes.first?.evaluators ?? []
          }
          for spec in specs {
            for m in spec.minimize { directions[m] = true }
            for m in spec.maximize { directions[m] = false }
          }
        } catch {
          notes.append("\(ws.relative(path)) does not parse, so the metric directions it may declare are not known")
        }
      }
    }
    return (directions, notes)
  }

  /// Builds the table.
  ///
  /// - Parameters:
  ///   - experiment: an experiment name or folder; nil for every experiment.
  ///   - metrics: the columns; each must be a recorded metric.
  ///   - sort: the metric to sort by (best first); it must be recorded.
  ///   - minimize: the `--sort` metric's direction when given (true: lower is better).
  /// - Throws: for an unknown experiment or metric, naming what is known.
  public static func build(
    workspace ws: Workspace, experiment given: String?, metrics wanted: [String]? = nil, sort: String? = nil,
    allRuns: Bool = false, minimize: Bool? = nil
  ) throws -> Table {
    let experiment = try given.map { try resolveExperiment($0, workspace: ws) }
    if minimize != nil && sort == nil {
      throw MixLabError.message(
        "--minimize / --no-minimize set the direction of the --sort metric; give the metric with --sort NAME")
    }
    let index = try ws.index()
    let runs = try index.runs(experiment: experiment)
    var latest: [String: RunRow] = [:]
    var order: [String] = []
    for r in runs {
      let key = "\(r.experiment)/\(r.recipeName)" + (allRuns ? "#\(r.runID)" : "")
      if latest[key] == nil {
        latest[key] = r
        order.append(key)
      }
    }
    var byRun: [String: [String: Double]] = [:]
    var evaluatorNames: Set<String> = []
    var recorded: Set<String> = []
    let shown = Set(latest.values.map(\.runID))
    for m in try index.metrics(experiment: experiment) {
      guard let c = column(m) else { continue }
      recorded.insert(c)
      guard shown.contains(m.runID), let v = m.value else { continue }
      if m.scope.hasPrefix("evaluator:") { evaluatorNames.insert(c) }
      byRun[m.runID, default: [:]][c] = v
    }
    for name in (wanted ?? []) + (sort.map { [$0] } ?? []) where !recorded.contains(name) {
      let list = recorded.sorted()
      throw MixLabError.message(
        "no metric `\(name)` is recorded\(experiment.map { " for experiment `\($0)`" } ?? "")"
          + (list.isEmpty
            ? " (no run has metrics yet; run the experiment first)"
            : " (metrics: \(list.joined(separator: ", ")))\(suggestion(name, among: list))"))
    }
    var rows = order.map { key -> Row in
      let r = latest[key]!
      return Row(
        experiment: r.experiment, recipe: r.recipeName, runID: r.runID, outputSHA256: r.outputSHA256,
        metrics: byRun[r.runID] ?? [:])
    }
    let (declared, notes) = declaredDirections(
      workspace: ws, experiments: experiment.map { [$0] } ?? Array(Set(runs.map(\.experiment))))
    func lower(_ c: String) -> Bool {
      if c == sort, let minimize { return minimize }
      return declared[c] ?? lowerIsBetter(c)
    }
    var columns =
      wanted ?? (evaluatorNames.sorted() + defaultWeightMetrics.filter { c in rows.contains { $0.metrics[c] != nil } })
    if let sort, !columns.contains(sort) { columns.insert(sort, at: 0) }
    if let sort {
      let lowerFirst = lower(sort)
      rows.sort { a, b in
        switch (a.metrics[sort], b.metrics[sort]) {
        case (let x?, let y?): return lowerFirst ? x < y : x > y
        case (.some, nil): return true
        default: return false
        }
      }
    } else {
      rows.sort { ($0.experiment, $0.recipe) < ($1.experiment, $1.recipe) }
    }
    var best: [String: String] = [:]
    for c in columns {
      let l = lower(c)
      let candidates = rows.compactMap { r in r.metrics[c].map { (r.recipe, $0) } }
      if let b = candidates.min(by: { l ? $0.1 < $1.1 : $0.1 > $1.1 }) { best[c] = b.0 }
    }
    return Table(columns: columns, rows: rows, best: best, lowerIsBetter: columns.filter(lower), notes: notes)
  }

  public static func text(_ t: Table) -> String {
    guard !t.rows.isEmpty else { return "no recorded runs yet (run the experiment first: mixlab run experiments/<name>)" }
    let nameWidth = max(8, t.rows.map { $0.recipe.count }.max() ?? 0)
    var header = "recipe".padding(toLength: nameWidth, withPad: " ", startingAt: 0)
    for c in t.columns { header += "  " + c.leftPad(max(10, c.count)) }
    var lines = [header]
    for r in t.rows {
      var line = r.recipe.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
      for c in t.columns {
        let v = r.metrics[c].map { String(format: "%.5g", $0) } ?? "–"
        let mark = t.best[c] == r.recipe ? "*" : " "
        line += "  " + (v + mark).leftPad(max(10, c.count) + 1)
      }
      lines.append(line)
    }
    let lower = t.columns.filter { t.lowerIsBetter.contains($0) }
    lines.append(
      "* best per column; lower is better for "
        + (lower.isEmpty ? "none of these" : lower.joined(separator: ", ")) + ", higher for the others")
    for n in t.notes { lines.append("note: \(n)") }
    return lines.joined(separator: "\n")
  }
}
