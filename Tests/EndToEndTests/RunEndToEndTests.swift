import Foundation
import SafeTensors
import Testing

/// `mixlab init / run / log / show / reproduce / index rebuild` through the built binary, in a
/// temporary workspace. Names here live under `RunE2E` so they never collide with the helpers
/// of the synth/inspect end-to-end file in this target.
enum RunE2E {
  struct Result {
    var status: Int32
    var stdout: String
    var stderr: String

    func json() throws -> [String: Any] {
      let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
      return try #require(object as? [String: Any], "not a JSON object: \(stdout)")
    }
  }

  /// The package root (this file is Tests/EndToEndTests/…).
  static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  /// The built `mixlab`: next to the test bundle (SwiftPM puts every product of a build in one
  /// folder), else in the package's `.build/debug`.
  static let binary: URL? = {
    var candidates: [URL] = []
    let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    candidates.append(me.deletingLastPathComponent().appendingPathComponent("mixlab"))
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
      candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("mixlab"))
    }
    candidates.append(packageRoot.appendingPathComponent(".build/debug/mixlab"))
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
  }()

  /// Runs `executable args…` in `cwd` and waits for it.
  static func exec(_ executable: URL, _ args: [String], in cwd: String) throws -> Result {
    let p = Process()
    p.executableURL = executable
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: cwd)
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Drain stderr on another thread while reading stdout, so neither pipe can fill up.
    let errBox = DataBox()
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) { errBox.data = err.fileHandleForReading.readDataToEndOfFile() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return Result(
      status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
      stderr: String(decoding: errBox.data, as: UTF8.self))
  }

  /// Written by one reader thread, read after `DispatchGroup.wait()`.
  final class DataBox: @unchecked Sendable {
    var data = Data()
  }

  /// Runs `mixlab args…` in `cwd`.
  static func mixlab(_ args: String..., in cwd: String) throws -> Result {
    let bin = try #require(
      binary, "the mixlab binary was not found next to the test bundle or in .build/debug; run `swift build` first")
    return try exec(bin, args, in: cwd)
  }

  /// `git`, when installed.
  static let git: URL? = ["/usr/bin/git", "/usr/local/bin/git", "/opt/homebrew/bin/git"].map(URL.init(fileURLWithPath:))
    .first { FileManager.default.isExecutableFile(atPath: $0.path) }

  /// A fresh workspace made by `mixlab init`, removed when the value goes away.
  final class Space {
    let root: String

    init() throws {
      root = FileManager.default.temporaryDirectory.path + "/mixlab-run-e2e-\(UUID().uuidString)"
      try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
      let r = try RunE2E.mixlab("init", ".", in: root)
      try #require(r.status == 0, "mixlab init failed: \(r.stderr)")
      #expect(r.stdout.contains("initialized mixlab workspace"))
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// Copies `experiments/<name>` of this package into the workspace, replacing every
    /// `scale: 0.xx` by `scale` when given (smaller synthetic models, same recipes).
    func copyExperiment(_ name: String, scale: String? = nil) throws {
      let src = RunE2E.packageRoot.appendingPathComponent("experiments/\(name)").path
      let dst = root + "/experiments/\(name)"
      try FileManager.default.copyItem(atPath: src, toPath: dst)
      guard let scale else { return }
      for f in try FileManager.default.contentsOfDirectory(atPath: dst) where f.hasSuffix(".yaml") {
        let text = try String(contentsOfFile: dst + "/" + f, encoding: .utf8)
        let scaled = text.replacingOccurrences(of: #"scale: 0\.\d+"#, with: "scale: \(scale)", options: .regularExpression)
        try scaled.write(toFile: dst + "/" + f, atomically: true, encoding: .utf8)
      }
    }

    /// `mixlab synth --arch sd1` of `count` models into `models/` (sd1-00 … ).
    func synthSD1(count: Int, seed: Int, scale: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
      let r = try RunE2E.mixlab(
        "synth", "--arch", "sd1", "--count", "\(count)", "--seed", "\(seed)", "--scale", scale, "--out", "models", in: root)
      try #require(r.status == 0, "\(r.stderr)", sourceLocation: sourceLocation)
    }

    /// Writes `experiments/<experiment>/<name>.yaml`, creating the folder.
    func recipe(_ experiment: String, _ name: String, _ text: String) throws {
      let dir = root + "/experiments/\(experiment)"
      try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
      try text.write(toFile: dir + "/\(name).yaml", atomically: true, encoding: .utf8)
    }

    func sha256(_ relative: String) throws -> String {
      Digest.sha256(try Data(contentsOf: URL(fileURLWithPath: root + "/" + relative)))
    }

    func files(under relative: String) -> [String] {
      (FileManager.default.enumerator(atPath: root + "/" + relative)?.allObjects as? [String] ?? []).sorted()
    }
  }
}

@Suite("mixlab run and the provenance commands, end to end")
struct RunEndToEndTests {
  /// The `runs` array of `mixlab run --json`, checked against the JSON contract.
  func runs(_ r: RunE2E.Result, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
    try #require(r.status == 0, "mixlab run failed: \(r.stderr)", sourceLocation: sourceLocation)
    let runs = try #require(try r.json()["runs"] as? [[String: Any]], sourceLocation: sourceLocation)
    for run in runs {
      for key in ["experiment", "recipe", "artifact", "output_sha256", "run_id", "recipe_hash"] {
        #expect(run[key] is String, "runs[].\(key) missing in \(run)", sourceLocation: sourceLocation)
      }
      #expect(run["reused"] is Bool, sourceLocation: sourceLocation)
    }
    return runs
  }

  @Test("quickstart: dry run, run --json, reuse, log, show, reproduce, index rebuild, git history")
  func quickstart() throws {
    let ws = try RunE2E.Space()
    // The quickstart's recipes, with synthetic models at scale 0.02 instead of 0.05 for speed.
    try ws.copyExperiment("quickstart", scale: "0.02")

    // A dry run prints the plan and writes no artifact and no record.
    let dry = try RunE2E.mixlab("run", "--dry-run", "experiments/quickstart", in: ws.root)
    #expect(dry.status == 0, "\(dry.stderr)")
    #expect(dry.stdout.contains("plan for quickstart/soup: sd1, 1131 tensors"))
    #expect(dry.stdout.contains("plan for quickstart/ties") && dry.stdout.contains("estimate:"))
    #expect(dry.stdout.contains("quickstart/mix: validated; its plan needs the output of soup, ties"))
    #expect(ws.files(under: "artifacts").isEmpty)
    let emptyLog = try RunE2E.mixlab("log", "--json", in: ws.root)
    let emptyRuns = try emptyLog.json()["runs"] as? [Any]
    #expect(emptyLog.status == 0 && emptyRuns?.isEmpty == true)

    // The real run: every output written, hashed as the JSON says.
    let first = try runs(try RunE2E.mixlab("run", "--json", "experiments/quickstart", in: ws.root))
    #expect(first.map { $0["recipe"] as? String } == ["soup", "ties", "mix"])
    for run in first {
      #expect(run["reused"] as? Bool == false)
      let artifact = try #require(run["artifact"] as? String)
      #expect(artifact == "artifacts/quickstart/\(run["recipe"] as? String ?? "").safetensors")
      #expect(try ws.sha256(artifact) == run["output_sha256"] as? String)
    }
    #expect(FileManager.default.fileExists(atPath: ws.root + "/artifacts/quickstart/REPORT.md"))

    // A second run reuses everything.
    let second = try runs(try RunE2E.mixlab("run", "--json", "experiments/quickstart", in: ws.root))
    #expect(second.allSatisfy { $0["reused"] as? Bool == true })
    #expect(second.map { $0["output_sha256"] as? String } == first.map { $0["output_sha256"] as? String })
    #expect(second.map { $0["run_id"] as? String } == first.map { $0["run_id"] as? String })

    // The log lists the three runs.
    let log = try RunE2E.mixlab("log", "--json", in: ws.root)
    #expect(log.status == 0)
    let logged = try #require(try log.json()["runs"] as? [[String: Any]])
    #expect(Set(logged.compactMap { $0["output_sha256"] as? String }) == Set(first.compactMap { $0["output_sha256"] as? String }))
    #expect(Set(logged.compactMap { $0["recipe"] as? String }) == ["soup", "ties", "mix"])
    let text = try RunE2E.mixlab("log", in: ws.root)
    #expect(text.status == 0 && text.stdout.contains("quickstart/soup"))

    // show: by output hash prefix as text, by run id as the manifest JSON.
    let soupSHA = try #require(first[0]["output_sha256"] as? String)
    let show = try RunE2E.mixlab("show", String(soupSHA.prefix(10)), in: ws.root)
    #expect(show.status == 0, "\(show.stderr)")
    #expect(show.stdout.contains(soupSHA) && show.stdout.contains("quickstart/soup") && show.stdout.contains("mixlab reproduce"))
    let manifest = try RunE2E.mixlab("show", "--json", try #require(first[0]["run_id"] as? String), in: ws.root)
    #expect(manifest.status == 0 && manifest.stdout.contains(soupSHA))
    let unknown = try RunE2E.mixlab("show", "ffffffffff", in: ws.root)
    #expect(unknown.status != 0 && unknown.stderr.contains("no recorded run matches"))

    // reproduce: exit 0 and "bit-identical".
    let rep = try RunE2E.mixlab("reproduce", String(soupSHA.prefix(12)), in: ws.root)
    #expect(rep.status == 0, "\(rep.stderr)")
    #expect(rep.stdout.contains("bit-identical: \(soupSHA)"))

    // The index is rebuilt from the provenance repository, and reproduce still works.
    for f in try FileManager.default.contentsOfDirectory(atPath: ws.root + "/.mixlab") where f.hasPrefix("index.sqlite") {
      try FileManager.default.removeItem(atPath: ws.root + "/.mixlab/" + f)
    }
    let rebuild = try RunE2E.mixlab("index", "rebuild", in: ws.root)
    #expect(rebuild.status == 0 && rebuild.stdout.contains("indexed 3 runs"), "\(rebuild.stdout)\(rebuild.stderr)")
    let mixSHA = try #require(first[2]["output_sha256"] as? String)
    let rep2 = try RunE2E.mixlab("reproduce", String(mixSHA.prefix(12)), "--threads", "1", in: ws.root)
    #expect(rep2.status == 0 && rep2.stdout.contains("bit-identical"), "\(rep2.stdout)\(rep2.stderr)")

    // The records are commits of the provenance repository, checked with git itself.
    guard let git = RunE2E.git else { return }
    let history = try RunE2E.exec(git, ["--git-dir", ".mixlab/provenance.git", "log", "--format=%H %s", "runs"], in: ws.root)
    #expect(history.status == 0, "\(history.stderr)")
    let commits = history.stdout.split(separator: "\n")
    #expect(commits.count == 3, "\(history.stdout)")
    for run in first {
      let commit = try #require(run["commit"] as? String)
      #expect(commits.contains { $0.hasPrefix(commit) }, "commit \(commit) not in the history of runs/")
    }
    let files = try RunE2E.exec(
      git, ["--git-dir", ".mixlab/provenance.git", "ls-tree", "-r", "--name-only", "HEAD"], in: ws.root)
    #expect(files.stdout.contains("runs/\(soupSHA)/manifest.json"))
    #expect(!files.stdout.contains(".safetensors"), "weights are never committed")
  }

  @Test("a recipe with a typo exits non-zero with file:line:column and the suggestion, writing nothing")
  func typo() throws {
    let ws = try RunE2E.Space()
    try FileManager.default.createDirectory(atPath: ws.root + "/experiments/bad", withIntermediateDirectories: true)
    try """
    mixlab: 1
    inputs:
      base: {synth: {seed: 1, index: 0, scale: 0.02}}
      a: {synth: {seed: 1, index: 1, scale: 0.02}}
      b: {synth: {seed: 1, index: 2, scale: 0.02}}
    steps:
      t:
        method: ties
        base: base
        models: [a, b]
        densty: 0.5
    output: {from: t}
    """.write(toFile: ws.root + "/experiments/bad/merge.yaml", atomically: true, encoding: .utf8)
    let bin = try #require(RunE2E.binary)
    for args in [
      ["run", "experiments/bad"], ["run", "--dry-run", "experiments/bad/merge.yaml"], ["run", "--json", "experiments/bad"],
    ] {
      let r = try RunE2E.exec(bin, args, in: ws.root)
      #expect(r.status != 0)
      #expect(
        r.stderr.contains("experiments/bad/merge.yaml:11:5: unknown key `densty` in step `t` — did you mean `density`?"),
        "\(r.stderr)")
      let paragraph = r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
      #expect(!paragraph.contains("\n\n") && !r.stderr.contains("Fatal error"))
    }
    #expect(ws.files(under: "artifacts").isEmpty && ws.files(under: ".mixlab/synth").isEmpty)
  }

  @Test("the sd2-community example runs in a fresh workspace: six recipes, components from the right sources, then reused")
  func sd2Community() throws {
    let ws = try RunE2E.Space()
    try ws.copyExperiment("sd2-community")
    let first = try runs(try RunE2E.mixlab("run", "--json", "experiments/sd2-community", in: ws.root))
    let order = first.compactMap { $0["recipe"] as? String }
    #expect(Set(order) == ["te-soup", "unet-ties-soup", "assembled", "pair-a", "pair-b", "tree"] && order.count == 6)
    func before(_ a: String, _ b: String) -> Bool { (order.firstIndex(of: a) ?? 99) < (order.firstIndex(of: b) ?? -1) }
    #expect(before("te-soup", "assembled") && before("unet-ties-soup", "assembled"))
    #expect(before("pair-a", "tree") && before("pair-b", "tree") && before("assembled", "tree"))
    for run in first {
      #expect(try ws.sha256(try #require(run["artifact"] as? String)) == run["output_sha256"] as? String)
    }

    // The assembled model: UNet of the TIES-SOUP, text encoder of the soup, VAE of fine-tune 5.
    let dir = ws.root + "/artifacts/sd2-community/"
    let assembled = try SafeTensorsFile(path: dir + "assembled.safetensors")
    let sources: [(String, String)] = [
      ("model.diffusion_model.", dir + "unet-ties-soup.safetensors"),
      ("cond_stage_model.", dir + "te-soup.safetensors"),
      ("first_stage_model.", ws.root + "/.mixlab/synth/sd1-seed21-scale0.03-f16/sd1-05.safetensors"),
    ]
    for (prefix, path) in sources {
      let source = try SafeTensorsFile(path: path)
      let keys = assembled.tensors.filter { $0.name.hasPrefix(prefix) }
      #expect(!keys.isEmpty)
      for t in keys {
        let other = try #require(source.info(t.name), "\(path) lacks \(t.name)")
        let same = assembled.withBytes(of: t) { a in source.withBytes(of: other) { b in a.elementsEqual(b) } }
        #expect(same, "\(t.name) does not come from \(path)")
      }
    }
    // The text-encoder soup holds only the text encoder.
    let te = try SafeTensorsFile(path: dir + "te-soup.safetensors")
    #expect(te.tensors.allSatisfy { $0.name.hasPrefix("cond_stage_model.") })

    let second = try runs(try RunE2E.mixlab("run", "--json", "experiments/sd2-community", in: ws.root))
    #expect(second.allSatisfy { $0["reused"] as? Bool == true })
    let report = try String(contentsOfFile: dir + "REPORT.md", encoding: .utf8)
    #expect(report.contains("TIES-SOUP") && report.contains("unet-ties-soup"))
  }
}

@Suite("sharing provenance with plain git, end to end")
struct SharedProvenanceTests {
  @Test("a workspace whose provenance.git came from git clone rebuilds its index and reproduces runs bit for bit")
  func cloneRebuildReproduce() throws {
    let git = try #require(RunE2E.git, "git is not installed")
    let origin = try RunE2E.Space()
    try origin.copyExperiment("quickstart", scale: "0.02")
    let run = try RunE2E.mixlab("run", "--json", "experiments/quickstart", in: origin.root)
    try #require(run.status == 0, "\(run.stderr)")
    let runs = try #require(try run.json()["runs"] as? [[String: Any]])
    let soup = try #require(runs.first { $0["recipe"] as? String == "soup" }?["output_sha256"] as? String)
    let mix = try #require(runs.first { $0["recipe"] as? String == "mix" }?["output_sha256"] as? String)

    // Someone else clones only the provenance repository into a workspace of their own.
    let other = try RunE2E.Space()
    try FileManager.default.removeItem(atPath: other.root + "/.mixlab/provenance.git")
    let clone = try RunE2E.exec(
      git, ["clone", "--quiet", "--bare", origin.root + "/.mixlab/provenance.git", other.root + "/.mixlab/provenance.git"],
      in: other.root)
    try #require(clone.status == 0, "\(clone.stderr)")
    let rebuild = try RunE2E.mixlab("index", "rebuild", in: other.root)
    #expect(rebuild.status == 0, "\(rebuild.stderr)")
    #expect(rebuild.stdout.contains("indexed 3 runs"))
    let log = try RunE2E.mixlab("log", "--json", in: other.root)
    #expect(log.status == 0 && log.stdout.contains(soup))

    // The soup's inputs are synthetic: re-synthesized and verified by hash.
    let r1 = try RunE2E.mixlab("reproduce", String(soup.prefix(12)), in: other.root)
    #expect(r1.status == 0, "\(r1.stdout)\n\(r1.stderr)")
    #expect(r1.stdout.contains("bit-identical"))
    // The mix reads the soup and TIES outputs: without them it names what is missing…
    let missing = try RunE2E.mixlab("reproduce", String(mix.prefix(12)), in: other.root)
    #expect(missing.status != 0)
    #expect(missing.stderr.contains("was not found") && missing.stderr.contains("--search"))
    // …and finds them by hash in a folder given with --search.
    let r2 = try RunE2E.mixlab("reproduce", String(mix.prefix(12)), "--search", origin.root + "/artifacts", in: other.root)
    #expect(r2.status == 0, "\(r2.stdout)\n\(r2.stderr)")
    #expect(r2.stdout.contains("bit-identical"))
  }
}

@Suite("sweeps and evaluators, end to end")
struct SweepEndToEndTests {
  @Test("the sweep-demo experiment: 27 scored runs, metrics table, and a sweep report that finds the target weights")
  func sweepDemo() throws {
    let python = try #require(
      ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) },
      "python3 is needed")
    _ = python
    let ws = try RunE2E.Space()
    try ws.copyExperiment("sweep-demo")
    let run = try RunE2E.mixlab("run", "--json", "experiments/sweep-demo", in: ws.root)
    try #require(run.status == 0, "\(run.stderr)")
    let runs = try #require(try run.json()["runs"] as? [[String: Any]])
    #expect(runs.count == 27)
    let metrics = try RunE2E.mixlab("metrics", "sweep-demo", "--json", "--sort", "closeness", in: ws.root)
    #expect(metrics.status == 0, "\(metrics.stderr)")
    let table = try metrics.json()
    let columns = try #require(table["columns"] as? [String])
    #expect(columns.contains("closeness") && columns.contains("rel_l2_to_target"))
    let report = try RunE2E.mixlab("sweep", "report", "sweep-demo", "--json", in: ws.root)
    #expect(report.status == 0, "\(report.stderr)")
    let sweeps = try #require(try report.json()["sweeps"] as? [[String: Any]])
    let blocks = try #require(sweeps.first { $0["sweep"] as? String == "blocks" })
    #expect(blocks["metric"] as? String == "closeness")
    let best = try #require(blocks["best"] as? String)
    let points = try #require(blocks["points"] as? [[String: Any]])
    let values = try #require(points.first { $0["recipe"] as? String == best }?["values"] as? [String: Double])
    // The target takes 0.2 in IN04, 0.8 in M00, 0.5 in OUT04.
    #expect(abs(values["steps.blend.alpha.blocks.M00"]! - 0.8) < 0.2, "\(values)")
    #expect(abs(values["steps.blend.alpha.blocks.IN04"]! - 0.2) < 0.2, "\(values)")
    let blend = try #require(sweeps.first { $0["sweep"] as? String == "blend" })
    #expect(["blend-03", "blend-04"].contains(blend["best"] as? String ?? ""))
    #expect(FileManager.default.fileExists(atPath: ws.root + "/artifacts/sweep-demo/sweeps/blocks.best.yaml"))
    let again = try RunE2E.mixlab("run", "--json", "experiments/sweep-demo", in: ws.root)
    #expect(try (again.json()["runs"] as? [[String: Any]])?.allSatisfy { $0["reused"] as? Bool == true } == true)
  }
}
