import Foundation
import Recipes
import SafeTensors

/// What one input did to a target: accepted, refused with a typed error, or accepted in a
/// way that breaks an invariant (a finding). Traps and hangs end the process (`Findings`).
enum Outcome: Equatable {
  case accepted(String)
  case refused(String)
  case broken(String)

  /// A coarse description, so inputs that behave alike count once in the pool: the error's
  /// kind with numbers and quoted names removed, or the accepted shape.
  var signature: String {
    switch self {
    case .accepted(let s): return "ok " + s
    case .refused(let s): return "refused " + s
    case .broken(let s): return "BROKEN " + s
    }
  }
}

/// The parsers a hostile file reaches first.
enum FuzzTarget: String, CaseIterable {
  /// `SafeTensorsFile` (strict header, offsets, sizes), then reading, scanning and hashing
  /// whatever it accepts.
  case safetensors
  /// `RecipeParser.parse` (YAML prescan, Yams, validation, canonical form).
  case recipe

  /// Runs one input. `scratch` is a file path the target may overwrite.
  ///
  /// - Returns: the outcome; refusals must be the module's typed error.
  func run(_ bytes: [UInt8], scratch: String) -> Outcome {
    switch self {
    case .safetensors: return FuzzTarget.runSafeTensors(bytes, scratch: scratch)
    case .recipe: return FuzzTarget.runRecipe(bytes)
    }
  }

  static func runSafeTensors(_ bytes: [UInt8], scratch: String) -> Outcome {
    guard FileManager.default.createFile(atPath: scratch, contents: Data(bytes)) else {
      return .broken("cannot write the scratch file \(scratch)")
    }
    let file: SafeTensorsFile
    do {
      file = try SafeTensorsFile(path: scratch)
    } catch {
      let message = error.localizedDescription
      if !message.hasPrefix(scratch + ": ") { return .broken("the error does not name the file: \(message)") }
      return .refused(String("\(error)".prefix { $0 != "(" }))
    }
    // Accepted: everything a merge would do with the bytes must agree with them.
    var expected = 0
    for t in file.tensors {
      guard t.begin == expected, t.elementCount * t.dtype.size == t.byteCount, file.info(t.name) == t else {
        return .broken("accepted an inconsistent tensor \(t)")
      }
      expected = t.end
    }
    guard file.dataStart + expected == bytes.count else { return .broken("accepted a file whose data length is wrong") }
    var floats: [Float] = []
    for t in file.tensors {
      floats = [Float](repeating: 0, count: t.elementCount)
      file.read(t, elements: 0..<t.elementCount, into: &floats)
    }
    let scan = Scanner.scan(file, perTensor: true)
    guard scan.sha256 == Digest.sha256(bytes), scan.tensorDataSHA256 == Digest.sha256(bytes[file.dataStart...]) else {
      return .broken("scan hashes differ from the bytes")
    }
    for t in file.tensors where scan.tensorSHA256?[t.name] != Digest.sha256(bytes[file.fileRange(of: t)]) {
      return .broken("tensor hash of \(t.name) differs from its bytes")
    }
    let dtypes = Set(file.tensors.map(\.dtype.rawValue)).sorted().joined(separator: ",")
    return .accepted("\(min(file.tensors.count, 4)) tensors \(dtypes) meta=\(!file.metadata.isEmpty)")
  }

  static func runRecipe(_ bytes: [UInt8]) -> Outcome {
    let file = "/fuzz/experiments/e/r.yaml"
    guard let text = String(data: Data(bytes), encoding: .utf8) else { return .refused("not UTF-8") }
    let recipe: Recipe
    do {
      recipe = try RecipeParser.parse(text, file: file)
    } catch {
      guard error.file == file, error.line >= 1, error.column >= 1, !error.message.isEmpty else {
        return .broken("a recipe error without a place: \(error)")
      }
      return .refused(Outcome.normalise(error.message))
    }
    // Accepted: parsing is a pure function of the text, and the canonical form names only
    // what the recipe declares.
    guard let again = try? RecipeParser.parse(text, file: file), again.hash == recipe.hash,
      again.canonical == recipe.canonical
    else {
      return .broken("parsing the same text twice gave different recipes")
    }
    guard recipe.hash == Digest.sha256(recipe.canonical) else { return .broken("recipe hash is not the canonical text's") }
    let methods = Set(recipe.steps.map(\.method.rawValue)).sorted().joined(separator: ",")
    return .accepted("\(recipe.inputs.count) inputs \(methods) \(recipe.output.dtype.rawValue)")
  }
}

extension Outcome {
  /// `message` with numbers and quoted or back-quoted text replaced, so `line 3` and
  /// `line 4` or two key names give one signature.
  static func normalise(_ message: String) -> String {
    var out = ""
    var quote: Character?
    for c in message {
      if let q = quote {
        if c == q { quote = nil }
        continue
      }
      if c == "`" || c == "\"" {
        quote = c
        out.append("_")
      } else if c.isNumber {
        if out.last != "#" { out.append("#") }
      } else {
        out.append(c)
      }
    }
    return String(out.prefix(80))
  }
}
