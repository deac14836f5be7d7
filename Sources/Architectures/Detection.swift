import SafeTensors

/// Recognises a checkpoint's family from its key names (and, for UNet-only files, the
/// cross-attention width), and sorts keys into components.
public enum Detection {
  static let schedulerKeys: Set<String> = [
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    "logvar", "denoiser.sigmas", "denoiser.log_sigmas", "model_sampling.sigmas", "v_pred", "ztsnr",
    "edm_vpred.sigma_max", "edm_vpred.sigma_min",
  ]

  /// The family of a checkpoint given its tensors' names and shapes.
  public static func architecture(of tensors: [(name: String, shape: [Int])]) -> Architecture {
    var hasSD1Text = false
    var hasOpenCLIPH = false
    var hasSDXLText = false
    var hasLabelEmb = false
    var hasUNet = false
    var contextWidth: Int?
    var llamaLayers = false
    var llamaEmbed = false
    for t in tensors {
      let n = t.name
      if n.hasPrefix("cond_stage_model.transformer.") { hasSD1Text = true }
      if n.hasPrefix("cond_stage_model.model.") { hasOpenCLIPH = true }
      if n.hasPrefix("conditioner.embedders.") { hasSDXLText = true }
      if n.hasPrefix("model.diffusion_model.label_emb.") { hasLabelEmb = true }
      if n.hasPrefix("model.diffusion_model.") {
        hasUNet = true
        if contextWidth == nil, n.hasSuffix(".attn2.to_k.weight"), t.shape.count == 2 { contextWidth = t.shape[1] }
      }
      if n.hasPrefix("model.layers."), n.hasSuffix(".self_attn.q_proj.weight") { llamaLayers = true }
      if n == "model.embed_tokens.weight" { llamaEmbed = true }
    }
    if hasSDXLText || hasLabelEmb || contextWidth == 2048 { return .sdxl }
    if hasOpenCLIPH || contextWidth == 1024 { return .sd2 }
    if hasSD1Text || contextWidth == 768 { return .sd1 }
    if hasUNet { return .sd1 }
    if llamaLayers && llamaEmbed { return .llama }
    if llamaLayers { return .llama }
    return .unknown
  }

  /// True for keys of an embedded LoRA (kohya and PEFT spellings).
  public static func isLoRA(_ name: String) -> Bool {
    name.hasPrefix("lora_") || name.contains(".lora_up.") || name.contains(".lora_down.") || name.contains(".lora_A.")
      || name.contains(".lora_B.") || name.contains("lora_te_") || name.contains("lora_unet_")
  }

  /// The component a key belongs to: unet, clip_l, clip_g, clip_h (SD2's OpenCLIP ViT-H),
  /// vae, ema, scheduler, lora, other; for Llama: embed, layers, norm, lm_head.
  public static func component(of name: String, in arch: Architecture) -> String {
    if name.hasPrefix("model_ema.") { return "ema" }
    if isLoRA(name) { return "lora" }
    if schedulerKeys.contains(name) { return "scheduler" }
    if name.hasPrefix("model.diffusion_model.") { return "unet" }
    if name.hasPrefix("first_stage_model.") { return "vae" }
    if name.hasPrefix("cond_stage_model.transformer.") { return "clip_l" }
    if name.hasPrefix("cond_stage_model.model.") { return "clip_h" }
    if name.hasPrefix("conditioner.embedders.0.") { return arch == .sdxl ? "clip_l" : "other" }
    if name.hasPrefix("conditioner.embedders.1.") { return "clip_g" }
    if arch == .llama || arch == .unknown {
      if name.hasPrefix("model.embed_tokens.") { return "embed" }
      if name.hasPrefix("model.layers.") { return "layers" }
      if name.hasPrefix("model.norm.") { return "norm" }
      if name.hasPrefix("lm_head.") { return "lm_head" }
    }
    return "other"
  }

  /// Layer counts per component: transformer layers for text encoders and Llama, input +
  /// middle + output blocks for a UNet, down + up blocks for a VAE.
  public static func layerCounts(of names: [String], in arch: Architecture) -> [String: Int] {
    var sets: [String: Set<String>] = [:]
    func note(_ component: String, _ id: String) { sets[component, default: []].insert(id) }
    for n in names {
      let c = component(of: n, in: arch)
      switch c {
      case "unet":
        if let i = index(after: "model.diffusion_model.input_blocks.", in: n) { note(c, "in\(i)") }
        if n.hasPrefix("model.diffusion_model.middle_block.") { note(c, "mid") }
        if let i = index(after: "model.diffusion_model.output_blocks.", in: n) { note(c, "out\(i)") }
      case "vae":
        if let i = index(after: "first_stage_model.encoder.down.", in: n) { note(c, "down\(i)") }
        if let i = index(after: "first_stage_model.decoder.up.", in: n) { note(c, "up\(i)") }
      case "clip_l":
        if let r = n.range(of: ".encoder.layers."), let i = leadingInt(n[r.upperBound...]) { note(c, "\(i)") }
      case "clip_g", "clip_h":
        if let r = n.range(of: ".transformer.resblocks."), let i = leadingInt(n[r.upperBound...]) { note(c, "\(i)") }
      case "layers":
        if let i = index(after: "model.layers.", in: n) { note(c, "\(i)") }
      default:
        break
      }
    }
    return sets.mapValues(\.count)
  }

  static func index(after prefix: String, in name: String) -> Int? {
    guard name.hasPrefix(prefix) else { return nil }
    return leadingInt(name.dropFirst(prefix.count))
  }

  static func leadingInt(_ s: Substring) -> Int? {
    let digits = s.prefix { $0.isASCII && $0.isNumber }
    return digits.isEmpty ? nil : Int(digits)
  }

  /// Keys outside the reference layout's required set (EMA, scheduler buffers, embedded
  /// LoRA, position_ids, anything unexpected), and required keys that are missing.
  public static func layoutDifferences(names: [String], arch: Architecture) -> (extra: [String], missing: [String]) {
    guard let layout = Layout.reference(arch), arch != .llama else {
      let extra = names.filter {
        let c = component(of: $0, in: arch)
        return ["ema", "scheduler", "lora", "other"].contains(c) || $0.hasSuffix("position_ids")
          || $0.hasSuffix("rotary_emb.inv_freq")
      }
      return (extra.sorted(), [])
    }
    let required = Set(layout.requiredKeys.map(\.name))
    let present = Set(names)
    let extra = names.filter { !required.contains($0) }.sorted()
    // Only report missing keys of components the file has at all (UNet-only files are normal).
    let presentComponents = Set(names.map { component(of: $0, in: arch) })
    let missing = layout.requiredKeys.filter { !present.contains($0.name) && presentComponents.contains($0.component) }
      .map(\.name).sorted()
    return (extra, missing)
  }
}
