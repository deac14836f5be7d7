import Foundation

/// A recipe problem at a place in a file: `file:line:column: message`.
public struct RecipeError: Error, LocalizedError, Equatable, Sendable {
  public var file: String
  public var line: Int
  public var column: Int
  public var message: String

  public init(file: String, line: Int, column: Int, message: String) {
    self.file = file
    self.line = line
    self.column = column
    self.message = message
  }

  public var errorDescription: String? { "\(file):\(line):\(column): \(message)" }
}

/// "did you mean …?" for misspelled names.
enum Suggest {
  static func distance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
      cur[0] = i
      for j in 1...b.count {
        cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
      }
      swap(&prev, &cur)
    }
    return prev[b.count]
  }

  /// " — did you mean `x`?" when a candidate is close, else "" plus the allowed list when short.
  static func hint(_ word: String, among candidates: [String]) -> String {
    let best = candidates.map { ($0, distance(word.lowercased(), $0.lowercased())) }.min { $0.1 < $1.1 }
    if let (c, d) = best, d <= max(2, word.count / 3) { return " — did you mean `\(c)`?" }
    if candidates.count <= 12 { return " (allowed: \(candidates.sorted().joined(separator: ", ")))" }
    return ""
  }
}
