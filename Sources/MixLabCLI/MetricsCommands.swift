import ArgumentParser
import Foundation
import MixLab

struct MetricsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "metrics",
    abstract: "Runs × metrics of an experiment (weight-space metrics and evaluator results), best per metric marked.")
  @Argument(help: "An experiment: its name or its folder (default: every experiment).") var experiment: String?
  @Option(
    name: .customLong("metric"), help: "Columns to show (repeatable); default: evaluator metrics and the overall weight metrics.")
  var metrics: [String] = []
  @Option(help: "Sort rows by this metric (best first).") var sort: String?
  @Flag(
    inversion: .prefixedNo,
    help: "The --sort metric is better when lower (--minimize) or higher (--no-minimize); default: the evaluator's declared direction, else by the metric's name.")
  var minimize: Bool?
  @Flag(help: "Every recorded run, not only the latest of each recipe.") var all = false
  @Flag(help: "Print JSON.") var json = false

  func run() throws {
    let ws = try Workspace.find(from: ".")
    let table = try MetricsTable.build(
      workspace: ws, experiment: experiment, metrics: metrics.isEmpty ? nil : metrics, sort: sort, allRuns: all, minimize: minimize)
    print(json ? try Format.json(table) : MetricsTable.text(table))
  }
}

struct SweepCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sweep", abstract: "Parameter sweeps.", subcommands: [SweepReportCommand.self])
}

struct SweepReportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "report",
    abstract: "Plot a metric against each swept parameter and write the best point's recipe (artifacts/<experiment>/sweeps/).")
  @Argument(help: "The experiment (a name or a folder).") var experiment: String
  @Option(help: "Metric to optimize (default: the first evaluator metric, else cosine).") var metric: String?
  @Flag(inversion: .prefixedNo, help: "Lower is better (default: by the metric's name).") var minimize: Bool?
  @Flag(help: "Print JSON.") var json = false

  func run() throws {
    let ws = try Workspace.find(from: ".")
    var folder = Workspace.absolute(experiment)
    if !FileManager.default.fileExists(atPath: folder) { folder = ws.experimentsDir + "/" + experiment }
    let exp = try Experiment.load(folder)
    let results = try SweepReport.run(experiment: exp, workspace: ws, metric: metric, minimize: minimize)
    print(json ? try Format.json(["sweeps": results]) : SweepReport.text(results))
  }
}
