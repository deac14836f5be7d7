import Foundation
import MergeEngine
import SafeTensors
import Yams

/// mergekit YAML config → mixlab recipe, with mergekit's semantics written out explicitly.
///
/// Reads `models` or a single `slices` entry, `base_model`, `merge_method`, `parameters`
/// (scalars, gradients, filters; per model, per slice and global, in mergekit's order of
/// precedence), `dtype` and `out_dtype`. Model references are local folders or files, or
/// Hugging Face ids mapped to local paths with `--model ID=PATH`.
enum MergekitImport {
  static let topKeys = [
    "models", "slices", "merge_method", "base_model", "parameters", "dtype", "out_dtype", "tokenizer_source", "tokenizer",
    "chat_template", "modules",
  ]

  /// What a mergekit method reads: per-model ("tensor") and global parameters.
  struct MethodSpec {
    var mixlab: MethodName
    var tensorParams: [String]
    var globalParams: [String]
    /// mergekit's default for `normalize` (nil: the method has none).
    var normalize: Bool?
    /// mergekit's default for `rescale` (nil: the method has none).
    var rescale: Bool?
    var sign: String?
    var usesBase: Bool
  }

  static let gta = ["normalize", "lambda", "int8_mask", "rescale"]
  static let methods: [String: MethodSpec] = [
    "linear": MethodSpec(
      mixlab: .average, tensorParams: ["weight"], globalParams: ["normalize"], normalize: true, rescale: nil, sign: nil,
      usesBase: false),
    "slerp": MethodSpec(
      mixlab: .slerp, tensorParams: [], globalParams: ["t"], normalize: nil, rescale: nil, sign: nil, usesBase: true),
    "task_arithmetic": MethodSpec(
      mixlab: .taskArithmetic, tensorParams: ["weight"], globalParams: gta, normalize: false, rescale: false, sign: nil,
      usesBase: true),
    "ties": MethodSpec(
      mixlab: .ties, tensorParams: ["weight", "density"], globalParams: gta, normalize: true, rescale: false,
      sign: "magnitude_sum", usesBase: true),
    "dare_ties": MethodSpec(
      mixlab: .dare, tensorParams: ["weight", "density"], globalParams: gta, normalize: false, rescale: true,
      sign: "magnitude_sum", usesBase: true),
    "dare_linear": MethodSpec(
      mixlab: .dare, tensorParams: ["weight", "density"], globalParams: gta, normalize: false, rescale: true, sign: "none",
      usesBase: true),
    "breadcrumbs": MethodSpec(
      mixlab: .breadcrumbs, tensorParams: ["weight", "density", "gamma"], globalParams: gta, normalize: false, rescale: false,
      sign: "none", usesBase: true),
    "breadcrumbs_ties": MethodSpec(
      mixlab: .breadcrumbs, tensorParams: ["weight", "density", "gamma"], globalParams: gta, normalize: false,
      rescale: false, sign: "magnitude_sum", usesBase: true),
    "della": MethodSpec(
      mixlab: .della, tensorParams: ["weight", "density", "epsilon", "lambda"], globalParams: gta, normalize: true,
      rescale: true, sign: "magnitude_sum", usesBase: true),
    "della_linear": MethodSpec(
      mixlab: .della, tensorParams: ["weight", "density", "epsilon", "lambda"], globalParams: gta, normalize: false,
      rescale: true, sign: "none", usesBase: true),
    "model_stock": MethodSpec(
      mixlab: .modelStock, tensorParams: [], globalParams: ["filter_wise"], normalize: nil, rescale: nil, sign: nil,
      usesBase: true),
    "karcher": MethodSpec(
      mixlab: .karcher, tensorParams: [], globalParams: ["max_iter", "tol"], normalize: nil, rescale: nil, sign: nil,
      usesBase: false),
    "multislerp": MethodSpec(
      mixlab: .multislerp, tensorParams: ["weight"], globalParams: ["normalize_weights", "eps"], normalize: nil, rescale: nil,
      sign: nil, usesBase: false),
  ]

  /// mergekit methods mixlab does not implement, with what to do instead.
  static let unsupported: [String: String] = [
    "passthrough":
      "passthrough stacks or copies layers (frankenmerges); mixlab merges whole models of one layout. A passthrough of one model with no slices is accepted as a copy",
    "nuslerp": "nuslerp is not implemented in mixlab; `slerp` (mergekit's slerp) and `multislerp` are",
    "sce": "sce is not implemented in mixlab",
    "nearswap": "nearswap is not implemented in mixlab",
    "arcee_fusion": "arcee_fusion is not implemented in mixlab",
    "model_breadcrumbs": "model_breadcrumbs is not a mergekit method name; use breadcrumbs or breadcrumbs_ties",
  ]

  /// A parameter value as mergekit reads it.
  enum Setting {
    case flag(Bool)
    case value(RecipeParam)
    case text(String)
  }

  struct Source {
    var ref: String
    var line: Int
    var params: [String: (Node, Int)]
    var layerRange: [Int]?
  }

  static func convert(file: String, options: ImportOptions) throws -> ImportResult {
    let text: String
    do {
      text = try String(contentsOfFile: file, encoding: .utf8)
    } catch {
      throw ImportError(file: file, message: "cannot read the mergekit config: \(error.localizedDescription)")
    }
    let root: Node
    do {
      guard let r = try Yams.compose(yaml: text) else { throw ImportError(file: file, message: "the config is empty") }
      root = r
    } catch let e as ImportError {
      throw e
    } catch {
      throw ImportError(file: file, message: "not valid YAML: \(error)")
    }
    func line(_ n: Node?) -> Int? { n?.mark?.line }
    func fail(_ n: Node?, _ message: String) -> ImportError { ImportError(file: file, line: line(n), message: message) }
    func entries(_ node: Node, _ what: String) throws -> [(String, Node, Node)] {
      guard case .mapping(let m) = node else { throw fail(node, "\(what) must be a mapping") }
      return try m.map { k, v in
        guard case .scalar(let s) = k else { throw fail(k, "keys of \(what) must be names") }
        return (s.string, k, v)
      }
    }
    func scalar(_ n: Node, _ what: String) throws -> String {
      guard case .scalar(let s) = n else { throw fail(n, "\(what) must be a single value") }
      return s.string
    }

    var top: [String: (Node, Node)] = [:]
    for (k, key, v) in try entries(root, "the config") {
      guard topKeys.contains(k) else {
        throw fail(key, "unknown mergekit key `\(k)` (mixlab reads: \(topKeys.joined(separator: ", ")))")
      }
      top[k] = (key, v)
    }
    var notes: [String] = []
    if let (key, _) = top["modules"] {
      throw fail(key, "`modules` (per-module merges of multimodal models) is not supported; merge each module separately")
    }
    if let (key, _) = top["tokenizer"] {
      throw fail(
        key, "`tokenizer` (vocabulary surgery) is not supported: mixlab merges weights only and needs identical embedding shapes")
    }
    if let (key, _) = top["chat_template"] {
      throw fail(key, "`chat_template` is not supported: mixlab writes weights only; copy the tokenizer files yourself")
    }
    if let (key, v) = top["tokenizer_source"] {
      let s = try scalar(v, "tokenizer_source")
      guard s == "base" else {
        throw fail(
          key,
          "`tokenizer_source: \(s)` (vocabulary union or transplant) is not supported: mixlab merges weights only and needs identical embedding shapes"
        )
      }
      notes.append("tokenizer_source: base → nothing to do for the weights (copy the base's tokenizer files yourself)")
    }
    guard let (methodKey, methodNode) = top["merge_method"] else {
      throw fail(root, "missing `merge_method`")
    }
    let methodName = try scalar(methodNode, "merge_method").lowercased()
    if let why = unsupported[methodName], methodName != "passthrough" {
      throw fail(methodNode, "merge_method `\(methodName)`: \(why)")
    }
    let isPassthrough = methodName == "passthrough"
    guard isPassthrough || methods[methodName] != nil else {
      throw fail(
        methodKey,
        "unknown merge_method `\(methodName)` (mixlab imports: \(methods.keys.sorted().joined(separator: ", ")))")
    }

    // Sources: `models`, or one slice whose sources all cover the same whole layer range.
    var sources: [Source] = []
    var sliceParams: [String: (Node, Int)] = [:]
    var baseNode: Node? = top["base_model"]?.1
    func params(_ node: Node?) throws -> [String: (Node, Int)] {
      guard let node else { return [:] }
      var out: [String: (Node, Int)] = [:]
      for (k, key, v) in try entries(node, "parameters") { out[k] = (v, line(key) ?? 0) }
      return out
    }
    if let (mKey, modelsNode) = top["models"] {
      if top["slices"] != nil { throw fail(mKey, "give `models` or `slices`, not both (as mergekit requires)") }
      guard case .sequence(let list) = modelsNode else { throw fail(modelsNode, "`models` must be a list") }
      for item in list {
        var ref: String?
        var p: [String: (Node, Int)] = [:]
        if case .scalar(let s) = item {
          ref = s.string
        } else {
          for (k, key, v) in try entries(item, "a model entry") {
            switch k {
            case "model": ref = try modelRef(v, fail: fail)
            case "parameters": p = try params(v)
            default: throw fail(key, "unknown key `\(k)` in a model entry (mergekit reads model and parameters)")
            }
          }
        }
        guard let ref else { throw fail(item, "a model entry needs `model:`") }
        sources.append(Source(ref: ref, line: line(item) ?? 0, params: p, layerRange: nil))
      }
    } else if let (sKey, slicesNode) = top["slices"] {
      guard case .sequence(let slices) = slicesNode, !slices.isEmpty else { throw fail(slicesNode, "`slices` must be a list") }
      guard slices.count == 1 else {
        throw fail(
          sKey,
          "\(slices.count) slices: stacking layer ranges of several slices (a frankenmerge) is not supported; mixlab imports one slice whose sources all cover the models' whole layer range"
        )
      }
      for (k, key, v) in try entries(slices[0], "a slice") {
        switch k {
        case "sources":
          guard case .sequence(let list) = v else { throw fail(v, "`sources` must be a list") }
          for item in list {
            var ref: String?
            var range: [Int]?
            var p: [String: (Node, Int)] = [:]
            for (k2, key2, v2) in try entries(item, "a slice source") {
              switch k2 {
              case "model": ref = try modelRef(v2, fail: fail)
              case "layer_range":
                guard case .sequence(let r) = v2, r.count == 2 else { throw fail(v2, "layer_range must be [start, end]") }
                range = try r.map {
                  guard let i = Int(try scalar($0, "layer_range")) else { throw fail($0, "layer_range must hold whole numbers") }
                  return i
                }
              case "parameters": p = try params(v2)
              default:
                throw fail(key2, "unknown key `\(k2)` in a slice source (mergekit reads model, layer_range and parameters)")
              }
            }
            guard let ref else { throw fail(item, "a slice source needs `model:`") }
            sources.append(Source(ref: ref, line: line(item) ?? 0, params: p, layerRange: range))
          }
        case "base_model": baseNode = v
        case "parameters": sliceParams = try params(v)
        case "residual_weight": throw fail(key, "`residual_weight` of a slice is not supported")
        default: throw fail(key, "unknown key `\(k)` in a slice (mergekit reads sources, base_model and parameters)")
        }
      }
      let ranges = Set(sources.map { $0.layerRange ?? [] })
      guard ranges.count == 1, let r = ranges.first, r.count == 2 else {
        throw fail(
          slices[0],
          "the slice's sources cover different layer ranges (\(ranges.map { "\($0)" }.sorted().joined(separator: ", "))); only the same whole range for every model can be imported"
        )
      }
      notes.append("slices: one slice over layers [\(r[0]), \(r[1])) of every model → the whole models")
    } else {
      throw fail(root, "missing `models` (or `slices`): nothing to merge")
    }
    guard !sources.isEmpty else { throw fail(root, "no models to merge") }
    let baseRef = try baseNode.map { try modelRef($0, fail: fail) }
    let globalParams = try params(top["parameters"]?.1)

    // Resolve every model reference to a local path and read its headers.
    var taken = Set<String>()
    var inputs: [RecipeDraft.Input] = []
    var inputName: [String: String] = [:]
    var facts: [String: InputFacts] = [:]
    var hubIDs: [(String, String)] = []
    func add(_ ref: String, line: Int?) throws {
      if inputName[ref] != nil { return }
      let (path, hub) = try resolve(ref, line: line, file: file, options: options)
      let name = ImportNames.unique(ImportNames.stem(ref.split(separator: "@").first.map(String.init) ?? ref), taken: &taken)
      inputName[ref] = name
      facts[ref] = try InputFacts.read(path, file: file, line: line, what: "model `\(ref)`")
      let rel = ImportPaths.relative(path, from: options.recipeFolder)
      var comment: String? = nil
      if hub {
        hubIDs.append((name, ref))
        comment = "Hugging Face \(ref)"
      }
      inputs.append(RecipeDraft.Input(name: name, path: rel, sha256: nil, comment: comment))
    }
    if let baseRef { try add(baseRef, line: line(baseNode)) }
    for s in sources { try add(s.ref, line: s.line) }
    if let r = sources.first?.layerRange {
      for s in sources {
        if let n = facts[s.ref]?.layers, r != [0, n] {
          throw ImportError(
            file: file, line: s.line,
            message:
              "layer_range [\(r[0]), \(r[1])] of `\(s.ref)` is not its whole depth [0, \(n)]; taking part of the layers is not supported"
          )
        }
      }
    }

    var draft = RecipeDraft()
    draft.inputs = inputs
    let stepName = ImportNames.unique("merged", taken: &taken)

    if isPassthrough {
      guard sources.count == 1, top["slices"] == nil else {
        throw fail(methodNode, "merge_method `passthrough`: \(unsupported["passthrough"]!)")
      }
      try rejectParams(globalParams, allowed: [], method: "passthrough", file: file)
      try rejectParams(sources[0].params, allowed: [], method: "passthrough", file: file)
      draft.from = inputName[sources[0].ref]!
      notes.append("merge_method passthrough of one model → an assembly-only recipe copying `\(draft.from)`")
    } else {
      let spec = methods[methodName]!
      let allowed = spec.tensorParams + spec.globalParams
      try rejectParams(globalParams, allowed: allowed, method: methodName, file: file)
      try rejectParams(sliceParams, allowed: allowed, method: methodName, file: file)
      for s in sources { try rejectParams(s.params, allowed: spec.tensorParams, method: methodName, file: file) }

      // Operands: methods with a base merge the other models; the others merge every model,
      // the base too when it is not listed (mergekit adds it to the sources).
      var operands: [Source] = sources
      if spec.usesBase || (spec.mixlab == .multislerp && baseRef != nil) {
        guard let baseRef else { throw fail(methodKey, "merge_method `\(methodName)` needs `base_model`") }
        operands = sources.filter { $0.ref != baseRef }
      } else if let baseRef, !sources.contains(where: { $0.ref == baseRef }) {
        operands.append(Source(ref: baseRef, line: line(baseNode) ?? 0, params: [:], layerRange: nil))
        notes.append("base_model `\(baseRef)` is not in `models`: mergekit merges it as one more model, so does this recipe")
      }
      guard !operands.isEmpty else { throw fail(methodKey, "no models besides the base to merge") }

      func setting(_ node: Node, _ name: String) throws -> Setting {
        try readSetting(node, name: name, fail: fail)
      }
      /// A model's value of a per-tensor parameter: its own, else the slice's, else the global.
      func tensorParam(_ name: String, for s: Source) throws -> RecipeParam? {
        var chain: [RecipeParam] = []
        for level in [s.params[name], sliceParams[name], globalParams[name]] {
          guard let (node, _) = level else { continue }
          switch try setting(node, name) {
          case .value(let p): chain.append(p)
          case .flag, .text: throw fail(node, "`\(name)` must be a number, a list of numbers or a list of filters")
          }
        }
        guard var p = chain.first else { return nil }
        for next in chain.dropFirst() where !p.isTotal { p = p.fallingBack(to: next) }
        return p
      }
      func globalValue(_ name: String) throws -> RecipeParam? {
        for level in [sliceParams[name], globalParams[name]] {
          guard let (node, _) = level else { continue }
          switch try setting(node, name) {
          case .value(let p): return p
          case .flag, .text: throw fail(node, "`\(name)` must be a number")
          }
        }
        return nil
      }
      func globalFlag(_ name: String) throws -> Bool? {
        for level in [sliceParams[name], globalParams[name]] {
          guard let (node, _) = level else { continue }
          switch try setting(node, name) {
          case .flag(let b): return b
          case .value(.constant(let v)) where v == 0 || v == 1: return v == 1
          default: throw fail(node, "`\(name)` must be true or false (mixlab takes one value for the whole merge)")
          }
        }
        return nil
      }
      /// One value shared by every operand (mixlab takes one per step, mergekit one per model).
      func shared(_ name: String, default def: Double?) throws -> RecipeParam? {
        var values: [(Source, RecipeParam?)] = []
        for s in operands { values.append((s, try tensorParam(name, for: s))) }
        let distinct = values.map { $0.1.map(YAMLText.param) ?? "unset" }
        guard Set(distinct).count == 1 else {
          let list = zip(values, distinct).map { "\($0.0.ref): \($1)" }.joined(separator: "; ")
          throw ImportError(
            file: file, line: values.first?.0.line,
            message:
              "`\(name)` differs between models (\(list)); mergekit takes it per model, mixlab's \(spec.mixlab.rawValue) one per step. Give every model the same \(name)"
          )
        }
        guard var p = values[0].1 else { return def.map { .constant($0) } }
        if !p.isTotal, let def { p = p.fallingBack(to: .constant(def)) }
        return p
      }

      var step = RecipeDraft.Step(
        name: stepName, method: spec.mixlab, models: operands.map { inputName[$0.ref]! }, base: nil)
      if spec.usesBase && spec.mixlab != .slerp { step.base = inputName[baseRef!]! }
      notes.append("merge_method \(methodName) → method \(spec.mixlab.rawValue)")

      // Weights.
      if spec.tensorParams.contains("weight") {
        var ws: [RecipeParam] = []
        for s in operands {
          guard var w = try tensorParam("weight", for: s) else {
            throw ImportError(
              file: file, line: s.line,
              message: "model `\(s.ref)` has no `weight`, which mergekit's \(methodName) requires; give it one")
          }
          if !w.isTotal {
            throw ImportError(
              file: file, line: s.line,
              message:
                "the `weight` filters of `\(s.ref)` leave some tensors without a value (no catch-all `value:` without filter); mergekit would fail on them"
            )
          }
          w = w.fallingBack(to: nil)
          ws.append(w)
        }
        step.weights = ws
      }
      if methodName == "karcher" { notes.append("karcher: weights 1/N as mergekit") }

      // Method parameters.
      switch spec.mixlab {
      case .slerp:
        guard operands.count == 1 else {
          throw fail(methodKey, "slerp merges the base with exactly one other model; found \(operands.count) others")
        }
        step.models = [inputName[baseRef!]!, inputName[operands[0].ref]!]
        guard let t = try globalValue("t") else { throw fail(methodKey, "slerp needs the global parameter `t`") }
        step.params.append(("t", t))
        step.options.append(("norms", "keep"))
        notes.append("slerp: models [base, other], t = 0 gives the base; norms: keep (mergekit's formula)")
      case .average:
        let normalize = try globalFlag("normalize") ?? spec.normalize!
        step.options.append(("normalize", normalize ? "true" : "false"))
        notes.append(
          "normalize: \(normalize) (divide by the sum of weights\(normalize == spec.normalize ? ", mergekit's default" : ""))")
      case .taskArithmetic, .ties, .dare, .della, .breadcrumbs:
        if let lam = try globalValue("lambda")
          ?? (spec.tensorParams.contains("lambda") ? try shared("lambda", default: nil) : nil)
        {
          step.params.append(("lambda", lam))
        }
        let normalize = try globalFlag("normalize") ?? spec.normalize!
        let rescale = try globalFlag("rescale") ?? spec.rescale!
        if spec.mixlab == .ties || spec.mixlab == .breadcrumbs || spec.mixlab == .taskArithmetic, rescale {
          throw fail(
            globalParams["rescale"]?.0 ?? sliceParams["rescale"]?.0,
            "`rescale: true` with \(methodName) (L1 rescale after a magnitude trim) has no mixlab equivalent")
        }
        if let (n, _) = globalParams["int8_mask"] ?? sliceParams["int8_mask"] {
          _ = try setting(n, "int8_mask")
          notes.append("int8_mask: a memory option of mergekit; it does not change values")
        }
        if spec.mixlab != .taskArithmetic {
          guard let density = try shared("density", default: 1) else { throw fail(methodKey, "missing density") }
          if spec.mixlab == .dare {
            if let bad = density.numbers.first(where: { !($0 > 0 && $0 <= 1) }) {
              throw fail(methodKey, "density \(YAMLText.number(bad)) is outside (0, 1]")
            }
            step.params.append(("drop", density.mapNumbers { 1 - $0 }))
            notes.append("density d (keep probability) → drop 1 − d")
          } else {
            step.params.append(("density", density))
          }
          if spec.mixlab == .breadcrumbs, let g = try shared("gamma", default: 0.01) {
            step.params.append(("gamma", g))
          }
          if spec.mixlab == .della, let e = try shared("epsilon", default: 0.15) {
            step.params.append(("epsilon", e))
            step.options.append(("scope", "row"))
            notes.append(
              "della ranks magnitudes within each row (scope: row), as mergekit's dim=1 for matrices; for tensors of more than 2 dimensions mergekit ranks along dimension 1 instead"
            )
            notes.append(
              "epsilon: \(YAMLText.param(e))\(globalParams["epsilon"] == nil && operands.allSatisfy { $0.params["epsilon"] == nil } ? " (mergekit's default 0.15; mixlab's own default is 0.1)" : "")"
            )
          }
        }
        if spec.mixlab == .dare || spec.mixlab == .della {
          step.options.append(("rescale", rescale ? "l1" : "none"))
          notes.append(
            "rescale: \(rescale ? "l1 (mergekit's rescale=true matches each delta's L1 norm after dropping)" : "none")")
          step.seed = 0
          notes.append(
            "drop masks come from mixlab's seeded counter-based generator (seed 0); mergekit's torch masks are unseeded, so only their distribution is the same"
          )
        }
        if let sign = spec.sign, spec.mixlab != .taskArithmetic {
          step.options.append(("sign", sign))
          notes.append(
            sign == "magnitude_sum"
              ? "sign: magnitude_sum (mergekit's `sum` consensus: sign of Σ wᵢτᵢ)" : "sign: none (no sign election)")
        }
        step.options.append(("normalize", normalize ? "true" : "false"))
        notes.append("normalize: \(normalize)\(normalize == spec.normalize ? " (mergekit's default for \(methodName))" : "")")
        if spec.sign == "magnitude_sum", normalize { step.options.append(("average", "weight")) }
        if spec.mixlab == .ties {
          step.options.append(("topk", "exact"))
          step.options.append(("sign_tie", "positive"))
          notes.append(
            "topk: exact (k = ⌊density·n⌋ largest |τ|; equal magnitudes at the cut kept by lowest index), sign_tie: positive (a tied vote elects +, as mergekit)"
          )
        }
      case .modelStock:
        guard operands.count >= 2 else { throw fail(methodKey, "model_stock needs at least two models besides the base") }
        let fw = try globalFlag("filter_wise") ?? false
        step.options.append(("pairs", "all"))
        step.options.append(("scope", fw ? "row" : "tensor"))
        notes.append(
          "model_stock: pairs: all (mean cosine over all pairs, mergekit), scope: \(fw ? "row (filter_wise)" : "tensor")")
      case .karcher:
        if let m = try globalValue("max_iter") { step.params.append(("max_iter", m)) }
        if let t = try globalValue("tol") { step.params.append(("tol", t)) }
      case .multislerp:
        if let n = try globalFlag("normalize_weights") { step.options.append(("normalize_weights", n ? "true" : "false")) }
        if let e = try globalValue("eps") { step.params.append(("eps", e)) }
        if let baseRef {
          step.base = inputName[baseRef]!
          step.models = operands.filter { $0.ref != baseRef }.map { inputName[$0.ref]! }
          notes.append("multislerp with base_model: interpolates the deltas to the base, as mergekit")
        }
      default:
        break
      }
      let usesFilters = (Array(globalParams.values) + Array(sliceParams.values) + sources.flatMap { Array($0.params.values) })
        .contains { n, _ in
          if case .sequence(let s) = n { return s.contains { if case .mapping = $0 { return true } else { return false } } }
          if case .mapping = n { return true }
          return false
        }
      if usesFilters {
        notes.append(
          "filters: mergekit matches `filter` as a substring of the tensor name → `match: \"*filter*\"` (first match wins, then the next level's value)"
        )
      }
      draft.steps = [step]
      draft.from = stepName
    }

    // Precision.
    let dtypeText = try top["dtype"].map { try scalar($0.1, "dtype") }
    let outText = try top["out_dtype"].map { try scalar($0.1, "out_dtype") }
    if let d = dtypeText {
      guard let t = DType(userSpelling: d), t.recipeSpelling != nil else {
        throw fail(top["dtype"]?.1, "dtype `\(d)` is not a float dtype mixlab computes in")
      }
      draft.compute = t == .f64 ? "f64" : "f32"
      if t == .f16 || t == .bf16 {
        notes.append(
          "dtype \(d) → compute f32: mergekit computes in \(d); mixlab computes in f32 and rounds once (results agree to \(d) resolution, not bit for bit)"
        )
      } else {
        notes.append("dtype \(d) → compute \(draft.compute!)")
      }
    }
    let outDType: DType
    if let o = outText {
      guard let t = DType(userSpelling: o), t.recipeSpelling != nil else {
        throw fail(top["out_dtype"]?.1, "out_dtype `\(o)` is not a float dtype mixlab writes")
      }
      outDType = t
      notes.append("out_dtype \(o) → output dtype \(t.recipeSpelling!)")
    } else if let d = dtypeText, let t = DType(userSpelling: d) {
      outDType = t
      notes.append("no out_dtype: the output keeps dtype \(d), as mergekit")
    } else {
      let ref = baseRef ?? sources[0].ref
      outDType = facts[ref]?.dtype ?? .f16
      notes.append("no dtype: the output keeps the dtype of `\(ref)` (\(outDType.recipeSpelling ?? "f16")), as mergekit")
    }
    draft.dtype = outDType.recipeSpelling ?? "f16"
    for (name, id) in hubIDs { draft.metadata.append(("base_model.\(name)", id)) }

    let source = (file as NSString).lastPathComponent
    draft.header =
      ["Imported by `mixlab import` from the mergekit config \(source).", "Semantics chosen (mergekit's, written out):"]
      + notes.map { "  - " + $0 }
      + (hubIDs.isEmpty ? [] : ["Hugging Face ids are kept in output.metadata (base_model.<input>) for the model card."])
    draft.description = "mergekit \(methodName) merge imported from \(source)"
    return ImportResult(format: "mergekit", yaml: draft.yaml(), notes: notes)
  }

  /// A model reference as text; LoRA (`model+lora`) and mapping forms are refused.
  static func modelRef(_ node: Node, fail: (Node?, String) -> ImportError) throws -> String {
    guard case .scalar(let s) = node else {
      throw fail(
        node, "a model given as a mapping (model + LoRA, or an override) is not supported; give a path or a Hugging Face id")
    }
    let ref = s.string
    if ref.contains("+") {
      throw fail(node, "`\(ref)` applies a LoRA (`model+lora`), which is not supported; merge the LoRA into the model first")
    }
    return ref
  }

  /// The local path of a model reference: `--model REF=PATH`, else an existing folder or
  /// file (relative to the working directory, as mergekit, or to the config's folder).
  static func resolve(_ ref: String, line: Int?, file: String, options: ImportOptions) throws -> (path: String, hub: Bool) {
    let bare = ref.split(separator: "@", maxSplits: 1).first.map(String.init) ?? ref
    let looksLikeHub = !ref.hasPrefix("/") && !ref.hasPrefix(".") && !ref.hasPrefix("~") && bare.split(separator: "/").count == 2
    if let p = options.modelPaths[ref] ?? options.modelPaths[bare] {
      let abs = ImportPaths.absolute(p, base: options.workingDirectory)
      guard ImportPaths.exists(abs) else {
        throw ImportError(file: file, line: line, message: "--model \(ref)=\(p): no such file or folder")
      }
      return (abs, looksLikeHub)
    }
    let configDir = (file as NSString).deletingLastPathComponent
    let expanded = (bare as NSString).expandingTildeInPath
    for base in [options.workingDirectory, configDir] {
      let abs = ImportPaths.absolute(expanded, base: base)
      if ImportPaths.exists(abs) { return (abs, false) }
    }
    throw ImportError(
      file: file, line: line,
      message: looksLikeHub
        ? "model `\(ref)` is a Hugging Face id; download it (e.g. `huggingface-cli download \(bare) --local-dir DIR`) and pass --model \(ref)=DIR"
        : "model `\(ref)` is not a file or folder (relative to the working directory or the config's folder); fix the path or pass --model \(ref)=PATH"
    )
  }

  static func rejectParams(_ params: [String: (Node, Int)], allowed: [String], method: String, file: String) throws {
    for (k, (_, line)) in params where !allowed.contains(k) {
      throw ImportError(
        file: file, line: line,
        message: allowed.isEmpty
          ? "parameter `\(k)` is not read by mergekit's \(method); remove it"
          : "parameter `\(k)` is not read by mergekit's \(method) (it reads: \(allowed.joined(separator: ", "))); remove it rather than let mixlab guess"
      )
    }
  }

  /// A mergekit ParameterSetting: a scalar, a gradient, or filters (one or a list).
  static func readSetting(_ node: Node, name: String, fail: (Node?, String) -> ImportError) throws -> Setting {
    func number(_ n: Node) -> Double? {
      guard case .scalar(let s) = n, s.style == .plain else { return nil }
      return Double(s.string.replacingOccurrences(of: "_", with: ""))
    }
    func value(_ n: Node) throws -> RecipeParam {
      if let v = number(n) { return .constant(v) }
      if case .sequence(let items) = n {
        let vs = items.compactMap(number)
        guard vs.count == items.count, !vs.isEmpty else {
          throw fail(n, "`\(name)`: a gradient must be a list of numbers (lists of text values are not supported)")
        }
        return vs.count == 1 ? .constant(vs[0]) : .gradient(vs)
      }
      throw fail(n, "`\(name)`: expected a number or a list of numbers")
    }
    func conditions(_ items: [Node]) throws -> RecipeParam {
      var rules: [(pattern: KeyPattern, value: RecipeParam)] = []
      for item in items {
        guard case .mapping(let m) = item else { throw fail(item, "`\(name)`: a filter entry must be {filter: …, value: …}") }
        var filter: String?
        var v: Node?
        for (k, val) in m {
          guard case .scalar(let ks) = k else { throw fail(k, "`\(name)`: keys must be names") }
          switch ks.string {
          case "filter":
            guard case .scalar(let fs) = val else { throw fail(val, "`filter` must be text") }
            filter = fs.string
          case "value": v = val
          default: throw fail(k, "`\(name)`: unknown key `\(ks.string)` in a filter entry (mergekit reads filter and value)")
          }
        }
        guard let v else { throw fail(item, "`\(name)`: a filter entry needs `value`") }
        let p = try value(v)
        guard let f = filter, f != "*" else {
          // A catch-all: mergekit stops here, so later entries never apply.
          return rules.isEmpty ? p : .rules(rules, fallback: p)
        }
        rules.append((pattern(f), p))
      }
      return .rules(rules, fallback: nil)
    }
    switch node {
    case .scalar(let s):
      if s.style == .plain, ["true", "false"].contains(s.string.lowercased()) { return .flag(s.string.lowercased() == "true") }
      if let v = number(node) { return .value(.constant(v)) }
      return .text(s.string)
    case .sequence(let items):
      if items.contains(where: { if case .mapping = $0 { return true } else { return false } }) {
        return .value(try conditions(Array(items)))
      }
      return .value(try value(node))
    case .mapping:
      return .value(try conditions([node]))
    case .alias:
      throw fail(node, "YAML aliases are not supported")
    }
  }

  /// mergekit's `filter` is a substring of the tensor name: a glob `*filter*`, or an escaped
  /// regular expression when the filter holds glob characters.
  static func pattern(_ filter: String) -> KeyPattern {
    if filter.contains(where: { "*?[]".contains($0) }) {
      return .regex(NSRegularExpression.escapedPattern(for: filter))
    }
    return .glob("*\(filter)*")
  }
}
