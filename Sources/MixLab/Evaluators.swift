import Foundation
import Provenance
import Recipes
import SafeTensors

#if canImport(Glibc)
  import Glibc
#endif

/// Runs external evaluators on a merged artifact: each is a command whose standard output is a
/// JSON object of named numbers. A failing evaluator is recorded as failed and never
/// invalidates the merge.
public enum Evaluators {
  public struct Context: Sendable {
    public var artifact: String
    public var outputSHA256: String
    public var recipeFile: String
    public var experimentFolder: String
    public var workspace: Workspace
    /// Input name → path of the file or folder the merge read.
    public var inputs: [String: String]
  }

  /// Evaluators of the experiment and the recipe (a recipe's evaluator replaces an
  /// experiment's of the same name).
  public static func declared(experiment: Experiment, recipe: Recipe) -> [EvaluatorSpec] {
    var byName: [String: EvaluatorSpec] = [:]
    var order: [String] = []
    for e in experiment.evaluators + recipe.evaluators {
      if byName[e.name] == nil { order.append(e.name) }
      byName[e.name] = e
    }
    return order.map { byName[$0]! }
  }

  /// Runs every evaluator; returns their records and the metrics they reported (scope
  /// `evaluator:<name>`).
  public static func run(_ specs: [EvaluatorSpec], context: Context, quiet: Bool) -> ([EvaluationRecord], [MetricRecord]) {
    var records: [EvaluationRecord] = []
    var metrics: [MetricRecord] = []
    for spec in specs {
      let (record, values) = runOne(spec, context: context)
      records.append(record)
      for (k, v) in values.sorted(by: { $0.key < $1.key }) {
        metrics.append(MetricRecord(name: k, scope: "evaluator:\(spec.name)", value: v))
      }
      if !quiet {
        let status =
          record.status == "ok" ? "\(values.count) metrics" : record.status + (record.message.map { ": \($0)" } ?? "")
        FileHandle.standardError.write(Data("evaluator \(spec.name): \(status) (\(Format.seconds(record.seconds)))\n".utf8))
      }
    }
    return (records, metrics)
  }

  static func expand(_ arg: String, _ c: Context) -> String {
    var s = arg
    s = s.replacingOccurrences(of: "{artifact}", with: c.artifact)
    s = s.replacingOccurrences(of: "{output_sha256}", with: c.outputSHA256)
    s = s.replacingOccurrences(of: "{recipe}", with: c.recipeFile)
    s = s.replacingOccurrences(of: "{experiment}", with: c.experimentFolder)
    s = s.replacingOccurrences(of: "{workspace}", with: c.workspace.root)
    for (name, path) in c.inputs { s = s.replacingOccurrences(of: "{input:\(name)}", with: path) }
    return s
  }

  static func runOne(_ spec: EvaluatorSpec, context c: Context) -> (EvaluationRecord, [String: Double]) {
    let started = Date()
    let argv = spec.command.map { expand($0, c) }
    // Files in the workspace the command names (scripts, reference data), hashed so the
    // record says what scored the output; the artifact and inputs are recorded by hash
    // already, and files outside the workspace (interpreters) would only leak local paths.
    var files: [String: String] = [:]
    let skip = Set([c.artifact] + Array(c.inputs.values)).map(Workspace.absolute)
    for a in argv where a.contains("/") {
      let path = Workspace.absolute(a)
      guard path.hasPrefix(c.workspace.root + "/") else { continue }
      var isDir: ObjCBool = false
      guard !skip.contains(path), FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
        let data = FileManager.default.contents(atPath: path)
      else { continue }
      files[c.workspace.relative(path)] = Digest.sha256(data)
    }
    func record(_ status: String, _ code: Int32?, _ message: String?) -> EvaluationRecord {
      EvaluationRecord(
        name: spec.name, command: spec.command, files: files, status: status, exitCode: code,
        seconds: Date().timeIntervalSince(started), message: message)
    }
    let process = Process()
    let executable = argv[0]
    if executable.contains("/") {
      process.executableURL = URL(fileURLWithPath: Workspace.absolute(executable))
      process.arguments = Array(argv.dropFirst())
    } else {
      process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
      process.arguments = argv
    }
    process.currentDirectoryURL = URL(fileURLWithPath: c.workspace.root)
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    do {
      try process.run()
    } catch {
      return (record("error", nil, "cannot start \(argv[0]): \(error.localizedDescription)"), [:])
    }
    let box = OutputBox()
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) { box.stdout = out.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: group) { box.stderr = err.fileHandleForReading.readDataToEndOfFile() }
    let finished = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
      process.waitUntilExit()
      finished.signal()
    }
    if finished.wait(timeout: .now() + spec.timeout) == .timedOut {
      process.terminate()
      if finished.wait(timeout: .now() + 5) == .timedOut {
        kill(process.processIdentifier, SIGKILL)
        finished.wait()
      }
      group.wait()
      return (record("timeout", nil, "no result within \(Format.seconds(spec.timeout))"), [:])
    }
    group.wait()
    let stderrTail = String(decoding: box.stderr.suffix(2000), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard process.terminationReason == .exit && process.terminationStatus == 0 else {
      return (
        record(
          "failed", process.terminationStatus,
          failureMessage(
            reason: process.terminationReason, status: process.terminationStatus, stderrTail: stderrTail,
            command: argv[0])), [:]
      )
    }
    // The whole output, or else its last non-empty line (scripts may log before it), is the
    // JSON object.
    let whole = String(decoding: box.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    let lastLine = whole.split(separator: "\n").last.map(String.init) ?? ""
    let parsed = (try? StrictJSONParser.parse(Array(whole.utf8))) ?? (try? StrictJSONParser.parse(Array(lastLine.utf8)))
    guard let parsed, case .object(let members) = parsed else {
      return (record("invalid_output", 0, "standard output is not a JSON object of numbers"), [:])
    }
    var values: [String: Double] = [:]
    for m in members {
      if case .number(let n) = m.value, let v = Double(n), v.isFinite { values[m.key] = v }
    }
    guard !values.isEmpty else { return (record("invalid_output", 0, "the JSON object holds no finite numbers"), [:]) }
    return (record("ok", 0, nil), values)
  }

  /// What a failed evaluator's record and the run's output say: the exit status or the
  /// signal, then the end of its standard error (or a note that it wrote none).
  public static func failureMessage(reason: Process.TerminationReason, status: Int32, stderrTail: String, command: String) -> String {
    var m: String
    if reason == .uncaughtSignal {
      m = "killed by signal \(status)"
    } else {
      m = "exit status \(status)"
      if status == 127 { m += " (command not found: \(command))" }
      if status == 126 { m += " (\(command) is not executable)" }
    }
    m += stderrTail.isEmpty ? "; it wrote nothing to standard error" : "; standard error: \(stderrTail)"
    return m
  }

  /// Written by the reader threads, read after `group.wait()`.
  final class OutputBox: @unchecked Sendable {
    var stdout = Data()
    var stderr = Data()
  }
}
