import Foundation

/// Parses sizes such as `512MB`, `1.5GiB`, `800M`, `1073741824`.
public enum ByteSize {
  public static func parse(_ text: String) -> Int? {
    let t = text.trimmingCharacters(in: .whitespaces).uppercased()
    let units: [(String, Double)] = [
      ("TIB", 0x1p40), ("GIB", 0x1p30), ("MIB", 0x1p20), ("KIB", 0x1p10),
      ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3),
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
