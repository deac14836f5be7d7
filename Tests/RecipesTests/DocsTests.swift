import Foundation
import MergeEngine
import Testing

@testable import Recipes

/// docs/recipes.md documents every method from the catalog the parser validates against; this
/// suite regenerates that part and fails, printing the expected text, when the two differ.
@Suite("docs/recipes.md matches the method catalog")
struct DocsTests {
  static let docPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("docs/recipes.md").path

  static func number(_ v: Double) -> String {
    v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : "\(v)"
  }

  static func range(_ p: MethodInfo.Param) -> String {
    guard p.min != nil || p.max != nil else { return "any" }
    let lo = p.min.map { "\(p.minInclusive ? "[" : "(")\(number($0))" } ?? "(−∞"
    let hi = p.max.map { "\(number($0))\(p.maxInclusive ? "]" : ")")" } ?? "∞)"
    return "\(lo), \(hi)"
  }

  /// The per-method reference, in `MethodName` order.
  static func methodReference() -> String {
    var out: [String] = []
    for name in MethodName.allCases {
      let info = Catalog.info(name)
      out.append("### `\(name.rawValue)`")
      out.append("")
      let models =
        info.maxOperands.map { $0 == info.minOperands ? "exactly \($0)" : "\(info.minOperands) to \($0)" }
        ?? "\(info.minOperands) or more"
      let base = info.base == .required ? "required" : info.base == .optional ? "optional" : "none"
      out.append("\(info.summary).")
      out.append("")
      out.append(
        "models: \(models) · base: \(base) · weights: \(info.weights ? "yes" : "no") · seed: \(info.seeded ? "yes (random)" : "no")"
          + " · semantics version \(info.semanticsVersion)")
      out.append("")
      if !info.params.isEmpty {
        out.append("| parameter | default | allowed | meaning |")
        out.append("|---|---|---|---|")
        for p in info.params {
          out.append("| `\(p.name)` | \(p.defaultValue.map(number) ?? "**required**") | \(range(p)) | \(p.help) |")
        }
        out.append("")
      }
      if !info.options.isEmpty {
        out.append("| option | values | default | meaning |")
        out.append("|---|---|---|---|")
        for o in info.options {
          out.append("| `\(o.name)` | \(o.values.map { "`\($0)`" }.joined(separator: ", ")) | `\(o.defaultValue)` | \(o.help) |")
        }
        out.append("")
      }
    }
    return out.joined(separator: "\n")
  }

  @Test("the method reference is the catalog's")
  func methods() throws {
    let doc = try String(contentsOfFile: Self.docPath, encoding: .utf8)
    let expected = Self.methodReference()
    let same = doc.contains(expected)
    #expect(same, "docs/recipes.md's method reference differs from Catalog.swift; expected:\n\(expected)")
  }

  @Test("every top-level, input, step, output and assemble key is documented")
  func keys() throws {
    let doc = try String(contentsOfFile: Self.docPath, encoding: .utf8)
    let keys =
      RecipeParser.topKeys + RecipeParser.inputKeys + RecipeParser.synthKeys + RecipeParser.stepFixedKeys
      + RecipeParser.outputKeys
      + RecipeParser.assembleKeys + RecipeParser.componentNames + KeyPolicy.allCases.map(\.rawValue)
      + NonFinitePolicy.allCases.map(\.rawValue)
    for k in keys {
      let mentioned = doc.contains("`\(k)`") || doc.contains("`\(k):")
      #expect(mentioned, "docs/recipes.md does not mention `\(k)`")
    }
  }

  @Test("every example recipe in the document parses")
  func examples() throws {
    let doc = try String(contentsOfFile: Self.docPath, encoding: .utf8)
    var count = 0
    var rest = doc[...]
    while let start = rest.range(of: "```yaml\n") {
      let body = rest[start.upperBound...]
      guard let end = body.range(of: "```") else { break }
      let text = String(body[..<end.lowerBound])
      rest = body[end.upperBound...]
      guard text.hasPrefix("# file: ") else { continue }
      let file = String(text.prefix { $0 != "\n" }.dropFirst("# file: ".count))
      do {
        _ = try RecipeParser.parse(text, file: file)
        count += 1
      } catch {
        Issue.record("example \(file) does not parse: \(error.errorDescription ?? "")")
      }
    }
    #expect(count >= 6, "expected the worked examples (each starting with `# file: …`), found \(count)")
  }
}
