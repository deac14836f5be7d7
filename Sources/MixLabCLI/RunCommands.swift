import ArgumentParser
import Foundation
import MixLab
import Recipes

/// Options shared by commands that merge.
struct MergeOptions: ParsableArguments {
  @Option(help: "Worker threads (default: all cores). Never changes output bytes.") var threads: Int = 0
  @Option(help: "Memory budget for merge buffers, e.g. 512MB or 2GiB. Never changes output bytes.") var memory: String = "1GiB"

  func validate() throws {
    guard threads >= 0 && threads <= 1024 else { throw ValidationError("--threads must be between 0 (all cores) and 1024") }
    guard let m = ByteCount.parse(memory), m >= 16 << 20 else {
      throw ValidationError("--memory must be a size of at least 16MiB, such as 512MB or 2GiB (got \"\(memory)\")")
    }
  }

  func apply(to o: inout RunOptions) {
    o.threads = threads
    o.memoryBudget = ByteCount.parse(memory)!
  }
}

struct InitCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "init", abstract: "Create a workspace: experiments/, artifacts/ and .mixlab/ (provenance repository and index).")
  @Argument(help: "Folder (default: the current one).") var dir: String = "."

  func run() throws {
    let ws = try Workspace.initialize(at: dir)
    print("initialized mixlab workspace in \(ws.root)")
    print("  experiments/   your recipes and notes (one folder per experiment)")
    print("  artifacts/     merged models and REPORT.md (not committed)")
    print("  .mixlab/       provenance.git (run records) and index.sqlite")
  }
}

struct RunCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run", abstract: "Run a recipe, or every recipe of an experiment folder in dependency order.")
  @Argument(help: "A recipe (.yaml) or an experiment folder.") var path: String
  @OptionGroup var merge: MergeOptions
  @Flag(help: "Validate against input headers and print the plan and estimates; read no tensor, write nothing.") var dryRun =
    false
  @Flag(help: "Recompute even when an up-to-date output exists.") var force = false
  @Flag(help: "Re-hash inputs instead of trusting the hash cache.") var verify = false
  @Flag(help: "Run the declared evaluators on reused outputs too.") var evaluate = false
  @Flag(
    help:
      "Skip comparing each new output with its inputs for the report (distance map, per-block diff): saves one streaming pass over output and inputs."
  ) var noCompare = false
  @Flag(help: "Print JSON: {\"runs\": [...]}.") var json = false

  func run() throws {
    var o = RunOptions()
    o.compare = !noCompare
    merge.apply(to: &o)
    o.dryRun = dryRun
    o.force = force
    o.verify = verify
    o.evaluate = evaluate
    o.quiet = json
    let results = try Runner.run(path: path, options: o)
    if json {
      struct Out: Encodable { var runs: [RunResult] }
      print(try Format.json(Out(runs: results)))
      return
    }
    for r in results {
      if let plan = r.plan {
        print(plan.text(recipe: "\(r.experiment)/\(r.recipe)"))
        if let note = r.note { print("  note: \(note)") }
      } else if let note = r.note {
        print("\(r.experiment)/\(r.recipe): \(note)")
      } else if r.reused {
        print("\(r.experiment)/\(r.recipe): up to date (reused) → \(r.artifact)  \(r.autov2 ?? "")")
      } else {
        let mem = r.peakRSSBytes.map { ", peak \(Format.bytes($0))" } ?? ""
        print("\(r.experiment)/\(r.recipe): \(r.artifact)  sha256 \(r.outputSHA256 ?? "")  (\(Format.seconds(r.seconds))\(mem))")
      }
    }
  }
}

struct LogCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "log", abstract: "The run history, newest first.")
  @Option(help: "Only this experiment.") var experiment: String?
  @Flag(help: "Print JSON.") var json = false

  func run() throws {
    let ws = try Workspace.find(from: ".")
    let entries = try History.log(workspace: ws, experiment: experiment)
    print(json ? try Format.json(["runs": entries]) : History.logText(entries))
  }
}

struct ShowCommand: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "show", abstract: "One run's manifest.")
  @Argument(help: "Prefix of the output SHA-256, run id or commit.") var hash: String
  @Flag(help: "Print the manifest JSON.") var json = false

  func run() throws {
    let ws = try Workspace.find(from: ".")
    let record = try History.find(hash, workspace: ws)
    if json {
      print(String(decoding: record.canonicalJSON(), as: UTF8.self), terminator: "")
    } else {
      print(History.showText(record))
    }
  }
}

struct ReproduceCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "reproduce",
    abstract: "Rebuild a recorded run from its recipe and inputs found by hash; exit 0 only when byte-identical.")
  @Argument(help: "Prefix of the output SHA-256, run id or commit.") var hash: String
  @OptionGroup var merge: MergeOptions
  @Option(name: .customLong("search"), help: "Also look for inputs (by hash) under this folder; repeatable.") var search:
    [String] = []
  @Flag(help: "Keep the rebuilt file under .mixlab/reproduce/.") var keep = false
  @Flag(help: "Re-hash inputs instead of trusting the hash cache.") var verify = false
  @Flag(help: "Print JSON.") var json = false

  func run() throws {
    var o = RunOptions()
    merge.apply(to: &o)
    o.verify = verify
    o.quiet = json
    let ws = try Workspace.find(from: ".")
    let outcome = try Reproduce.run(prefix: hash, workspace: ws, options: o, searchDirs: search, keep: keep)
    print(json ? try Format.json(outcome) : Reproduce.text(outcome))
    if !outcome.identical { throw ExitCode(1) }
  }
}

struct IndexCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "index", abstract: "Maintain the SQLite index.", subcommands: [IndexRebuildCommand.self])
}

struct IndexRebuildCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "rebuild", abstract: "Recreate .mixlab/index.sqlite from the provenance repository (e.g. after git clone).")

  func run() throws {
    let ws = try Workspace.find(from: ".")
    let n = try ws.index().rebuild(from: try ws.git())
    print("indexed \(n) runs from \(ws.relative(ws.gitPath))")
  }
}
