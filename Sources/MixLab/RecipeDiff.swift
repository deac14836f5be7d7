import Foundation
import Recipes
import SafeTensors

/// The semantic difference of two recipes: parameter by parameter, over their canonical forms
/// (defaults filled in, so `density` left out and `density: 0.5` compare equal when 0.5 is the
/// default), plus what the canonical form leaves out: input files and their SHA-256.
public struct RecipeDiff: Codable, Sendable, Equatable {
  /// True when the canonical recipes are identical and inputs name the same files or bytes.
  public var equal: Bool
  public var recipeHashA: String
  public var recipeHashB: String
  public var changes: [Change]

  /// One difference. `path` is dot-separated over the canonical JSON (`steps.unet.params.density`)
  /// or `inputs.<name>.path` / `inputs.<name>.sha256`; `a` and `b` are the values as compact
  /// JSON text, null when absent on that side.
  public struct Change: Codable, Sendable, Equatable {
    public var path: String
    public var a: String?
    public var b: String?
    /// The same, for a person: `step unet: method ties → dare`.
    public var text: String
  }

  enum CodingKeys: String, CodingKey {
    case equal, changes
    case recipeHashA = "recipe_hash_a"
    case recipeHashB = "recipe_hash_b"
  }
}

/// What a recipe side contributes to a recipe diff.
struct RecipeFacts: Sendable {
  /// Canonical recipe JSON.
  var canonical: String
  var hash: String
  var inputs: [InputFact]

  struct InputFact: Sendable, Equatable {
    var name: String
    /// As written: a path, `recipe:<name>` or a `synth:` label.
    var source: String
    /// Absolute path for file inputs, to tell a moved recipe from a different file.
    var resolved: String?
    /// Full SHA-256 (runs) or a pinned prefix (recipes), when known.
    var sha256: String?
  }

  /// A recipe file as parsed.
  init(recipe r: Recipe) {
    canonical = r.canonical
    hash = r.hash
    let folder = (r.file as NSString).deletingLastPathComponent
    inputs = r.inputs.map { i in
      switch i.source {
      case .file(let p):
        let abs = p.hasPrefix("/") ? p : (folder + "/" + p as NSString).standardizingPath
        return InputFact(name: i.name, source: p, resolved: abs, sha256: i.sha256)
      case .recipe(let n):
        return InputFact(name: i.name, source: "recipe:\(n)", resolved: nil, sha256: i.sha256)
      case .synth(let s):
        return InputFact(
          name: i.name, source: "synth:\(s.arch)/seed=\(s.seed)/index=\(s.index)/scale=\(s.scale)/\(s.dtype)",
          resolved: nil, sha256: i.sha256)
      }
    }
  }

  init(canonical: String, hash: String, inputs: [InputFact]) {
    self.canonical = canonical
    self.hash = hash
    self.inputs = inputs
  }
}

enum RecipeDiffer {
  static func diff(_ a: RecipeFacts, _ b: RecipeFacts) -> RecipeDiff {
    var changes: [RecipeDiff.Change] = []
    let ja = (try? StrictJSONParser.parse(Array(a.canonical.utf8))) ?? .null
    let jb = (try? StrictJSONParser.parse(Array(b.canonical.utf8))) ?? .null
    walk(ja, jb, path: [], into: &changes)
    changes += inputChanges(a.inputs, b.inputs)
    return RecipeDiff(equal: changes.isEmpty, recipeHashA: a.hash, recipeHashB: b.hash, changes: changes)
  }

  // MARK: Canonical JSON

  static func walk(_ a: JSONValue?, _ b: JSONValue?, path: [String], into out: inout [RecipeDiff.Change]) {
    if case .object(let x)? = a, case .object(let y)? = b {
      let dx = Dictionary(x.map { ($0.key, $0.value) }, uniquingKeysWith: { v, _ in v })
      let dy = Dictionary(y.map { ($0.key, $0.value) }, uniquingKeysWith: { v, _ in v })
      // A whole step or input present on one side only is one change, not one per field.
      for k in Set(dx.keys).union(dy.keys).sorted() {
        walk(dx[k], dy[k], path: path + [k], into: &out)
      }
      return
    }
    if case .array(let x)? = a, case .array(let y)? = b, x.count == y.count,
      x.contains(where: { if case .object = $0 { return true } else { return false } })
    {
      for i in x.indices { walk(x[i], y[i], path: path + ["\(i)"], into: &out) }
      return
    }
    if a == b { return }
    let ta = a.map(text)
    let tb = b.map(text)
    out.append(RecipeDiff.Change(path: path.joined(separator: "."), a: ta, b: tb, text: describe(path, a, b)))
  }

  /// Compact JSON text of a value (numbers as written in the canonical form).
  static func text(_ v: JSONValue) -> String {
    switch v {
    case .object(let members):
      return "{" + members.map { "\(quoted($0.key)): \(text($0.value))" }.joined(separator: ", ") + "}"
    case .array(let items): return "[" + items.map(text).joined(separator: ", ") + "]"
    case .string(let s): return quoted(s)
    case .number(let n): return n
    case .bool(let b): return b ? "true" : "false"
    case .null: return "null"
    }
  }

  static func quoted(_ s: String) -> String {
    var out: [UInt8] = []
    JSONText.appendQuoted(s, to: &out)
    return String(decoding: out, as: UTF8.self)
  }

  /// A value for a person: strings bare, the rest as compact JSON.
  static func plain(_ v: JSONValue?) -> String {
    guard let v else { return "(none)" }
    if case .string(let s) = v { return s }
    return text(v)
  }

  /// `step unet: method ties → dare`, `output: dtype F16 → BF16`, `input base: kind file → synth`.
  static func describe(_ path: [String], _ a: JSONValue?, _ b: JSONValue?) -> String {
    let change = "\(plain(a)) → \(plain(b))"
    guard let head = path.first else { return "recipe: \(change)" }
    switch head {
    case "steps" where path.count >= 2:
      let step = path[1]
      if path.count == 2 {
        if a == nil { return "step \(step): only in B (\(summary(b)))" }
        if b == nil { return "step \(step): only in A (\(summary(a)))" }
        return "step \(step): \(change)"
      }
      var rest = Array(path.dropFirst(2))
      var label = ""
      if rest.first == "params" {
        rest.removeFirst()
      } else if rest.first == "options" {
        rest.removeFirst()
        label = "option "
      }
      return "step \(step): \(label)\(rest.joined(separator: ".")) \(change)"
    case "inputs" where path.count >= 2:
      if path.count == 2 {
        if a == nil { return "input \(path[1]): only in B (\(summary(b)))" }
        if b == nil { return "input \(path[1]): only in A (\(summary(a)))" }
      }
      return "input \(path[1]): \(path.dropFirst(2).joined(separator: ".")) \(change)"
    case "output":
      return "output: \(path.dropFirst().joined(separator: ".")) \(change)"
    case "mixlab":
      return "recipe format version \(change)"
    case "engine":
      return "engine version \(change)"
    default:
      return "\(path.joined(separator: ".")): \(change)"
    }
  }

  /// A step's or input's one-line summary: its method or kind.
  static func summary(_ v: JSONValue?) -> String {
    guard case .object(let members)? = v else { return plain(v) }
    for key in ["method", "kind"] {
      if let m = members.first(where: { $0.key == key }) { return "\(key) \(plain(m.value))" }
    }
    return "present"
  }

  // MARK: Inputs

  static func inputChanges(_ a: [RecipeFacts.InputFact], _ b: [RecipeFacts.InputFact]) -> [RecipeDiff.Change] {
    var out: [RecipeDiff.Change] = []
    let byA = Dictionary(a.map { ($0.name, $0) }, uniquingKeysWith: { x, _ in x })
    let byB = Dictionary(b.map { ($0.name, $0) }, uniquingKeysWith: { x, _ in x })
    for name in Set(byA.keys).union(byB.keys).sorted() {
      guard let x = byA[name], let y = byB[name] else { continue }  // reported by the canonical walk
      let sameSource = x.resolved != nil && y.resolved != nil ? x.resolved == y.resolved : x.source == y.source
      if !sameSource {
        out.append(
          RecipeDiff.Change(
            path: "inputs.\(name).path", a: quoted(x.source), b: quoted(y.source),
            text: "input \(name): \(x.source) → \(y.source)"))
      }
      if let hx = x.sha256?.lowercased(), let hy = y.sha256?.lowercased(), !hx.hasPrefix(hy), !hy.hasPrefix(hx) {
        out.append(
          RecipeDiff.Change(
            path: "inputs.\(name).sha256", a: quoted(hx), b: quoted(hy),
            text: "input \(name): sha256 \(hx.prefix(12)) → \(hy.prefix(12)) (different bytes)"))
      }
    }
    // The same bytes under another name are worth a line: a rename, not a new model.
    for x in a where byB[x.name] == nil {
      guard let hx = x.sha256?.lowercased(), hx.count >= 10 else { continue }
      if let y = b.first(where: {
        byA[$0.name] == nil && ($0.sha256?.lowercased()).map { $0.hasPrefix(hx) || hx.hasPrefix($0) } == true
      }) {
        out.append(
          RecipeDiff.Change(
            path: "inputs.\(x.name).name", a: quoted(x.name), b: quoted(y.name),
            text: "input \(x.name) in A and \(y.name) in B are the same file (sha256 \(hx.prefix(12)))"))
      }
    }
    return out
  }
}
