import Foundation
import MergeEngine
import Provenance
import Recipes
import SafeTensors

/// The Hugging Face model card (`README.md`) of a published run.
enum Card {
  static func make(
    record r: RunRecord, recipe: Recipe, recipeText: String, commit: String, outputName: String,
    embedded: Publish.PublishedFile?, includesOriginal: Bool
  ) -> String {
    var lines: [String] = ["---"]
    // Front matter.
    lines.append("base_model:")
    // Only the models the merge read; an evaluator's reference input is not a parent.
    let parents = recipe.mergeInputs
    for i in r.inputs where parents.contains(i.name) {
      let id = recipe.output.metadata["base_model.\(i.name)"] ?? i.name
      lines.append("- \(quote(id))")
    }
    lines.append("base_model_relation: merge")
    lines.append("tags:")
    lines.append("- merge")
    lines.append("- mixlab")
    switch r.output.architecture {
    case "llama": lines.append("library_name: transformers")
    case "sd1", "sd2", "sdxl": lines.append("library_name: diffusers")
    default: break
    }
    if let license = recipe.output.metadata["license"] ?? recipe.output.metadata["modelspec.license"] {
      lines.append("license: \(quote(license))")
    }
    lines.append("---")
    lines.append("")
    lines.append("# \(r.recipeName)")
    lines.append("")
    if let d = recipe.description, !d.isEmpty {
      lines.append(d)
      lines.append("")
    }
    lines.append(
      "A merge of \(r.inputs.count) model\(r.inputs.count == 1 ? "" : "s") made with mixlab \(r.engine.mixlabVersion), reproducible byte for byte from the recipe and the input hashes below."
    )
    lines.append("")

    // Method and parameters.
    lines.append("## Method and parameters")
    lines.append("")
    if recipe.steps.isEmpty {
      lines.append("No merge step: the output is assembled from `\(recipe.output.from)`.")
    } else {
      lines.append("| step | method | base | models | parameters and options |")
      lines.append("|---|---|---|---|---|")
      for s in recipe.steps {
        let info = Catalog.info(s.method)
        var params: [String] = []
        if let w = s.weights { params.append("weights: " + w.map(describe).joined(separator: ", ")) }
        for p in info.params {
          if let v = s.params[p.name] {
            params.append("\(p.name): \(describe(v))")
          } else if let d = p.defaultValue {
            params.append("\(p.name): \(number(d)) (default)")
          }
        }
        for o in info.options { params.append("\(o.name): \(s.options[o.name] ?? o.defaultValue)") }
        if info.seeded { params.append("seed: \(s.seed ?? recipe.output.seed)") }
        lines.append(
          "| \(s.name) | `\(s.method.rawValue)` | \(s.base.map { "`\($0)`" } ?? "–") | \(s.models.map { "`\($0)`" }.joined(separator: ", ")) | \(cell(params.joined(separator: "; "))) |"
        )
      }
    }
    lines.append("")
    lines.append(
      "Output: `\(recipe.output.dtype.recipeName)` computed in `\(recipe.output.compute.rawValue)`, from `\(recipe.output.from)`\(recipe.output.assemble.isEmpty ? "" : ", with \(recipe.output.assemble.count) assemble rule(s)"). Formulas: mixlab's docs/methods.md (method semantics version \(recipe.steps.map { Catalog.info($0.method).semanticsVersion }.first ?? "1"))."
    )
    lines.append("")

    // Models merged.
    lines.append("## Models merged")
    lines.append("")
    lines.append("| input | SHA-256 | AutoV2 | file | architecture |")
    lines.append("|---|---|---|---|---|")
    for i in r.inputs {
      let hub = recipe.output.metadata["base_model.\(i.name)"].map { " ([\($0)](https://huggingface.co/\($0)))" } ?? ""
      lines.append(
        "| `\(i.name)`\(hub) | `\(i.sha256)` | `\(Digest.autoV2(i.sha256))` | \(cell(i.path)) | \(i.architecture) |")
    }
    lines.append("")

    // Recipe.
    lines.append("## Recipe")
    lines.append("")
    lines.append(
      "`\(Publish.recipeName)`, recipe hash `\(r.recipeHash)` (SHA-256 of its canonical form). Input paths point to `models/`; each input is pinned by its SHA-256."
    )
    lines.append("")
    let fence = recipeText.contains("```") ? "~~~~" : "```"
    lines.append(fence + "yaml")
    lines.append(recipeText.hasSuffix("\n") ? String(recipeText.dropLast()) : recipeText)
    lines.append(fence)
    lines.append("")

    // Notes.
    lines.append("## Notes")
    lines.append("")
    if r.notes.isEmpty {
      lines.append("The experiment has no notes.")
      lines.append("")
    } else {
      for (name, text) in r.notes.sorted(by: { $0.key < $1.key }) {
        lines.append("### \(name)")
        lines.append("")
        lines.append(demoteHeadings(text))
        lines.append("")
      }
    }

    // Provenance.
    lines.append("## Provenance")
    lines.append("")
    lines.append("| | |")
    lines.append("|---|---|")
    lines.append("| output | `\(outputName)` |")
    lines.append("| SHA-256 | `\(r.output.sha256)` |")
    lines.append("| AutoV2 | `\(r.output.autov2)` |")
    lines.append("| tensor data SHA-256 | `\(r.output.tensorDataSHA256)` |")
    if let e = embedded {
      lines.append("| copy with metadata | `\(e.name)`, SHA-256 `\(e.sha256)` (same tensors, recipe in `__metadata__`) |")
    }
    lines.append("| recipe hash | `\(r.recipeHash)` |")
    lines.append("| run | `\(r.runID)` (\(r.experiment)/\(r.recipeName)) |")
    if !commit.isEmpty { lines.append("| record commit | `\(commit)` (branch `runs` of the provenance repository) |") }
    lines.append("| mixlab | \(r.engine.mixlabVersion), engine \(r.engine.engineVersion) |")
    lines.append("| platform | \(r.platform.os), \(r.platform.arch), Swift \(r.platform.swiftVersion) |")
    lines.append("| attestation | `\(Publish.attestationName)` (in-toto Statement v1, SLSA provenance v1) |")
    lines.append("")
    lines.append("Reproduce in the workspace that recorded the run (or a clone of its `.mixlab/provenance.git`):")
    lines.append("")
    lines.append("```sh")
    lines.append("mixlab reproduce \(r.output.sha256.prefix(12))")
    lines.append("```")
    lines.append("")
    lines.append(
      "Or anywhere: copy `\(Publish.recipeName)` into `experiments/<name>/` of a mixlab workspace, put the input files listed above (checked by SHA-256) in `experiments/<name>/models/`, run `mixlab run experiments/<name>/\(Publish.recipeName)` and compare the output's SHA-256 with `\(r.output.sha256)`. `mixlab verify <this folder>` checks the files of this folder against the attestation\(includesOriginal ? "" : " (the model file is not included here)")."
    )
    lines.append("")
    return lines.joined(separator: "\n")
  }

  static func describe(_ p: RecipeParam) -> String {
    switch p {
    case .constant(let v): return number(v)
    case .gradient(let v): return "gradient [" + v.map(number).joined(separator: ", ") + "]"
    case .blockList(let v): return "blocks [" + v.map(number).joined(separator: ", ") + "]"
    case .blocks(let v, let f):
      let order =
        ["BASE"] + (0..<12).map { String(format: "IN%02d", $0) } + ["M00"]
        + (0..<12).map { String(format: "OUT%02d", $0) } + ["VAE"]
      let keys = v.keys.sorted { (order.firstIndex(of: $0) ?? 99) < (order.firstIndex(of: $1) ?? 99) }
      return "blocks {" + keys.map { "\($0): \(number(v[$0]!))" }.joined(separator: ", ") + "}"
        + (f.map { ", default \(number($0))" } ?? "")
    case .rules(let rules, let f):
      let items = rules.map { "\($0.pattern) → \(describe($0.value))" }
      return "filters [" + items.joined(separator: ", ") + "]" + (f.map { ", default \(describe($0))" } ?? "")
    }
  }

  static func number(_ d: Double) -> String {
    d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)"
  }

  /// Text fit for one Markdown table cell.
  static func cell(_ s: String) -> String {
    s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
  }

  /// A YAML double-quoted scalar.
  static func quote(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
      switch u {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      default: out.unicodeScalars.append(u)
      }
    }
    return out + "\""
  }

  /// Notes are Markdown of their own: their headings go below the card's `###`.
  static func demoteHeadings(_ text: String) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
      line.hasPrefix("#") ? "###" + line : String(line)
    }.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
  }
}

extension DType {
  /// The spelling recipes use (`f16`, `bf16`, `f32`, `f64`).
  var recipeName: String {
    switch self {
    case .f16: return "f16"
    case .bf16: return "bf16"
    case .f32: return "f32"
    case .f64: return "f64"
    default: return rawValue
    }
  }
}
