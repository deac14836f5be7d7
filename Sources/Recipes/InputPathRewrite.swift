import Foundation
import Yams

/// Rewrites the paths of a recipe's file inputs in place, keeping every other byte (comments,
/// layout) as written. Paths and pins are not part of the canonical form, so the recipe hash
/// does not change; `mixlab publish` uses this to replace local paths with `models/<file>`.
public enum InputPathRewrite {
  /// The recipe `text` with the `path` of each input named in `paths` replaced.
  ///
  /// An input written as a bare path (`a: x.safetensors`) becomes `{path: "…", sha256: …}`
  /// when `pins` gives its SHA-256; in mapping form only the path scalar is replaced.
  ///
  /// - Throws: `RecipeError` when the text is not a recipe or a path is written in a form
  ///   that cannot be replaced in place (a multi-line scalar).
  public static func rewrite(_ text: String, file: String, paths: [String: String], pins: [String: String] = [:]) throws
    -> String
  {
    func fail(_ message: String) -> RecipeError { RecipeError(file: file, line: 1, column: 1, message: message) }
    guard let root = try? Yams.compose(yaml: text), case .mapping(let top) = root else {
      throw fail("the recorded recipe is not a YAML mapping")
    }
    guard let inputsNode = top.first(where: { k, _ in k.string == "inputs" })?.value, case .mapping(let inputs) = inputsNode
    else {
      throw fail("the recorded recipe has no inputs mapping")
    }
    // (line, column, replacement) for each scalar to replace.
    var edits: [(line: Int, column: Int, scalar: Node.Scalar, replacement: String)] = []
    for (k, v) in inputs {
      guard let name = k.string, let newPath = paths[name] else { continue }
      switch v {
      case .scalar(let s):
        guard let mark = v.mark else { continue }
        var rep = "{path: \(quote(newPath))"
        if let pin = pins[name] { rep += ", sha256: \(pin)" }
        edits.append((mark.line, mark.column, s, rep + "}"))
      case .mapping(let m):
        guard let entry = m.first(where: { k2, _ in k2.string == "path" }), case .scalar(let s) = entry.value,
          let mark = entry.value.mark
        else { continue }
        var rep = quote(newPath)
        if let pin = pins[name], !m.contains(where: { k2, _ in k2.string == "sha256" }) {
          if m.style == .flow {
            rep += ", sha256: \(pin)"
          } else if let keyMark = entry.key.mark, keyMark.line == mark.line {
            // Block style: the pin goes on a line of its own, at the key's indentation.
            rep += "\n" + String(repeating: " ", count: keyMark.column - 1) + "sha256: \(pin)"
          }
        }
        edits.append((mark.line, mark.column, s, rep))
      default:
        continue
      }
    }
    var lines = text.components(separatedBy: "\n")
    for e in edits.sorted(by: { ($0.line, $0.column) > ($1.line, $1.column) }) {
      guard e.line >= 1, e.line <= lines.count else { throw fail("cannot locate an input path to rewrite") }
      var chars = Array(lines[e.line - 1].unicodeScalars)
      let start = e.column - 1
      guard start >= 0, start < chars.count else { throw fail("cannot locate an input path to rewrite") }
      let end: Int
      switch e.scalar.style {
      case .doubleQuoted:
        var j = start + 1
        while j < chars.count && chars[j] != "\"" { j += chars[j] == "\\" ? 2 : 1 }
        guard j < chars.count else { throw fail("the path at line \(e.line) spans lines; write it on one line") }
        end = j + 1
      case .singleQuoted:
        var j = start + 1
        while j < chars.count {
          if chars[j] == "'" {
            if j + 1 < chars.count && chars[j + 1] == "'" {
              j += 2
              continue
            }
            break
          }
          j += 1
        }
        guard j < chars.count else { throw fail("the path at line \(e.line) spans lines; write it on one line") }
        end = j + 1
      case .plain:
        let n = e.scalar.string.unicodeScalars.count
        guard start + n <= chars.count, String(String.UnicodeScalarView(chars[start..<(start + n)])) == e.scalar.string else {
          throw fail("the path at line \(e.line) spans lines; write it on one line")
        }
        end = start + n
      default:
        throw fail("the path at line \(e.line) is a block scalar; write it on one line")
      }
      chars.replaceSubrange(start..<end, with: Array(e.replacement.unicodeScalars))
      lines[e.line - 1] = String(String.UnicodeScalarView(chars))
    }
    return lines.joined(separator: "\n")
  }

  static func quote(_ s: String) -> String { YAMLText.quote(s) }
}
