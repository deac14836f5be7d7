import Foundation
import Testing

@testable import Recipes

/// Parses `text` as if read from `file`.
func parse(_ text: String, file: String = "experiments/x/r.yaml") throws -> Recipe {
  try RecipeParser.parse(text, file: file)
}

/// The error `text` is refused with, or a test failure when it parses.
func refusal(_ text: String, file: String = "r.yaml", sourceLocation: SourceLocation = #_sourceLocation) -> RecipeError? {
  do {
    let r = try RecipeParser.parse(text, file: file)
    Issue.record("parsed, but should have been refused (hash \(r.hash.prefix(12)))", sourceLocation: sourceLocation)
    return nil
  } catch {
    return error
  }
}

/// Expects `text` to be refused at `line`:`column` with a message holding every fragment, and
/// the printed form to be `file:line:column: message` on one line.
func expectRefused(
  _ text: String, at line: Int, _ column: Int, _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation
) {
  guard let e = refusal(text, sourceLocation: sourceLocation) else { return }
  #expect(
    e.line == line && e.column == column, "at \(e.line):\(e.column), expected \(line):\(column): \(e.message)",
    sourceLocation: sourceLocation)
  for f in fragments {
    #expect(e.message.contains(f), "message lacks “\(f)”: \(e.message)", sourceLocation: sourceLocation)
  }
  #expect(e.errorDescription == "r.yaml:\(e.line):\(e.column): \(e.message)", sourceLocation: sourceLocation)
  #expect(!e.message.contains("\n"), "more than one line: \(e.message)", sourceLocation: sourceLocation)
}

/// The three file inputs most error cases start with (lines 1–5).
let head = """
  mixlab: 1
  inputs:
    base: base.safetensors
    m1: m1.safetensors
    m2: m2.safetensors

  """

/// `head`, then a step `t` whose lines follow from line 8, then `output: {from: t}`.
func withStep(_ method: String, _ lines: String...) -> String {
  head + "steps:\n  t:\n    method: \(method)\n" + lines.map { "    \($0)\n" }.joined() + "output: {from: t}\n"
}

/// The SD1/SD2 block names in block-list order (without VAE).
let sd1Blocks =
  ["BASE"] + (0..<12).map { String(format: "IN%02d", $0) } + ["M00"] + (0..<12).map { String(format: "OUT%02d", $0) }
/// The SDXL block names in block-list order (without VAE).
let sdxlBlocks = ["BASE"] + (0..<9).map { String(format: "IN%02d", $0) } + ["M00"] + (0..<9).map { String(format: "OUT%02d", $0) }
