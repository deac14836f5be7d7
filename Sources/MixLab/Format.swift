import Foundation

/// Human-readable numbers for tables and progress lines.
public enum Format {
  public static func bytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var u = 0
    while v >= 1024 && u < units.count - 1 {
      v /= 1024
      u += 1
    }
    return u == 0 ? "\(n) B" : String(format: "%.2f %@", v, units[u])
  }

  public static func count(_ n: Int) -> String {
    if n >= 1_000_000_000 { return String(format: "%.3f B", Double(n) / 1e9) + " (\(n))" }
    if n >= 1_000_000 { return String(format: "%.2f M", Double(n) / 1e6) + " (\(n))" }
    return "\(n)"
  }

  public static func seconds(_ s: Double) -> String {
    if s < 60 { return String(format: "%.1f s", s) }
    let m = Int(s) / 60
    if m < 60 { return "\(m)m\(String(format: "%02d", Int(s) % 60))s" }
    return "\(m / 60)h\(String(format: "%02d", m % 60))m"
  }

  /// Canonical JSON for `--json` output: sorted keys, pretty, no escaped slashes.
  public static func json<T: Encodable>(_ value: T) throws -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    return String(decoding: try e.encode(value), as: UTF8.self)
  }
}

extension String {
  func leftPad(_ n: Int) -> String {
    count >= n ? self : String(repeating: " ", count: n - count) + self
  }
}
