import Foundation
import Testing

@testable import MergeEngine

/// docs/methods.md documents every method's parameters and options; these checks keep its
/// tables equal to the catalog recipes are validated against.
@Suite("docs/methods.md matches the catalog")
struct DocsTests {
  static let text: String = {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("docs/methods.md")
    return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
  }()

  /// Lines of the `### \`name\`` section, up to the next heading.
  static func section(_ name: String) -> [Substring]? {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    guard let start = lines.firstIndex(where: { $0 == "### `\(name)`" }) else { return nil }
    let rest = lines[(start + 1)...]
    let end = rest.firstIndex { $0.hasPrefix("## ") || $0.hasPrefix("### ") } ?? lines.endIndex
    return Array(lines[(start + 1)..<end])
  }

  /// Cells of a table row, trimmed; nil when the line is not a row.
  static func cells(_ line: Substring) -> [String]? {
    guard line.hasPrefix("|") else { return nil }
    return line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
      .map { $0.trimmingCharacters(in: .whitespaces) }
  }

  static func number(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v) }

  static func range(_ p: MethodInfo.Param) -> String {
    if p.min == nil && p.max == nil { return "any" }
    let lo = p.min.map { (p.minInclusive ? "[" : "(") + number($0) } ?? "(−∞"
    let hi = p.max.map { number($0) + (p.maxInclusive ? "]" : ")") } ?? "∞)"
    return "\(lo), \(hi)"
  }

  @Test func theDocumentExists() {
    #expect(!DocsTests.text.isEmpty)
  }

  @Test(arguments: MethodName.allCases)
  func parameterAndOptionTables(_ method: MethodName) throws {
    let info = Catalog.info(method)
    let lines = try #require(DocsTests.section(method.rawValue), "no section for \(method.rawValue)")
    var rows: [String: [String]] = [:]
    for line in lines {
      if let c = DocsTests.cells(line), let first = c.first, first.hasPrefix("`") {
        rows[first.trimmingCharacters(in: CharacterSet(charactersIn: "`"))] = c
      }
    }
    for p in info.params {
      let row = try #require(rows[p.name], "\(method.rawValue): no row for parameter \(p.name)")
      if let d = p.defaultValue {
        #expect(Double(row[1]) == d, "\(method.rawValue).\(p.name): default \(row[1]) vs \(d)")
      } else {
        #expect(row[1] == "required", "\(method.rawValue).\(p.name): default \(row[1]) vs required")
      }
      #expect(row[2] == DocsTests.range(p), "\(method.rawValue).\(p.name): range \(row[2]) vs \(DocsTests.range(p))")
    }
    for o in info.options {
      let row = try #require(rows[o.name], "\(method.rawValue): no row for option \(o.name)")
      #expect(row[1] == o.values.map { "`\($0)`" }.joined(separator: ", "), "\(method.rawValue).\(o.name): values")
      #expect(row[2] == "`\(o.defaultValue)`", "\(method.rawValue).\(o.name): default \(row[2]) vs \(o.defaultValue)")
    }
    let known = Set(info.params.map(\.name) + info.options.map(\.name))
    #expect(
      Set(rows.keys).subtracting(known).isEmpty,
      "\(method.rawValue): documented but unknown: \(Set(rows.keys).subtracting(known))")
  }

  @Test(arguments: MethodName.allCases)
  func summaryRow(_ method: MethodName) throws {
    let info = Catalog.info(method)
    let row = try #require(
      DocsTests.text.split(separator: "\n").first { $0.hasPrefix("| `\(method.rawValue)` |") }.flatMap(DocsTests.cells),
      "no summary row for \(method.rawValue)")
    let operands = info.maxOperands == info.minOperands ? "\(info.minOperands)" : "≥ \(info.minOperands)"
    #expect(row[1] == operands)
    let base: String
    switch info.base {
    case .required: base = "required"
    case .optional: base = "optional"
    case .none: base = "–"
    }
    #expect(row[2] == base)
    #expect(row[3] == (info.weights ? "yes" : "–"))
    #expect(row[4] == (info.seeded ? "yes" : "–"))
  }
}
