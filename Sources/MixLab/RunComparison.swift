import Foundation
import MergeEngine
import Provenance
import SafeTensors

/// The comparison of a run's output with its inputs that the experiment report shows: the
/// distance map of output + inputs and the per-block difference from the reference input.
/// Computed once, right after the run (one streaming pass over output and inputs), and kept
/// as `artifacts/<experiment>/<recipe>.compare.json`, keyed by the output's SHA-256; the
/// report only draws it.
public struct RunComparison: Codable, Sendable, Equatable {
  public static let formatVersion = 1
  public var formatVersion: Int
  public var outputSHA256: String
  /// The recipe's reference input (side A of the per-block diff), when it is a model input.
  public var reference: String?
  public var distance: DistanceReport
  /// Per block: reference input (A) vs output (B).
  public var blocks: [BlockDiff]
  public var components: [BlockDiff]
  public var overall: BlockDiff?

  enum CodingKeys: String, CodingKey {
    case reference, distance, blocks, components, overall
    case formatVersion = "format_version"
    case outputSHA256 = "output_sha256"
  }
}

enum RunComparisons {
  /// The most distinct inputs the map places. Beyond it (soups of 20 to 250 models) the pass
  /// would cost a Gram matrix of all of them per element, so the report compares the output
  /// with its reference input only and says how to draw the whole map (`mixlab distance`).
  static let maxModels = 8

  static func path(_ ws: Workspace, experiment: String, recipe: String) -> String {
    ws.artifactsDir + "/\(experiment)/\(recipe).compare.json"
  }

  /// Computes and stores the comparison of a finished run. Never fails the run: problems
  /// become one warning line (the report then says the comparison is missing). Set
  /// `MIXLAB_NO_COMPARE=1` to skip it.
  static func record(
    _ record: RunRecord, inputs: [OpenedInput], artifact: String, workspace ws: Workspace, options: RunOptions,
    merged: MergeOutcome? = nil
  ) {
    if ProcessInfo.processInfo.environment["MIXLAB_NO_COMPARE"] == "1" { return }
    do {
      let c = try compute(record, inputs: inputs, artifact: artifact, workspace: ws, options: options, merged: merged)
      let e = JSONEncoder()
      e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
      let file = path(ws, experiment: record.experiment, recipe: record.recipeName)
      try e.encode(c).write(to: URL(fileURLWithPath: file), options: .atomic)
    } catch {
      let text = (error as? LocalizedError)?.errorDescription ?? "\(error)"
      FileHandle.standardError.write(
        Data("warning: \(record.experiment)/\(record.recipeName): the report's comparison was not computed: \(text)\n".utf8))
    }
  }

  /// - Parameter merged: the merge's outcome, when this process just ran it: the output sums
  ///   it computed per tensor replace reading those tensors of the output again (the output
  ///   was written past the page cache, so that read would come from disk).
  static func compute(
    _ record: RunRecord, inputs: [OpenedInput], artifact: String, workspace ws: Workspace, options: RunOptions,
    merged: MergeOutcome? = nil
  ) throws -> RunComparison {
    let output = try Checkpoint(path: artifact)
    var checkpoints = [output]
    var models = [
      DistanceModel(name: record.recipeName, path: record.output.path, sha256: record.output.sha256, role: "output")
    ]
    let reference = Distance.referenceInput(record)
    var refIndex: Int?
    var bySHA: [String: Int] = [:]
    var placed = inputs
    let distinct = Set(inputs.map { $0.sha256.isEmpty ? $0.path : $0.sha256 }).count
    var limited: String?
    if distinct > maxModels {
      let kept = inputs.first { $0.name == reference } ?? inputs[0]
      placed = inputs.filter { $0.sha256 == kept.sha256 && $0.path == kept.path }
      limited =
        "\(distinct) distinct inputs exceed the report's \(maxModels): the map shows the output and `\(kept.name)` only; `mixlab distance --inputs \(String(record.output.sha256.prefix(12)))` places them all"
    }
    for i in placed {
      if let k = bySHA[i.sha256], !i.sha256.isEmpty {
        models[k].name += "=\(i.name)"
        if i.name == reference {
          models[k].role = "reference"
          refIndex = k
        }
        continue
      }
      bySHA[i.sha256] = checkpoints.count
      if i.name == reference { refIndex = checkpoints.count }
      checkpoints.append(i.checkpoint)
      models.append(
        DistanceModel(
          name: i.name, path: ws.relative(i.path), sha256: i.sha256.isEmpty ? nil : i.sha256,
          role: i.name == reference ? "reference" : "input"))
    }
    let pairs = refIndex.map { [($0, 0)] } ?? []
    let sums = Distance.sums(
      checkpoints, pairs: pairs, threads: options.threads, quiet: options.quiet,
      known: knownRows(merged, inputs: inputs, models: models.count, placedBySHA: bySHA))
    for i in models.indices { models[i].nonfiniteTensors = sums.nonFinite[i] }
    var distance = Distance.report(sums, models: models)
    distance.notes.append("computed right after run \(record.runID)")
    if let limited { distance.notes.append(limited) }
    var blocks: [BlockDiff] = []
    var components: [BlockDiff] = []
    var overall: BlockDiff?
    if let r = refIndex {
      // Differing tensors per block from hashes (output: recorded; reference: hash cache).
      let cache = HashCache(index: try ws.index())
      var refHashes: [String: String]? = [:]
      for f in checkpoints[r].shards {
        if let h = try? cache.cachedHashes(of: f) {
          refHashes?.merge(h.tensorSHA256) { x, _ in x }
        } else {
          refHashes = nil
        }
      }
      let outHashes = record.output.tensorSHA256
      func row(_ name: String, _ indices: [Int]) -> BlockDiff {
        var aa = 0.0
        var bb = 0.0
        var ab = 0.0
        var dd = 0.0
        var mx = 0.0
        var tensors = 0
        var differing = 0
        for b in indices {
          let s = sums.sums[b]
          aa += s[r, r]
          bb += s[0, 0]
          ab += s[0, r]
          dd += s.squaredDifference[0]
          mx = CompareSums.maxNaN(mx, s.maxAbsDifference[0])
          tensors += sums.tensorsPerBlock[b]
          if let refHashes {
            differing += sums.keysPerBlock[b].filter { outHashes[$0] == nil || outHashes[$0] != refHashes[$0] }.count
          } else if s.squaredDifference[0] != 0 {
            differing += sums.tensorsPerBlock[b]
          }
        }
        return BlockDiff(
          block: name, metrics: DiffMetrics(aa: aa, bb: bb, ab: ab, dd: dd, maxAbs: mx), tensors: tensors,
          differing: differing)
      }
      blocks = sums.blocks.indices.map { row(sums.blocks[$0], [$0]) }
      components = CompareBlocks.sortedComponents(Set(sums.componentOfBlock)).map { c in
        row(c, sums.blocks.indices.filter { sums.componentOfBlock[$0] == c })
      }
      overall = row("all", Array(sums.blocks.indices))
    }
    return RunComparison(
      formatVersion: RunComparison.formatVersion, outputSHA256: record.output.sha256, reference: reference, distance: distance,
      blocks: blocks, components: components, overall: overall)
  }

  /// The output rows the merge already computed: for each computed tensor whose program read
  /// every placed input (under any of its names), Σ out², and per placed model Σ out·x, Σ x²,
  /// Σ (out − x)², max |out − x|. Tensors the merge copied, or that skipped an input, are not
  /// known and are read from the output file.
  static func knownRows(
    _ merged: MergeOutcome?, inputs: [OpenedInput], models n: Int, placedBySHA: [String: Int]
  ) -> [String: Distance.KnownRow] {
    guard let merged, !merged.tensorSums.isEmpty else { return [:] }
    let nonFinite = Set(merged.nonFinite.map(\.key))
    let modelOfInput = inputs.map { $0.sha256.isEmpty ? nil : placedBySHA[$0.sha256] }
    var rows: [String: Distance.KnownRow] = [:]
    for (key, t) in merged.tensorSums {
      var row = Distance.KnownRow(
        outSquared: t.outSquared, dot: Array(repeating: 0, count: n), inputSquared: Array(repeating: 0, count: n),
        squaredDifference: Array(repeating: 0, count: n), maxAbsDifference: Array(repeating: 0, count: n),
        outputNonFinite: nonFinite.contains(key))
      var covered = Set<Int>()
      for (l, input) in t.inputs.enumerated() {
        guard input < modelOfInput.count, let m = modelOfInput[input], !covered.contains(m) else { continue }
        covered.insert(m)
        row.dot[m] = t.dot[l]
        row.inputSquared[m] = t.inputSquared[l]
        row.squaredDifference[m] = t.squaredDifference[l]
        row.maxAbsDifference[m] = t.maxAbsDifference[l]
      }
      if covered.count == n - 1 { rows[key] = row }
    }
    return rows
  }

  /// The stored comparison of `record`'s output, when present and for these bytes.
  static func load(_ record: RunRecord, workspace ws: Workspace) -> RunComparison? {
    let file = path(ws, experiment: record.experiment, recipe: record.recipeName)
    guard let data = FileManager.default.contents(atPath: file),
      let c = try? JSONDecoder().decode(RunComparison.self, from: data),
      c.formatVersion == RunComparison.formatVersion, c.outputSHA256 == record.output.sha256
    else { return nil }
    return c
  }

  /// The report's section for one run: writes `<recipe>.map.svg` and `<recipe>.diff.svg` next
  /// to REPORT.md and returns the Markdown that shows them, with a table of distances from
  /// the output to each input.
  static func reportSection(_ record: RunRecord, workspace ws: Workspace) -> String {
    guard let c = load(record, workspace: ws) else {
      return
        "_No comparison with the inputs for this output yet (it is computed right after a run; `mixlab run --force` recomputes it)._\n\n"
    }
    let dir = ws.artifactsDir + "/" + record.experiment
    let name = record.recipeName
    var out = ""
    let map = DistanceSVG.render(c.distance, title: "\(name): where the mix sits among its inputs")
    try? Data(map.render().utf8).write(to: URL(fileURLWithPath: dir + "/\(name).map.svg"), options: .atomic)
    out += "**Where the mix sits among its inputs** (classical MDS of pairwise L2 distances)\n\n"
    out += "![distance map of \(name) and its inputs](\(link(name)).map.svg)\n\n"
    for note in c.distance.notes where !note.hasPrefix("computed right after run") { out += "_\(note)._\n\n" }
    if let all = c.distance.components.first {
      out += "| model | role | L2 to output | cosine to output |\n|---|---|---|---|\n"
      for (i, m) in c.distance.models.enumerated() where i > 0 {
        out +=
          "| \(m.name) | \(m.role ?? "") | \(NumberText.short(all.l2[0][i])) | \(NumberText.cosine(all.cosine[0][i])) |\n"
      }
      out += "\n"
    }
    let flagged = c.distance.outliers
    if !flagged.isEmpty {
      for o in flagged { out += "- outlier: \(o.model) (\(o.component)): \(o.reason)\n" }
      out += "\n"
    }
    if let ref = c.reference, c.overall != nil {
      var diff = DiffReport(
        a: DiffSide(kind: "input", argument: ref, path: c.distance.models.first { $0.role == "reference" }?.path),
        b: DiffSide(kind: "run", argument: name, path: record.output.path, sha256: record.output.sha256, recipe: name),
        notes: [])
      diff.blocks = c.blocks
      diff.components = c.components
      diff.overall = c.overall
      diff.tensorsCompared = c.overall?.tensors
      diff.numeric = true
      let svg = DiffSVG.render(diff)
      try? Data(svg.render().utf8).write(to: URL(fileURLWithPath: dir + "/\(name).diff.svg"), options: .atomic)
      out += "**Per-block difference from the reference input `\(ref)`** (rel L2 = ‖output − \(ref)‖ / ‖\(ref)‖)\n\n"
      out += "![per-block difference of \(name) from \(ref)](\(link(name)).diff.svg)\n\n"
      out += "| component | rel_l2 | cosine | max_abs | differing |\n|---|---|---|---|---|\n"
      for b in c.components + (c.overall.map { [$0] } ?? []) {
        out +=
          "| \(b.block) | \(NumberText.short(b.metrics.relL2)) | \(NumberText.cosine(b.metrics.cosine)) | \(NumberText.short(b.metrics.maxAbs)) | \(b.differing)/\(b.tensors) |\n"
      }
      out += "\n"
    }
    return out
  }

  /// A file name as a Markdown link target (spaces and parentheses escaped).
  static func link(_ name: String) -> String {
    name.replacingOccurrences(of: " ", with: "%20").replacingOccurrences(of: "(", with: "%28").replacingOccurrences(
      of: ")", with: "%29")
  }
}
