import Foundation
import MergeEngine
import SafeTensors

/// A construct of another tool's recipe that mixlab cannot convert, or a file it cannot read.
///
/// The message names the construct; `line` points at it when the source format has lines.
public struct ImportError: Error, LocalizedError, Equatable, Sendable {
  public var file: String
  public var line: Int?
  public var message: String

  public init(file: String, line: Int? = nil, message: String) {
    self.file = file
    self.line = line
    self.message = message
  }

  public var errorDescription: String? {
    if let line { return "\(file):\(line): \(message)" }
    return "\(file): \(message)"
  }
}

/// Where an importer finds the models a foreign recipe names, and where the recipe goes.
public struct ImportOptions: Sendable {
  /// Model reference as the source names it (a Hugging Face id, a sd-mecha model path, an
  /// A1111 checkpoint name, or a SHA-256 / AutoV2 prefix) → a local file or folder.
  public var modelPaths: [String: String]
  /// The folder the written recipe will live in; input paths are written relative to it.
  public var recipeFolder: String
  /// Folder that relative model paths of the source are resolved against (sd-mecha's
  /// `models_dir`, A1111's checkpoint folder). Default: the source file's folder.
  public var modelsFolder: String?
  /// The working directory (mergekit resolves local model folders against it).
  public var workingDirectory: String
  /// A1111 only: keep the immediate parents as inputs instead of expanding their ancestry.
  public var shallow: Bool

  public init(
    modelPaths: [String: String] = [:], recipeFolder: String, modelsFolder: String? = nil,
    workingDirectory: String = FileManager.default.currentDirectoryPath, shallow: Bool = false
  ) {
    self.modelPaths = modelPaths
    self.recipeFolder = recipeFolder
    self.modelsFolder = modelsFolder
    self.workingDirectory = workingDirectory
    self.shallow = shallow
  }
}

/// What an importer produced: recipe text that `RecipeParser` accepts, and what it decided.
public struct ImportResult: Sendable {
  /// The source format and version, e.g. `mergekit`, `sd-mecha 0.1.0`, `A1111 webui`.
  public var format: String
  /// The recipe YAML, starting with a comment header stating the semantics chosen.
  public var yaml: String
  /// The semantic decisions, one line each (also in the header).
  public var notes: [String]
}

/// The source formats `mixlab import` reads.
public enum ImportFormat: String, Sendable, CaseIterable {
  case mergekit
  case mecha
  case a1111

  /// The format of `path` from its extension: `.yaml`/`.yml` mergekit, `.mecha` sd-mecha,
  /// `.safetensors` A1111/supermerger metadata.
  public static func detect(_ path: String) -> ImportFormat? {
    switch (path as NSString).pathExtension.lowercased() {
    case "yaml", "yml": return .mergekit
    case "mecha": return .mecha
    case "safetensors": return .a1111
    default: return nil
    }
  }
}

/// Imports a foreign recipe file.
public enum RecipeImport {
  /// Converts `file` to mixlab recipe text, validated by `RecipeParser`.
  ///
  /// - Parameters:
  ///   - file: the mergekit YAML, `.mecha` recipe or `.safetensors` model to read.
  ///   - format: the source format; nil detects it from the extension.
  ///   - options: model locations and the folder the recipe will be written to.
  ///   - recipePath: where the recipe will be written (for the validation's messages).
  /// - Throws: `ImportError` naming the unsupported construct or the unresolved model.
  public static func convert(file: String, format: ImportFormat? = nil, options: ImportOptions, recipePath: String) throws
    -> ImportResult
  {
    guard let format = format ?? ImportFormat.detect(file) else {
      throw ImportError(
        file: file,
        message:
          "cannot tell the format from the extension; mergekit configs end in .yaml, sd-mecha recipes in .mecha, A1111 models in .safetensors (or pass --format)"
      )
    }
    let result: ImportResult
    switch format {
    case .mergekit: result = try MergekitImport.convert(file: file, options: options)
    case .mecha: result = try MechaImport.convert(file: file, options: options)
    case .a1111: result = try A1111Import.convert(file: file, options: options)
    }
    do {
      _ = try RecipeParser.parse(result.yaml, file: recipePath)
    } catch {
      throw ImportError(
        file: file,
        message: "the converted recipe does not validate (a mixlab bug; please report it): \(error.localizedDescription)")
    }
    return result
  }
}

// MARK: - Writing recipe text

/// A recipe under construction, written as YAML in the recipe format's own layout.
struct RecipeDraft {
  struct Input {
    var name: String
    var path: String
    var sha256: String?
    var comment: String?
  }

  struct Step {
    var name: String
    var method: MethodName
    var models: [String]
    var base: String?
    var weights: [RecipeParam]?
    var params: [(String, RecipeParam)] = []
    var options: [(String, String)] = []
    var seed: UInt64?
    var comment: String?
  }

  var header: [String] = []
  var description: String?
  var inputs: [Input] = []
  var steps: [Step] = []
  var from = ""
  /// Flow mappings, written as given (e.g. `{components: [vae], from: base}`).
  var assemble: [String] = []
  var dtype: String?
  var compute: String?
  var timeEmbed: String?
  var keyPolicy: String?
  var metadata: [(String, String)] = []

  func yaml() -> String {
    var out: [String] = header.map { $0.isEmpty ? "#" : "# " + $0 }
    out.append("mixlab: 1")
    if let description { out.append("description: \(YAMLText.quote(description))") }
    out.append("inputs:")
    for i in inputs {
      var line = "  \(i.name): {path: \(YAMLText.quote(i.path))"
      if let s = i.sha256 { line += ", sha256: \(s)" }
      line += "}"
      if let c = i.comment { line += "  # " + c }
      out.append(line)
    }
    if !steps.isEmpty {
      out.append("steps:")
      for s in steps {
        if let c = s.comment { out.append("  # " + c) }
        out.append("  \(s.name):")
        out.append("    method: \(s.method.rawValue)")
        if let b = s.base { out.append("    base: \(b)") }
        out.append("    models: [\(s.models.joined(separator: ", "))]")
        if let w = s.weights { out.append("    weights: [\(w.map(YAMLText.param).joined(separator: ", "))]") }
        for (k, v) in s.params { out.append("    \(k): \(YAMLText.param(v))") }
        for (k, v) in s.options { out.append("    \(k): \(v)") }
        if let seed = s.seed { out.append("    seed: \(seed)") }
      }
    }
    out.append("output:")
    out.append("  from: \(from)")
    if !assemble.isEmpty {
      out.append("  assemble:")
      for a in assemble { out.append("    - \(a)") }
    }
    if let dtype { out.append("  dtype: \(dtype)") }
    if let compute { out.append("  compute: \(compute)") }
    if let timeEmbed { out.append("  time_embed: \(timeEmbed)") }
    if let keyPolicy { out.append("  key_policy: \(keyPolicy)") }
    if !metadata.isEmpty {
      out.append("  metadata:")
      for (k, v) in metadata { out.append("    \(YAMLText.quote(k)): \(YAMLText.quote(v))") }
    }
    return out.joined(separator: "\n") + "\n"
  }
}

/// Scalars and parameter values as recipe YAML text.
enum YAMLText {
  /// A double-quoted YAML string (JSON-style escapes), safe for any text.
  static func quote(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
      switch u {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\t": out += "\\t"
      case "\r": out += "\\r"
      default:
        if u.value < 0x20 || u.value == 0x7F {
          out += String(format: "\\u%04X", u.value)
        } else {
          out.unicodeScalars.append(u)
        }
      }
    }
    return out + "\""
  }

  /// A number as the recipe parser reads it back exactly: integers plainly, others in
  /// Swift's shortest round-trip form.
  static func number(_ d: Double) -> String {
    if d == d.rounded() && abs(d) < 1e15 { return String(Int64(d)) }
    return "\(d)"
  }

  static func param(_ p: RecipeParam) -> String {
    switch p {
    case .constant(let v): return number(v)
    case .gradient(let v): return "[" + v.map(number).joined(separator: ", ") + "]"
    case .blockList(let v): return "{blocks: [" + v.map(number).joined(separator: ", ") + "]}"
    case .blocks(let v, let fallback):
      let order = RecipeParser.blockNames
      let keys = v.keys.sorted { (order.firstIndex(of: $0) ?? 99) < (order.firstIndex(of: $1) ?? 99) }
      var s = "{blocks: {" + keys.map { "\($0): \(number(v[$0]!))" }.joined(separator: ", ") + "}"
      if let fallback { s += ", default: \(number(fallback))" }
      return s + "}"
    case .rules(let rules, let fallback):
      let items = rules.map { r -> String in
        switch r.pattern {
        case .glob(let g): return "{match: \(quote(g)), value: \(param(r.value))}"
        case .regex(let x): return "{regex: \(quote(x)), value: \(param(r.value))}"
        }
      }
      var s = "{filters: [" + items.joined(separator: ", ") + "]"
      if let fallback { s += ", default: \(param(fallback))" }
      return s + "}"
    }
  }
}

extension RecipeParam {
  /// The same parameter with every number passed through `f` (e.g. mergekit's keep
  /// density → mixlab's drop probability, 1 − d).
  func mapNumbers(_ f: (Double) -> Double) -> RecipeParam {
    switch self {
    case .constant(let v): return .constant(f(v))
    case .gradient(let v): return .gradient(v.map(f))
    case .blockList(let v): return .blockList(v.map(f))
    case .blocks(let v, let fb): return .blocks(v.mapValues(f), fallback: fb.map(f))
    case .rules(let r, let fb):
      return .rules(r.map { ($0.pattern, $0.value.mapNumbers(f)) }, fallback: fb?.mapNumbers(f))
    }
  }

  /// Every number in the parameter, for range checks.
  var numbers: [Double] {
    switch self {
    case .constant(let v): return [v]
    case .gradient(let v), .blockList(let v): return v
    case .blocks(let v, let fb): return Array(v.values) + (fb.map { [$0] } ?? [])
    case .rules(let r, let fb): return r.flatMap { $0.value.numbers } + (fb?.numbers ?? [])
    }
  }

  /// True when every tensor gets a value (no rule list without a catch-all).
  var isTotal: Bool {
    if case .rules(_, let fb) = self { return fb?.isTotal ?? false }
    return true
  }

  /// This parameter, with `next` standing in wherever it gives no value (mergekit falls back
  /// from a model's parameters to the global ones when no filter matches).
  func fallingBack(to next: RecipeParam?) -> RecipeParam {
    guard let next else { return self }
    if case .rules(let r, let fb) = self {
      return .rules(r, fallback: fb.map { $0.fallingBack(to: next) } ?? next)
    }
    return self
  }
}

// MARK: - Names and paths

enum ImportNames {
  /// A valid, unused recipe name (1–64 of `A-Za-z0-9_-`) derived from `raw`.
  static func unique(_ raw: String, taken: inout Set<String>) -> String {
    var base = String(
      raw.unicodeScalars.map { u -> Character in
        let ok = u.isASCII && (CharacterSet.alphanumerics.contains(u) || u == "_" || u == "-")
        return ok ? Character(u) : "_"
      })
    while base.hasPrefix("_") { base.removeFirst() }
    if base.isEmpty { base = "model" }
    base = String(base.prefix(56))
    var name = base
    var n = 2
    while taken.contains(name) {
      name = "\(base)-\(n)"
      n += 1
    }
    taken.insert(name)
    return name
  }

  /// A model's name from its path or id: the last component without `.safetensors`.
  static func stem(_ ref: String) -> String {
    var last = (ref as NSString).lastPathComponent
    for ext in [".safetensors", ".ckpt", ".pt", ".bin"] where last.lowercased().hasSuffix(ext) {
      last = String(last.dropLast(ext.count))
    }
    return last
  }
}

enum ImportPaths {
  /// `path` made absolute against `base` and standardized.
  static func absolute(_ path: String, base: String) -> String {
    let p = path.hasPrefix("/") ? path : base + "/" + path
    return (p as NSString).standardizingPath
  }

  /// `target` relative to the folder `from` (both absolute), e.g. `../models/a.safetensors`.
  static func relative(_ target: String, from folder: String) -> String {
    let t = (target as NSString).standardizingPath.split(separator: "/").map(String.init)
    let f = (folder as NSString).standardizingPath.split(separator: "/").map(String.init)
    var common = 0
    while common < t.count, common < f.count, t[common] == f[common] { common += 1 }
    let ups = Array(repeating: "..", count: f.count - common)
    let rest = Array(t[common...])
    let parts = ups + rest
    return parts.isEmpty ? "." : parts.joined(separator: "/")
  }

  static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }
}

/// What an importer reads from an input's headers: its float dtype and layer count.
struct InputFacts {
  var dtype: DType?
  var layers: Int?

  /// Opens `path` (a file or a Hugging Face folder) and reads its headers only.
  static func read(_ path: String, file: String, line: Int?, what: String) throws -> InputFacts {
    let ckpt: Checkpoint
    do {
      ckpt = try Checkpoint(path: path)
    } catch {
      throw ImportError(file: file, line: line, message: "\(what) at \(path) cannot be read: \(error.localizedDescription)")
    }
    var counts: [DType: Int] = [:]
    var maxLayer = -1
    for e in ckpt.entries {
      if e.info.dtype.isFloat { counts[e.info.dtype, default: 0] += 1 }
      if let r = e.info.name.range(of: "layers.") {
        let digits = e.info.name[r.upperBound...].prefix { $0.isNumber }
        if let n = Int(digits) { maxLayer = max(maxLayer, n) }
      }
    }
    let dtype = counts.max { a, b in a.value != b.value ? a.value < b.value : a.key.rawValue > b.key.rawValue }?.key
    return InputFacts(dtype: dtype, layers: maxLayer >= 0 ? maxLayer + 1 : nil)
  }
}

extension DType {
  /// The recipe spelling of a float dtype the output can have (`f16`, `bf16`, `f32`, `f64`).
  var recipeSpelling: String? {
    switch self {
    case .f16: return "f16"
    case .bf16: return "bf16"
    case .f32: return "f32"
    case .f64: return "f64"
    default: return nil
    }
  }
}
