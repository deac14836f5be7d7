import MergeEngine
import SafeTensors

/// A JSON value with sorted-key, compact serialization: the canonical form of recipes.
public indirect enum CanonicalValue: Sendable, Equatable {
  case object([String: CanonicalValue])
  case array([CanonicalValue])
  case string(String)
  case number(Double)
  case integer(UInt64)
  case bool(Bool)
  case null

  public var text: String {
    var out: [UInt8] = []
    write(&out)
    return String(decoding: out, as: UTF8.self)
  }

  func write(_ out: inout [UInt8]) {
    switch self {
    case .object(let o):
      out.append(UInt8(ascii: "{"))
      for (i, k) in o.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }).enumerated() {
        if i > 0 { out.append(UInt8(ascii: ",")) }
        JSONText.appendQuoted(k, to: &out)
        out.append(UInt8(ascii: ":"))
        o[k]!.write(&out)
      }
      out.append(UInt8(ascii: "}"))
    case .array(let a):
      out.append(UInt8(ascii: "["))
      for (i, v) in a.enumerated() {
        if i > 0 { out.append(UInt8(ascii: ",")) }
        v.write(&out)
      }
      out.append(UInt8(ascii: "]"))
    case .string(let s): JSONText.appendQuoted(s, to: &out)
    case .number(let d):
      // Integral values print without a fraction; others in Swift's shortest round-trip form.
      if d == d.rounded() && abs(d) < 1e15 {
        out.append(contentsOf: Array(String(Int64(d)).utf8))
      } else {
        out.append(contentsOf: Array("\(d)".utf8))
      }
    case .integer(let i): out.append(contentsOf: Array(String(i).utf8))
    case .bool(let b): out.append(contentsOf: Array((b ? "true" : "false").utf8))
    case .null: out.append(contentsOf: Array("null".utf8))
    }
  }
}

/// The canonical form of a recipe: everything that determines the output bytes, with every
/// default written out, and nothing that does not (comments, key order, formatting, the
/// recipe's name and description, input paths and sha256 pins: inputs are pinned by content
/// in the run record). Defaults that depend on the recipe are resolved: default weights,
/// each seeded step's effective seed (its own, else `output.seed`), and the reference input;
/// `output.seed` itself is left out, since only seeded steps read it.
enum Canonical {
  static func json(inputs: [RecipeInput], steps: [RecipeStep], output: RecipeOutput) -> String {
    var ins: [String: CanonicalValue] = [:]
    for i in inputs {
      switch i.source {
      case .file: ins[i.name] = .object(["kind": .string("file")])
      case .recipe(let n): ins[i.name] = .object(["kind": .string("recipe"), "recipe": .string(n)])
      case .synth(let s):
        ins[i.name] = .object([
          "kind": .string("synth"), "arch": .string(s.arch), "seed": .integer(s.seed), "index": .number(Double(s.index)),
          "scale": .number(s.scale), "dtype": .string(s.dtype),
        ])
      }
    }
    var st: [String: CanonicalValue] = [:]
    for s in steps {
      let info = Catalog.info(s.method)
      var params: [String: CanonicalValue] = [:]
      for p in info.params {
        if let v = s.params[p.name] {
          params[p.name] = value(v)
        } else if let d = p.defaultValue {
          params[p.name] = .number(d)
        }
      }
      var options: [String: CanonicalValue] = [:]
      for o in info.options { options[o.name] = .string(s.options[o.name] ?? o.defaultValue) }
      var obj: [String: CanonicalValue] = [
        "method": .string(s.method.rawValue), "models": .array(s.models.map { .string($0) }),
        "params": .object(params), "options": .object(options),
        "semantics": .string(info.semanticsVersion),
      ]
      if let b = s.base { obj["base"] = .string(b) }
      if let w = s.weights {
        obj["weights"] = .array(w.map(value))
      } else if info.weights {
        obj["weights"] = .array(defaultWeights(s.method, count: s.models.count).map { .number($0) })
      }
      if info.seeded { obj["seed"] = .integer(s.seed ?? output.seed) }
      st[s.name] = .object(obj)
    }
    var rules: [CanonicalValue] = []
    for r in output.assemble {
      var o: [String: CanonicalValue] = [:]
      switch r.selector {
      case .all: o["all"] = .bool(true)
      case .components(let c): o["components"] = .array(c.map { .string($0) })
      case .blocks(let b): o["blocks"] = .array(b.map { .string($0) })
      case .match(let m): o["match"] = .string(m)
      case .regex(let r): o["regex"] = .string(r)
      }
      switch r.source {
      case .from(let s): o["from"] = .string(s)
      case .ema(let s): o["ema_from"] = .string(s)
      case .drop: o["drop"] = .bool(true)
      }
      rules.append(.object(o))
    }
    var out: [String: CanonicalValue] = [
      "from": .string(output.from), "assemble": .array(rules), "dtype": .string(output.dtype.rawValue),
      "compute": .string(output.compute.rawValue), "time_embed": .string(output.timeEmbed.rawValue),
      "key_policy": .string(output.keyPolicy.rawValue), "nonfinite": .string(output.nonFinite.rawValue),
      "metadata": .object(output.metadata.mapValues { .string($0) }),
    ]
    out["reference"] = .string(Recipe.referenceInput(inputs: inputs, steps: steps, output: output))
    out["shard_size"] = output.shardBytes.map { .integer(UInt64($0)) } ?? .null
    let root: CanonicalValue = .object([
      "mixlab": .integer(UInt64(Recipe.formatVersion)), "engine": .string(Engine.version), "inputs": .object(ins),
      "steps": .object(st), "output": .object(out),
    ])
    return root.text
  }

  /// The weights the engine uses when a step gives none (MethodCompiler): 1 per model, and
  /// 1/n for karcher.
  static func defaultWeights(_ method: MethodName, count n: Int) -> [Double] {
    Array(repeating: method == .karcher ? 1 / Double(max(1, n)) : 1, count: n)
  }

  static func value(_ p: RecipeParam) -> CanonicalValue {
    switch p {
    case .constant(let v): return .number(v)
    case .gradient(let v): return .object(["gradient": .array(v.map { .number($0) })])
    case .blockList(let v): return .object(["blocks": .array(v.map { .number($0) })])
    case .blocks(let v, let f):
      var o: [String: CanonicalValue] = ["blocks": .object(v.mapValues { .number($0) })]
      if let f { o["default"] = .number(f) }
      return .object(o)
    case .rules(let rules, let f):
      var o: [String: CanonicalValue] = [
        "filters": .array(
          rules.map { r in
            switch r.pattern {
            case .glob(let g): return .object(["match": .string(g), "value": value(r.value)])
            case .regex(let x): return .object(["regex": .string(x), "value": value(r.value)])
            }
          })
      ]
      if let f { o["default"] = value(f) }
      return .object(o)
    }
  }
}
