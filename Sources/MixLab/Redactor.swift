import Foundation

/// Keeps local details out of published files: the workspace and home folders, the working
/// directory, absolute paths, the user name and the host name.
///
/// `redact` rewrites free text (notes, recipe comments, descriptions); `leaks` is the final
/// check on every byte that is about to be published.
struct Redactor {
  /// Sensitive text → what replaces it, longest first.
  let literals: [(String, String)]
  /// Whole words (user name, host name) → replacement.
  let words: [(String, String)]

  init(workspaceRoot: String, extraPaths: [String] = []) {
    var lits: [(String, String)] = []
    func add(_ s: String, _ r: String) {
      let t = s.hasSuffix("/") ? String(s.dropLast()) : s
      if t.count > 1 && !lits.contains(where: { $0.0 == t }) { lits.append((t, r)) }
    }
    add(workspaceRoot, "<workspace>")
    let resolved = (workspaceRoot as NSString).resolvingSymlinksInPath
    add(resolved, "<workspace>")
    let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
    add(home, "~")
    add(FileManager.default.currentDirectoryPath, "<cwd>")
    for p in extraPaths { add(p, "<local>") }
    literals = lits.sorted { $0.0.count > $1.0.count }
    var ws: [(String, String)] = []
    let env = ProcessInfo.processInfo.environment
    for u in [env["USER"], env["LOGNAME"], NSUserName()].compactMap({ $0 }) where u.count >= 2 {
      if !ws.contains(where: { $0.0 == u }) { ws.append((u, "<user>")) }
    }
    let host = ProcessInfo.processInfo.hostName
    for h in [host, host.split(separator: ".").first.map(String.init) ?? ""] where h.count >= 2 && h != "localhost" {
      if !ws.contains(where: { $0.0 == h }) { ws.append((h, "<host>")) }
    }
    words = ws.sorted { $0.0.count > $1.0.count }
  }

  /// `text` with local folders, absolute paths, the user and host names replaced; `count`
  /// is increased by the number of replacements.
  func redact(_ text: String, count: inout Int) -> String {
    var out = text
    for (needle, replacement) in literals {
      let ranges = Redactor.pathRanges(of: needle, in: out)
      count += ranges.count
      for r in ranges.reversed() { out.replaceSubrange(r, with: replacement) }
    }
    out = Redactor.redactAbsolutePaths(out, count: &count)
    for (word, replacement) in words {
      let ranges = Redactor.wordRanges(of: word, in: out)
      guard !ranges.isEmpty else { continue }
      count += ranges.count
      for r in ranges.reversed() { out.replaceSubrange(r, with: replacement) }
    }
    return out
  }

  /// Where published `text` still holds something local, described for an error message.
  ///
  /// - Parameters:
  ///   - words: also look for the user and host names as whole words. Only text that comes
  ///     from the user (notes, the recipe, names) is checked for them: text mixlab writes
  ///     itself cannot hold them, and a user name such as `model` would match its vocabulary.
  func leaks(in text: String, words checkWords: Bool = true) -> [String] {
    var found: [String] = []
    for (needle, replacement) in literals where !Redactor.pathRanges(of: needle, in: text).isEmpty {
      found.append(replacement == "~" ? "the home folder" : replacement == "<workspace>" ? "the workspace path" : "a local path")
    }
    if checkWords {
      for (word, replacement) in words where !Redactor.wordRanges(of: word, in: text).isEmpty {
        found.append(replacement == "<user>" ? "the user name" : "the host name")
      }
    }
    return Array(Set(found)).sorted()
  }

  /// An absolute path of at least two components (`/data/models/a.safetensors`) that starts
  /// a token: replaced by `<local>/a.safetensors`. URLs (`https://…`) are left alone.
  static func redactAbsolutePaths(_ text: String, count: inout Int) -> String {
    let scalars = Array(text.unicodeScalars)
    var out = String.UnicodeScalarView()
    var i = 0
    let starters: Set<Unicode.Scalar> = [" ", "\t", "\n", "\r", "\"", "'", "(", "[", "{", "=", ",", "`"]
    let stoppers: Set<Unicode.Scalar> = [" ", "\t", "\n", "\r", "\"", "'", "`", "<", ">", "|", ",", ")", "]", "}"]
    while i < scalars.count {
      let s = scalars[i]
      let atStart = i == 0 || starters.contains(scalars[i - 1])
      if s == "/", atStart, i + 1 < scalars.count, scalars[i + 1] != "/", !stoppers.contains(scalars[i + 1]) {
        var j = i
        while j < scalars.count && !stoppers.contains(scalars[j]) { j += 1 }
        let token = String(String.UnicodeScalarView(scalars[i..<j]))
        let parts = token.split(separator: "/")
        if parts.count >= 2 {
          count += 1
          out.append(contentsOf: "<local>/\(parts.last!)".unicodeScalars)
          i = j
          continue
        }
      }
      out.append(s)
      i += 1
    }
    return String(out)
  }

  /// Ranges of the path `needle` in `text` that end a path component: `/tmp/ws` matches in
  /// `/tmp/ws/x` and `/tmp/ws.` but not in `/tmp/wsx` (another folder).
  static func pathRanges(of needle: String, in text: String) -> [Range<String.Index>] {
    var result: [Range<String.Index>] = []
    var from = text.startIndex
    func continuesName(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" || c == "-" }
    while let r = text.range(of: needle, range: from..<text.endIndex) {
      let after = r.upperBound == text.endIndex ? nil : text[r.upperBound]
      if !(after.map(continuesName) ?? false) { result.append(r) }
      from = r.upperBound
    }
    return result
  }

  /// Ranges of `word` in `text` not preceded or followed by a letter, digit or `_`.
  static func wordRanges(of word: String, in text: String) -> [Range<String.Index>] {
    var result: [Range<String.Index>] = []
    var from = text.startIndex
    func isWordChar(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" }
    while let r = text.range(of: word, range: from..<text.endIndex) {
      let before = r.lowerBound == text.startIndex ? nil : text[text.index(before: r.lowerBound)]
      let after = r.upperBound == text.endIndex ? nil : text[r.upperBound]
      if !(before.map(isWordChar) ?? false) && !(after.map(isWordChar) ?? false) { result.append(r) }
      from = r.upperBound
    }
    return result
  }
}
