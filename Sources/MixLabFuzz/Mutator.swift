/// SplitMix64: the harness's only source of randomness, so a seed replays a session exactly.
struct SplitMix {
  var state: UInt64

  init(_ seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in 0..<n (n > 0).
  mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }

  mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// Structure-aware random edits for each target.
enum Mutator {
  /// One to four edits of `input`; `other` (another pool entry) feeds splices.
  static func mutate(_ input: [UInt8], other: [UInt8], target: FuzzTarget, rng: inout SplitMix) -> [UInt8] {
    var b = input
    for _ in 0...rng.below(4) {
      switch target {
      case .safetensors: b = safetensors(b, other: other, rng: &rng)
      case .recipe: b = recipe(b, other: other, rng: &rng)
      }
    }
    return b.count > 1 << 20 ? Array(b.prefix(1 << 20)) : b
  }

  // MARK: Byte-level edits shared by both targets

  static func bytes(_ input: [UInt8], other: [UInt8], rng: inout SplitMix) -> [UInt8] {
    var b = input
    switch rng.below(7) {
    case 0 where !b.isEmpty: b[rng.below(b.count)] ^= 1 << UInt8(rng.below(8))
    case 1 where !b.isEmpty: b[rng.below(b.count)] = rng.pick(interestingBytes)
    case 2: b.insert(rng.pick(interestingBytes), at: rng.below(b.count + 1))
    case 3 where !b.isEmpty:
      let at = rng.below(b.count)
      b.removeSubrange(at..<min(b.count, at + 1 + rng.below(8)))
    case 4 where b.count > 2:
      let start = rng.below(b.count)
      let slice = b[start..<min(b.count, start + 1 + rng.below(32))]
      b.insert(contentsOf: slice, at: rng.below(b.count + 1))
    case 5 where !other.isEmpty:
      // Splice: a head of one input and a tail of another.
      b = Array(b.prefix(rng.below(b.count + 1))) + other.suffix(rng.below(other.count + 1))
    case 6: b = Array(b.prefix(rng.below(b.count + 1)))
    default: break
    }
    return b
  }

  static let interestingBytes: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF, 0x0A, 0x0D, 0x09, 0x20, 0x22, 0x5C, 0xC0, 0xED, 0xF4]

  // MARK: safetensors

  /// Edits aimed past the first checks: header text edits keep the length prefix in step.
  static func safetensors(_ input: [UInt8], other: [UInt8], rng: inout SplitMix) -> [UInt8] {
    guard input.count >= 8, rng.below(3) != 0 else { return bytes(input, other: other, rng: &rng) }
    let declared = input.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    let headerEnd = 8 + Int(min(declared, UInt64(input.count - 8)))
    var header = Array(input[8..<headerEnd])
    var data = Array(input[headerEnd...])
    var prefix: UInt64?
    switch rng.below(8) {
    case 0:
      header = replaceNumber(in: header, with: rng.pick(interestingNumbers), rng: &rng)
    case 1:
      header = replaceToken(in: header, among: dtypes, with: rng.pick(dtypes + ["\"f16\"", "\"\"", "\"F16 \""]), rng: &rng)
    case 2 where !header.isEmpty:
      header.insert(contentsOf: Array(rng.pick(jsonTokens).utf8), at: rng.below(header.count + 1))
    case 3:
      header = bytes(header, other: other, rng: &rng)
    case 4:
      // Data section longer or shorter than the offsets say.
      if rng.below(2) == 0 || data.isEmpty {
        data += [UInt8](repeating: UInt8(truncatingIfNeeded: rng.next()), count: 1 + rng.below(16))
      } else {
        data.removeLast(min(data.count, 1 + rng.below(16)))
      }
    case 5:
      prefix = rng.pick([0, 1, 7, UInt64(header.count + 1), UInt64(header.count) &- 1, 100_000_001, UInt64.max, 1 << 63])
    case 6:
      // Repeat an entry: duplicate keys, overlapping offsets.
      if let open = header.firstIndex(of: UInt8(ascii: "{")), let comma = header.lastIndex(of: UInt8(ascii: ",")),
        comma > open + 1
      {
        let entry = header[(open + 1)..<comma]
        header.insert(contentsOf: entry + [UInt8(ascii: ",")], at: open + 1)
      }
    default:
      header += [UInt8](repeating: 0x20, count: rng.below(9))  // padding changes the alignment
    }
    return lengthPrefix(prefix ?? UInt64(header.count)) + header + data
  }

  static func lengthPrefix(_ n: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) } }

  static let interestingNumbers = [
    "0", "1", "-1", "2", "7", "8", "255", "256", "65535", "2147483647", "2147483648", "4294967296", "9007199254740993",
    "4611686018427387904", "9223372036854775807", "9223372036854775808", "18446744073709551616", "1e400", "1.5", "-0",
    "0.0", "1E2", "00", "+1", "0x10", "1e-400",
  ]
  static let dtypes = [
    "\"F16\"", "\"BF16\"", "\"F32\"", "\"F64\"", "\"I8\"", "\"U8\"", "\"I16\"", "\"I32\"", "\"I64\"", "\"BOOL\"",
    "\"F8_E4M3\"", "\"F8_E5M2\"", "\"U16\"", "\"U32\"", "\"U64\"",
  ]
  static let jsonTokens = [
    "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u0000", "\\ud800", "null", "true", "[]", "{}", "\"__metadata__\":{},",
    "\"x\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},", " ", "\u{FEFF}", "\u{0}",
  ]

  /// `header` with one run of digits (with sign, point and exponent) replaced by `value`.
  static func replaceNumber(in header: [UInt8], with value: String, rng: inout SplitMix) -> [UInt8] {
    let digits = header.indices.filter { header[$0] >= 0x30 && header[$0] <= 0x39 }
    guard !digits.isEmpty else { return header }
    var lo = rng.pick(digits)
    var hi = lo
    let numeric = Set("0123456789.eE+-".utf8)
    while lo > 0, numeric.contains(header[lo - 1]) { lo -= 1 }
    while hi + 1 < header.count, numeric.contains(header[hi + 1]) { hi += 1 }
    var out = header
    out.replaceSubrange(lo...hi, with: Array(value.utf8))
    return out
  }

  /// `header` with one occurrence of a token from `among` replaced by `with`.
  static func replaceToken(in header: [UInt8], among: [String], with replacement: String, rng: inout SplitMix)
    -> [UInt8]
  {
    let text = String(decoding: header, as: UTF8.self)
    let found = among.compactMap { t in text.range(of: t).map { ($0, t) } }
    guard let (range, _) = found.isEmpty ? nil : rng.pick(found) else { return header }
    return Array(text.replacingCharacters(in: range, with: replacement).utf8)
  }

  // MARK: recipes

  static func recipe(_ input: [UInt8], other: [UInt8], rng: inout SplitMix) -> [UInt8] {
    var lines = input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
    switch rng.below(9) {
    case 0, 1:
      // A YAML-significant token somewhere.
      var b = input
      b.insert(contentsOf: Array(rng.pick(yamlTokens).utf8), at: rng.below(b.count + 1))
      return b
    case 2 where !lines.isEmpty:
      // A value replaced by another of the vocabulary.
      let i = rng.below(lines.count)
      if let colon = lines[i].firstIndex(of: UInt8(ascii: ":")) {
        lines[i] = Array(lines[i][...colon]) + Array((" " + rng.pick(yamlValues)).utf8)
      }
    case 3 where !lines.isEmpty:
      lines.insert(lines[rng.below(lines.count)], at: rng.below(lines.count + 1))  // duplicate keys
    case 4 where lines.count > 1:
      lines.remove(at: rng.below(lines.count))
    case 5 where lines.count > 1:
      lines.swapAt(rng.below(lines.count), rng.below(lines.count))
    case 6 where !lines.isEmpty:
      // Indentation changes nesting.
      let i = rng.below(lines.count)
      if rng.below(2) == 0 {
        lines[i] = [UInt8](repeating: 0x20, count: 1 + rng.below(4)) + lines[i]
      } else {
        lines[i] = Array(lines[i].drop { $0 == 0x20 })
      }
    case 7:
      // Deep nesting, long scalars and alias-like text, bounded by the 1 MiB cut.
      let depth = rng.pick([10, 33, 100, 1_000, 20_000])
      let deep = rng.pick([
        String(repeating: "[", count: depth) + String(repeating: "]", count: depth),
        String(repeating: "- ", count: depth) + "x",
        String(repeating: "{a: ", count: depth) + String(repeating: "}", count: depth),
        String(repeating: "9", count: depth), "\"" + String(repeating: "\\u00e9", count: depth) + "\"",
      ])
      var b = input
      b.insert(contentsOf: Array(deep.utf8), at: rng.below(b.count + 1))
      return b
    default:
      return bytes(input, other: other, rng: &rng)
    }
    return Array(lines.joined(separator: [UInt8(ascii: "\n")]))
  }

  static let yamlTokens = [
    "&a ", "*a", "[", "]", "{", "}", ": ", "- ", "|", ">", "!!str ", "!!binary ", "? ", "# ", "\"", "'", "\t", "\n",
    "\n---\n", "\n...\n", "%YAML 1.2\n", "<<: ", "~", "\u{FEFF}", "\u{0}", "\r", "\\", ",", "@", "`",
  ]
  static let yamlValues = [
    "1", "0", "-1", "1e400", "-1e400", "1e9", "1e10", ".nan", ".inf", "0x10", "0o7", "1_000", "99999999999999999999",
    "18446744073709551616", "~", "null", "true", "\"1\"", "[]", "{}", "[a, b]", "{path: /etc/passwd}",
    "{path: ../../../x.safetensors}", "../escape", "/abs/path", "weighted_sum", "average", "ties", "dare", "della",
    "slerp", "karcher", "model_stock", "geometric_median", "task_arithmetic", "breadcrumbs", "add_difference",
    "{synth: {arch: sd1, scale: 0.02}}", "{recipe: other}", "{blocks: {IN00: 1, M00: 0}, default: 0.5}",
    "{gradient: [0, 1]}", "{filters: [{match: \"*attn*\", value: 1}], default: 0}", "f16", "bf16", "f32", "2GB", "0B",
    "magnitude_sum", "sign_count", "copy_reference", "error", "&x 1", "*x", "!!python/object:os.system x",
  ]
}
