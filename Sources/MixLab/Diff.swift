import Architectures
import Foundation
import Provenance
import Recipes
import SafeTensors

/// Difference metrics of a group of tensors (one tensor, a block, a component, everything).
///
/// With a = side A and b = side B over the group's elements: `rel_l2` = ‖a − b‖ / ‖a‖ (0 when
/// both are 0), `cosine` = a·b / (‖a‖ ‖b‖) (1 when both norms are 0, 0 when one is), `max_abs`
/// = max |a − b|. Null when not computed (hash-level comparison) or not finite (NaN/Inf in
/// the weights).
public struct DiffMetrics: Codable, Sendable, Equatable {
  public var relL2: Double?
  public var cosine: Double?
  public var maxAbs: Double?

  public init(relL2: Double?, cosine: Double?, maxAbs: Double?) {
    self.relL2 = relL2
    self.cosine = cosine
    self.maxAbs = maxAbs
  }

  static let identical = DiffMetrics(relL2: 0, cosine: 1, maxAbs: 0)
  static let unknown = DiffMetrics(relL2: nil, cosine: nil, maxAbs: nil)

  /// From sums over the group: Σa², Σb², Σab, Σ(a−b)², max |a−b|.
  init(aa: Double, bb: Double, ab: Double, dd: Double, maxAbs m: Double) {
    let finite = aa.isFinite && bb.isFinite && ab.isFinite && dd.isFinite
    guard finite else {
      self.init(relL2: nil, cosine: nil, maxAbs: m.isFinite ? m : nil)
      return
    }
    let na = aa.squareRoot()
    let nb = bb.squareRoot()
    let rel: Double? = na > 0 ? dd.squareRoot() / na : (dd == 0 ? 0 : nil)
    let cos: Double
    if na == 0 && nb == 0 {
      cos = 1
    } else if na == 0 || nb == 0 {
      cos = 0
    } else {
      cos = Swift.min(1, Swift.max(-1, ab / (na * nb)))
    }
    self.init(relL2: rel, cosine: cos, maxAbs: m.isFinite ? m : nil)
  }
}

/// One row of the per-block (or per-component) table. `block`, `rel_l2`, `cosine`, `max_abs`
/// are the JSON contract; `tensors` and `differing` count the compared tensors of the row.
public struct BlockDiff: Codable, Sendable, Equatable {
  public var block: String
  public var metrics: DiffMetrics
  public var tensors: Int
  public var differing: Int

  enum CodingKeys: String, CodingKey {
    case block, tensors, differing, cosine
    case relL2 = "rel_l2"
    case maxAbs = "max_abs"
  }

  public init(block: String, metrics: DiffMetrics, tensors: Int, differing: Int) {
    self.block = block
    self.metrics = metrics
    self.tensors = tensors
    self.differing = differing
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    block = try c.decode(String.self, forKey: .block)
    tensors = try c.decode(Int.self, forKey: .tensors)
    differing = try c.decode(Int.self, forKey: .differing)
    metrics = DiffMetrics(
      relL2: try c.decodeIfPresent(Double.self, forKey: .relL2), cosine: try c.decodeIfPresent(Double.self, forKey: .cosine),
      maxAbs: try c.decodeIfPresent(Double.self, forKey: .maxAbs))
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(block, forKey: .block)
    try c.encode(metrics.relL2, forKey: .relL2)
    try c.encode(metrics.cosine, forKey: .cosine)
    try c.encode(metrics.maxAbs, forKey: .maxAbs)
    try c.encode(tensors, forKey: .tensors)
    try c.encode(differing, forKey: .differing)
  }
}

/// A tensor's difference, for the differing tensors.
public struct TensorDiff: Codable, Sendable, Equatable {
  public var key: String
  public var block: String
  public var metrics: DiffMetrics

  enum CodingKeys: String, CodingKey {
    case key, block, cosine
    case relL2 = "rel_l2"
    case maxAbs = "max_abs"
  }

  public init(key: String, block: String, metrics: DiffMetrics) {
    self.key = key
    self.block = block
    self.metrics = metrics
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    key = try c.decode(String.self, forKey: .key)
    block = try c.decode(String.self, forKey: .block)
    metrics = DiffMetrics(
      relL2: try c.decodeIfPresent(Double.self, forKey: .relL2), cosine: try c.decodeIfPresent(Double.self, forKey: .cosine),
      maxAbs: try c.decodeIfPresent(Double.self, forKey: .maxAbs))
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(key, forKey: .key)
    try c.encode(block, forKey: .block)
    try c.encode(metrics.relL2, forKey: .relL2)
    try c.encode(metrics.cosine, forKey: .cosine)
    try c.encode(metrics.maxAbs, forKey: .maxAbs)
  }
}

/// A key present on both sides with different shapes or dtypes.
public struct KeyMismatch: Codable, Sendable, Equatable {
  public var key: String
  public var a: String
  public var b: String
}

/// One side of a diff.
public struct DiffSide: Codable, Sendable, Equatable {
  /// `recipe`, `run` or `file`.
  public var kind: String
  /// The argument as given.
  public var argument: String
  /// The recipe file, or the file/folder compared (a run's output).
  public var path: String?
  public var sha256: String?
  public var runID: String?
  /// `experiment/recipe` of a run.
  public var recipe: String?

  enum CodingKeys: String, CodingKey {
    case kind, argument, path, sha256, recipe
    case runID = "run_id"
  }

  /// A short name for tables and pictures.
  public var label: String {
    switch kind {
    case "run": return "\(recipe ?? "run") \(String((sha256 ?? "").prefix(10)))"
    default: return path.map { ($0 as NSString).lastPathComponent } ?? argument
    }
  }
}

/// What `mixlab diff A B` found. The snake_case JSON names are a public contract; the
/// issue's fixed names are `tensors_differing`, `only_in_a`, `only_in_b` and `blocks` (a list
/// of `{block, rel_l2, cosine, max_abs}`).
public struct DiffReport: Codable, Sendable, Equatable {
  public var a: DiffSide
  public var b: DiffSide
  /// Parameter-level recipe difference, when both sides have a recipe.
  public var recipe: RecipeDiff?
  /// Output comparison, when both sides have tensors (files or runs).
  public var identical: Bool?
  public var architecture: String?
  /// True when metrics come from tensor data; false when only hashes could be compared.
  public var numeric: Bool?
  public var tensorsCompared: Int?
  public var tensorsEqual: Int?
  /// Keys whose values differ, sorted.
  public var tensorsDiffering: [String]?
  /// Keys whose equality could not be decided (hash-level comparison without a hash).
  public var tensorsUnknown: [String]?
  public var onlyInA: [String]?
  public var onlyInB: [String]?
  public var shapeMismatches: [KeyMismatch]?
  public var dtypeMismatches: [KeyMismatch]?
  /// Keys holding NaN or infinite values on each side.
  public var nonfiniteA: [String]?
  public var nonfiniteB: [String]?
  public var overall: BlockDiff?
  public var blocks: [BlockDiff]?
  public var components: [BlockDiff]?
  /// The differing tensors with their metrics, sorted by key.
  public var tensors: [TensorDiff]?
  /// How the comparison was made (hashes used, missing files…).
  public var notes: [String]

  enum CodingKeys: String, CodingKey {
    case a, b, recipe, identical, architecture, numeric, overall, blocks, components, tensors, notes
    case tensorsCompared = "tensors_compared"
    case tensorsEqual = "tensors_equal"
    case tensorsDiffering = "tensors_differing"
    case tensorsUnknown = "tensors_unknown"
    case onlyInA = "only_in_a"
    case onlyInB = "only_in_b"
    case shapeMismatches = "shape_mismatches"
    case dtypeMismatches = "dtype_mismatches"
    case nonfiniteA = "nonfinite_a"
    case nonfiniteB = "nonfinite_b"
  }
}

/// `mixlab diff A B`: recipes, runs (by hash prefix) and safetensors files.
public enum Diff {
  public struct Options: Sendable {
    /// Worker threads (0: all cores); never changes results.
    public var threads = 0
    /// No progress output.
    public var quiet = true
    /// Where run hashes are looked up and the hash cache read; found from the current folder
    /// when nil.
    public var workspace: Workspace?
    public init() {}
  }

  /// Compares `a` and `b`.
  ///
  /// - Parameters:
  ///   - a: a recipe file, a run's hash prefix (output SHA-256, run id or commit) or a
  ///     .safetensors file / checkpoint folder.
  ///   - b: the same.
  /// - Returns: the recipe difference (when both sides have a recipe) and the tensor
  ///   difference (when both have tensors).
  /// - Throws: `MixLabError` naming the argument that cannot be resolved, or a reader error
  ///   naming the file and tensor at fault.
  public static func run(_ a: String, _ b: String, options: Options = Options()) throws -> DiffReport {
    let ws = options.workspace ?? (try? Workspace.find(from: FileManager.default.currentDirectoryPath))
    let sa = try Operand.resolve(a, workspace: ws)
    let sb = try Operand.resolve(b, workspace: ws)
    var report = DiffReport(a: sa.side, b: sb.side, notes: [])
    if let ra = sa.recipe, let rb = sb.recipe {
      report.recipe = RecipeDiffer.diff(ra, rb)
    }
    if sa.hasTensors && sb.hasTensors {
      try compareTensors(sa, sb, options: options, into: &report)
    } else if report.recipe == nil {
      throw MixLabError.message(
        "nothing to compare between \(a) (\(sa.side.kind)) and \(b) (\(sb.side.kind)): a recipe file has no tensors and a .safetensors file has no recipe; compare two recipes, two runs, two files, or a run with either"
      )
    }
    report.notes += sa.notes + sb.notes
    return report
  }

  // MARK: Tensors

  struct Meta {
    var dtype: String?
    var shape: [Int]?
    var sha256: String?
    var entry: Checkpoint.Entry?
  }

  static func compareTensors(_ sa: Operand, _ sb: Operand, options: Options, into report: inout DiffReport) throws {
    let ma = sa.tensorMeta()
    let mb = sb.tensorMeta()
    let keysA = Set(ma.keys)
    let keysB = Set(mb.keys)
    let names =
      (sa.checkpoint?.entries.map { ($0.info.name, $0.info.shape) } ?? sb.checkpoint?.entries.map {
        ($0.info.name, $0.info.shape)
      } ?? ma.keys.map { ($0, ma[$0]?.shape ?? []) })
    var arch = Detection.architecture(of: names)
    if arch == .unknown, let other = sb.checkpoint {
      arch = Detection.architecture(of: other.entries.map { ($0.info.name, $0.info.shape) })
    }
    if arch == .unknown, let recorded = sa.architecture ?? sb.architecture { arch = Architecture(rawValue: recorded) ?? .unknown }
    report.architecture = arch.rawValue
    report.onlyInA = keysA.subtracting(keysB).sorted()
    report.onlyInB = keysB.subtracting(keysA).sorted()
    var shapeMismatches: [KeyMismatch] = []
    var dtypeMismatches: [KeyMismatch] = []
    var compared: [String] = []
    for k in keysA.intersection(keysB).sorted() {
      let x = ma[k]!
      let y = mb[k]!
      if let s = x.shape, let t = y.shape, s != t {
        shapeMismatches.append(KeyMismatch(key: k, a: "\(s)", b: "\(t)"))
        continue
      }
      if let d = x.dtype, let e = y.dtype, d != e { dtypeMismatches.append(KeyMismatch(key: k, a: d, b: e)) }
      compared.append(k)
    }
    report.shapeMismatches = shapeMismatches
    report.dtypeMismatches = dtypeMismatches
    report.tensorsCompared = compared.count
    if let x = sa.side.sha256, let y = sb.side.sha256 { report.identical = x == y }

    // Equality from hashes where both sides know them (same dtype: equal bytes ⇔ equal hash).
    enum Known { case equal, differ, unknown }
    var known: [Known] = compared.map { k in
      let x = ma[k]!
      let y = mb[k]!
      guard let h = x.sha256, let g = y.sha256, x.dtype == y.dtype || x.dtype == nil || y.dtype == nil else { return .unknown }
      return h == g ? .equal : .differ
    }
    let namer = CompareBlocks(architecture: arch, keys: compared)
    let blockOf = compared.map { namer.block(of: $0) }
    let componentOf = compared.map { namer.component(of: $0) }
    var sums: [CompareSums]? = nil
    var differs = [Bool?](repeating: nil, count: compared.count)
    var nonFiniteA: [String] = []
    var nonFiniteB: [String] = []
    let needsData = known.contains { $0 != .equal }
    if let ca = sa.checkpoint, let cb = sb.checkpoint, needsData {
      let items = compared.enumerated().map { i, k in
        CompareItem(key: k, entries: [ma[k]!.entry!, mb[k]!.entry!], bucket: i, knownEqual: known[i] == .equal)
      }
      let total = items.reduce(0) { s, it in
        s + it.entries[0].info.byteCount + (it.knownEqual ? 0 : it.entries[1].info.byteCount)
      }
      let progress = ProgressReporter(label: "diff", totalBytes: total, quiet: options.quiet)
      let result = ComparePass.run(
        models: [ca, cb], items: items, bucketCount: items.count, pairs: [(0, 1)], threads: options.threads,
        progress: { progress.update($0) })
      progress.finish()
      sums = result.buckets
      for i in compared.indices {
        if known[i] == .equal {
          differs[i] = false
        } else if ma[compared[i]]!.dtype == mb[compared[i]]!.dtype {
          differs[i] = !result.itemBytesEqual[i]
        } else {
          let s = result.buckets[i]
          differs[i] = !(s.squaredDifference[0] == 0 && s.gram[0].isFinite && s.gram[2].isFinite)
        }
        if differs[i] == false { known[i] = .equal } else { known[i] = .differ }
      }
      nonFiniteA = result.nonFiniteItems[0].map { compared[$0] }
      nonFiniteB = result.nonFiniteItems[1].map { compared[$0] }
      report.numeric = true
      let hashed = known.indices.filter { items[$0].knownEqual }.count
      if hashed > 0 {
        report.notes.append(
          "\(hashed) tensors were known equal from their SHA-256 and read on side A only (for norms)")
      }
    } else {
      for i in compared.indices {
        switch known[i] {
        case .equal: differs[i] = false
        case .differ: differs[i] = true
        case .unknown: differs[i] = nil
        }
      }
      let allEqual = !needsData
      report.numeric = allEqual
      if !allEqual {
        report.notes.append(
          "metrics need tensor data, and \(sa.checkpoint == nil ? report.a.argument : report.b.argument)'s file is not available: tensors are compared by SHA-256 only"
        )
      } else {
        report.notes.append("every compared tensor has the same SHA-256 on both sides: nothing was read")
      }
    }
    report.nonfiniteA = nonFiniteA
    report.nonfiniteB = nonFiniteB
    report.tensorsDiffering = compared.indices.filter { differs[$0] == true }.map { compared[$0] }
    report.tensorsUnknown = compared.indices.filter { differs[$0] == nil }.map { compared[$0] }
    report.tensorsEqual = compared.indices.filter { differs[$0] == false }.count

    // Aggregate. Integer tensors (position ids) count as tensors but stay out of the sums of
    // a group that holds float tensors: their values are indices, not weights.
    let isFloat = compared.map { k in
      [ma[k]!.dtype, mb[k]!.dtype].allSatisfy { $0.flatMap { DType(rawValue: $0) }?.isFloat ?? true }
    }
    func metrics(_ all: [Int]) -> DiffMetrics {
      if all.allSatisfy({ differs[$0] == false }) { return .identical }
      guard let sums else { return .unknown }
      let floats = all.filter { isFloat[$0] }
      let indices = floats.isEmpty ? all : floats
      var aa = 0.0
      var bb = 0.0
      var ab = 0.0
      var dd = 0.0
      var mx = 0.0
      for i in indices {
        let s = sums[i]
        aa += s.gram[0]
        ab += s.gram[1]
        bb += s.gram[2]
        dd += s.squaredDifference[0]
        mx = CompareSums.maxNaN(mx, s.maxAbsDifference[0])
      }
      return DiffMetrics(aa: aa, bb: bb, ab: ab, dd: dd, maxAbs: mx)
    }
    func row(_ name: String, _ indices: [Int]) -> BlockDiff {
      BlockDiff(
        block: name, metrics: metrics(indices), tensors: indices.count, differing: indices.filter { differs[$0] != false }.count)
    }
    var byBlock: [String: [Int]] = [:]
    var byComponent: [String: [Int]] = [:]
    for i in compared.indices {
      byBlock[blockOf[i], default: []].append(i)
      byComponent[componentOf[i], default: []].append(i)
    }
    report.blocks = namer.sorted(Set(byBlock.keys)).map { row($0, byBlock[$0]!) }
    report.components = CompareBlocks.sortedComponents(Set(byComponent.keys)).map { row($0, byComponent[$0]!) }
    report.overall = row("all", Array(compared.indices))
    report.tensors = compared.indices.filter { differs[$0] != false }.map {
      TensorDiff(key: compared[$0], block: blockOf[$0], metrics: metrics([$0]))
    }
  }

  /// True when the recipes or the tensors differ (or tensors could not all be compared).
  public static func differs(_ r: DiffReport) -> Bool {
    if let rd = r.recipe, !rd.equal { return true }
    let lists = [r.tensorsDiffering, r.tensorsUnknown, r.onlyInA, r.onlyInB].compactMap { $0 }
    return lists.contains { !$0.isEmpty } || !(r.shapeMismatches ?? []).isEmpty
  }

  // MARK: Text

  /// A terminal rendering: sides, recipe changes, then the tensor summary and block table.
  public static func text(_ r: DiffReport) -> String {
    var lines: [String] = []
    func side(_ tag: String, _ s: DiffSide) {
      var t = "\(tag)  \(s.kind.padding(toLength: 6, withPad: " ", startingAt: 0)) "
      switch s.kind {
      case "run": t += "\(s.recipe ?? "") \(s.sha256.map { String($0.prefix(12)) } ?? "")  \(s.path ?? "")"
      default: t += s.path ?? s.argument
      }
      lines.append(t)
    }
    side("A", r.a)
    side("B", r.b)
    if let rd = r.recipe {
      lines.append("")
      if rd.equal {
        lines.append("recipe: no difference (canonical hash \(rd.recipeHashA.prefix(12)))")
      } else {
        lines.append("recipe: \(rd.changes.count) difference\(rd.changes.count == 1 ? "" : "s")")
        for c in rd.changes { lines.append("  \(c.text)") }
      }
    }
    if let compared = r.tensorsCompared {
      lines.append("")
      let differing = r.tensorsDiffering?.count ?? 0
      var summary = "tensors: \(compared) compared, \(differing) differ, \(r.tensorsEqual ?? 0) equal"
      if let u = r.tensorsUnknown, !u.isEmpty { summary += ", \(u.count) unknown" }
      lines.append(summary)
      let onlyA = r.onlyInA ?? []
      let onlyB = r.onlyInB ?? []
      if !onlyA.isEmpty || !onlyB.isEmpty {
        lines.append("only in A: \(onlyA.count)\(list(onlyA))")
        lines.append("only in B: \(onlyB.count)\(list(onlyB))")
      }
      for m in r.shapeMismatches ?? [] { lines.append("shape mismatch: \(m.key) \(m.a) vs \(m.b) (not compared)") }
      if let d = r.dtypeMismatches, !d.isEmpty {
        lines.append("dtype mismatch: \(d.count) tensors (compared by value), e.g. \(d[0].key) \(d[0].a) vs \(d[0].b)")
      }
      if let n = r.nonfiniteA, !n.isEmpty { lines.append("NaN/Inf in A: \(n.count) tensors\(list(n))") }
      if let n = r.nonfiniteB, !n.isEmpty { lines.append("NaN/Inf in B: \(n.count) tensors\(list(n))") }
      if let identical = r.identical { lines.append(identical ? "files: byte-identical" : "files: different bytes") }
      if let blocks = r.blocks, !blocks.isEmpty {
        lines.append("")
        lines.append(tableHeader("block"))
        for b in blocks { lines.append(tableRow(b)) }
        if let comps = r.components {
          lines.append("")
          lines.append(tableHeader("component"))
          for c in comps { lines.append(tableRow(c)) }
          if let o = r.overall { lines.append(tableRow(o)) }
        }
      }
      if let tensors = r.tensors, !tensors.isEmpty, r.numeric == true {
        let top = tensors.sorted { ($0.metrics.relL2 ?? .infinity, $1.key) > ($1.metrics.relL2 ?? .infinity, $0.key) }.prefix(10)
        lines.append("")
        lines.append("most changed tensors (rel_l2)")
        for t in top {
          lines.append("  \(NumberText.short(t.metrics.relL2).leftPad(10))  \(t.key)")
        }
      }
    }
    for n in r.notes { lines.append("note: \(n)") }
    return lines.joined(separator: "\n")
  }

  static func list(_ keys: [String]) -> String {
    guard !keys.isEmpty else { return "" }
    let shown = keys.prefix(3).joined(separator: ", ")
    return " (\(shown)\(keys.count > 3 ? ", … --json lists all" : ""))"
  }

  static func tableHeader(_ first: String) -> String {
    first.padding(toLength: 12, withPad: " ", startingAt: 0) + "rel_l2".leftPad(12) + "cosine".leftPad(12)
      + "max_abs".leftPad(12) + "differing".leftPad(12)
  }

  static func tableRow(_ b: BlockDiff) -> String {
    b.block.padding(toLength: 12, withPad: " ", startingAt: 0) + NumberText.short(b.metrics.relL2).leftPad(12)
      + NumberText.cosine(b.metrics.cosine).leftPad(12) + NumberText.short(b.metrics.maxAbs).leftPad(12)
      + "\(b.differing)/\(b.tensors)".leftPad(12)
  }
}

/// One side of a diff, resolved from its argument.
struct Operand {
  var side: DiffSide
  var recipe: RecipeFacts?
  /// The tensors to read, when available.
  var checkpoint: Checkpoint?
  /// Per-tensor SHA-256, when known (run record, or the hash cache for a file).
  var tensorHashes: [String: String]?
  /// Recorded dtype/shape when there is no file (from the index).
  var recordedTensors: [String: (dtype: String?, shape: [Int]?)] = [:]
  var architecture: String?
  var notes: [String] = []

  var hasTensors: Bool { checkpoint != nil || tensorHashes != nil }

  func tensorMeta() -> [String: Diff.Meta] {
    var out: [String: Diff.Meta] = [:]
    if let c = checkpoint {
      for e in c.entries {
        out[e.info.name] = Diff.Meta(
          dtype: e.info.dtype.rawValue, shape: e.info.shape, sha256: tensorHashes?[e.info.name], entry: e)
      }
    } else if let h = tensorHashes {
      for (k, v) in h {
        out[k] = Diff.Meta(dtype: recordedTensors[k]?.dtype, shape: recordedTensors[k]?.shape, sha256: v, entry: nil)
      }
    }
    return out
  }

  static func resolve(_ arg: String, workspace ws: Workspace?) throws -> Operand {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    if fm.fileExists(atPath: arg, isDirectory: &isDir) {
      let lower = arg.lowercased()
      if !isDir.boolValue && (lower.hasSuffix(".yaml") || lower.hasSuffix(".yml")) {
        let recipe = try RecipeParser.load(arg)
        return Operand(side: DiffSide(kind: "recipe", argument: arg, path: arg), recipe: RecipeFacts(recipe: recipe))
      }
      let ckpt: Checkpoint
      do {
        ckpt = try Checkpoint(path: arg)
      } catch {
        throw MixLabError.message("\(arg): \(error.localizedDescription)")
      }
      var op = Operand(side: DiffSide(kind: "file", argument: arg, path: arg), checkpoint: ckpt)
      if let ws, let cached = cachedHashes(ckpt, workspace: ws) {
        op.tensorHashes = cached.tensors
        op.side.sha256 = cached.sha256
      }
      return op
    }
    let hex = arg.lowercased()
    guard hex.count >= 4, hex.allSatisfy(\.isHexDigit) else {
      throw MixLabError.message(
        "\(arg): no such file or folder, and not a run hash prefix; give a recipe (.yaml), a .safetensors file or checkpoint folder, or at least 4 hex digits of a run's output SHA-256, run id or commit"
      )
    }
    guard let ws else {
      throw MixLabError.message(
        "\(arg): no such file; to look it up as a run hash, run mixlab inside a workspace (no .mixlab folder above \(FileManager.default.currentDirectoryPath))"
      )
    }
    let record = try History.find(arg, workspace: ws)
    return try fromRun(record, argument: arg, workspace: ws)
  }

  /// A run: its recorded recipe and inputs, its output file if still present, and its
  /// per-tensor hashes (trusted only while the file still has the recorded bytes).
  static func fromRun(_ record: RunRecord, argument: String, workspace ws: Workspace) throws -> Operand {
    let recipeFolder = ((ws.root + "/" + record.recipePath) as NSString).deletingLastPathComponent
    let inputs = record.inputs.map { i -> RecipeFacts.InputFact in
      let plainPath = !i.path.hasPrefix("recipe:") && !i.path.hasPrefix("synth:")
      let resolved =
        plainPath ? (i.path.hasPrefix("/") ? i.path : (recipeFolder + "/" + i.path as NSString).standardizingPath) : nil
      return RecipeFacts.InputFact(name: i.name, source: i.path, resolved: resolved, sha256: i.sha256)
    }
    var op = Operand(
      side: DiffSide(
        kind: "run", argument: argument, path: record.output.path, sha256: record.output.sha256, runID: record.runID,
        recipe: "\(record.experiment)/\(record.recipeName)"),
      recipe: RecipeFacts(canonical: record.recipeCanonical, hash: record.recipeHash, inputs: inputs))
    op.architecture = record.output.architecture
    let index = try ws.index()
    var candidates = [ws.root + "/" + record.output.path]
    candidates += ((try? index.pathsKnown(forSHA256: record.output.sha256)) ?? []).map {
      $0.hasPrefix("/") ? $0 : ws.root + "/" + $0
    }
    for row in (try? index.tensors(artifact: record.output.sha256)) ?? [] {
      op.recordedTensors[row.key] = (row.dtype, row.shape)
    }
    let path = candidates.uniqued().first { FileManager.default.fileExists(atPath: $0) }
    guard let path, let ckpt = try? Checkpoint(path: path) else {
      op.tensorHashes = record.output.tensorSHA256
      op.notes.append(
        "run \(record.output.sha256.prefix(12))'s output \(record.output.path) is gone: compared by its recorded tensor hashes")
      return op
    }
    op.side.path = ws.relative(path)
    if let cached = cachedHashes(ckpt, workspace: ws) {
      if cached.sha256 == record.output.sha256 {
        op.tensorHashes = record.output.tensorSHA256
      } else {
        op.tensorHashes = cached.tensors
        op.side.sha256 = cached.sha256
        op.notes.append(
          "\(ws.relative(path)) changed since run \(record.runID) recorded it (sha256 \(cached.sha256.prefix(12)), recorded \(record.output.sha256.prefix(12))): its current content is compared"
        )
      }
    } else {
      // The hash cache cannot vouch for the file: compare its bytes, trust no recorded hash.
      op.side.sha256 = nil
      op.notes.append("\(ws.relative(path)) is not in the hash cache: its bytes are compared, not the recorded hashes")
    }
    op.checkpoint = ckpt
    return op
  }

  /// The file's (or every shard's) hashes from the workspace's hash cache; reads no data.
  static func cachedHashes(_ ckpt: Checkpoint, workspace ws: Workspace) -> (sha256: String, tensors: [String: String])? {
    guard FileManager.default.fileExists(atPath: ws.indexPath), let index = try? ws.index() else { return nil }
    let cache = HashCache(index: index)
    var parts: [(String, String)] = []
    var tensors: [String: String] = [:]
    for f in ckpt.shards {
      guard let h = try? cache.cachedHashes(of: f) else { return nil }
      parts.append(((f.path as NSString).lastPathComponent, h.sha256))
      tensors.merge(h.tensorSHA256) { x, _ in x }
    }
    return (ckpt.isSharded ? ShardDigest.combine(parts) : parts[0].1, tensors)
  }
}
