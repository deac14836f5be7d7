import Architectures
import MergeEngine

/// The blocks and components `diff` and `distance` report, from key names.
///
/// Stable Diffusion: the UNet's merge blocks as in block-weighted merging (BASE for
/// `time_embed`/`label_emb`, IN00…, M00, OUT…; the final `out.` layers count as the last OUT
/// block), then `VAE` and one block per text encoder (`CLIP_L`, `CLIP_G`, `CLIP_H`). Unlike
/// merge block weights, text encoders are not folded into BASE: a diff should say which one
/// changed. LLMs: `EMBED`, one block per layer (`L00`, `L01`, …), `NORM`, `LM_HEAD`. Any
/// other key goes to a block named after its component in capitals (`EMA`, `SCHEDULER`,
/// `LORA`, `OTHER`).
struct CompareBlocks: Sendable {
  var architecture: Architecture
  /// Digits of layer numbers (at least 2), so names sort and align.
  var layerDigits: Int
  private let blockMap: BlockMap

  /// - Parameters:
  ///   - architecture: the family (decides the naming scheme).
  ///   - keys: every key that will be named, to size layer numbers.
  init(architecture: Architecture, keys: [String]) {
    self.architecture = architecture
    blockMap = BlockMap(architecture: architecture, timeEmbed: .base)
    var maxLayer = 0
    if !CompareBlocks.isStableDiffusion(architecture) {
      for k in keys where k.hasPrefix("model.layers.") { maxLayer = max(maxLayer, BlockMap.layerIndex(of: k) ?? 0) }
    }
    layerDigits = max(2, String(maxLayer).count)
  }

  static func isStableDiffusion(_ a: Architecture) -> Bool { a == .sd1 || a == .sd2 || a == .sdxl }

  func component(of key: String) -> String { Detection.component(of: key, in: architecture) }

  func block(of key: String) -> String {
    let c = component(of: key)
    if CompareBlocks.isStableDiffusion(architecture) {
      switch c {
      case "unet": return blockMap.block(of: key)
      case "vae": return "VAE"
      default: return c.uppercased()
      }
    }
    switch c {
    case "embed": return "EMBED"
    case "layers":
      guard let i = BlockMap.layerIndex(of: key) else { return "LAYERS" }
      let s = String(i)
      return "L" + String(repeating: "0", count: max(0, layerDigits - s.count)) + s
    case "lm_head": return "LM_HEAD"
    default: return c.uppercased()
    }
  }

  /// Blocks in reading order: SD's block-weight order, then VAE and text encoders; an LLM's
  /// embedding, layers, final norm and head; then anything else alphabetically.
  func sorted(_ blocks: Set<String>) -> [String] {
    var known: [String]
    if CompareBlocks.isStableDiffusion(architecture) {
      known = blockMap.blockNames.filter { $0 != "VAE" } + ["VAE", "CLIP_L", "CLIP_G", "CLIP_H"]
    } else {
      let layers = blocks.filter { $0.hasPrefix("L") && $0.dropFirst().allSatisfy(\.isNumber) && $0.count > 1 }.sorted()
      known = ["EMBED"] + layers + ["NORM", "LM_HEAD"]
    }
    let head = known.filter { blocks.contains($0) }
    let rest = blocks.subtracting(head).sorted()
    return head + rest
  }

  /// Components in reading order: UNet, text encoders, VAE; an LLM's parts in depth order;
  /// then anything else alphabetically.
  static func sortedComponents(_ components: Set<String>) -> [String] {
    let known = ["unet", "clip_l", "clip_g", "clip_h", "vae", "embed", "layers", "norm", "lm_head"]
    let head = known.filter { components.contains($0) }
    return head + components.subtracting(head).sorted()
  }
}
