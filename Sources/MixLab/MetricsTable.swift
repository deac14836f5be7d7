import Foundation
import Provenance

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
  }

  /// Weight-space metrics shown by default (overall scope).
  public static let defaultWeightMetrics = ["rel_l2", "cosine", "norm_ratio", "kept_fraction", "sign_agreement", "nonfinite"]

  /// Lower is better for distances, errors and losses; higher for everything else.
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

  public static func build(
    workspace ws: Workspace, experiment: String?, metrics wanted: [String]? = nil, sort: String? = nil, allRuns: Bool = false
  ) throws -> Table {
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
    for m in try index.metrics(experiment: experiment) {
      guard latest.values.contains(where: { $0.runID == m.runID }), let v = m.value, let c = column(m) else { continue }
      if m.scope.hasPrefix("evaluator:") { evaluatorNames.insert(c) }
      byRun[m.runID, default: [:]][c] = v
    }
    var rows = order.map { key -> Row in
      let r = latest[key]!
      return Row(
        experiment: r.experiment, recipe: r.recipeName, runID: r.runID, outputSHA256: r.outputSHA256,
        metrics: byRun[r.runID] ?? [:])
    }
    let columns =
      wanted ?? (evaluatorNames.sorted() + defaultWeightMetrics.filter { c in rows.contains { $0.metrics[c] != nil } })
    if let sort {
      let lower = lowerIsBetter(sort)
      rows.sort { a, b in
        switch (a.metrics[sort], b.metrics[sort]) {
        case (let x?, let y?): return lower ? x < y : x > y
        case (.some, nil): return true
        default: return false
        }
      }
    } else {
      rows.sort { ($0.experiment, $0.recipe) < ($1.experiment, $1.recipe) }
    }
    var best: [String: String] = [:]
    for c in columns {
      let lower = lowerIsBetter(c)
      let candidates = rows.compactMap { r in r.metrics[c].map { (r.recipe, $0) } }
      if let b = candidates.min(by: { lower ? $0.1 < $1.1 : $0.1 > $1.1 }) { best[c] = b.0 }
    }
    return Table(columns: columns, rows: rows, best: best)
  }

  public static func text(_ t: Table) -> String {
    guard !t.rows.isEmpty else { return "no runs with metrics yet (run an experiment first)" }
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
    lines.append("* best per column (lower is better for rel_l2, loss, error, distance, nonfinite; higher otherwise)")
    return lines.joined(separator: "\n")
  }
}
