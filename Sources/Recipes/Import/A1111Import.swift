import Foundation
import MergeEngine
import SafeTensors

/// A1111 WebUI / supermerger merge metadata of a .safetensors model → the recipe tree of its
/// ancestry.
///
/// The WebUI checkpoint merger writes `sd_merge_recipe` (JSON: `type: webui`, the primary,
/// secondary and tertiary models' SHA-256, `interp_method`, `multiplier`, `save_as_half`,
/// `bake_in_vae`, `discard_weights`, …) and `sd_merge_models` (JSON: SHA-256 → `name`,
/// `legacy_hash` and that model's own `sd_merge_recipe`, flattened over all ancestors).
/// supermerger writes `type: sd-webui-supermerger` with `model_a`/`model_b`/`model_c`, `mode`,
/// `base_alpha`/`base_beta` and per-block weights. Every leaf model becomes an input pinned by
/// its recorded SHA-256; every ancestor that was itself a merge becomes a step.
enum A1111Import {
  struct Context {
    let file: String
    let options: ImportOptions
    let models: [String: [String: Any]]
    var draft = RecipeDraft()
    var notes: [String] = []
    var taken = Set<String>()
    var inputBySHA: [String: String] = [:]
    var stepBySHA: [String: String] = [:]
    var missing: [String] = []
  }

  static func convert(file: String, options: ImportOptions) throws -> ImportResult {
    let st: SafeTensorsFile
    do {
      st = try SafeTensorsFile(path: file)
    } catch {
      throw ImportError(file: file, message: "cannot read the model: \(error.localizedDescription)")
    }
    if let embedded = st.metadata["mixlab.recipe"] {
      return try mixlabRecipe(embedded, metadata: st.metadata, file: file, options: options)
    }
    guard let recipeText = st.metadata["sd_merge_recipe"] else {
      throw ImportError(
        file: file,
        message:
          "the model has no `sd_merge_recipe` metadata (written by the A1111 WebUI merger or supermerger with metadata saving on)"
      )
    }
    guard let top = json(recipeText) as? [String: Any] else {
      throw ImportError(file: file, message: "`sd_merge_recipe` is not a JSON object")
    }
    var models: [String: [String: Any]] = [:]
    if let modelsText = st.metadata["sd_merge_models"] {
      guard let m = json(modelsText) as? [String: Any] else {
        throw ImportError(file: file, message: "`sd_merge_models` is not a JSON object")
      }
      for (k, v) in m {
        if let entry = v as? [String: Any] { models[k.lowercased()] = entry }
      }
    }
    var ctx = Context(file: file, options: options, models: models)
    let from = try expand(top, depth: 0, ctx: &ctx)
    if !ctx.missing.isEmpty {
      let dir = options.modelsFolder ?? (file as NSString).deletingLastPathComponent
      throw ImportError(
        file: file,
        message:
          "\(ctx.missing.count) ancestor model(s) not found in \(dir): \(ctx.missing.joined(separator: "; ")). Put them there, pass --models-dir DIR, or --model NAME=PATH (NAME: the recorded name or a SHA-256 prefix)"
      )
    }
    var draft = ctx.draft
    draft.from = from
    draft.keyPolicy = "copy_reference"
    let dtype = try InputFacts.read(file, file: file, line: nil, what: "the model").dtype?.recipeSpelling ?? "f16"
    draft.dtype = dtype
    let type = (top["type"] as? String) ?? "webui"
    let notes =
      ctx.notes + [
        "output dtype \(dtype): the dtype of the imported model",
        "key_policy: copy_reference: keys missing from B (or C) keep A's tensor, as the WebUI merger does",
        "the whole tree is evaluated in one pass without rounding between steps; the tools saved (and maybe halved) each intermediate model, so results agree to the output dtype's resolution, not bit for bit",
      ]
    draft.header =
      [
        "Imported by `mixlab import` from the `sd_merge_recipe` metadata (\(type)) of \((file as NSString).lastPathComponent).",
        "Inputs are pinned by the SHA-256 the merger recorded. Semantics chosen:",
      ] + notes.map { "  - " + $0 }
    return ImportResult(format: type == "webui" ? "A1111 webui" : type, yaml: draft.yaml(), notes: notes)
  }

  static func json(_ text: String) -> Any? {
    guard let data = text.data(using: .utf8) else { return nil }
    return try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
  }

  static func number(_ v: Any?) -> Double? {
    if let n = v as? NSNumber { return n.doubleValue }
    if let s = v as? String { return Double(s) }
    return nil
  }

  static func truthy(_ v: Any?) -> Bool {
    if let b = v as? Bool { return b }
    if let n = v as? NSNumber { return n.doubleValue != 0 }
    if let s = v as? String { return !s.isEmpty && s != "None" && s.lowercased() != "false" }
    return false
  }

  /// One merge of the tree → the name of its step (or of its input, for "No interpolation").
  static func expand(_ recipe: [String: Any], depth: Int, ctx: inout Context) throws -> String {
    guard depth < 64 else { throw ImportError(file: ctx.file, message: "the merge ancestry is deeper than 64 levels (a cycle?)") }
    let type = (recipe["type"] as? String) ?? ""
    switch type {
    case "webui": return try webui(recipe, depth: depth, ctx: &ctx)
    case "sd-webui-supermerger": return try supermerger(recipe, depth: depth, ctx: &ctx)
    default:
      throw ImportError(
        file: ctx.file,
        message:
          "sd_merge_recipe of type `\(type)` is not supported (mixlab reads `webui`, the A1111 merger, and `sd-webui-supermerger`)"
      )
    }
  }

  /// A model of the recipe: a step when it was itself merged (and its recipe is recorded),
  /// else an input pinned by its SHA-256.
  static func model(_ sha: String, depth: Int, ctx: inout Context) throws -> String {
    let sha = sha.lowercased()
    if let s = ctx.stepBySHA[sha] { return s }
    if let i = ctx.inputBySHA[sha] { return i }
    let entry = ctx.models[sha]
    if !ctx.options.shallow, let nested = entry?["sd_merge_recipe"] {
      let parent: [String: Any]? = (nested as? [String: Any]) ?? ((nested as? String).flatMap { json($0) as? [String: Any] })
      if let parent {
        let name = try expand(parent, depth: depth + 1, ctx: &ctx)
        ctx.stepBySHA[sha] = name
        let label = (entry?["name"] as? String) ?? String(sha.prefix(10))
        ctx.notes.append("`\(name)` rebuilds \(label) (sha256 \(sha.prefix(10))…) from its own recorded recipe")
        return name
      }
    }
    let recorded = (entry?["name"] as? String) ?? ""
    let display = recorded.isEmpty ? String(sha.prefix(10)) : recorded
    let key =
      ctx.options.modelPaths[recorded]
      ?? ctx.options.modelPaths.first { sha.hasPrefix($0.key.lowercased()) && $0.key.count >= 8 }?.value
    var path: String?
    if let key {
      path = ImportPaths.absolute(key, base: ctx.options.workingDirectory)
    } else if !recorded.isEmpty {
      // The WebUI records names relative to its checkpoint folder, sometimes with " [hash]".
      let clean = recorded.replacingOccurrences(of: #" \[[0-9a-fA-F]+\]$"#, with: "", options: .regularExpression)
      let dir = ctx.options.modelsFolder ?? (ctx.file as NSString).deletingLastPathComponent
      for candidate in [clean, clean + ".safetensors"] {
        let abs = ImportPaths.absolute(candidate, base: dir)
        if ImportPaths.exists(abs) {
          path = abs
          break
        }
      }
    }
    guard let path, ImportPaths.exists(path) else {
      ctx.missing.append("\(display) (sha256 \(sha))")
      let name = ImportNames.unique(ImportNames.stem(display), taken: &ctx.taken)
      ctx.inputBySHA[sha] = name
      return name
    }
    let name = ImportNames.unique(ImportNames.stem(recorded.isEmpty ? path : recorded), taken: &ctx.taken)
    ctx.inputBySHA[sha] = name
    let pin = sha.count == 64 ? sha : nil
    ctx.draft.inputs.append(
      RecipeDraft.Input(
        name: name, path: ImportPaths.relative(path, from: ctx.options.recipeFolder), sha256: pin,
        comment: pin == nil ? "recorded hash \(sha) is not a full SHA-256" : nil))
    return name
  }

  static func webui(_ r: [String: Any], depth: Int, ctx: inout Context) throws -> String {
    let method = (r["interp_method"] as? String) ?? ""
    if truthy(r["is_inpainting"]) || truthy(r["is_instruct_pix2pix"]) {
      throw ImportError(file: ctx.file, message: "an inpainting / instruct-pix2pix merge (channel surgery) is not supported")
    }
    if let vae = r["bake_in_vae"] as? String, !vae.isEmpty, vae != "None" {
      throw ImportError(
        file: ctx.file,
        message: "bake_in_vae `\(vae)`: the VAE file is recorded by name only, not by hash; add it yourself as an assemble rule")
    }
    let discard = (r["discard_weights"] as? String) ?? ""
    if !discard.isEmpty {
      guard depth == 0 else {
        throw ImportError(file: ctx.file, message: "discard_weights in an ancestor merge (`\(discard)`) is not supported")
      }
      if let problem = KeyPattern.validateRegex(discard) {
        throw ImportError(
          file: ctx.file, message: "discard_weights `\(discard)` is not a regular expression mixlab reads: \(problem)")
      }
      ctx.draft.assemble.append("{regex: \(YAMLText.quote(discard)), drop: true}")
      ctx.notes.append("discard_weights `\(discard)` → assemble rule dropping the matching keys")
    }
    guard let primary = r["primary_model_hash"] as? String else {
      throw ImportError(file: ctx.file, message: "sd_merge_recipe has no primary_model_hash")
    }
    let m = number(r["multiplier"]) ?? 0.5
    if truthy(r["save_as_half"]) && depth > 0 {
      ctx.notes.append("an ancestor was saved in f16 (save_as_half); that intermediate rounding is not reproduced")
    }
    switch method {
    case "Weighted sum":
      guard let b = r["secondary_model_hash"] as? String else {
        throw ImportError(file: ctx.file, message: "Weighted sum without secondary_model_hash")
      }
      let an = try model(primary, depth: depth, ctx: &ctx)
      let bn = try model(b, depth: depth, ctx: &ctx)
      let name = ImportNames.unique("weighted_sum", taken: &ctx.taken)
      ctx.draft.steps.append(
        RecipeDraft.Step(
          name: name, method: .weightedSum, models: [an, bn], base: nil, params: [("alpha", .constant(m))],
          comment: "A1111 Weighted sum: A·(1 − M) + B·M, M = \(YAMLText.number(m))"))
      ctx.notes.append("Weighted sum → weighted_sum (alpha = multiplier)")
      return name
    case "Add difference":
      guard let b = r["secondary_model_hash"] as? String, let c = r["tertiary_model_hash"] as? String else {
        throw ImportError(file: ctx.file, message: "Add difference without secondary and tertiary model hashes")
      }
      let an = try model(primary, depth: depth, ctx: &ctx)
      let bn = try model(b, depth: depth, ctx: &ctx)
      let cn = try model(c, depth: depth, ctx: &ctx)
      let name = ImportNames.unique("add_difference", taken: &ctx.taken)
      ctx.draft.steps.append(
        RecipeDraft.Step(
          name: name, method: .addDifference, models: [an, bn, cn], base: nil, params: [("alpha", .constant(m))],
          comment: "A1111 Add difference: A + (B − C)·M, M = \(YAMLText.number(m))"))
      ctx.notes.append("Add difference → add_difference (alpha = multiplier)")
      return name
    case "No interpolation":
      ctx.notes.append("No interpolation → the primary model as it is")
      return try model(primary, depth: depth, ctx: &ctx)
    default:
      throw ImportError(
        file: ctx.file, message: "interp_method `\(method)` is not supported (Weighted sum, Add difference, No interpolation)")
    }
  }

  static func supermerger(_ r: [String: Any], depth: Int, ctx: inout Context) throws -> String {
    let mode = ((r["mode"] as? String) ?? "").lowercased()
    let calc = ((r["calcmode"] as? String) ?? "normal").lowercased()
    guard calc == "normal" || calc.isEmpty else {
      throw ImportError(file: ctx.file, message: "supermerger calcmode `\(calc)` is not supported (only normal)")
    }
    if let deep = r["elemental_merge"], truthy(deep) {
      throw ImportError(file: ctx.file, message: "supermerger elemental merge (`\(deep)`) is not supported")
    }
    for key in ["include", "exclude"] {
      if let list = r[key], truthy(list), !((list as? [Any])?.isEmpty ?? false) {
        throw ImportError(file: ctx.file, message: "supermerger block \(key) (`\(list)`) is not supported")
      }
    }
    func param(_ base: String, _ weights: String) throws -> RecipeParam {
      if truthy(r["mbw"]), let text = r[weights] as? String, !text.isEmpty {
        let values = text.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard [20, 21, 26, 27].contains(values.count) else {
          throw ImportError(
            file: ctx.file, message: "\(weights) has \(values.count) values; mixlab reads 26/27 (SD1/SD2) or 20/21 (SDXL)")
        }
        ctx.notes.append("\(weights) → a block list (BASE, IN…, M00, OUT…); time_embed counts in BASE, as supermerger")
        return .blockList(values)
      }
      return .constant(number(r[base]) ?? 0.5)
    }
    func hash(_ key: String) -> String? {
      guard let s = r[key] as? String, !s.isEmpty else { return nil }
      return s
    }
    guard let a = hash("model_a"), let b = hash("model_b") else {
      throw ImportError(file: ctx.file, message: "supermerger recipe without model_a and model_b")
    }
    let an = try model(a, depth: depth, ctx: &ctx)
    let bn = try model(b, depth: depth, ctx: &ctx)
    if mode.hasPrefix("weight sum") || mode.hasPrefix("weighted sum") {
      let alpha = try param("base_alpha", "weights_alpha")
      let name = ImportNames.unique("weighted_sum", taken: &ctx.taken)
      ctx.draft.steps.append(
        RecipeDraft.Step(name: name, method: .weightedSum, models: [an, bn], base: nil, params: [("alpha", alpha)]))
      ctx.notes.append("supermerger Weight sum → weighted_sum")
      return name
    }
    guard let c = hash("model_c") else { throw ImportError(file: ctx.file, message: "supermerger mode `\(mode)` needs model_c") }
    let cn = try model(c, depth: depth, ctx: &ctx)
    if mode.hasPrefix("add difference") {
      let alpha = try param("base_alpha", "weights_alpha")
      let name = ImportNames.unique("add_difference", taken: &ctx.taken)
      ctx.draft.steps.append(
        RecipeDraft.Step(name: name, method: .addDifference, models: [an, bn, cn], base: nil, params: [("alpha", alpha)]))
      ctx.notes.append("supermerger Add difference → add_difference")
      return name
    }
    let method: MethodName
    if mode.hasPrefix("triple sum") {
      method = .tripleSum
    } else if mode.hasPrefix("sum twice") {
      method = .sumTwice
    } else {
      throw ImportError(file: ctx.file, message: "supermerger mode `\(mode)` is not supported")
    }
    let alpha = try param("base_alpha", "weights_alpha")
    let beta = try param("base_beta", "weights_beta")
    let name = ImportNames.unique(method.rawValue, taken: &ctx.taken)
    ctx.draft.steps.append(
      RecipeDraft.Step(name: name, method: method, models: [an, bn, cn], base: nil, params: [("alpha", alpha), ("beta", beta)]))
    ctx.notes.append("supermerger \(mode) → \(method.rawValue)")
    return name
  }

  /// A model written by `mixlab publish --model embedded` carries its whole recipe: import
  /// that, with the inputs found again (by their published `models/<file>` paths) and written
  /// relative to the new recipe's folder. The recipe hash is unchanged.
  static func mixlabRecipe(_ text: String, metadata: [String: String], file: String, options: ImportOptions) throws
    -> ImportResult
  {
    let recipe: Recipe
    do {
      recipe = try RecipeParser.parse(text, file: file)
    } catch {
      throw ImportError(file: file, message: "the embedded `mixlab.recipe` does not parse: \(error.localizedDescription)")
    }
    let dir = options.modelsFolder ?? (file as NSString).deletingLastPathComponent
    var paths: [String: String] = [:]
    var missing: [String] = []
    for input in recipe.inputs {
      switch input.source {
      case .synth: continue
      case .recipe(let name):
        throw ImportError(
          file: file, line: input.line,
          message: "input `\(input.name)` is the output of recipe `\(name)` of the original experiment; import that recipe too")
      case .file(let p):
        let base = (p as NSString).lastPathComponent
        var candidates = [options.modelPaths[input.name], options.modelPaths[p], options.modelPaths[base]].compactMap {
          $0.map { ImportPaths.absolute($0, base: options.workingDirectory) }
        }
        candidates += [ImportPaths.absolute(p, base: dir), ImportPaths.absolute(base, base: dir)]
        guard let found = candidates.first(where: ImportPaths.exists) else {
          missing.append("`\(input.name)` (\(p), sha256 \(input.sha256 ?? "unpinned"))")
          continue
        }
        paths[input.name] = ImportPaths.relative(found, from: options.recipeFolder)
      }
    }
    guard missing.isEmpty else {
      throw ImportError(
        file: file,
        message:
          "inputs not found in \(dir): \(missing.joined(separator: "; ")); pass --models-dir DIR or --model NAME=PATH")
    }
    let rewritten: String
    do {
      rewritten = try InputPathRewrite.rewrite(text, file: file, paths: paths)
    } catch {
      throw ImportError(file: file, message: "cannot rewrite the embedded recipe's paths: \(error.localizedDescription)")
    }
    let source = metadata["mixlab.source_sha256"].map { ", which rebuilds output sha256 \($0)" } ?? ""
    let notes = [
      "the model carries its mixlab recipe (recipe hash \(recipe.hash))\(source); only input paths were rewritten"
    ]
    let header =
      "# Imported by `mixlab import` from the mixlab recipe embedded in \((file as NSString).lastPathComponent).\n"
      + notes.map { "#   - \($0)\n" }.joined()
    return ImportResult(format: "mixlab (embedded)", yaml: header + rewritten, notes: notes)
  }
}
