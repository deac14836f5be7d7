import ArgumentParser
import Foundation
import MixLab

struct PublishCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "publish",
    abstract:
      "Write a publishable folder: model card, recipe, run record and in-toto/SLSA attestation (and the model on request).")
  @Argument(help: "Prefix of the output SHA-256, run id or commit.") var hash: String
  @Option(help: "The folder to write (created; must be empty unless --force).") var to: String
  @Option(
    help:
      "Model files to include: none, original (the recorded bytes), embedded (a copy with the recipe in __metadata__) or both.")
  var model: String = "none"
  @Flag(help: "Replace the files of an earlier publish in the folder.") var force = false
  @Flag(help: "Print JSON.") var json = false

  func validate() throws {
    guard Publish.ModelCopy(rawValue: model) != nil else {
      throw ValidationError("--model must be none, original, embedded or both (got \"\(model)\")")
    }
  }

  func run() throws {
    var o = Publish.Options()
    o.model = Publish.ModelCopy(rawValue: model)!
    o.force = force
    let ws = try Workspace.find(from: ".")
    let outcome = try Publish.run(prefix: hash, to: to, workspace: ws, options: o)
    if json {
      print(try Format.json(outcome))
      return
    }
    print("published run \(outcome.runID) (output \(outcome.outputSHA256.prefix(12))) to \(outcome.folder)")
    for f in outcome.files {
      print("  \(f.name.padding(toLength: 34, withPad: " ", startingAt: 0)) \(f.sha256)  \(Format.bytes(f.size))")
    }
    if outcome.redactions > 0 {
      print("  \(outcome.redactions) local path(s), user or host name(s) in notes or recipe comments were replaced")
    }
    print("check it with: mixlab verify \(to)")
  }
}

struct VerifyCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "verify",
    abstract: "Check a folder written by `mixlab publish`: file hashes, recipe hash, card; exit 0 only when all match.")
  @Argument(help: "The published folder.") var dir: String
  @Flag(help: "Print JSON.") var json = false

  func run() throws {
    let outcome = try Verify.run(folder: dir)
    print(json ? try Format.json(outcome) : Verify.text(outcome))
    if !outcome.ok { throw ExitCode(1) }
  }
}

struct ImportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "import",
    abstract:
      "Convert a mergekit YAML config, an sd-mecha .mecha recipe or a model's A1111/supermerger merge metadata into a mixlab recipe."
  )
  @Argument(help: "A mergekit .yaml, an sd-mecha .mecha, or a .safetensors model with sd_merge_recipe metadata.") var file: String
  @Option(help: "Write the recipe here (default: print it). Input paths are written relative to its folder.") var out: String?
  @Option(help: "Source format: mergekit, mecha or a1111 (default: from the extension).") var format: String?
  @Option(
    name: .customLong("model"),
    help:
      "REF=PATH: where a model the source names is (a Hugging Face id, a sd-mecha path, an A1111 name or SHA-256 prefix); repeatable."
  )
  var models: [String] = []
  @Option(help: "Folder where sd-mecha and A1111 model names are looked up (default: the source file's folder).") var modelsDir:
    String?
  @Flag(help: "A1111: keep the parent models as inputs instead of expanding their own recorded recipes.") var shallow = false
  @Flag(help: "Replace an existing --out file.") var force = false
  @Flag(help: "Print JSON.") var json = false

  func validate() throws {
    for m in models where !m.contains("=") || m.hasPrefix("=") || m.hasSuffix("=") {
      throw ValidationError("--model takes REF=PATH (got \"\(m)\")")
    }
  }

  func run() throws {
    var map: [String: String] = [:]
    for m in models {
      let eq = m.firstIndex(of: "=")!
      map[String(m[..<eq])] = String(m[m.index(after: eq)...])
    }
    let outcome = try ImportRecipe.run(
      file: file, out: out, format: format, models: map, modelsDir: modelsDir, shallow: shallow, force: force)
    if json {
      print(try Format.json(outcome))
    } else if let r = outcome.recipe {
      print("imported \(outcome.format) recipe \(outcome.source) → \(r)")
      for n in outcome.notes { print("  - \(n)") }
    } else {
      print(outcome.yaml, terminator: "")
    }
  }
}
