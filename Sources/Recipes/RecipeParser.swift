import Foundation
import MergeEngine
import SafeTensors
import Yams

/// Parses and validates recipe YAML. Every problem is reported with `file:line:column`
/// before any tensor is read: unknown keys (with a suggestion), wrong types, out-of-range
/// values, missing or cyclic references.
public enum RecipeParser {
  static let topKeys = ["mixlab", "name", "description", "inputs", "steps", "output", "evaluate"]
  static let evaluatorKeys = ["name", "command", "timeout", "minimize", "maximize"]
  static let inputKeys = ["path", "sha256", "recipe", "synth"]
  static let synthKeys = ["arch", "seed", "index", "scale", "dtype"]
  static let stepFixedKeys = ["method", "models", "base", "weights", "seed"]
  static let outputKeys = [
    "from", "assemble", "dtype", "compute", "seed", "time_embed", "key_policy", "nonfinite", "reference", "shard_size",
    "metadata",
  ]
  static let assembleKeys = ["components", "blocks", "match", "regex", "all", "from", "ema_from", "drop"]
  static let blockNames: [String] = {
    ["BASE"] + (0..<12).map { String(format: "IN%02d", $0) } + ["M00"] + (0..<12).map { String(format: "OUT%02d", $0) } + ["VAE"]
  }()
  static let componentNames = [
    "unet", "clip_l", "clip_g", "clip_h", "vae", "ema", "scheduler", "lora", "other", "embed", "layers", "norm", "lm_head",
  ]
  static let maxBytes = 1 << 20
  /// The largest magnitude of a number in a recipe.
  static let maxMagnitude = 1e9

  /// Parses `text` read from `file`.
  ///
  /// - Parameters:
  ///   - name: the recipe's name (defaults to the file name without extension).
  /// - Throws: `RecipeError` at the offending line and column.
  public static func parse(_ text: String, file: String, name: String? = nil) throws(RecipeError) -> Recipe {
    var p = Parse(file: file, text: text)
    do {
      return try p.run(name: name ?? ((file as NSString).lastPathComponent as NSString).deletingPathExtension)
    } catch let e as RecipeError {
      throw e
    } catch {
      throw RecipeError(file: file, line: 1, column: 1, message: "\(error)")
    }
  }

  /// The checks run on recipe text before YAML composes it (size, anchors and aliases,
  /// nesting depth).
  static func prescan(_ text: String, file: String) throws(RecipeError) {
    let p = Parse(file: file, text: text)
    do {
      try p.prescan()
    } catch let e as RecipeError {
      throw e
    } catch {
      throw RecipeError(file: file, line: 1, column: 1, message: "\(error)")
    }
  }

  /// Parses an experiment's `evaluators.yaml`: `mixlab: 1` and an `evaluate:` list.
  public static func parseEvaluators(_ text: String, file: String) throws(RecipeError) -> [EvaluatorSpec] {
    var p = Parse(file: file, text: text)
    do {
      return try p.runEvaluators()
    } catch let e as RecipeError {
      throw e
    } catch {
      throw RecipeError(file: file, line: 1, column: 1, message: "\(error)")
    }
  }

  /// The placeholders (`artifact`, `input:NAME`, …) an evaluator argument holds.
  static func placeholders(in arg: String) -> [String] { Parse.placeholders(in: arg) }

  /// Reads and parses a recipe file.
  public static func load(_ path: String) throws(RecipeError) -> Recipe {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw RecipeError(file: path, line: 1, column: 1, message: "cannot read the recipe file")
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw RecipeError(file: path, line: 1, column: 1, message: "the recipe is not UTF-8 text")
    }
    return try parse(text, file: path)
  }
}

private struct Parse {
  let file: String
  let text: String

  init(file: String, text: String) {
    self.file = file
    self.text = text
  }

  func err(_ node: Node?, _ message: String) -> RecipeError {
    let m = node?.mark
    return RecipeError(file: file, line: m?.line ?? 1, column: m?.column ?? 1, message: message)
  }

  /// Refuses anchors, aliases and very deep flow nesting before the YAML parser sees them
  /// (alias expansion can blow up memory and time; recipes never need them).
  ///
  /// A light scanner, not a YAML parser: it follows quoted scalars (with their escapes),
  /// comments and block scalars (`|`, `>`), and only treats `&` and `*` as YAML does, at the
  /// start of a node. So `description: Tom & Jerry` or a `* bullet` inside a `|` block passes,
  /// while `*attn*` written unquoted (an alias to YAML) is refused with a hint.
  func prescan() throws {
    guard text.utf8.count <= RecipeParser.maxBytes else {
      throw RecipeError(file: file, line: 1, column: 1, message: "the recipe is larger than 1 MiB")
    }
    let space = UInt8(ascii: " ")
    let tab = UInt8(ascii: "\t")
    let dq = UInt8(ascii: "\"")
    let sq = UInt8(ascii: "'")
    var quote: UInt8? = nil
    var escaped = false
    var depth = 0
    // Indentation of the line that opened a block scalar; deeper lines are its text.
    var blockScalarParent: Int? = nil
    var lineNumber = 0
    for lineBytes in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
      lineNumber += 1
      let line = Array(lineBytes.last == UInt8(ascii: "\r") ? lineBytes.dropLast() : lineBytes[...])
      let indent = line.prefix { $0 == space }.count
      if let parent = blockScalarParent, quote == nil {
        if line.allSatisfy({ $0 == space || $0 == tab }) || indent > parent { continue }
        blockScalarParent = nil
      }
      var lastSignificant: UInt8? = nil  // the last non-blank byte outside quotes on this line
      var prev: UInt8 = space
      var column = 0
      var reopenable = false  // just closed a single-quoted scalar: `''` is an escaped quote
      for b in line {
        column += 1
        defer { prev = b }
        if let q = quote {
          if q == dq {
            if escaped {
              escaped = false
            } else if b == UInt8(ascii: "\\") {
              escaped = true
            } else if b == dq {
              quote = nil
              lastSignificant = b
            }
          } else if b == sq {
            quote = nil
            reopenable = true
            lastSignificant = b
            continue
          }
          continue
        }
        if reopenable && b == sq {
          quote = sq
          reopenable = false
          continue
        }
        reopenable = false
        if b == space || b == tab { continue }
        let tokenStart =
          prev == space || prev == tab || prev == UInt8(ascii: "[") || prev == UInt8(ascii: "{")
          || prev == UInt8(ascii: ",") || prev == UInt8(ascii: ":") || column == 1
        // What YAML reads as the start of a node: line start, or after `:`, `- `, `? `, `[`, `{`, `,`.
        let nodeStart = tokenStart && (lastSignificant.map { Parse.nodeIndicators.contains($0) } ?? true)
        if b == UInt8(ascii: "#") && (prev == space || prev == tab || column == 1) { break }  // a comment
        if (b == dq || b == sq) && nodeStart {
          quote = b
          escaped = false
        } else if (b == UInt8(ascii: "&") || b == UInt8(ascii: "*")) && nodeStart {
          throw RecipeError(
            file: file, line: lineNumber, column: column,
            message: "YAML anchors and aliases (& and *) are not allowed in recipes; quote a glob such as \"*attn*\"")
        } else if b == UInt8(ascii: "[") || b == UInt8(ascii: "{") {
          depth += 1
          if depth > 32 {
            throw RecipeError(file: file, line: lineNumber, column: column, message: "nesting deeper than 32 levels")
          }
        } else if b == UInt8(ascii: "]") || b == UInt8(ascii: "}") {
          depth = max(0, depth - 1)
        } else if (b == UInt8(ascii: "|") || b == UInt8(ascii: ">")) && nodeStart {
          // A block scalar header (`|`, `>-`, `|2+` …) followed by nothing but a comment.
          let rest = line[column...]
          let header = rest.prefix { $0 != space && $0 != tab }
          let after = rest.dropFirst(header.count).drop { $0 == space || $0 == tab }
          let isHeader = header.allSatisfy {
            $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") || (UInt8(ascii: "1")...UInt8(ascii: "9")).contains($0)
          }
          if isHeader && (after.isEmpty || after.first == UInt8(ascii: "#")) { blockScalarParent = indent }
        }
        lastSignificant = b
      }
    }
  }

  static let nodeIndicators: [UInt8] = [":", "-", "?", "[", "{", ","].map { UInt8(ascii: $0) }

  mutating func runEvaluators() throws -> [EvaluatorSpec] {
    try prescan()
    guard let root = try Yams.compose(yaml: text) else { return [] }
    let top = try mapping(root, "evaluators.yaml", allowed: ["mixlab", "evaluate"])
    guard let v = top["mixlab"], try integer(v, "mixlab") == Recipe.formatVersion else {
      throw err(root, "evaluators.yaml needs `mixlab: \(Recipe.formatVersion)`")
    }
    guard let e = top["evaluate"] else { return [] }
    return try parseEvaluators(e, inputs: nil)
  }

  mutating func run(name: String) throws -> Recipe {
    try prescan()
    let root: Node
    do {
      guard let r = try Yams.compose(yaml: text) else {
        throw RecipeError(file: file, line: 1, column: 1, message: "the recipe is empty")
      }
      root = r
    } catch let e as RecipeError {
      throw e
    } catch let YamlError.scanner(context, problem, mark, _) {
      let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
      let line = mark.line >= 1 && mark.line <= lines.count ? Array(lines[mark.line - 1].unicodeScalars) : []
      let tab = mark.column >= 1 && mark.column <= line.count && line[mark.column - 1] == "\t"
      let hint = tab ? "; YAML does not allow tabs for indentation, use spaces" : ""
      throw RecipeError(
        file: file, line: mark.line, column: mark.column, message: "YAML syntax: \(problem)\(contextNote(context))\(hint)")
    } catch let YamlError.parser(context, problem, mark, _) {
      if problem.hasPrefix("Maximum nesting level") {  // libyaml's limit, named after its C setter
        throw RecipeError(
          file: file, line: mark.line, column: mark.column, message: "nesting deeper than the YAML parser's limit of levels")
      }
      throw RecipeError(
        file: file, line: mark.line, column: mark.column, message: "YAML syntax: \(problem)\(contextNote(context))")
    } catch let YamlError.composer(context, problem, mark, _) {
      if problem.contains("another document") {
        throw RecipeError(
          file: file, line: mark.line, column: mark.column,
          message: "a recipe file holds one YAML document; a second one starts here (`---`); put each recipe in its own file")
      }
      throw RecipeError(file: file, line: mark.line, column: mark.column, message: "YAML: \(problem)\(contextNote(context))")
    } catch let YamlError.duplicatedKeysInMapping(duplicates, context) {
      // Yams names the first occurrence; point at the repeated one, where the mistake is.
      let key = duplicates.first ?? ""
      let first = context.mark
      let again = repeatedKey(key, after: first)
      throw RecipeError(
        file: file, line: again?.line ?? first.line, column: again?.column ?? first.column,
        message:
          "duplicate key `\(key)` (first written at line \(first.line), column \(first.column)); each key may appear once in a mapping"
      )
    } catch {
      throw RecipeError(file: file, line: 1, column: 1, message: "YAML: \(error)")
    }
    let top = try mapping(root, "the recipe", allowed: RecipeParser.topKeys)
    guard let versionNode = top["mixlab"] else {
      throw err(root, "missing `mixlab: 1` (the recipe format version; it pins what every parameter means)")
    }
    let version = try integer(versionNode, "mixlab")
    guard version == Recipe.formatVersion else {
      throw err(
        versionNode, "recipe format version \(version) is not supported by this mixlab (it reads version \(Recipe.formatVersion))"
      )
    }
    let recipeName = try top["name"].map { try string($0, "name") } ?? name
    // The name becomes a file name under artifacts/<experiment>/, so it must not be able to
    // climb out of it (`../x`), hide (`.x`) or clash with mixlab's temporary names.
    if let n = top.entry("name") {
      try validRecipeName(n.value, recipeName)
    } else if !Parse.isValidRecipeName(recipeName) {
      throw err(
        root,
        "the recipe name `\(recipeName)` comes from the file name and must be \(Parse.recipeNameRule); rename the file or set `name:`"
      )
    }
    let description = try top["description"].map { try string($0, "description") }
    guard let inputsNode = top["inputs"] else { throw err(root, "missing `inputs`") }
    let inputs = try parseInputs(inputsNode)
    var steps: [RecipeStep] = []
    var stepKeys: [String: Node] = [:]
    if let stepsNode = top["steps"] {
      (steps, stepKeys) = try parseSteps(stepsNode, inputs: inputs)
    } else {
      // Only assembling (a text encoder or VAE swap) needs no step: the output comes from an input.
      let from = top["output"].flatMap { node -> String? in
        guard case .mapping(let m) = node, let f = m["from"], case .scalar(let s) = f else { return nil }
        return s.string
      }
      guard let from, inputs.contains(where: { $0.name == from }) else {
        throw err(root, "missing `steps` (a recipe that only assembles takes `output.from` from an input and needs none)")
      }
    }
    guard let outputNode = top["output"] else { throw err(root, "missing `output` (at least `from: <step>`)") }
    let output = try parseOutput(outputNode, inputs: inputs, steps: steps)
    steps = try order(steps, keys: stepKeys)
    let canonical = Canonical.json(inputs: inputs, steps: steps, output: output)
    var recipe = Recipe(
      file: file, name: recipeName, text: text, description: description, inputs: inputs, steps: steps, output: output,
      canonical: canonical, hash: Digest.sha256(canonical))
    if let e = top["evaluate"] { recipe.evaluators = try parseEvaluators(e, inputs: inputs.map(\.name)) }
    return recipe
  }

  /// `evaluate:` — a list of `{name, command, timeout}`; `command` is a list of arguments or
  /// one string run by `/bin/sh -c`.
  func parseEvaluators(_ node: Node, inputs: [String]?) throws -> [EvaluatorSpec] {
    var out: [EvaluatorSpec] = []
    for e in try sequence(node, "evaluate") {
      let m = try mapping(e, "an evaluator", allowed: RecipeParser.evaluatorKeys)
      guard let nameNode = m["name"] else { throw err(e, "an evaluator needs a `name`") }
      let name = try string(nameNode, "name")
      try validName(nameNode, name, "evaluator name")
      guard !out.contains(where: { $0.name == name }) else { throw err(nameNode, "two evaluators are named `\(name)`") }
      guard let commandNode = m["command"] else { throw err(e, "evaluator `\(name)` needs a `command`") }
      var command: [String]
      if case .scalar = commandNode {
        command = ["/bin/sh", "-c", try string(commandNode, "command")]
      } else {
        command = []
        for a in try sequence(commandNode, "command") { command.append(try string(a, "command argument")) }
      }
      guard !command.isEmpty, !command[0].isEmpty else { throw err(commandNode, "evaluator `\(name)` has an empty command") }
      for arg in command {
        for placeholder in Self.placeholders(in: arg) {
          let known = ["artifact", "output_sha256", "recipe", "experiment", "workspace"]
          if known.contains(placeholder) { continue }
          if placeholder.hasPrefix("input:") {
            let input = String(placeholder.dropFirst(6))
            if let inputs, !inputs.contains(input) {
              throw err(commandNode, "`{\(placeholder)}`: `\(input)` is not an input\(Suggest.hint(input, among: inputs))")
            }
            continue
          }
          throw err(
            commandNode,
            "unknown placeholder `{\(placeholder)}` (known: {artifact}, {output_sha256}, {recipe}, {experiment}, {workspace}, {input:NAME})"
          )
        }
      }
      var timeout = 600.0
      if let t = m["timeout"] {
        timeout = try number(t, "timeout")
        guard timeout > 0 && timeout <= 86_400 else { throw err(t, "timeout must be between 0 and 86400 seconds") }
      }
      var directions: [String: [String]] = [:]
      for key in ["minimize", "maximize"] {
        guard let node = m[key] else { continue }
        var names: [String] = []
        for n in try sequence(node, key) {
          let metric = try string(n, "metric name")
          guard !metric.isEmpty else { throw err(n, "an empty metric name in `\(key)`") }
          names.append(metric)
        }
        directions[key] = names
      }
      if let both = directions["minimize"]?.first(where: { (directions["maximize"] ?? []).contains($0) }) {
        throw err(e, "evaluator `\(name)`: metric `\(both)` is listed in both `minimize` and `maximize`")
      }
      out.append(
        EvaluatorSpec(
          name: name, command: command, timeout: timeout, line: e.mark?.line ?? 1, minimize: directions["minimize"] ?? [],
          maximize: directions["maximize"] ?? []))
    }
    return out
  }

  /// `{name}` and `{input:NAME}` tokens of an argument; other braces (JSON in a shell
  /// command) are text.
  static func placeholders(in arg: String) -> [String] {
    var out: [String] = []
    var rest = Substring(arg)
    while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
      let token = rest[rest.index(after: open)..<close]
      let parts = token.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
      let looksLikePlaceholder =
        !token.isEmpty && parts[0].allSatisfy { $0.isASCII && ($0.isLowercase || $0 == "_") }
        && (parts.count == 1 || parts[1].allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
      if looksLikePlaceholder { out.append(String(token)) }
      rest = rest[rest.index(after: open)...]
    }
    return out
  }

  /// " (while parsing a flow sequence started at line 9, column 13)" from libyaml's context.
  func contextNote(_ context: YamlError.Context?) -> String {
    guard let context, !context.text.isEmpty else { return "" }
    return " (\(context.text) started at line \(context.mark.line), column \(context.mark.column))"
  }

  /// Where a block mapping's key `key`, first written at `first`, is written again: the next
  /// line at the same indentation that starts with the key (plain or quoted) and a colon.
  func repeatedKey(_ key: String, after first: Mark) -> (line: Int, column: Int)? {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    guard first.line >= 1, first.line <= lines.count else { return nil }
    let indent = first.column - 1
    let spellings = [key, "\"\(key)\"", "'\(key)'"].map { $0 + ":" }
    for n in first.line..<lines.count {
      let line = lines[n]
      let trimmed = line.drop { $0 == " " }
      if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
      let lineIndent = line.count - trimmed.count
      if lineIndent < indent { return nil }
      if lineIndent == indent && spellings.contains(where: { trimmed.hasPrefix($0) }) { return (n + 1, indent + 1) }
    }
    return nil
  }

  // MARK: Generic readers

  /// A mapping's entries by key, refusing unknown keys with a suggestion.
  func mapping(_ node: Node, _ what: String, allowed: [String]?) throws -> OrderedMap {
    guard case .mapping(let m) = node else { throw err(node, "\(what) must be a mapping (key: value lines)") }
    var out = OrderedMap()
    for (k, v) in m {
      guard case .scalar(let s) = k else { throw err(k, "keys of \(what) must be plain names") }
      // YAML sees `1:` and `"1":` as different keys; a recipe does not.
      if let first = out.entries.first(where: { $0.name == s.string }) {
        let at = first.key.mark.map { " (first written at line \($0.line), column \($0.column))" } ?? ""
        throw err(k, "duplicate key `\(s.string)` in \(what)\(at); each key may appear once")
      }
      if let allowed, !allowed.contains(s.string) {
        throw err(k, "unknown key `\(s.string)` in \(what)\(Suggest.hint(s.string, among: allowed))")
      }
      out.append(s.string, key: k, value: v)
    }
    return out
  }

  func string(_ node: Node, _ what: String) throws -> String {
    guard case .scalar(let s) = node else { throw err(node, "\(what) must be a text value") }
    return s.string
  }

  func number(_ node: Node, _ what: String) throws -> Double {
    if case .scalar(let s) = node, s.style != .plain, Double(s.string) != nil {
      throw err(node, "\(what) must be a number, not the quoted text \"\(s.string)\"; remove the quotes")
    }
    guard case .scalar(let s) = node, s.style == .plain, let v = Double(s.string.replacingOccurrences(of: "_", with: "")),
      v.isFinite, !s.string.lowercased().contains("nan"), !s.string.lowercased().contains("inf")
    else {
      throw err(node, "\(what) must be a finite number")
    }
    // Weights, fractions, tolerances and iteration counts: anything larger is a typo that
    // would only overflow into Inf/NaN weights.
    guard abs(v) <= RecipeParser.maxMagnitude else {
      throw err(node, "\(what) is \(s.string), beyond the ±1e9 a recipe number may hold")
    }
    return v
  }

  func integer(_ node: Node, _ what: String) throws -> Int {
    guard case .scalar(let s) = node, s.style == .plain, let v = Int(s.string) else {
      throw err(node, "\(what) must be a whole number")
    }
    return v
  }

  func unsigned(_ node: Node, _ what: String) throws -> UInt64 {
    guard case .scalar(let s) = node, s.style == .plain, let v = UInt64(s.string) else {
      throw err(node, "\(what) must be a whole number from 0 to 18446744073709551615")
    }
    return v
  }

  func bool(_ node: Node, _ what: String) throws -> Bool {
    guard case .scalar(let s) = node, ["true", "false"].contains(s.string.lowercased()) else {
      throw err(node, "\(what) must be true or false")
    }
    return s.string.lowercased() == "true"
  }

  func sequence(_ node: Node, _ what: String) throws -> [Node] {
    guard case .sequence(let s) = node else { throw err(node, "\(what) must be a list") }
    return Array(s)
  }

  func names(_ node: Node, _ what: String) throws -> [String] {
    try namedNodes(node, what).map(\.name)
  }

  /// Names with the node each is written at (a single name or a list of names).
  func namedNodes(_ node: Node, _ what: String) throws -> [(name: String, node: Node)] {
    if case .scalar = node { return [(try string(node, what), node)] }
    var out: [(name: String, node: Node)] = []
    for n in try sequence(node, what) { out.append((try string(n, what), n)) }
    return out
  }

  func choice(_ node: Node, _ what: String, _ values: [String]) throws -> String {
    let s = try string(node, what)
    guard values.contains(s) else {
      throw err(node, "\(what) must be one of \(values.joined(separator: ", ")), not `\(s)`\(Suggest.hint(s, among: values))")
    }
    return s
  }

  func validName(_ node: Node, _ s: String, _ what: String) throws {
    guard Parse.isValidName(s) else { throw err(node, "\(what) `\(s)` must be 1–64 ASCII letters, digits, `_` or `-`") }
  }

  /// What a recipe name may be, in words (error messages).
  static let recipeNameRule =
    "1–64 ASCII letters, digits, `_`, `-` or `.`, not starting with `.` and without `..` or `.mixlab-`"

  func validRecipeName(_ node: Node, _ s: String) throws {
    guard Parse.isValidRecipeName(s) else { throw err(node, "recipe name `\(s)` must be \(Parse.recipeNameRule)") }
  }

  /// A recipe name becomes `artifacts/<experiment>/<name>.safetensors`: dots are allowed
  /// (`blend.best`, `soup.mixlab`) but it cannot hide (`.x`), climb (`..`) or take the form
  /// of mixlab's temporary and moved-aside names (`.mixlab-tmp-`, `.mixlab-old-`).
  static func isValidRecipeName(_ s: String) -> Bool {
    !s.isEmpty && s.utf8.count <= 64 && !s.hasPrefix(".") && !s.contains("..") && !s.contains(".mixlab-")
      && s.utf8.allSatisfy { b in
        (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || b == 0x5F || b == 0x2D
          || b == 0x2E
      }
  }

  static func isValidName(_ s: String) -> Bool {
    !s.isEmpty && s.count <= 64
      && s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-" }
      && s.unicodeScalars.allSatisfy { $0.isASCII }
  }

  // MARK: Sections

  func parseInputs(_ node: Node) throws -> [RecipeInput] {
    let m = try mapping(node, "inputs", allowed: nil)
    guard !m.entries.isEmpty else { throw err(node, "`inputs` is empty: name at least one model") }
    var out: [RecipeInput] = []
    for e in m.entries {
      try validName(e.key, e.name, "input name")
      let line = e.key.mark?.line ?? 1
      if case .scalar = e.value {
        out.append(RecipeInput(name: e.name, source: .file(path: try string(e.value, "input path")), sha256: nil, line: line))
        continue
      }
      let im = try mapping(e.value, "input `\(e.name)`", allowed: RecipeParser.inputKeys)
      let kinds = ["path", "recipe", "synth"].filter { im[$0] != nil }
      guard kinds.count == 1 else {
        throw err(e.value, "input `\(e.name)` needs exactly one of path, recipe or synth")
      }
      var sha: String?
      if let s = im["sha256"] {
        let v = try string(s, "sha256").lowercased()
        guard v.count >= 10, v.count <= 64, v.allSatisfy({ $0.isHexDigit }) else {
          throw err(s, "sha256 must be 10 to 64 hex digits (a full SHA-256 or an AutoV2 prefix)")
        }
        sha = v
      }
      let source: InputSource
      if let p = im["path"] {
        let path = try string(p, "path")
        guard !path.isEmpty else { throw err(p, "path is empty") }
        source = .file(path: path)
      } else if let r = im["recipe"] {
        let n = try string(r, "recipe")
        try validRecipeName(r, n)
        source = .recipe(name: n)
      } else {
        let sm = try mapping(im["synth"]!, "synth", allowed: RecipeParser.synthKeys)
        let arch = try sm["arch"].map { try choice($0, "arch", ["sd1", "sdxl", "llama"]) } ?? "sd1"
        let seed = try sm["seed"].map { try unsigned($0, "seed") } ?? 0
        let index = try sm["index"].map { try integer($0, "index") } ?? 0
        guard index >= 0 && index < 10_000 else { throw err(sm["index"], "index must be between 0 and 9999") }
        let scale = try sm["scale"].map { try number($0, "scale") } ?? 1
        guard scale > 0 && scale <= 1 else { throw err(sm["scale"], "scale must be in (0, 1]") }
        let dtype = try sm["dtype"].map { try choice($0, "dtype", ["f16", "bf16", "f32"]) } ?? "f16"
        source = .synth(SynthInput(arch: arch, seed: seed, index: index, scale: scale, dtype: dtype))
      }
      out.append(RecipeInput(name: e.name, source: source, sha256: sha, line: line))
    }
    return out
  }

  /// The steps in file order, and the node of each step's name (for errors found later).
  func parseSteps(_ node: Node, inputs: [RecipeInput]) throws -> (steps: [RecipeStep], keys: [String: Node]) {
    let m = try mapping(node, "steps", allowed: nil)
    guard !m.entries.isEmpty else { throw err(node, "`steps` is empty") }
    let inputNames = inputs.map(\.name)
    let known = inputNames + m.entries.map(\.name)
    /// A model or base must name an input or a step; the error points at the name.
    func checkReference(_ ref: String, at n: Node, step: String) throws {
      guard known.contains(ref) else {
        throw err(n, "step `\(step)` uses `\(ref)`, which is not an input or step\(Suggest.hint(ref, among: known))")
      }
    }
    var out: [RecipeStep] = []
    var keys: [String: Node] = [:]
    for e in m.entries {
      try validName(e.key, e.name, "step name")
      if inputNames.contains(e.name) {
        throw err(e.key, "`\(e.name)` names both an input and a step; rename one of them")
      }
      keys[e.name] = e.key
      let sm = try mapping(e.value, "step `\(e.name)`", allowed: nil)
      guard let mNode = sm["method"] else { throw err(e.value, "step `\(e.name)` has no `method`") }
      let methodText = try string(mNode, "method")
      let normalized = methodText.lowercased().replacingOccurrences(of: "-", with: "_")
      guard let method = MethodName(rawValue: normalized) else {
        let all = MethodName.allCases.map(\.rawValue)
        let hint = Suggest.hint(methodText, among: all)
        throw err(mNode, "unknown method `\(methodText)`\(hint.isEmpty ? " (methods: \(all.joined(separator: ", ")))" : hint)")
      }
      let info = Catalog.info(method)
      let allowed = RecipeParser.stepFixedKeys + info.params.map(\.name) + info.options.map(\.name)
      for k in sm.entries where !allowed.contains(k.name) {
        var hint = Suggest.hint(k.name, among: allowed)
        if hint.isEmpty || hint.hasPrefix(" (allowed") {
          hint = " (\(method.rawValue) takes: \(allowed.filter { $0 != "method" }.joined(separator: ", ")))"
        }
        throw err(k.key, "unknown key `\(k.name)` in step `\(e.name)`\(hint)")
      }
      guard let modelsNode = sm["models"] else { throw err(e.value, "step `\(e.name)` has no `models`") }
      let modelNodes = try namedNodes(modelsNode, "models")
      for r in modelNodes { try checkReference(r.name, at: r.node, step: e.name) }
      let models = modelNodes.map(\.name)
      if models.count < info.minOperands {
        throw err(modelsNode, "\(method.rawValue) needs at least \(info.minOperands) models, got \(models.count)")
      }
      if let mx = info.maxOperands, models.count > mx {
        throw err(
          modelsNode,
          "\(method.rawValue) takes \(mx == info.minOperands ? "exactly" : "at most") \(mx) models, got \(models.count)")
      }
      var base: String?
      if let b = sm["base"] {
        guard info.base != .none else { throw err(b, "\(method.rawValue) takes no base model") }
        base = try string(b, "base")
        try checkReference(base!, at: b, step: e.name)
      } else if info.base == .required {
        throw err(e.value, "\(method.rawValue) needs a `base` (the model the deltas are taken from)")
      }
      var weights: [RecipeParam]?
      if let w = sm["weights"] {
        guard info.weights else { throw err(w, "\(method.rawValue) takes no weights") }
        let list = try sequence(w, "weights")
        guard list.count == models.count else {
          throw err(w, "\(list.count) weights for \(models.count) models; give one weight per model, in the order of `models`")
        }
        var ws: [RecipeParam] = []
        for n in list { ws.append(try param(n, "weight", check: nil)) }
        weights = ws
      }
      var seed: UInt64?
      if let s = sm["seed"] {
        guard info.seeded else { throw err(s, "\(method.rawValue) is not random and takes no seed") }
        seed = try unsigned(s, "seed")
      }
      var params: [String: RecipeParam] = [:]
      var options: [String: String] = [:]
      for p in info.params {
        if let n = sm[p.name] {
          params[p.name] = try param(n, p.name, check: p)
        } else if p.defaultValue == nil {
          throw err(e.value, "step `\(e.name)`: \(method.rawValue) needs `\(p.name)` (\(p.help))")
        }
      }
      // DELLA keep probabilities are density ± epsilon; both ends must stay inside (0, 1).
      if info.param("epsilon") != nil, case .constant(let d)? = params["density"] {
        var epsilon = info.param("epsilon")?.defaultValue
        if let e = params["epsilon"] {
          if case .constant(let v) = e { epsilon = v } else { epsilon = nil }  // varies by tensor: checked when planning
        }
        if let epsilon, !(d - epsilon > 0 && d + epsilon < 1) {
          throw err(
            sm["epsilon"] ?? sm["density"],
            "\(method.rawValue) keeps entries with probabilities density ± epsilon = \(d) ± \(epsilon), which must stay inside (0, 1); lower epsilon or move density"
          )
        }
      }
      for o in info.options {
        if let n = sm[o.name] {
          let v: String
          if case .scalar(let s) = n, ["true", "false"].contains(s.string.lowercased()) {
            v = s.string.lowercased()
          } else {
            v = try string(n, o.name)
          }
          guard o.values.contains(v) else {
            throw err(
              n, "\(o.name) must be one of \(o.values.joined(separator: ", ")), not `\(v)`\(Suggest.hint(v, among: o.values))")
          }
          options[o.name] = v
        }
      }
      out.append(
        RecipeStep(
          name: e.name, method: method, models: models, base: base, weights: weights, params: params, options: options,
          seed: seed,
          line: e.key.mark?.line ?? 1))
    }
    return (out, keys)
  }

  /// A number, a gradient list, `{blocks: …}`, `{gradient: …}` or `{filters: […], default: …}`.
  func param(_ node: Node, _ what: String, check: MethodInfo.Param?) throws -> RecipeParam {
    func checked(_ n: Node, _ v: Double, label: String? = nil) throws -> Double {
      if let check, let problem = check.check(v) { throw err(n, "\(label ?? what) \(problem)") }
      return v
    }
    switch node {
    case .scalar:
      return .constant(try checked(node, try number(node, what)))
    case .sequence(let s):
      var v: [Double] = []
      for n in s { v.append(try checked(n, try number(n, what))) }
      guard !v.isEmpty else { throw err(node, "\(what): empty gradient") }
      return .gradient(v)
    case .mapping:
      let m = try mapping(node, what, allowed: ["blocks", "gradient", "filters", "default"])
      let forms = ["blocks", "gradient", "filters"].filter { m[$0] != nil }
      guard forms.count == 1 else {
        let message =
          forms.isEmpty
          ? "\(what): a mapping value needs `blocks`, `gradient` or `filters`"
          : "\(what): give one of `blocks`, `gradient` or `filters`, not \(forms.map { "`\($0)`" }.joined(separator: " and "))"
        throw err(node, message)
      }
      if let b = m["blocks"] {
        let fallback = try m["default"].map { try checked($0, try number($0, "default")) }
        if case .sequence(let s) = b {
          var v: [Double] = []
          for n in s { v.append(try checked(n, try number(n, what))) }
          guard [20, 21, 26, 27].contains(v.count) else {
            throw err(
              b,
              "a block list has 26 values for SD1/SD2 (BASE, IN00–IN11, M00, OUT00–OUT11), 27 with VAE, or 20/21 for SDXL; got \(v.count)"
            )
          }
          if let d = m.entry("default") {
            throw err(d.key, "\(what): a block list gives every block a value, so `default` would never apply; remove it")
          }
          return .blockList(v)
        }
        let bm = try mapping(b, "blocks", allowed: RecipeParser.blockNames)
        var values: [String: Double] = [:]
        for e in bm.entries {
          values[e.name] = try checked(e.value, try number(e.value, "\(what) for \(e.name)"), label: "\(what) for \(e.name)")
        }
        return .blocks(values, fallback: fallback)
      }
      if let g = m["gradient"] {
        if let d = m.entry("default") {
          throw err(d.key, "\(what): a gradient gives every layer a value, so `default` would never apply; remove it")
        }
        var v: [Double] = []
        for n in try sequence(g, "gradient") { v.append(try checked(n, try number(n, what))) }
        guard !v.isEmpty else { throw err(g, "\(what): empty gradient") }
        return .gradient(v)
      }
      if let f = m["filters"] {
        var rules: [(pattern: KeyPattern, value: RecipeParam)] = []
        for r in try sequence(f, "filters") {
          let rm = try mapping(r, "a filter", allowed: ["match", "regex", "value"])
          if rm["match"] != nil && rm["regex"] != nil {
            throw err(r, "a filter needs one of `match: <glob>` or `regex: <expression>`, not both")
          }
          let pattern: KeyPattern
          if let g = rm["match"] {
            pattern = .glob(try string(g, "match"))
          } else if let re = rm["regex"] {
            let text = try string(re, "regex")
            if let problem = KeyPattern.validateRegex(text) { throw err(re, "invalid regular expression: \(problem)") }
            pattern = .regex(text)
          } else {
            throw err(r, "a filter needs `match: <glob>` or `regex: <expression>`")
          }
          guard let v = rm["value"] else { throw err(r, "a filter needs a `value`") }
          rules.append((pattern, try param(v, what, check: check)))
        }
        let fallback = try m["default"].map { try param($0, what, check: check) }
        return .rules(rules, fallback: fallback)
      }
      throw err(node, "\(what): a mapping value needs `blocks`, `gradient` or `filters`")  // unreachable: one form is present
    case .alias:
      throw err(node, "aliases are not allowed")
    }
  }

  func parseOutput(_ node: Node, inputs: [RecipeInput], steps: [RecipeStep]) throws -> RecipeOutput {
    let m = try mapping(node, "output", allowed: RecipeParser.outputKeys)
    guard let fromNode = m["from"] else { throw err(node, "output needs `from: <step>`") }
    let from = try string(fromNode, "from")
    let known = inputs.map(\.name) + steps.map(\.name)
    guard known.contains(from) else { throw err(fromNode, "`\(from)` is not a step or input\(Suggest.hint(from, among: known))") }
    var rules: [AssembleRule] = []
    if let a = m["assemble"] {
      for r in try sequence(a, "assemble") {
        let rm = try mapping(r, "an assemble rule", allowed: RecipeParser.assembleKeys)
        let selectors = ["components", "blocks", "match", "regex", "all"].filter { rm[$0] != nil }
        guard selectors.count == 1 else {
          throw err(r, "an assemble rule needs exactly one of components, blocks, match, regex or all")
        }
        let selector: AssembleSelector
        switch selectors[0] {
        case "components":
          let cs = try namedNodes(rm["components"]!, "components")
          for c in cs where !RecipeParser.componentNames.contains(c.name) {
            throw err(c.node, "unknown component `\(c.name)`\(Suggest.hint(c.name, among: RecipeParser.componentNames))")
          }
          selector = .components(cs.map(\.name))
        case "blocks":
          let bs = try namedNodes(rm["blocks"]!, "blocks")
          for b in bs where !RecipeParser.blockNames.contains(b.name) {
            throw err(b.node, "unknown block `\(b.name)`\(Suggest.hint(b.name, among: RecipeParser.blockNames))")
          }
          selector = .blocks(bs.map(\.name))
        case "match": selector = .match(try string(rm["match"]!, "match"))
        case "regex":
          let text = try string(rm["regex"]!, "regex")
          if let problem = KeyPattern.validateRegex(text) { throw err(rm["regex"], "invalid regular expression: \(problem)") }
          selector = .regex(text)
        default:
          guard try bool(rm["all"]!, "all") else { throw err(rm["all"], "`all` must be true") }
          selector = .all
        }
        let sources = ["from", "ema_from", "drop"].filter { rm[$0] != nil }
        guard sources.count == 1 else { throw err(r, "an assemble rule needs exactly one of from, ema_from or drop") }
        let source: AssembleSource
        switch sources[0] {
        case "from":
          let s = try string(rm["from"]!, "from")
          guard known.contains(s) else { throw err(rm["from"], "`\(s)` is not a step or input\(Suggest.hint(s, among: known))") }
          source = .from(s)
        case "ema_from":
          let s = try string(rm["ema_from"]!, "ema_from")
          guard inputs.contains(where: { $0.name == s }) else {
            throw err(rm["ema_from"], "`\(s)` is not an input\(Suggest.hint(s, among: inputs.map(\.name)))")
          }
          source = .ema(s)
        default:
          guard try bool(rm["drop"]!, "drop") else { throw err(rm["drop"], "`drop` must be true") }
          source = .drop
        }
        rules.append(AssembleRule(selector: selector, source: source, line: r.mark?.line ?? 1))
      }
    }
    let dtypeText = try m["dtype"].map { try choice($0, "dtype", ["f16", "bf16", "f32", "f64"]) } ?? "f16"
    let compute = try m["compute"].map { try choice($0, "compute", ["f32", "f64"]) } ?? "f32"
    let seed = try m["seed"].map { try unsigned($0, "seed") } ?? 0
    let te = try m["time_embed"].map { try choice($0, "time_embed", ["base", "in00"]) } ?? "base"
    let kp = try m["key_policy"].map { try choice($0, "key_policy", KeyPolicy.allCases.map(\.rawValue)) } ?? "error"
    let nf = try m["nonfinite"].map { try choice($0, "nonfinite", NonFinitePolicy.allCases.map(\.rawValue)) } ?? "error"
    var reference: String?
    if let r = m["reference"] {
      let s = try string(r, "reference")
      guard inputs.contains(where: { $0.name == s }) else {
        throw err(r, "`\(s)` is not an input\(Suggest.hint(s, among: inputs.map(\.name)))")
      }
      reference = s
    }
    var shard: Int?
    if let s = m["shard_size"] {
      let text: String
      if case .scalar(let sc) = s { text = sc.string } else { throw err(s, "shard_size must be a size such as 2GB") }
      guard let bytes = ByteCount.parse(text), bytes >= 1 << 20 else {
        throw err(s, "shard_size must be a size of at least 1MiB, such as 2GB")
      }
      shard = bytes
    }
    var metadata: [String: String] = [:]
    if let md = m["metadata"] {
      for e in try mapping(md, "metadata", allowed: nil).entries {
        guard !e.name.hasPrefix("mixlab.") else { throw err(e.key, "metadata keys starting with `mixlab.` are reserved") }
        metadata[e.name] = try string(e.value, "metadata value")
      }
    }
    return RecipeOutput(
      from: from, assemble: rules, dtype: DType(userSpelling: dtypeText)!, compute: ComputeType(rawValue: compute)!, seed: seed,
      timeEmbed: TimeEmbedPlacement(rawValue: te)!, keyPolicy: KeyPolicy(rawValue: kp)!,
      nonFinite: NonFinitePolicy(rawValue: nf)!,
      reference: reference, shardBytes: shard, metadata: metadata)
  }

  /// Topological order of steps (stable: file order among independent steps); cycles refused.
  func order(_ steps: [RecipeStep], keys: [String: Node]) throws -> [RecipeStep] {
    let byName = Dictionary(uniqueKeysWithValues: steps.map { ($0.name, $0) })
    var state: [String: Int] = [:]  // 1 visiting, 2 done
    var out: [RecipeStep] = []
    func visit(_ name: String, _ path: [String]) throws {
      if state[name] == 2 { return }
      if state[name] == 1 {
        let cycle = (path.drop { $0 != name } + [name]).joined(separator: " → ")
        throw err(keys[name], "steps form a cycle: \(cycle); a step cannot use its own result")
      }
      state[name] = 1
      let s = byName[name]!
      for dep in s.models + (s.base.map { [$0] } ?? []) where byName[dep] != nil {
        try visit(dep, path + [name])
      }
      state[name] = 2
      out.append(s)
    }
    for s in steps { try visit(s.name, []) }
    return out
  }
}

/// A mapping's entries in file order with their key nodes (for error positions).
struct OrderedMap {
  struct Entry {
    var name: String
    var key: Node
    var value: Node
  }
  var entries: [Entry] = []
  mutating func append(_ name: String, key: Node, value: Node) { entries.append(Entry(name: name, key: key, value: value)) }
  subscript(_ name: String) -> Node? { entries.first { $0.name == name }?.value }
  func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }
}

/// Sizes such as `2GB`, `512MiB`.
public enum ByteCount {
  public static func parse(_ text: String) -> Int? {
    let t = text.trimmingCharacters(in: .whitespaces).uppercased()
    let units: [(String, Double)] = [
      ("TIB", 0x1p40), ("GIB", 0x1p30), ("MIB", 0x1p20), ("KIB", 0x1p10), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3),
      ("T", 0x1p40), ("G", 0x1p30), ("M", 0x1p20), ("K", 0x1p10), ("B", 1),
    ]
    for (suffix, factor) in units where t.hasSuffix(suffix) {
      guard let v = Double(t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), v > 0, v.isFinite else { return nil }
      let bytes = v * factor
      return bytes < 9e18 ? Int(bytes) : nil
    }
    guard let v = Int(t), v > 0 else { return nil }
    return v
  }
}
