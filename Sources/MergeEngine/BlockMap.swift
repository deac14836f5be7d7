import Architectures

/// Where `time_embed` (and SDXL's `label_emb`) count for block weights; tools disagree:
/// supermerger puts them in BASE, sd-mecha's block configs in IN00.
public enum TimeEmbedPlacement: String, Sendable, Codable, CaseIterable {
  case base
  case in00
}

/// Maps checkpoint keys to the merge blocks users weight ("MBW"): BASE, IN00…, M00, OUT00…,
/// VAE for Stable Diffusion; layer positions for LLMs. The key → block table is data
/// (`BlockMapData`): prefix rules in order, first match wins.
public struct BlockMap: Sendable {
  public var architecture: Architecture
  public var timeEmbed: TimeEmbedPlacement

  public init(architecture: Architecture, timeEmbed: TimeEmbedPlacement = .base) {
    self.architecture = architecture
    self.timeEmbed = timeEmbed
  }

  /// Input and output block counts of the UNet.
  public var unetBlocks: Int { architecture == .sdxl ? 9 : 12 }

  /// Every block name of this architecture, in the order of a block-weight list.
  public var blockNames: [String] {
    switch architecture {
    case .sd1, .sd2, .sdxl:
      let n = unetBlocks
      return ["BASE"] + (0..<n).map { "IN" + two($0) } + ["M00"] + (0..<n).map { "OUT" + two($0) } + ["VAE"]
    case .llama:
      return ["BASE"]
    case .unknown:
      return ["BASE"]
    }
  }

  /// The block of `key`. Text encoders, scheduler buffers, EMA and anything outside the UNet
  /// and VAE count as BASE; the final `out.` layers of the UNet count as the last OUT block
  /// (as in supermerger).
  public func block(of key: String) -> String {
    switch architecture {
    case .sd1, .sd2, .sdxl:
      for rule in BlockMapData.rules where key.hasPrefix(rule.prefix) {
        switch rule.block {
        case "IN{n}", "OUT{n}":
          guard let i = leadingInt(key.dropFirst(rule.prefix.count)) else { continue }
          return (rule.block.hasPrefix("IN") ? "IN" : "OUT") + two(i)
        case "{time}": return timeEmbed == .base ? "BASE" : "IN00"
        case "OUT{last}": return "OUT" + two(unetBlocks - 1)
        default: return rule.block
        }
      }
      return "BASE"
    default:
      return "BASE"
    }
  }

  /// Position of `key` along the depth of an LLM in [0, 1]: layer i of L is i/(L−1);
  /// embeddings count as 0, the final norm and LM head as 1; nil for keys of no layer.
  public func layerPosition(of key: String, layerCount: Int) -> Double? {
    if let i = BlockMap.layerIndex(of: key) {
      return layerCount > 1 ? Double(i) / Double(layerCount - 1) : 0
    }
    if key.hasPrefix("model.embed_tokens.") { return 0 }
    if key.hasPrefix("model.norm.") || key.hasPrefix("lm_head.") { return 1 }
    return nil
  }

  /// N of a `….layers.N.…` key (Llama `model.layers.N`, CLIP `encoder.layers.N`); not the
  /// `in_layers.N`/`out_layers.N` sub-modules of UNet res blocks, which are no depth.
  public static func layerIndex(of key: String) -> Int? {
    var search = key[...]
    while let r = search.range(of: "layers.") {
      let atStart = r.lowerBound == key.startIndex || key[key.index(before: r.lowerBound)] == "."
      if atStart {
        let digits = key[r.upperBound...].prefix { $0.isASCII && $0.isNumber }
        if let i = Int(digits) { return i }
      }
      search = key[r.upperBound...]
    }
    return nil
  }

  func two(_ i: Int) -> String { i < 10 ? "0\(i)" : "\(i)" }

  func leadingInt(_ s: Substring) -> Int? {
    let digits = s.prefix { $0.isASCII && $0.isNumber }
    return digits.isEmpty ? nil : Int(digits)
  }
}
