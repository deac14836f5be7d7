import Foundation
import MergeEngine

/// sd-mecha `.mecha` recipe → mixlab recipe.
///
/// Two formats exist. The versioned one (first line `version 0.1.0`, sd-mecha 1.x) has the
/// commands `model`, `literal`, `dict` and `merge`; the older unversioned one has `model`,
/// `parameter`, `dict` and `call`. Parameters changed meaning between them, so the format
/// decides: in the unversioned format `vote_sgn > 0` elects signs by count ("TIES-SOUP") and
/// `apply_stock > 0` applies model stock; in 0.1.0 (sd-mecha's code since then)
/// `vote_sgn=true` elects by the sum of deltas, `vote_sgn=false` by count, and
/// `apply_stock=false` is the one that applies model stock.
enum MechaImport {
  /// A value of the recipe's instruction list.
  indirect enum Value {
    case model(ref: String, line: Int)
    case parameter(name: String, line: Int)
    case merge(method: String, args: [Value], kwargs: [String: Value], line: Int, index: Int)
    case dict([String: Value], line: Int)
    case number(Double)
    case string(String)
    case bool(Bool)
    case null

    var line: Int {
      switch self {
      case .model(_, let l), .parameter(_, let l), .merge(_, _, _, let l, _), .dict(_, let l): return l
      default: return 0
      }
    }
  }

  enum Format {
    case unversioned
    case v010
    var label: String { self == .v010 ? "sd-mecha format 0.1.0" : "sd-mecha unversioned format" }
  }

  static func convert(file: String, options: ImportOptions) throws -> ImportResult {
    let text: String
    do {
      text = try String(contentsOfFile: file, encoding: .utf8)
    } catch {
      throw ImportError(file: file, message: "cannot read the recipe: \(error.localizedDescription)")
    }
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
      String($0.hasSuffix("\r") ? $0.dropLast() : $0)
    }
    var format = Format.unversioned
    var firstLine = 1
    if let first = lines.first, first.hasPrefix("version") {
      let v = first.dropFirst("version".count).trimmingCharacters(in: .whitespaces)
      guard v == "0.1.0" else {
        throw ImportError(
          file: file, line: 1,
          message: "sd-mecha recipe format version \(v) is not supported (mixlab reads 0.1.0 and the unversioned format)")
      }
      format = .v010
      lines.removeFirst()
      firstLine = 2
    }
    var results: [Value] = []
    for (offset, raw) in lines.enumerated() {
      let lineNo = offset + firstLine
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.isEmpty || line.hasPrefix("#") { continue }
      let tokens = try tokenize(line, file: file, line: lineNo)
      guard let command = tokens.first else { continue }
      var positional: [Value] = []
      var named: [String: Value] = [:]
      for t in tokens.dropFirst() {
        if !t.hasPrefix("\""), let eq = t.firstIndex(of: "=") {
          named[String(t[..<eq])] = try value(String(t[t.index(after: eq)...]), results: results, file: file, line: lineNo)
        } else {
          positional.append(try value(t, results: results, file: file, line: lineNo))
        }
      }
      func text(_ v: Value?) -> String? { if case .string(let s)? = v { return s } else { return nil } }
      switch command {
      case "model":
        guard let ref = text(positional.first) else {
          throw ImportError(file: file, line: lineNo, message: "`model` needs a quoted path")
        }
        if let space = text(named["merge_space"]), space != "weight" {
          throw ImportError(
            file: file, line: lineNo,
            message: "model \"\(ref)\" is in merge space `\(space)`; only full models (merge_space weight) can be imported")
        }
        for extra in positional.dropFirst() {
          if let s = text(extra), s.lowercased().contains("lora") {
            throw ImportError(file: file, line: lineNo, message: "model \"\(ref)\" is a LoRA (`\(s)`), which is not supported")
          }
        }
        results.append(.model(ref: ref, line: lineNo))
      case "parameter":
        guard format == .unversioned, let name = text(positional.first) else {
          throw ImportError(file: file, line: lineNo, message: "`parameter` needs a quoted name")
        }
        results.append(.parameter(name: name, line: lineNo))
      case "dict":
        results.append(.dict(named, line: lineNo))
      case "literal":
        guard let v = positional.first else { throw ImportError(file: file, line: lineNo, message: "`literal` needs a value") }
        results.append(v)
      case "merge", "call":
        guard (command == "merge") == (format == .v010) else {
          throw ImportError(
            file: file, line: lineNo,
            message: "`\(command)` does not belong to the \(format.label) (0.1.0 uses `merge`, the unversioned format `call`)")
        }
        guard let m = text(positional.first) else {
          throw ImportError(file: file, line: lineNo, message: "`\(command)` needs a quoted method name")
        }
        results.append(
          .merge(method: m, args: Array(positional.dropFirst()), kwargs: named, line: lineNo, index: results.count))
      default:
        throw ImportError(file: file, line: lineNo, message: "unknown sd-mecha command `\(command)`")
      }
    }
    guard let root = results.last else { throw ImportError(file: file, message: "the recipe has no instructions") }
    var lowering = Lowering(file: file, format: format, options: options)
    let from = try lowering.lower(root)
    guard !lowering.isDelta(root) else {
      throw ImportError(
        file: file, line: root.line, message: "the recipe's result is a difference (merge space delta), not a model")
    }
    var draft = lowering.draft
    draft.from = from
    if lowering.usedBlocks { draft.timeEmbed = "in00" }
    draft.dtype = lowering.outputDType
    let notes =
      ["source format: \(format.label)"] + lowering.notes
      + (lowering.usedBlocks ? ["block hypers: sd-mecha's block configs count time_embed in IN00 → output.time_embed: in00"] : [])
    draft.header =
      ["Imported by `mixlab import` from the sd-mecha recipe \((file as NSString).lastPathComponent).", "Semantics chosen:"]
      + notes.map { "  - " + $0 }
    return ImportResult(format: format == .v010 ? "sd-mecha 0.1.0" : "sd-mecha (unversioned)", yaml: draft.yaml(), notes: notes)
  }

  /// Splits an instruction into tokens as sd-mecha does: spaces separate, double quotes group
  /// (kept in the token), a backslash escapes the next character.
  static func tokenize(_ line: String, file: String, line lineNo: Int) throws -> [String] {
    var tokens: [String] = []
    var current = ""
    var quotePrefix = ""
    var inQuotes = false
    var escape = false
    for ch in line {
      if escape {
        escape = false
        current.append(ch)
        continue
      }
      if ch == "\\" {
        escape = true
        continue
      }
      if ch == "\"" {
        inQuotes.toggle()
        if inQuotes {
          quotePrefix = current
          current = ""
        } else {
          tokens.append(quotePrefix + "\"" + current + "\"")
          current = ""
          quotePrefix = ""
        }
        continue
      }
      if ch == " " && !inQuotes {
        if !current.isEmpty {
          tokens.append(current)
          current = ""
        }
        continue
      }
      current.append(ch)
    }
    if inQuotes { throw ImportError(file: file, line: lineNo, message: "unmatched quote") }
    if !current.isEmpty { tokens.append(current) }
    return tokens
  }

  static func value(_ token: String, results: [Value], file: String, line: Int) throws -> Value {
    switch token {
    case "null": return .null
    case "true": return .bool(true)
    case "false": return .bool(false)
    default: break
    }
    if token.hasPrefix("&") {
      guard let i = Int(token.dropFirst()), i >= 0, i < results.count else {
        throw ImportError(file: file, line: line, message: "reference \(token) does not name an earlier line's result")
      }
      return results[i]
    }
    if token.hasPrefix("\"") && token.hasSuffix("\"") && token.count >= 2 {
      return .string(String(token.dropFirst().dropLast()))
    }
    guard let d = Double(token), d.isFinite else {
      throw ImportError(file: file, line: line, message: "`\(token)` is not a number, a quoted text or a reference")
    }
    return .number(d)
  }

  /// Turns the instruction graph into recipe inputs and steps.
  struct Lowering {
    let file: String
    let format: Format
    let options: ImportOptions
    var draft = RecipeDraft()
    var notes: [String] = []
    var taken = Set<String>()
    var inputByRef: [String: String] = [:]
    var stepByIndex: [Int: String] = [:]
    var usedBlocks = false
    var outputDType: String?

    init(file: String, format: Format, options: ImportOptions) {
      self.file = file
      self.format = format
      self.options = options
    }

    func fail(_ v: Value?, _ message: String) -> ImportError {
      ImportError(file: file, line: v.map(\.line).flatMap { $0 > 0 ? $0 : nil }, message: message)
    }

    static func method(_ raw: String) -> String {
      var m = raw.lowercased()
      if let dot = m.lastIndex(of: ".") { m = String(m[m.index(after: dot)...]) }
      return m
    }

    /// Methods whose result is a difference (sd-mecha's merge space `delta`).
    static let deltaMethods: Set<String> = [
      "subtract", "ties_sum", "ties_sum_extended", "ties_sum_with_dropout", "model_stock", "model_stock_for_tensor",
    ]

    func isDelta(_ v: Value) -> Bool {
      guard case .merge(let m, let args, _, _, _) = v else { return false }
      let name = Lowering.method(m)
      if Lowering.deltaMethods.contains(name) { return true }
      if name == "geometric_median" || name == "n_average" { return args.first.map(isDelta) ?? false }
      return false
    }

    mutating func input(_ v: Value) throws -> String {
      switch v {
      case .model(let ref, let line):
        if let n = inputByRef[ref] { return n }
        let path = try resolve(ref, line: line)
        let name = ImportNames.unique(ImportNames.stem(ref), taken: &taken)
        inputByRef[ref] = name
        if outputDType == nil {
          outputDType = try InputFacts.read(path, file: file, line: line, what: "model \"\(ref)\"").dtype?.recipeSpelling
        }
        draft.inputs.append(RecipeDraft.Input(name: name, path: ImportPaths.relative(path, from: options.recipeFolder)))
        return name
      case .parameter(let pname, let line):
        let key = "parameter:" + pname
        if let n = inputByRef[key] { return n }
        guard let p = options.modelPaths[pname] else {
          throw ImportError(
            file: file, line: line,
            message: "recipe parameter \"\(pname)\" is a model left open by the recipe; pass --model \(pname)=PATH")
        }
        let path = ImportPaths.absolute(p, base: options.workingDirectory)
        guard ImportPaths.exists(path) else {
          throw ImportError(file: file, line: line, message: "--model \(pname)=\(p): no such file or folder")
        }
        let name = ImportNames.unique(pname, taken: &taken)
        inputByRef[key] = name
        if outputDType == nil {
          outputDType = try InputFacts.read(path, file: file, line: line, what: "model \"\(pname)\"").dtype?.recipeSpelling
        }
        draft.inputs.append(RecipeDraft.Input(name: name, path: ImportPaths.relative(path, from: options.recipeFolder)))
        return name
      default:
        return try lower(v)
      }
    }

    /// sd-mecha resolves model paths against its models folder, adding `.safetensors`.
    func resolve(_ ref: String, line: Int) throws -> String {
      if let p = options.modelPaths[ref] {
        let abs = ImportPaths.absolute(p, base: options.workingDirectory)
        guard ImportPaths.exists(abs) else {
          throw ImportError(file: file, line: line, message: "--model \(ref)=\(p): no such file or folder")
        }
        return abs
      }
      let dir = options.modelsFolder ?? (file as NSString).deletingLastPathComponent
      for candidate in [ref, ref + ".safetensors"] {
        let abs = ImportPaths.absolute(candidate, base: dir)
        if ImportPaths.exists(abs) { return abs }
      }
      throw ImportError(
        file: file, line: line,
        message:
          "model \"\(ref)\" was not found in \(dir) (sd-mecha's models folder); pass --models-dir DIR or --model \"\(ref)\"=PATH"
      )
    }

    mutating func step(_ index: Int, _ build: (inout RecipeDraft.Step) -> Void, name: String, method: MethodName) -> String {
      let stepName = ImportNames.unique(name, taken: &taken)
      var s = RecipeDraft.Step(name: stepName, method: method, models: [], base: nil)
      build(&s)
      draft.steps.append(s)
      stepByIndex[index] = stepName
      return stepName
    }

    /// A hyperparameter: a number, or a block dict (`<config>_<component>_block_<id>`,
    /// `<config>_<component>_default`).
    mutating func hyper(_ v: Value?, _ name: String, default def: Double, at site: Value) throws -> RecipeParam {
      guard let v else { return .constant(def) }
      switch v {
      case .number(let d): return .constant(d)
      case .bool(let b): return .constant(b ? 1 : 0)
      case .dict(let entries, _):
        var blocks: [String: Double] = [:]
        var unetDefault: Double?
        var textDefaults: [Double] = []
        for (key, val) in entries {
          guard case .number(let d) = val else { throw fail(v, "block value `\(key)` must be a number") }
          guard let m = key.firstMatch(of: /^(.*)_(unet|txt|txt2|vae)_(default|block_(.+))$/) else {
            throw fail(
              v,
              "hyper `\(key)` of `\(name)` is not a block (`<config>_unet_block_in0`, …) or component default; this kind of key is not supported"
            )
          }
          let component = String(m.2)
          if m.3 == "default" {
            switch component {
            case "unet": unetDefault = d
            case "vae": blocks["VAE"] = d
            default: textDefaults.append(d)
            }
            continue
          }
          let id = String(m.4 ?? "")
          guard component == "unet" else {
            throw fail(v, "hyper `\(key)`: per-layer text encoder or VAE blocks are not supported (mixlab puts them in BASE)")
          }
          if let n = id.firstMatch(of: /^in(\d+)$/), let i = Int(n.1) {
            blocks[String(format: "IN%02d", i)] = d
          } else if id.firstMatch(of: /^mid\d*$/) != nil || id == "middle" {
            blocks["M00"] = d
          } else if let n = id.firstMatch(of: /^out(\d+)$/), let i = Int(n.1) {
            blocks[String(format: "OUT%02d", i)] = d
          } else {
            throw fail(v, "hyper `\(key)`: unknown UNet block `\(id)`")
          }
        }
        guard Set(textDefaults).count <= 1 else {
          throw fail(v, "`\(name)`: different values for the text encoders cannot be written (mixlab puts them all in BASE)")
        }
        // Keys of no given block or component take the method's default, as in sd-mecha.
        blocks["BASE"] = textDefaults.first ?? def
        usedBlocks = true
        return .blocks(blocks, fallback: unetDefault ?? def)
      default:
        throw fail(site, "`\(name)` must be a number or a block dict")
      }
    }

    func flag(_ v: Value?, _ name: String, at site: Value) throws -> Bool? {
      guard let v else { return nil }
      switch v {
      case .bool(let b): return b
      case .number(let d):
        // The unversioned format's switches are numbers: on when > 0.
        return format == .unversioned ? d > 0 : d != 0
      case .null: return nil
      default: throw fail(site, "`\(name)` must be true/false or a number")
      }
    }

    func number(_ v: Value?, _ name: String, at site: Value) throws -> Double? {
      guard let v else { return nil }
      switch v {
      case .number(let d): return d
      case .null: return nil
      default: throw fail(site, "`\(name)` must be a single number here (block dicts are not supported for it)")
      }
    }

    func checkKwargs(_ kwargs: [String: Value], allowed: [String], method: String, at site: Value) throws {
      for k in kwargs.keys.sorted() where !allowed.contains(k) && k != "device" {
        throw fail(
          site, "argument `\(k)` of sd-mecha's \(method) is not supported (mixlab maps: \(allowed.joined(separator: ", ")))")
      }
    }

    mutating func lower(_ v: Value) throws -> String {
      guard case .merge(let raw, let args, let kwargs, _, let index) = v else {
        if case .model = v { return try input(v) }
        if case .parameter = v { return try input(v) }
        throw fail(v, "expected a model or a merge")
      }
      if let done = stepByIndex[index] { return done }
      let m = Lowering.method(raw)
      if kwargs["dtype"] != nil {
        if case .null? = kwargs["dtype"] {
        } else {
          throw fail(v, "a per-step `dtype` cast is not supported (mixlab computes a whole recipe in one precision)")
        }
      }
      switch m {
      case "weighted_sum", "slerp":
        // Two models interpolated by `alpha` (sd-mecha's default 0.5).
        try checkKwargs(kwargs, allowed: ["alpha", "dtype"], method: m, at: v)
        guard args.count == 2 else { throw fail(v, "\(m) takes 2 models, got \(args.count)") }
        let models = [try input(args[0]), try input(args[1])]
        let alpha = try hyper(kwargs["alpha"], "alpha", default: 0.5, at: v)
        if m == "weighted_sum" {
          notes.append("weighted_sum → weighted_sum: (1 − α)·A + α·B")
          return step(
            index,
            {
              $0.models = models; $0.params = [("alpha", alpha)]
            }, name: m, method: .weightedSum)
        }
        notes.append("slerp → slerp with norms: interpolate (sd-mecha interpolates the norms linearly)")
        return step(
          index,
          {
            $0.models = models; $0.params = [("t", alpha)]; $0.options = [("norms", "interpolate")]
          }, name: m,
          method: .slerp)
      case "n_average":
        try checkKwargs(kwargs, allowed: ["dtype"], method: m, at: v)
        guard !args.contains(where: isDelta) else { throw fail(v, "n_average of differences is not supported") }
        let names = try args.map { try input($0) }
        notes.append("n_average → average (uniform)")
        return step(index, { $0.models = names }, name: "average", method: .average)
      case "geometric_median":
        try checkKwargs(kwargs, allowed: ["eps", "maxiter", "ftol", "dtype"], method: m, at: v)
        guard !args.contains(where: isDelta) else {
          throw fail(v, "geometric_median of differences must be added to a base with add_difference(base, …, alpha=1)")
        }
        let names = try args.map { try input($0) }
        let params = try medianParams(kwargs, at: v)
        notes.append("geometric_median → geometric_median (Weiszfeld, unit weights)")
        return step(
          index,
          {
            $0.models = names; $0.params = params
          }, name: "geometric_median", method: .geometricMedian)
      case "add_difference":
        return try addDifference(v, args: args, kwargs: kwargs, index: index)
      case "subtract":
        throw fail(
          v,
          "subtract (a difference) can only be imported inside add_difference(a, subtract(b, c)) or a TIES/median/stock merge added to its base"
        )
      default:
        throw fail(
          v,
          "sd-mecha method `\(raw)` is not supported (mixlab imports weighted_sum, add_difference, n_average, slerp, geometric_median, ties_sum, ties_sum_extended, ties_sum_with_dropout, model_stock)"
        )
      }
    }

    func medianParams(_ kwargs: [String: Value], at v: Value) throws -> [(String, RecipeParam)] {
      var params: [(String, RecipeParam)] = []
      if let e = try number(kwargs["eps"], "eps", at: v) { params.append(("eps", .constant(e))) }
      if let i = try number(kwargs["maxiter"], "maxiter", at: v) { params.append(("max_iter", .constant(i))) }
      if let f = try number(kwargs["ftol"], "ftol", at: v) { params.append(("ftol", .constant(f))) }
      return params
    }

    /// `subtract(m, base)` → (m, base).
    func difference(_ v: Value) -> (Value, Value)? {
      guard case .merge(let raw, let args, _, _, _) = v, Lowering.method(raw) == "subtract", args.count == 2 else { return nil }
      return (args[0], args[1])
    }

    static func same(_ a: Value, _ b: Value) -> Bool {
      switch (a, b) {
      case (.model(let x, _), .model(let y, _)): return x == y
      case (.parameter(let x, _), .parameter(let y, _)): return x == y
      case (.merge(_, _, _, _, let i), .merge(_, _, _, _, let j)): return i == j
      default: return false
      }
    }

    mutating func addDifference(_ v: Value, args: [Value], kwargs: [String: Value], index: Int) throws -> String {
      try checkKwargs(kwargs, allowed: ["alpha", "dtype"], method: "add_difference", at: v)
      if args.count == 3 {
        let names = try args.map { try input($0) }
        let alpha = try hyper(kwargs["alpha"], "alpha", default: 1, at: v)
        notes.append("add_difference(a, b, c) → add_difference: A + α·(B − C)")
        return step(
          index,
          {
            $0.models = names; $0.params = [("alpha", alpha)]
          }, name: "add_difference", method: .addDifference)
      }
      guard args.count == 2 else { throw fail(v, "add_difference takes a model and a difference, got \(args.count) arguments") }
      let baseValue = args[0]
      if let (b, c) = difference(args[1]) {
        let a = try input(baseValue)
        let bn = try input(b)
        let cn = try input(c)
        let alpha = try hyper(kwargs["alpha"], "alpha", default: 1, at: v)
        notes.append("add_difference(a, subtract(b, c)) → add_difference: A + α·(B − C)")
        return step(
          index,
          {
            $0.models = [a, bn, cn]; $0.params = [("alpha", alpha)]
          }, name: "add_difference", method: .addDifference)
      }
      guard case .merge(let raw, let dargs, let dkw, _, _) = args[1] else {
        throw fail(v, "the second argument of add_difference must be a difference (subtract, ties_sum, …)")
      }
      let inner = Lowering.method(raw)
      // Every operand must be subtract(model, base) with the base add_difference adds back.
      var models: [Value] = []
      for d in dargs {
        guard let (x, base) = difference(d), Lowering.same(base, baseValue) else {
          throw fail(
            args[1], "\(inner)'s operands must all be subtract(model, base) with the same base that add_difference adds back")
        }
        models.append(x)
      }
      guard !models.isEmpty else { throw fail(args[1], "\(inner) has no operands") }
      let base = try input(baseValue)
      let names = try models.map { try input($0) }
      let alpha = try hyper(kwargs["alpha"], "alpha", default: 1, at: v)
      let site = args[1]
      func requireUnitAlpha(_ what: String) throws {
        guard case .constant(let a) = alpha, a == 1 else {
          throw fail(
            v, "add_difference(base, \(what), alpha ≠ 1) is not supported: mixlab's \(what) adds the result with weight 1")
        }
      }
      switch inner {
      case "ties_sum", "ties_sum_extended":
        let extended = inner == "ties_sum_extended"
        try checkKwargs(
          dkw,
          allowed: extended
            ? ["k", "vote_sgn", "apply_stock", "apply_median", "cos_eps", "eps", "maxiter", "ftol", "dtype"]
            : ["k", "vote_sgn", "dtype"],
          method: inner, at: site)
        let kDefault = extended || format == .unversioned ? 0.2 : 1.0
        let k = try number(dkw["k"], "k", at: site) ?? kDefault
        let sign = try signOption(dkw["vote_sgn"], at: site)
        var median = false
        if extended {
          median = try flag(dkw["apply_median"], "apply_median", at: site) ?? false
          let stockOn: Bool
          if let s = try flag(dkw["apply_stock"], "apply_stock", at: site) {
            stockOn = format == .v010 ? !s : s
          } else {
            stockOn = format == .v010
          }
          if stockOn && !median {
            throw fail(
              site,
              "\(inner) with model stock (\(format == .v010 ? "apply_stock=false, sd-mecha 0.1.0's default" : "apply_stock > 0")) — TIES-STOCK — has no mixlab method; set \(format == .v010 ? "apply_stock=true" : "apply_stock=0") or use apply_median"
            )
          }
          notes.append(
            "apply_stock=\(describe(dkw["apply_stock"])) → \(stockOn ? "model stock (ignored: the median replaces the mean)" : "no model stock") (\(format.label))"
          )
        }
        if median {
          let params = try medianParams(dkw, at: site)
          notes.append("apply_median → tgmd with drop 0: TIES trim and sign filter, then the geometric median of the deltas")
          return step(
            index,
            {
              $0.base = base; $0.models = names
              $0.params = [("drop", .constant(0)), ("density", .constant(k)), ("lambda", alpha)] + params
              $0.options = [("sign", sign)]
            }, name: "tgmd", method: .tgmd)
        }
        notes.append(
          "\(inner)(k=\(YAMLText.number(k))) + add_difference(alpha) → ties with topk: inclusive (sd-mecha's filter_top_k), average: count, sign_tie: none (torch.sign(0) = 0), density = k, lambda = alpha"
        )
        return step(
          index,
          {
            $0.base = base; $0.models = names
            $0.params = [("density", .constant(k)), ("lambda", alpha)]
            $0.options = [
              ("sign", sign), ("normalize", "true"), ("average", "count"), ("topk", "inclusive"), ("sign_tie", "none"),
            ]
          }, name: "ties", method: .ties)
      case "ties_sum_with_dropout":
        let rescaleKey = format == .v010 ? "rescale" : "no_rescale"
        try checkKwargs(
          dkw,
          allowed: [
            "probability", "della_eps", rescaleKey, "k", "vote_sgn", "apply_stock", "apply_median", "cos_eps", "eps", "maxiter",
            "ftol", "seed", "dtype",
          ], method: inner, at: site)
        let p = try number(dkw["probability"], "probability", at: site) ?? 0.9
        if let e = try number(dkw["della_eps"], "della_eps", at: site), e != 0 {
          throw fail(site, "della_eps ≠ 0 (sd-mecha's rank-based dropout) is not supported; mixlab's DELLA ranks differently")
        }
        let k = try number(dkw["k"], "k", at: site) ?? 0.2
        let sign = try signOption(dkw["vote_sgn"], at: site)
        let median = try flag(dkw["apply_median"], "apply_median", at: site) ?? false
        let stockOn: Bool
        if let s = try flag(dkw["apply_stock"], "apply_stock", at: site) {
          stockOn = format == .v010 ? !s : s
        } else {
          stockOn = format == .v010
        }
        if stockOn && !median {
          throw fail(
            site, "ties_sum_with_dropout with model stock (TIES-STOCK) has no mixlab method; use apply_median or turn stock off")
        }
        // 0.1.0: rescale=true divides by 1 − p. Unversioned: no_rescale > 0 divides (sic).
        let divide: Bool
        if format == .v010 {
          divide = try flag(dkw["rescale"], "rescale", at: site) ?? true
        } else {
          divide = try flag(dkw["no_rescale"], "no_rescale", at: site) ?? false
        }
        notes.append(
          "ties_sum_with_dropout: probability \(YAMLText.number(p)) → drop; \(format == .v010 ? "rescale" : "no_rescale")=\(describe(dkw[rescaleKey])) → \(divide ? "divide by 1 − p" : "no 1/(1 − p): lambda × (1 − p)") (\(format.label))"
        )
        let lambda = divide ? alpha : alpha.mapNumbers { $0 * (1 - p) }
        var seed: UInt64 = 0
        if let s = try number(dkw["seed"], "seed", at: site), s >= 0 { seed = UInt64(s) }
        notes.append("dropout masks come from mixlab's seeded generator (seed \(seed)); sd-mecha's torch masks differ")
        if median {
          let params = try medianParams(dkw, at: site)
          return step(
            index,
            {
              $0.base = base; $0.models = names
              $0.params = [("drop", .constant(p)), ("density", .constant(k)), ("lambda", lambda)] + params
              $0.options = [("sign", sign)]; $0.seed = seed
            }, name: "tgmd", method: .tgmd)
        }
        guard sign == "sign_count" else {
          throw fail(site, "ties_sum_with_dropout electing signs by the sum of deltas has no mixlab preset (tsd elects by count)")
        }
        return step(
          index,
          {
            $0.base = base; $0.models = names
            $0.params = [("drop", .constant(p)), ("density", .constant(k)), ("lambda", lambda)]; $0.seed = seed
          }, name: "tsd", method: .tsd)
      case "geometric_median":
        try checkKwargs(dkw, allowed: ["eps", "maxiter", "ftol", "dtype"], method: inner, at: site)
        try requireUnitAlpha("geometric_median")
        let params = try medianParams(dkw, at: site)
        notes.append("add_difference(base, geometric_median(deltas)) → geometric_median with base")
        return step(
          index,
          {
            $0.base = base; $0.models = names; $0.params = params
          }, name: "geometric_median", method: .geometricMedian)
      case "model_stock", "model_stock_for_tensor":
        try checkKwargs(dkw, allowed: ["cos_eps", "dtype"], method: inner, at: site)
        try requireUnitAlpha("model_stock")
        guard names.count >= 2 else { throw fail(site, "model_stock needs at least two models") }
        var params: [(String, RecipeParam)] = []
        if let e = try number(dkw["cos_eps"], "cos_eps", at: site) { params.append(("eps", .constant(e))) }
        notes.append(
          "model_stock → model_stock with pairs: consecutive and scope: row (sd-mecha's cosine along the last dimension; for tensors of more than 2 dimensions mixlab's rows differ)"
        )
        return step(
          index,
          {
            $0.base = base; $0.models = names; $0.params = params
            $0.options = [("pairs", "consecutive"), ("scope", "row")]
          }, name: "model_stock", method: .modelStock)
      default:
        throw fail(site, "sd-mecha method `\(raw)` as a difference is not supported")
      }
    }

    func describe(_ v: Value?) -> String {
      switch v {
      case .bool(let b)?: return b ? "true" : "false"
      case .number(let d)?: return YAMLText.number(d)
      default: return "unset"
      }
    }

    /// `vote_sgn` by format: unversioned `> 0` → count; 0.1.0 `true` → sum of deltas.
    mutating func signOption(_ v: Value?, at site: Value) throws -> String {
      let on = try flag(v, "vote_sgn", at: site) ?? false
      let sign: String
      switch format {
      case .unversioned: sign = on ? "sign_count" : "magnitude_sum"
      case .v010: sign = on ? "magnitude_sum" : "sign_count"
      }
      notes.append("vote_sgn=\(describe(v)) → sign: \(sign) (\(format.label))")
      return sign
    }
  }
}
