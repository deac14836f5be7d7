import Architectures
import Foundation
import Provenance
import SafeTensors

/// One model of a distance map.
public struct DistanceModel: Codable, Sendable, Equatable {
  /// A short unique label (file name, or recipe name for a run's output, or input name).
  public var name: String
  public var path: String
  public var sha256: String?
  /// `output`, `input` or `reference` (the run's reference input) when the model came from a
  /// run; nil for plain files.
  public var role: String?
  /// Keys holding NaN or infinite values (found during the pass).
  public var nonfiniteTensors: [String]

  enum CodingKeys: String, CodingKey {
    case name, path, sha256, role
    case nonfiniteTensors = "nonfinite_tensors"
  }

  public init(name: String, path: String, sha256: String? = nil, role: String? = nil, nonfiniteTensors: [String] = []) {
    self.name = name
    self.path = path
    self.sha256 = sha256
    self.role = role
    self.nonfiniteTensors = nonfiniteTensors
  }
}

/// Pairwise distances of every model for one component (`all` is every compared tensor).
public struct ComponentDistance: Codable, Sendable, Equatable {
  public var component: String
  /// ‖xᵢ − xⱼ‖ over the component's tensors; null where not finite.
  public var l2: [[Double?]]
  /// xᵢ·xⱼ / (‖xᵢ‖ ‖xⱼ‖); null where not finite.
  public var cosine: [[Double?]]
  /// ‖xᵢ‖.
  public var norm: [Double?]
  /// 2-D classical MDS coordinates (L2 units) per model; null for models not placed
  /// (non-finite weights).
  public var map: [[Double]?]
  /// Share of the positive spectrum the two map axes keep (1: the map is exact).
  public var explained: Double?
  /// Index of the medoid among the models.
  public var medoid: Int?
  /// Names of models far from the cluster in this component.
  public var outliers: [String]

  public init(
    component: String, l2: [[Double?]], cosine: [[Double?]], norm: [Double?], map: [[Double]?], explained: Double?,
    medoid: Int?, outliers: [String]
  ) {
    self.component = component
    self.l2 = l2
    self.cosine = cosine
    self.norm = norm
    self.map = map
    self.explained = explained
    self.medoid = medoid
    self.outliers = outliers
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(component, forKey: .component)
    try c.encode(l2, forKey: .l2)
    try c.encode(cosine, forKey: .cosine)
    try c.encode(norm, forKey: .norm)
    try c.encode(map, forKey: .map)
    try c.encode(explained, forKey: .explained)
    try c.encode(medoid, forKey: .medoid)
    try c.encode(outliers, forKey: .outliers)
  }
}

/// A flagged model.
public struct DistanceOutlier: Codable, Sendable, Equatable {
  public var model: String
  /// `all`, a component, or `weights` for non-finite values.
  public var component: String
  public var reason: String
}

/// What `mixlab distance` computed. The snake_case JSON names are a public contract.
public struct DistanceReport: Codable, Sendable, Equatable {
  public var architecture: String
  public var models: [DistanceModel]
  /// `all` first, then UNet, text encoders, VAE (or an LLM's parts).
  public var components: [ComponentDistance]
  public var outliers: [DistanceOutlier]
  /// Keys not compared: missing from some model, shapes differing, or integer tensors.
  public var skippedKeys: [String]
  public var tensorsCompared: Int
  public var notes: [String]

  enum CodingKeys: String, CodingKey {
    case architecture, models, components, outliers, notes
    case skippedKeys = "skipped_keys"
    case tensorsCompared = "tensors_compared"
  }
}

/// A model to place: its checkpoint and how to show it.
public struct DistanceInput: Sendable {
  public var checkpoint: Checkpoint
  public var model: DistanceModel

  public init(checkpoint: Checkpoint, model: DistanceModel) {
    self.checkpoint = checkpoint
    self.model = model
  }
}

/// `mixlab distance`: pairwise L2 distance and cosine similarity of N models per component,
/// from one streaming pass that accumulates the N×N Gram matrix per block
/// (‖xᵢ − xⱼ‖² = Gᵢᵢ + Gⱼⱼ − 2Gᵢⱼ), then a 2-D map by classical MDS and outliers.
public enum Distance {
  public struct Options: Sendable {
    /// Worker threads (0: all cores); never changes results.
    public var threads = 0
    public var quiet = true
    public var workspace: Workspace?
    public init() {}
  }

  /// The pass's per-block sums, from which distances, maps and per-block diffs derive.
  struct Sums {
    var architecture: Architecture
    var blocks: [String]
    var componentOfBlock: [String]
    var sums: [CompareSums]
    /// Tensors per block, and per block and pair the tensors whose bytes differ (when known).
    var tensorsPerBlock: [Int]
    var keysPerBlock: [[String]]
    var nonFinite: [[String]]
    var skipped: [String]
    var compared: Int
  }

  /// Computes the per-block Gram sums of `models` over the float keys every model has with
  /// the same shape.
  ///
  /// - Parameter pairs: model pairs whose Σ(a−b)² and max |a−b| are also needed (per-block
  ///   diffs without cancellation).
  /// Sums of model 0 (a run's output) against models 1…n−1 for one key, already computed
  /// while merging; indexed by model (index 0 unused).
  struct KnownRow {
    var outSquared: Double
    var dot: [Double]
    var inputSquared: [Double]
    var squaredDifference: [Double]
    var maxAbsDifference: [Double]
    /// The output tensor holds NaN or Inf.
    var outputNonFinite: Bool
  }

  /// - Parameter known: keys not read from model 0 (a run's output): their output row comes
  ///   from the merge, and only the other models are streamed for them (nothing at all when
  ///   there is one other model). Every pair must then involve model 0.
  static func sums(
    _ models: [Checkpoint], pairs: [(Int, Int)], threads: Int, quiet: Bool, known: [String: KnownRow] = [:]
  ) -> Sums {
    let first = models[0]
    var arch = Detection.architecture(of: first.entries.map { ($0.info.name, $0.info.shape) })
    if arch == .unknown {
      for m in models.dropFirst() {
        arch = Detection.architecture(of: m.entries.map { ($0.info.name, $0.info.shape) })
        if arch != .unknown { break }
      }
    }
    var skipped: [String] = []
    var keys: [String] = []
    var allKeys = Set<String>()
    for m in models { allKeys.formUnion(m.entries.map(\.info.name)) }
    for k in allKeys.sorted() {
      let entries = models.map { $0.entry(k) }
      guard let e0 = entries[0], entries.allSatisfy({ $0 != nil }),
        entries.allSatisfy({ $0!.info.shape == e0.info.shape && $0!.info.dtype.isFloat })
      else {
        skipped.append(k)
        continue
      }
      keys.append(k)
    }
    let namer = CompareBlocks(architecture: arch, keys: keys)
    let blockOfKey = keys.map { namer.block(of: $0) }
    let blocks = namer.sorted(Set(blockOfKey))
    let blockIndex = Dictionary(uniqueKeysWithValues: blocks.enumerated().map { ($1, $0) })
    var componentOfBlock = [String](repeating: "", count: blocks.count)
    var tensorsPerBlock = [Int](repeating: 0, count: blocks.count)
    var keysPerBlock = [[String]](repeating: [], count: blocks.count)
    let rest = Array(models.dropFirst())
    // Items in their first model's file order, so that model streams sequentially.
    var items: [CompareItem] = []
    var others: [CompareItem] = []
    var knownKeys: [(key: String, bucket: Int)] = []
    for (i, k) in keys.enumerated() {
      let b = blockIndex[blockOfKey[i]]!
      componentOfBlock[b] = namer.component(of: k)
      tensorsPerBlock[b] += 1
      keysPerBlock[b].append(k)
      if known[k] != nil {
        knownKeys.append((k, b))
        if rest.count >= 2 {
          others.append(CompareItem(key: k, entries: rest.map { $0.entry(k)! }, bucket: b, knownEqual: false))
        }
      } else {
        items.append(CompareItem(key: k, entries: models.map { $0.entry(k)! }, bucket: b, knownEqual: false))
      }
    }
    func fileOrder(_ a: CompareItem, _ b: CompareItem) -> Bool {
      (a.entries[0].shard, a.entries[0].info.begin) < (b.entries[0].shard, b.entries[0].info.begin)
    }
    items.sort(by: fileOrder)
    others.sort(by: fileOrder)
    let total = (items + others).reduce(0) { s, it in s + it.entries.reduce(0) { $0 + $1.info.byteCount } }
    let progress = ProgressReporter(label: "distance", totalBytes: total, quiet: quiet)
    let n = models.count
    var buckets = [CompareSums](repeating: CompareSums(n: n, pairs: pairs.count), count: blocks.count)
    var nonFinite = [[String]](repeating: [], count: n)
    var done = 0
    if !items.isEmpty {
      let result = ComparePass.run(
        models: models, items: items, bucketCount: blocks.count, pairs: pairs, threads: threads,
        progress: { progress.update($0) })
      buckets = result.buckets
      done = result.bytesRead
      for m in 0..<n { nonFinite[m] += result.nonFiniteItems[m].map { items[$0].key } }
    }
    if !others.isEmpty {
      // The other models among themselves, placed at indices 1…n−1.
      let base = done
      let result = ComparePass.run(
        models: rest, items: others, bucketCount: blocks.count, pairs: [], threads: threads,
        progress: { progress.update(base + $0) })
      for b in blocks.indices {
        for i in 0..<(n - 1) {
          for j in i..<(n - 1) {
            buckets[b].gram[CompareSums.upper(i + 1, j + 1, n: n)] += result.buckets[b][i, j]
          }
        }
      }
      for m in 0..<(n - 1) { nonFinite[m + 1] += result.nonFiniteItems[m].map { others[$0].key } }
    }
    progress.finish()
    for (k, b) in knownKeys {
      let row = known[k]!
      buckets[b].gram[0] += row.outSquared
      for m in 1..<n {
        buckets[b].gram[CompareSums.upper(0, m, n: n)] += row.dot[m]
        if rest.count < 2 { buckets[b].gram[CompareSums.upper(m, m, n: n)] += row.inputSquared[m] }
      }
      for (p, pair) in pairs.enumerated() {
        let m = pair.0 == 0 ? pair.1 : pair.0
        buckets[b].squaredDifference[p] += row.squaredDifference[m]
        buckets[b].maxAbsDifference[p] = CompareSums.maxNaN(buckets[b].maxAbsDifference[p], row.maxAbsDifference[m])
      }
      if row.outputNonFinite { nonFinite[0].append(k) }
    }
    return Sums(
      architecture: arch, blocks: blocks, componentOfBlock: componentOfBlock, sums: buckets,
      tensorsPerBlock: tensorsPerBlock, keysPerBlock: keysPerBlock,
      nonFinite: nonFinite.map { $0.sorted() }, skipped: skipped, compared: keys.count)
  }

  /// Distances, maps and outliers of `inputs` (at least two models).
  ///
  /// - Throws: `MixLabError` when fewer than two models are given or they share no tensor.
  public static func run(_ inputs: [DistanceInput], options: Options = Options()) throws -> DistanceReport {
    guard inputs.count >= 2 else {
      throw MixLabError.message("distance needs at least two models (got \(inputs.count))")
    }
    let s = sums(inputs.map(\.checkpoint), pairs: [], threads: options.threads, quiet: options.quiet)
    guard s.compared > 0 else {
      throw MixLabError.message(
        "the models share no float tensor with the same shape (\(inputs.map(\.model.path).joined(separator: ", "))): nothing to compare"
      )
    }
    var models = inputs.map(\.model)
    for i in models.indices { models[i].nonfiniteTensors = s.nonFinite[i] }
    return report(s, models: models)
  }

  /// Builds the report from per-block sums.
  static func report(_ s: Sums, models: [DistanceModel]) -> DistanceReport {
    let n = models.count
    var components: [ComponentDistance] = []
    var outliers: [DistanceOutlier] = []
    for (i, m) in models.enumerated() where !m.nonfiniteTensors.isEmpty {
      outliers.append(
        DistanceOutlier(
          model: m.name, component: "weights",
          reason:
            "NaN/Inf in \(m.nonfiniteTensors.count) tensor\(m.nonfiniteTensors.count == 1 ? "" : "s") (\(m.nonfiniteTensors[0])…); not placed on the map"
        ))
      _ = i
    }
    let placed = models.indices.filter { models[$0].nonfiniteTensors.isEmpty }
    var groups: [(String, [Int])] = [("all", Array(s.blocks.indices))]
    for c in CompareBlocks.sortedComponents(Set(s.componentOfBlock)) {
      groups.append((c, s.blocks.indices.filter { s.componentOfBlock[$0] == c }))
    }
    for (name, blockIndices) in groups {
      var g = CompareSums(n: n, pairs: 0)
      for b in blockIndices {
        for k in g.gram.indices { g.gram[k] += s.sums[b].gram[k] }
      }
      var l2 = [[Double?]](repeating: [Double?](repeating: nil, count: n), count: n)
      var cos = l2
      var norm = [Double?](repeating: nil, count: n)
      for i in 0..<n {
        let gii = g[i, i]
        norm[i] = gii.isFinite ? gii.squareRoot() : nil
        for j in 0..<n {
          let gjj = g[j, j]
          let gij = g[i, j]
          guard gii.isFinite, gjj.isFinite, gij.isFinite else { continue }
          l2[i][j] = i == j ? 0 : max(0, gii + gjj - 2 * gij).squareRoot()
          let den = gii.squareRoot() * gjj.squareRoot()
          if i == j {
            cos[i][j] = 1
          } else {
            cos[i][j] = den > 0 ? min(1, max(-1, gij / den)) : (gii == 0 && gjj == 0 ? 1 : 0)
          }
        }
      }
      // The map and the fence use the models whose distances are all finite.
      let d = placed.map { i in placed.map { j in l2[i][j] ?? 0 } }
      var (points, explained) = ClassicalMDS.embed(d)
      // Each axis of a component's map is turned to agree with the same axis of the `all`
      // map, so panels can be read side by side (MDS fixes axes only up to sign).
      if let reference = components.first?.map {
        for k in 0..<2 {
          var dot = 0.0
          for (p, i) in placed.enumerated() { dot += points[p][k] * (reference[i]?[k] ?? 0) }
          if dot < 0 { for p in points.indices { points[p][k] = -points[p][k] } }
        }
      }
      var map = [[Double]?](repeating: nil, count: n)
      for (k, i) in placed.enumerated() { map[i] = points[k] }
      let fence = Outliers.byMedoid(d)
      let flagged = fence.flagged.map { placed[$0] }
      for i in flagged {
        outliers.append(
          DistanceOutlier(
            model: models[i].name, component: name,
            reason:
              "distance to the medoid \(models[placed[fence.medoid]].name) is \(NumberText.short(d[fence.medoid][placed.firstIndex(of: i)!])) > \(NumberText.short(fence.fence)) (Q3 + 1.5·IQR, at least 1.5 × median)"
          ))
      }
      components.append(
        ComponentDistance(
          component: name, l2: l2, cosine: cos, norm: norm, map: map, explained: explained,
          medoid: placed.isEmpty ? nil : placed[fence.medoid], outliers: flagged.map { models[$0].name }))
    }
    return DistanceReport(
      architecture: s.architecture.rawValue, models: models, components: components, outliers: outliers,
      skippedKeys: s.skipped, tensorsCompared: s.compared, notes: [])
  }

  // MARK: Text

  /// A terminal rendering: the models, then per component the L2 and cosine matrices, the
  /// map coordinates, and the outliers.
  public static func text(_ r: DistanceReport) -> String {
    var lines: [String] = []
    let width = min(14, max(9, r.models.map(\.name.count).max() ?? 9))
    func cell(_ s: String) -> String { s.count > width ? String(s.prefix(width - 1)) + "…" : s.leftPad(width) }
    lines.append("\(r.models.count) models (\(r.architecture)), \(r.tensorsCompared) tensors compared")
    for (i, m) in r.models.enumerated() {
      var line = "  \(String(i + 1).leftPad(2))  \(m.name)  \(m.path)"
      if let role = m.role { line += "  [\(role)]" }
      if !m.nonfiniteTensors.isEmpty { line += "  NaN/Inf in \(m.nonfiniteTensors.count) tensors" }
      lines.append(line)
    }
    if !r.skippedKeys.isEmpty {
      lines.append(
        "  \(r.skippedKeys.count) keys not compared (missing from a model, other shape, or integer): \(r.skippedKeys.prefix(3).joined(separator: ", "))\(r.skippedKeys.count > 3 ? ", …" : "")"
      )
    }
    for c in r.components {
      lines.append("")
      var head = "\(c.component): L2 distance"
      if let e = c.explained { head += "  (2-D map keeps \(NumberText.fixed(e * 100, 1))%)" }
      lines.append(head)
      lines.append(String(repeating: " ", count: width + 2) + r.models.map { cell($0.name) }.joined(separator: " "))
      for (i, m) in r.models.enumerated() {
        lines.append(cell(m.name) + "  " + c.l2[i].map { cell(NumberText.short($0)) }.joined(separator: " "))
      }
      lines.append("\(c.component): cosine similarity")
      for (i, m) in r.models.enumerated() {
        lines.append(cell(m.name) + "  " + c.cosine[i].map { cell(NumberText.cosine($0)) }.joined(separator: " "))
      }
      let coords = r.models.indices.map { i -> String in
        guard let p = c.map[i] else { return "\(r.models[i].name) (not placed)" }
        return "\(r.models[i].name) (\(NumberText.short(p[0])), \(NumberText.short(p[1])))"
      }
      lines.append("map: " + coords.joined(separator: ", "))
    }
    lines.append("")
    if r.outliers.isEmpty {
      lines.append("outliers: none")
    } else {
      lines.append("outliers:")
      for o in r.outliers { lines.append("  \(o.model) [\(o.component)]: \(o.reason)") }
    }
    for n in r.notes { lines.append("note: \(n)") }
    return lines.joined(separator: "\n")
  }

  // MARK: Arguments

  /// Resolves command-line arguments: files or checkpoint folders, and run hash prefixes
  /// (their output; with `withInputs`, also their inputs, found by SHA-256).
  ///
  /// - Throws: `MixLabError` naming the argument that is neither a file nor a known run.
  public static func resolve(_ args: [String], withInputs: Bool, workspace: Workspace?) throws -> [DistanceInput] {
    var out: [DistanceInput] = []
    var seen: [String: Int] = [:]  // resolved path → index
    func add(_ path: String, name: String, sha256: String?, role: String?) throws {
      let abs = Workspace.absolute(path)
      if let i = seen[abs] {
        if out[i].model.role == "input", role == "output" { out[i].model.role = role }
        return
      }
      let ckpt: Checkpoint
      do {
        ckpt = try Checkpoint(path: path)
      } catch {
        throw MixLabError.message("\(path): \(error.localizedDescription)")
      }
      seen[abs] = out.count
      out.append(DistanceInput(checkpoint: ckpt, model: DistanceModel(name: name, path: path, sha256: sha256, role: role)))
    }
    for arg in args {
      if FileManager.default.fileExists(atPath: arg) {
        try add(arg, name: label(forPath: arg), sha256: nil, role: nil)
        continue
      }
      let hex = arg.lowercased()
      guard hex.count >= 4, hex.allSatisfy(\.isHexDigit) else {
        throw MixLabError.message(
          "\(arg): no such file or folder, and not a run hash prefix; give .safetensors files, checkpoint folders or run hashes")
      }
      guard let ws = workspace else {
        throw MixLabError.message("\(arg): no such file; to look it up as a run hash, run mixlab inside a workspace")
      }
      let record = try History.find(arg, workspace: ws)
      let output = try locate(
        sha256: record.output.sha256, recorded: record.output.path, relativeTo: ws.root, workspace: ws,
        what: "run \(record.output.sha256.prefix(12))'s output")
      try add(output, name: record.recipeName, sha256: record.output.sha256, role: "output")
      if withInputs {
        let reference = referenceInput(record)
        let folder = ((ws.root + "/" + record.recipePath) as NSString).deletingLastPathComponent
        for i in record.inputs {
          let path = try locate(
            sha256: i.sha256, recorded: i.path, relativeTo: folder, workspace: ws,
            what: "input \(i.name) of run \(record.output.sha256.prefix(12))")
          try add(path, name: i.name, sha256: i.sha256, role: i.name == reference ? "reference" : "input")
        }
      }
    }
    // Unique names: later duplicates get their position appended.
    var used: [String: Int] = [:]
    for i in out.indices {
      let n = out[i].model.name
      if let c = used[n] {
        used[n] = c + 1
        out[i].model.name = "\(n)-\(c + 1)"
      } else {
        used[n] = 1
      }
    }
    return out
  }

  /// The reference input of a recorded run (the canonical recipe's `output.reference`).
  static func referenceInput(_ record: RunRecord) -> String? {
    guard case .object(let root)? = try? StrictJSONParser.parse(Array(record.recipeCanonical.utf8)),
      case .object(let output)? = root.first(where: { $0.key == "output" })?.value,
      case .string(let ref)? = output.first(where: { $0.key == "reference" })?.value
    else { return nil }
    return ref
  }

  static func label(forPath path: String) -> String {
    var name = (path as NSString).lastPathComponent
    if name.hasSuffix(".safetensors") { name = String(name.dropLast(".safetensors".count)) }
    return name
  }

  /// A recorded file found again: the recorded path (relative to `relativeTo`), the artifact
  /// of a `recipe:` input, a materialized `synth:` input, or any path the index knows for
  /// the SHA-256; a candidate counts only when the hash cache (or a fresh hash) confirms it.
  static func locate(sha256: String, recorded: String, relativeTo base: String, workspace ws: Workspace, what: String) throws
    -> String
  {
    var candidates: [String] = []
    if recorded.hasPrefix("synth:") {
      // synth:<arch>/seed=<s>/index=<i>/scale=<x>/<dtype>, as the runner writes it.
      let f = recorded.dropFirst(6).split(separator: "/").map(String.init)
      if f.count == 5, let arch = Architecture(rawValue: f[0]), let seed = UInt64(f[1].dropFirst(5)),
        let index = Int(f[2].dropFirst(6)), let scale = Double(f[3].dropFirst(6)), let dtype = DType(userSpelling: f[4])
      {
        let folder = ws.synthDir + "/\(f[0])-seed\(f[1].dropFirst(5))-scale\(f[3].dropFirst(6))-\(f[4])"
        let synth = Synthesizer(architecture: arch, count: max(2, index + 1), seed: seed, scale: scale, dtype: dtype)
        candidates.append(synth.path(of: index, in: folder))
      }
    } else if !recorded.hasPrefix("recipe:") {
      candidates.append(recorded.hasPrefix("/") ? recorded : (base + "/" + recorded as NSString).standardizingPath)
    }
    candidates += ((try? ws.index().pathsKnown(forSHA256: sha256)) ?? []).map { $0.hasPrefix("/") ? $0 : ws.root + "/" + $0 }
    let cache = try HashCache(index: ws.index())
    for c in candidates.uniqued() where FileManager.default.fileExists(atPath: c) {
      if let h = try? Runner.hashOutput(c, cache: cache, verify: false), h == sha256 { return c }
    }
    throw MixLabError.message(
      "\(what) (sha256 \(sha256.prefix(12))) was not found (tried \(candidates.uniqued().joined(separator: ", "))); put the file back or pass its path instead"
    )
  }
}
