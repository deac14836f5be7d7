import Foundation
import MergeEngine
import SafeTensors

/// What `--dry-run` prints: which method, weights and sources apply per component and
/// block, key-policy decisions, and memory and time estimates. Built from headers only.
public struct PlanSummary: Codable, Sendable {
  public struct Row: Codable, Sendable {
    public var component: String
    public var block: String
    public var keys: Int
    public var source: String
  }
  public var architecture: String
  public var tensors: Int
  public var outputBytes: Int
  public var inputBytesRead: Int
  public var rows: [Row]
  public var decisions: [String]
  public var memoryEstimateBytes: Int
  public var timeEstimateSeconds: Double

  enum CodingKeys: String, CodingKey {
    case architecture, tensors, rows, decisions
    case outputBytes = "output_bytes"
    case inputBytesRead = "input_bytes_read"
    case memoryEstimateBytes = "memory_estimate_bytes"
    case timeEstimateSeconds = "time_estimate_seconds"
  }

  static func make(_ plan: MergePlan, spec: MergeSpec, inputs: [Checkpoint], options: RunOptions) -> PlanSummary {
    var rows: [String: Row] = [:]
    var blocksOf: [String: Set<String>] = [:]
    var order: [String] = []
    var read = 0
    var peakScratch = 0
    let workers = options.threads > 0 ? options.threads : ProcessInfo.processInfo.activeProcessorCount
    let scalar = plan.computeType == .f64 ? 8 : 4
    for t in plan.tensors {
      let desc = describe(t.source, plan: plan, spec: spec)
      let key = "\(t.component)|\(desc)"
      if rows[key] == nil {
        rows[key] = Row(component: t.component, block: t.block, keys: 0, source: desc)
        order.append(key)
      }
      rows[key]!.keys += 1
      blocksOf[key, default: []].insert(t.block)
      switch t.source {
      case .copy(let i, let k, _):
        read += inputs[i].entry(k)?.info.byteCount ?? 0
      case .compute(let p):
        let passes = 1 + p.steps.reduce(0) { $0 + passCount($1.method) }
        for l in p.leaves { read += (inputs[l.input].entry(l.key)?.info.byteCount ?? 0) * passes }
        let g = min(t.spec.elementCount, Engine.groupElements * 2)
        peakScratch = max(peakScratch, workers * (p.leaves.count + 3 * p.steps.count + 4) * g * scalar)
      }
    }
    let blockOrder = BlockMap(architecture: plan.architecture).blockNames
    func rank(_ b: String) -> Int { blockOrder.firstIndex(of: b) ?? blockOrder.count }
    for k in order { rows[k]!.block = compress(blocksOf[k]!.sorted { rank($0) < rank($1) }, order: blockOrder) }
    let componentOrder = [
      "clip_l", "clip_g", "clip_h", "unet", "vae", "ema", "scheduler", "embed", "layers", "norm", "lm_head", "lora", "other",
    ]
    order.sort { a, b in
      let ra = rows[a]!
      let rb = rows[b]!
      let ca = componentOrder.firstIndex(of: ra.component) ?? 99
      let cb = componentOrder.firstIndex(of: rb.component) ?? 99
      if ca != cb { return ca < cb }
      let ba = rank(String(ra.block.prefix { $0 != "–" && $0 != "," }))
      let bb = rank(String(rb.block.prefix { $0 != "–" && $0 != "," }))
      return ba != bb ? ba < bb : ra.source < rb.source
    }
    let memory = min(options.memoryBudget, peakScratch + 64 << 20) + 24 << 20
    // Reading from the page cache and merging runs at roughly 1.5 GB/s on one core here.
    let seconds = Double(read) / 1.5e9 / Double(max(1, min(workers, 2))) + Double(plan.outputBytes) / 1.0e9
    return PlanSummary(
      architecture: plan.architecture.rawValue, tensors: plan.tensors.count, outputBytes: plan.outputBytes, inputBytesRead: read,
      rows: order.map { rows[$0]! }, decisions: plan.tensors.compactMap { t in t.note.map { "\(t.spec.name): \($0)" } },
      memoryEstimateBytes: memory, timeEstimateSeconds: seconds)
  }

  /// "IN00–IN05, M00" from a sorted block list: consecutive runs are collapsed.
  static func compress(_ blocks: [String], order: [String]) -> String {
    var parts: [String] = []
    var i = 0
    while i < blocks.count {
      var j = i
      while j + 1 < blocks.count, let a = order.firstIndex(of: blocks[j]), let b = order.firstIndex(of: blocks[j + 1]), b == a + 1
      {
        j += 1
      }
      parts.append(j > i + 1 ? "\(blocks[i])–\(blocks[j])" : j == i + 1 ? "\(blocks[i]), \(blocks[j])" : blocks[i])
      i = j + 1
    }
    return parts.joined(separator: ", ")
  }

  static func passCount(_ m: ResolvedMethod) -> Int {
    switch m {
    case .linear: return 0
    case .gram: return 1
    case .task(let c):
      var n = 0
      if c.rescale == .l1 && c.drop != .none { n += 1 }
      if c.trim != .none { n += 3 }
      switch c.combine {
      case .geometricMedian, .modelStock(_, _, false): n += 1
      default: break
      }
      return n
    }
  }

  static func describe(_ source: PlannedSource, plan: MergePlan, spec: MergeSpec) -> String {
    switch source {
    case .copy(let i, let key, _):
      return "copy from \(plan.inputNames[i])" + (key.hasPrefix("model_ema.") ? " (EMA weights)" : "")
    case .compute(let p):
      func name(_ s: Slot) -> String {
        switch s {
        case .leaf(let l): return plan.inputNames[p.leaves[l].input]
        case .step(let j): return plan.nodeIDs[p.steps[j].node]
        }
      }
      return p.steps.map { step in
        let ops = step.operands.map(name).joined(separator: ", ")
        let base = step.base.map { " base \(name($0))" } ?? ""
        return "\(plan.nodeIDs[step.node]) = \(method(step.method))(\(ops))\(base)"
      }.joined(separator: "; ")
    }
  }

  static func fmt(_ v: Double) -> String {
    v == v.rounded() && abs(v) < 1e9 ? String(Int(v)) : String(format: "%.4g", v)
  }

  static func method(_ m: ResolvedMethod) -> String {
    switch m {
    case .linear(let f):
      switch f {
      case .weightedSum(let a): return "weighted_sum α=\(fmt(a))"
      case .addDifference(let a): return "add_difference α=\(fmt(a))"
      case .addDelta(let a): return "add α=\(fmt(a))"
      case .average(let w, let n): return "average w=[\(w.map(fmt).joined(separator: ","))]\(n ? "" : " unnormalized")"
      case .tripleSum(let a, let b): return "triple_sum α=\(fmt(a)) β=\(fmt(b))"
      case .sumTwice(let a, let b): return "sum_twice α=\(fmt(a)) β=\(fmt(b))"
      }
    case .gram(let g):
      switch g {
      case .slerp(let t, let i): return "slerp t=\(fmt(t))\(i ? " norms=interpolate" : "")"
      case .multislerp(let w, _, _): return "multislerp w=[\(w.map(fmt).joined(separator: ","))]"
      case .karcher(let w, let it, _): return "karcher w=[\(w.map(fmt).joined(separator: ","))] max_iter=\(it)"
      }
    case .task(let c):
      var parts: [String] = []
      switch c.drop {
      case .none: break
      case .bernoulli(let p): parts.append("drop p=\(fmt(p))")
      case .della(let d, let e, let whole): parts.append("della density=\(fmt(d)) ε=\(fmt(e))\(whole ? " whole-tensor" : "")")
      }
      if c.drop != .none { parts.append("rescale=\(c.rescale)") }
      switch c.trim {
      case .none: break
      case .topK(let d, let inc): parts.append("top-k density=\(fmt(d))\(inc ? " inclusive" : "")")
      case .band(let g, let d): parts.append("band γ=\(fmt(g)) density=\(fmt(d))")
      }
      switch c.consensus {
      case .none: break
      case .magnitudeSum: parts.append("sign=magnitude_sum")
      case .signCount: parts.append("sign=sign_count")
      }
      switch c.combine {
      case .sum: parts.append("sum")
      case .mean(let byCount): parts.append(byCount ? "mean by count" : "mean by weight")
      case .geometricMedian(_, let it, _): parts.append("geometric median max_iter=\(it)")
      case .modelStock(let cons, _, let row):
        parts.append("model stock \(cons ? "consecutive" : "all pairs")\(row ? " per row" : "")")
      }
      if c.weights.contains(where: { $0 != 1 }) { parts.append("w=[\(c.weights.map(fmt).joined(separator: ","))]") }
      if c.lambda != 1 { parts.append("λ=\(fmt(c.lambda))") }
      return "task(" + parts.joined(separator: ", ") + ")"
    }
  }

  /// Terminal rendering.
  public func text(recipe: String) -> String {
    var lines = ["plan for \(recipe): \(architecture), \(tensors) tensors, output \(Format.bytes(outputBytes))"]
    let cw = max(9, rows.map(\.component.count).max() ?? 0)
    let bw = min(24, max(6, rows.map(\.block.count).max() ?? 0))
    lines.append(
      "  " + "component".padding(toLength: cw, withPad: " ", startingAt: 0) + "  "
        + "blocks".padding(toLength: bw, withPad: " ", startingAt: 0) + "  keys  source")
    for r in rows {
      let block = r.block.count > bw ? String(r.block.prefix(bw - 1)) + "…" : r.block
      lines.append(
        "  " + r.component.padding(toLength: cw, withPad: " ", startingAt: 0) + "  "
          + block.padding(toLength: bw, withPad: " ", startingAt: 0)
          + String(r.keys).leftPad(6) + "  " + r.source)
    }
    if !decisions.isEmpty {
      lines.append("  key-policy decisions:")
      for d in decisions.prefix(20) { lines.append("    " + d) }
      if decisions.count > 20 { lines.append("    … \(decisions.count - 20) more") }
    }
    lines.append(
      "  estimate: reads \(Format.bytes(inputBytesRead)), peak memory ≈ \(Format.bytes(memoryEstimateBytes)), time ≈ \(Format.seconds(timeEstimateSeconds))"
    )
    return lines.joined(separator: "\n")
  }
}
