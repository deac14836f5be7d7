import Testing

@testable import Architectures

typealias Key = (name: String, shape: [Int])

func keys(_ layout: Layout, optional: Bool = false) -> [Key] {
  layout.keys.filter { optional || !$0.optional }.map { ($0.name, $0.shape) }
}

func componentCounts(_ keys: [Key], _ arch: Architecture) -> [String: Int] {
  var c: [String: Int] = [:]
  for k in keys { c[Detection.component(of: k.name, in: arch), default: 0] += 1 }
  return c
}

enum Fixtures {
  /// An SD2 checkpoint: SD1's UNet with 1024-wide cross-attention and VAE, and the OpenCLIP
  /// ViT-H text encoder (24 resblocks) under `cond_stage_model.model.`.
  static func sd2(unetOnly: Bool = false) -> [Key] {
    var out: [Key] = Layout.sd1.requiredKeys.filter { !$0.name.hasPrefix("cond_stage_model.") }.map { k in
      if k.name.hasSuffix("attn2.to_k.weight") || k.name.hasSuffix("attn2.to_v.weight") { return (k.name, [k.shape[0], 1024]) }
      return (k.name, k.shape)
    }
    if unetOnly { return out.filter { $0.name.hasPrefix("model.diffusion_model.") } }
    let p = "cond_stage_model.model."
    out += [
      (p + "positional_embedding", [77, 1024]), (p + "token_embedding.weight", [49408, 1024]), (p + "ln_final.weight", [1024]),
      (p + "ln_final.bias", [1024]), (p + "text_projection", [1024, 1024]), (p + "logit_scale", []),
    ]
    let block = [
      "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias", "ln_1.weight", "ln_1.bias",
      "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
    ]
    for l in 0..<24 { for s in block { out.append((p + "transformer.resblocks.\(l).\(s)", [1024])) } }
    return out
  }

  /// The UNet keys alone; without SDXL's label embedding only the cross-attention width is left to tell.
  static func unetOnly(_ layout: Layout, labelEmbedding: Bool = false) -> [Key] {
    keys(layout).filter { $0.name.hasPrefix("model.diffusion_model.") && (labelEmbedding || !$0.name.contains("label_emb")) }
  }
}

@Suite("Architecture detection")
struct DetectionTests {
  @Test("SD1: the full layout, its required keys, and with EMA and scheduler keys")
  func sd1() {
    #expect(Detection.architecture(of: keys(.sd1)) == .sd1)
    #expect(Detection.architecture(of: keys(.sd1, optional: true)) == .sd1)
    let c = componentCounts(keys(.sd1), .sd1)
    #expect(c == ["clip_l": 196, "unet": 686, "vae": 248])
    #expect(Detection.layerCounts(of: keys(.sd1).map(\.name), in: .sd1) == ["clip_l": 12, "unet": 25, "vae": 8])
  }

  @Test("SD1 carrying EMA weights: still SD1; EMA, scheduler and position_ids are extra keys, nothing is missing")
  func sd1WithEMA() {
    let all = keys(.sd1, optional: true)
    #expect(Detection.architecture(of: all) == .sd1)
    let c = componentCounts(all, .sd1)
    #expect(c["ema"] == Layout.sd1.keys.filter { $0.component == "ema" }.count)
    #expect((c["ema"] ?? 0) > 600)
    #expect(c["scheduler"] == Layout.sd1.keys.filter { $0.component == "scheduler" }.count)
    let (extra, missing) = Detection.layoutDifferences(names: all.map(\.name), arch: .sd1)
    #expect(missing.isEmpty)
    #expect(extra.count == Layout.sd1.keys.filter(\.optional).count)
    #expect(extra.contains("cond_stage_model.transformer.text_model.embeddings.position_ids"))
    #expect(extra.contains("model_ema.decay") && extra.contains("alphas_cumprod"))
    #expect(extra == extra.sorted())
  }

  @Test("SDXL: both text encoders and the 19-block UNet")
  func sdxl() {
    #expect(Detection.architecture(of: keys(.sdxl)) == .sdxl)
    #expect(Detection.architecture(of: keys(.sdxl, optional: true)) == .sdxl)
    // The layout marks the text encoders' last layers optional (SDXL conditions on the
    // penultimate one, and some files omit it); a complete file has them all.
    let layers = Detection.layerCounts(of: keys(.sdxl, optional: true).map(\.name), in: .sdxl)
    #expect(layers == ["clip_l": 12, "clip_g": 32, "unet": 19, "vae": 8])
    let required = Detection.layerCounts(of: keys(.sdxl).map(\.name), in: .sdxl)
    #expect(required == ["clip_l": 11, "clip_g": 31, "unet": 19, "vae": 8])
    let c = componentCounts(keys(.sdxl), .sdxl)
    #expect(Set(c.keys) == ["clip_l", "clip_g", "unet", "vae"])
  }

  @Test("SD2: the OpenCLIP text encoder (cond_stage_model.model.transformer.resblocks.*)")
  func sd2() {
    let k = Fixtures.sd2()
    #expect(Detection.architecture(of: k) == .sd2)
    #expect(Detection.layerCounts(of: k.map(\.name), in: .sd2) == ["clip_h": 24, "unet": 25, "vae": 8])
    #expect(componentCounts(k, .sd2)["clip_h"] == 6 + 24 * 12)
    // The text encoder alone is enough, whatever the UNet's width says.
    let textOnly =
      k.filter { $0.name.hasPrefix("cond_stage_model.") } + keys(.sd1).filter { $0.name.hasPrefix("model.diffusion_model.") }
    #expect(Detection.architecture(of: textOnly) == .sd2)
  }

  @Test(
    "UNet-only files are told apart by their cross-attention width",
    arguments: [(768, Architecture.sd1), (1024, .sd2), (2048, .sdxl)])
  func unetOnly(width: Int, expected: Architecture) {
    let k: [Key]
    switch width {
    case 768: k = Fixtures.unetOnly(.sd1)
    case 1024: k = Fixtures.sd2(unetOnly: true)
    default: k = Fixtures.unetOnly(.sdxl)
    }
    #expect(!k.contains { $0.name.contains("label_emb") || $0.name.hasPrefix("cond_stage_model") })
    #expect(Detection.architecture(of: k) == expected)
    let complete = width == 2048 ? Fixtures.unetOnly(.sdxl, labelEmbedding: true) : k
    let (_, missing) = Detection.layoutDifferences(names: complete.map(\.name), arch: expected)
    #expect(missing.isEmpty, "UNet-only files do not miss the other components")
  }

  @Test("SDXL is recognised by its label embedding or its conditioner keys alone")
  func sdxlSignatures() {
    #expect(Detection.architecture(of: [("model.diffusion_model.label_emb.0.0.weight", [1280, 2816])]) == .sdxl)
    #expect(Detection.architecture(of: [("conditioner.embedders.1.model.ln_final.weight", [1280])]) == .sdxl)
  }

  @Test("Llama: decoder layers and embeddings; components and layer count")
  func llama() {
    let l = LlamaConfig.reference.layout()
    let k = keys(l)
    #expect(Detection.architecture(of: k) == .llama)
    #expect(componentCounts(k, .llama) == ["embed": 1, "layers": 22 * 9, "norm": 1, "lm_head": 1])
    #expect(Detection.layerCounts(of: k.map(\.name), in: .llama) == ["layers": 22])
    #expect(Detection.architecture(of: k.filter { $0.name.hasPrefix("model.layers.") }) == .llama)
  }

  @Test("anything else is unknown")
  func unknown() {
    #expect(Detection.architecture(of: []) == .unknown)
    #expect(Detection.architecture(of: [("encoder.weight", [3, 3]), ("decoder.bias", [3])]) == .unknown)
    #expect(Detection.architecture(of: [("model.embed_tokens.weight", [10, 4])]) == .unknown)
    #expect(Detection.architecture(of: [("lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", [4, 4])]) == .unknown)
  }

  @Test(
    "components of special keys",
    arguments: [
      ("model_ema.diffusion_modelinput_blocks00weight", "ema"), ("model_ema.decay", "ema"), ("denoiser.sigmas", "scheduler"),
      ("alphas_cumprod", "scheduler"), ("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", "lora"),
      ("model.diffusion_model.input_blocks.1.1.proj_in.lora_A.weight", "lora"), ("first_stage_model.decoder.conv_in.bias", "vae"),
      ("cond_stage_model.transformer.text_model.embeddings.position_ids", "clip_l"), ("something.else", "other"),
    ])
  func specialComponents(name: String, component: String) {
    #expect(Detection.component(of: name, in: .sd1) == component)
  }

  @Test("layoutDifferences names the missing key of a component the file has, and foreign keys as extra")
  func differences() {
    var names = keys(.sd1).map(\.name)
    let dropped = "model.diffusion_model.out.2.bias"
    names.removeAll { $0 == dropped }
    names += ["denoiser.sigmas", "lora_unet_x.lora_up.weight"]
    let (extra, missing) = Detection.layoutDifferences(names: names, arch: .sd1)
    #expect(missing == [dropped])
    #expect(extra == ["denoiser.sigmas", "lora_unet_x.lora_up.weight"])
  }
}
