import Foundation
import Provenance
import Recipes

/// `mixlab sweep report`: for each sweep of an experiment, the metric against each swept
/// parameter (SVG), and the best point's recipe written out as a plain recipe file.
public enum SweepReport {
  public struct Point: Codable, Sendable {
    public var recipe: String
    public var values: [String: Double]
    public var metric: Double?
  }

  public struct Result: Codable, Sendable {
    public var sweep: String
    public var metric: String
    public var lowerIsBetter: Bool
    public var points: [Point]
    public var best: String?
    /// Paths relative to the workspace.
    public var plots: [String]
    public var bestRecipe: String?
    enum CodingKeys: String, CodingKey {
      case sweep, metric, points, best, plots
      case lowerIsBetter = "lower_is_better"
      case bestRecipe = "best_recipe"
    }
  }

  /// Builds the report of every sweep of `exp` and writes its files into
  /// `artifacts/<experiment>/sweeps/`.
  ///
  /// - Parameter metric: the metric to optimize; default the first evaluator metric found,
  ///   else `cosine` (overall).
  public static func run(experiment exp: Experiment, workspace ws: Workspace, metric: String?, minimize: Bool?) throws -> [Result]
  {
    let sweeps = Dictionary(grouping: exp.recipes.filter { $0.sweepPoint != nil }) { $0.sweepPoint!.sweep }
    guard !sweeps.isEmpty else { return [] }
    let index = try ws.index()
    let runs = try index.runs(experiment: exp.name)
    let metrics = try index.metrics(experiment: exp.name)
    if let metric {
      let recorded = Set(
        metrics.filter { m in m.scope == "overall" || m.scope.hasPrefix("evaluator:") }.map(\.name))
      guard recorded.contains(metric) else {
        let list = recorded.sorted()
        throw MixLabError.message(
          "no metric `\(metric)` is recorded for experiment `\(exp.name)`"
            + (list.isEmpty
              ? " (no run of it has metrics yet; run it first: mixlab run \(ws.relative(exp.folder)))"
              : " (metrics: \(list.joined(separator: ", ")))\(MetricsTable.suggestion(metric, among: list))"))
      }
    }
    let declared = MetricsTable.declaredDirections(workspace: ws, experiments: [exp.name]).directions
    let dir = ws.artifactsDir + "/\(exp.name)/sweeps"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var results: [Result] = []
    for name in sweeps.keys.sorted() {
      let points = sweeps[name]!.sorted { $0.sweepPoint!.index < $1.sweepPoint!.index }
      var values: [String: [String: Double]] = [:]  // recipe → metric name → value
      for p in points {
        guard let run = runs.first(where: { $0.recipeName == p.name }) else { continue }
        for m in metrics where m.runID == run.runID && (m.scope == "overall" || m.scope.hasPrefix("evaluator:")) {
          if let v = m.value { values[p.name, default: [:]][m.name] = v }
        }
      }
      let evaluatorMetric = metrics.first { m in
        m.scope.hasPrefix("evaluator:")
          && points.contains { p in runs.contains { $0.runID == m.runID && $0.recipeName == p.name } }
      }?.name
      let chosen = metric ?? evaluatorMetric ?? "cosine"
      let lower = minimize ?? declared[chosen] ?? MetricsTable.lowerIsBetter(chosen)
      var reportPoints: [Point] = []
      for p in points {
        var v: [String: Double] = [:]
        for (path, value) in p.sweepPoint!.values { v[path] = value }
        reportPoints.append(Point(recipe: p.name, values: v, metric: values[p.name]?[chosen]))
      }
      let scored = reportPoints.enumerated().compactMap { i, p in p.metric.map { (i, $0) } }
      let bestIndex = scored.min { lower ? $0.1 < $1.1 : $0.1 > $1.1 }?.0
      var plots: [String] = []
      let paths = points.first?.sweepPoint?.values.map(\.path) ?? []
      for path in paths {
        var xy: [(x: Double, y: Double)] = []
        var highlight: Int?
        for (i, p) in reportPoints.enumerated() {
          guard let y = p.metric, let x = p.values[path] else { continue }
          if i == bestIndex { highlight = xy.count }
          xy.append((x, y))
        }
        guard !xy.isEmpty else { continue }
        let plot = ScatterPlot(
          title: "\(name): \(chosen) against \(path)", xLabel: path, yLabel: chosen + (lower ? " (lower is better)" : ""),
          points: xy, highlight: highlight, connect: paths.count == 1)
        let file = dir + "/\(name).\(path.replacingOccurrences(of: "/", with: "_")).svg"
        try Data(plot.svg().utf8).write(to: URL(fileURLWithPath: file), options: .atomic)
        plots.append(ws.relative(file))
      }
      var bestRecipe: String?
      if let b = bestIndex {
        let file = dir + "/\(name).best.yaml"
        // The point's concrete recipe without its point name, so it can be copied into an
        // experiment as a recipe of its own.
        let text = points[b].text.split(separator: "\n", omittingEmptySubsequences: false)
          .filter { !$0.hasPrefix("name: ") }.joined(separator: "\n")
        try Data(text.utf8).write(to: URL(fileURLWithPath: file), options: .atomic)
        bestRecipe = ws.relative(file)
      }
      results.append(
        Result(
          sweep: name, metric: chosen, lowerIsBetter: lower, points: reportPoints, best: bestIndex.map { points[$0].name },
          plots: plots, bestRecipe: bestRecipe))
    }
    return results
  }

  public static func text(_ results: [Result]) -> String {
    if results.isEmpty { return "this experiment has no sweeps" }
    var lines: [String] = []
    for r in results {
      let measured = r.points.filter { $0.metric != nil }.count
      lines.append(
        "sweep \(r.sweep): \(r.points.count) points, \(measured) measured; metric \(r.metric) (\(r.lowerIsBetter ? "lower" : "higher") is better)"
      )
      if let best = r.best, let p = r.points.first(where: { $0.recipe == best }) {
        let values = p.values.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%.4g", $0.value))" }.joined(
          separator: ", ")
        lines.append("  best: \(best) (\(values)) → \(r.metric) = \(String(format: "%.6g", p.metric ?? .nan))")
      }
      for p in r.plots { lines.append("  plot: \(p)") }
      if let b = r.bestRecipe { lines.append("  best recipe: \(b)") }
    }
    return lines.joined(separator: "\n")
  }
}
