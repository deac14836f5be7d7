import Architectures
import Foundation
import Yams

/// Parameter sweeps: a step parameter written as `{sweep: …}` turns one recipe file into one
/// ordinary recipe per point, named `<recipe>-<NN>`, each run and recorded like any other
/// (its concrete YAML is what the run record keeps, so every point reproduces on its own).
///
/// Forms (several sweeps in one recipe combine as a Cartesian product, at most 1000 points):
/// - `alpha: {sweep: [0.2, 0.4, 0.6]}` — a list;
/// - `alpha: {sweep: {from: 0, to: 1, steps: 5}}` — evenly spaced, both ends included;
/// - `alpha: {sweep: {min: 0, max: 1, samples: 8, seed: 3}}` — seeded uniform samples;
/// - `alpha: {sweep: {blocks: {IN00: [0, 1], M00: [0.5, 1]}, samples: 8, seed: 3, default: 0.5}}`
///   — seeded samples of per-block weights (each block uniform in its range).
public enum Sweep {
  public static let maxPoints = 1000

  struct Dimension {
    var path: String
    /// One replacement node per point, and the values to report for it (path → value).
    var points: [(node: Node, values: [(String, Double)])]
  }

  /// The points of a swept recipe, or nil when the recipe has no sweep.
  ///
  /// - Throws: `RecipeError` at the sweep's line for a malformed sweep, or from parsing a point.
  public static func expand(_ text: String, file: String, name: String) throws(RecipeError) -> [Recipe]? {
    do {
      return try expandUnchecked(text, file: file, name: name)
    } catch let e as RecipeError {
      throw e
    } catch {
      throw RecipeError(file: file, line: 1, column: 1, message: "\(error)")
    }
  }

  static func expandUnchecked(_ text: String, file: String, name: String) throws -> [Recipe]? {
    // Cheap test first: most recipes have no sweep.
    guard text.contains("sweep") else { return nil }
    // The same checks as the parser (no aliases, bounded size and nesting) before composing.
    try RecipeParser.prescan(text, file: file)
    guard let root = try Yams.compose(yaml: text), case .mapping(let top) = root, let stepsNode = top["steps"],
      case .mapping(let steps) = stepsNode
    else { return nil }
    var dims: [Dimension] = []
    func err(_ node: Node, _ message: String) -> RecipeError {
      RecipeError(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1, message: message)
    }
    func collect(_ node: Node, path: String) throws {
      guard case .mapping(let m) = node else { return }
      if let spec = m["sweep"] {
        guard m.count == 1 else { throw err(node, "\(path): a sweep is written `{sweep: …}` with nothing beside it") }
        dims.append(try dimension(spec, path: path, err: err))
        return
      }
      for (k, v) in m { if case .scalar(let key) = k { try collect(v, path: path + "." + key.string) } }
    }
    for (k, v) in steps {
      guard case .scalar(let stepName) = k, case .mapping(let step) = v else { continue }
      for (pk, pv) in step {
        guard case .scalar(let param) = pk else { continue }
        if case .sequence(let list) = pv, param.string == "weights" {
          for (i, w) in list.enumerated() { try collect(w, path: "steps.\(stepName.string).weights[\(i)]") }
        } else {
          try collect(pv, path: "steps.\(stepName.string).\(param.string)")
        }
      }
    }
    guard !dims.isEmpty else { return nil }
    let total = dims.reduce(1) { $0 * $1.points.count }
    guard total <= maxPoints else {
      throw RecipeError(
        file: file, line: 1, column: 1, message: "the sweeps make \(total) points; at most \(maxPoints) are allowed")
    }
    var recipes: [Recipe] = []
    let digits = max(2, String(total - 1).count)
    for index in 0..<total {
      var rest = index
      var choice: [Int] = []
      for d in dims.reversed() {
        choice.insert(rest % d.points.count, at: 0)
        rest /= d.points.count
      }
      var replaced = 0
      func rebuild(_ node: Node) -> Node {
        switch node {
        case .mapping(let m):
          if m["sweep"] != nil {
            let d = replaced
            replaced += 1
            return dims[d].points[choice[d]].node
          }
          var pairs: [(Node, Node)] = []
          for (k, v) in m { pairs.append((k, rebuild(v))) }
          return .mapping(Node.Mapping(pairs))
        case .sequence(let s):
          return .sequence(Node.Sequence(s.map(rebuild)))
        default:
          return node
        }
      }
      let pointName = name + "-" + String(repeating: "0", count: max(0, digits - String(index).count)) + String(index)
      var pairs: [(Node, Node)] = []
      for (k, v) in top {
        if case .scalar(let key) = k, key.string == "name" { continue }
        if case .scalar(let key) = k, key.string == "steps" {
          pairs.append((k, rebuild(v)))
        } else {
          pairs.append((k, v))
        }
      }
      pairs.insert((.scalar(Node.Scalar("name")), .scalar(Node.Scalar(pointName))), at: 1)
      let values = dims.indices.flatMap { dims[$0].points[choice[$0]].values }
      let header =
        "# Point \(index) of the sweep in \((file as NSString).lastPathComponent): "
        + values.map { "\($0.0)=\(format($0.1))" }.joined(separator: ", ") + "\n"
      let body = try Yams.serialize(node: .mapping(Node.Mapping(pairs)), sortKeys: false)
      var recipe = try RecipeParser.parse(header + body, file: file, name: pointName)
      recipe.sweepPoint = SweepPoint(sweep: name, index: index, values: values.map { (path: $0.0, value: $0.1) })
      recipes.append(recipe)
    }
    return recipes
  }

  static func number(_ node: Node, _ what: String, err: (Node, String) -> RecipeError) throws -> Double {
    guard case .scalar(let s) = node, let v = Double(s.string), v.isFinite else {
      throw err(node, "\(what) must be a finite number")
    }
    return v
  }

  static func integer(_ node: Node, _ what: String, err: (Node, String) -> RecipeError) throws -> Int {
    guard case .scalar(let s) = node, let v = Int(s.string) else { throw err(node, "\(what) must be a whole number") }
    return v
  }

  static func format(_ v: Double) -> String {
    v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(format: "%.6g", v)
  }

  static func scalar(_ v: Double) -> Node { .scalar(Node.Scalar(format(v))) }

  static func dimension(_ spec: Node, path: String, err: (Node, String) -> RecipeError) throws -> Dimension {
    switch spec {
    case .sequence(let list):
      guard !list.isEmpty else { throw err(spec, "\(path): an empty sweep") }
      var points: [(Node, [(String, Double)])] = []
      for n in list { points.append((n, [(path, try number(n, "a swept value", err: err))])) }
      return Dimension(path: path, points: points)
    case .mapping(let m):
      let keys = Set(m.keys.compactMap { if case .scalar(let s) = $0 { return s.string } else { return nil } })
      if keys == ["from", "to", "steps"] {
        let a = try number(m["from"]!, "from", err: err)
        let b = try number(m["to"]!, "to", err: err)
        let n = try integer(m["steps"]!, "steps", err: err)
        guard n >= 2 && n <= maxPoints else { throw err(m["steps"]!, "\(path): steps must be between 2 and \(maxPoints)") }
        let points = (0..<n).map { i -> (Node, [(String, Double)]) in
          let v = Double(format(a + (b - a) * Double(i) / Double(n - 1)))!
          return (scalar(v), [(path, v)])
        }
        return Dimension(path: path, points: points)
      }
      if keys.isSubset(of: ["min", "max", "samples", "seed"]) && keys.contains("min") && keys.contains("max") {
        let lo = try number(m["min"]!, "min", err: err)
        let hi = try number(m["max"]!, "max", err: err)
        let k = try m["samples"].map { try integer($0, "samples", err: err) } ?? 8
        let seed = try m["seed"].map { UInt64(try integer($0, "seed", err: err)) } ?? 0
        guard k >= 1 && k <= maxPoints else { throw err(spec, "\(path): samples must be between 1 and \(maxPoints)") }
        let rng = CounterRNG(seed: seed, name: path, stream: 0)
        let points = (0..<k).map { i -> (Node, [(String, Double)]) in
          let v = Double(format(lo + (hi - lo) * rng.unitDouble(i)))!
          return (scalar(v), [(path, v)])
        }
        return Dimension(path: path, points: points)
      }
      if keys.isSubset(of: ["blocks", "samples", "seed", "default"]) && keys.contains("blocks") {
        guard case .mapping(let blocks) = m["blocks"]! else {
          throw err(m["blocks"]!, "\(path): blocks must map block names to [min, max]")
        }
        let k = try m["samples"].map { try integer($0, "samples", err: err) } ?? 8
        let seed = try m["seed"].map { UInt64(try integer($0, "seed", err: err)) } ?? 0
        guard k >= 1 && k <= maxPoints else { throw err(spec, "\(path): samples must be between 1 and \(maxPoints)") }
        var ranges: [(String, Double, Double)] = []
        for (bk, bv) in blocks {
          guard case .scalar(let b) = bk, case .sequence(let r) = bv, r.count == 2 else {
            throw err(bv, "\(path): each block takes a range [min, max]")
          }
          ranges.append((b.string, try number(r[0], "min", err: err), try number(r[1], "max", err: err)))
        }
        var points: [(Node, [(String, Double)])] = []
        for i in 0..<k {
          var pairs: [(Node, Node)] = []
          var values: [(String, Double)] = []
          for (j, (b, lo, hi)) in ranges.enumerated() {
            let rng = CounterRNG(seed: seed, name: path, stream: UInt64(j))
            let v = Double(format(lo + (hi - lo) * rng.unitDouble(i)))!
            pairs.append((.scalar(Node.Scalar(b)), scalar(v)))
            values.append(("\(path).blocks.\(b)", v))
          }
          var outer: [(Node, Node)] = [(.scalar(Node.Scalar("blocks")), .mapping(Node.Mapping(pairs)))]
          if let d = m["default"] { outer.append((.scalar(Node.Scalar("default")), d)) }
          points.append((.mapping(Node.Mapping(outer)), values))
        }
        return Dimension(path: path, points: points)
      }
      throw err(
        spec,
        "\(path): a sweep is a list, {from, to, steps}, {min, max, samples, seed} or {blocks: {BLOCK: [min, max]}, samples, seed}"
      )
    default:
      throw err(spec, "\(path): a sweep is a list, {from, to, steps}, {min, max, samples, seed} or {blocks: …, samples, seed}")
    }
  }
}
