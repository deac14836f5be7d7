import SafeTensors

/// The model families mixlab recognises.
public enum Architecture: String, Sendable, Codable, CaseIterable {
  case sd1, sd2, sdxl, llama, unknown
}

/// One key of a reference checkpoint layout.
public struct LayoutKey: Sendable, Hashable {
  public var name: String
  public var component: String
  public var dtype: DType
  public var shape: [Int]
  /// EMA, scheduler buffers and similar keys that real files may or may not carry.
  public var optional: Bool
}

/// The full key layout of a reference checkpoint.
public struct Layout: Sendable {
  public var architecture: Architecture
  public var keys: [LayoutKey]

  /// Keys every complete checkpoint of this family has.
  public var requiredKeys: [LayoutKey] { keys.filter { !$0.optional } }

  /// The layout of `architecture`, where mixlab has one (SD1 and SDXL from the original
  /// checkpoints; Llama generated from `LlamaConfig.reference`).
  public static func reference(_ architecture: Architecture) -> Layout? {
    switch architecture {
    case .sd1: return sd1
    case .sdxl: return sdxl
    case .llama: return LlamaConfig.reference.layout()
    case .sd2, .unknown: return nil
    }
  }

  public static let sd1 = Layout(architecture: .sd1, keys: parse(LayoutData.sd1))
  public static let sdxl = Layout(architecture: .sdxl, keys: parse(LayoutData.sdxl))

  static func parse(_ text: String) -> [LayoutKey] {
    text.split(separator: "\n").map { line in
      let f = line.split(separator: "\t", omittingEmptySubsequences: false)
      let shape = f[3].isEmpty ? [] : f[3].split(separator: ",").map { Int($0)! }
      return LayoutKey(
        name: String(f[0]), component: String(f[1]), dtype: DType(rawValue: String(f[2]))!,
        shape: shape, optional: f.count > 4 && f[4] == "o")
    }
  }
}

/// Shape parameters of a Llama-style decoder, and the tensors it implies.
public struct LlamaConfig: Sendable, Codable, Equatable {
  public var vocabSize: Int
  public var hiddenSize: Int
  public var intermediateSize: Int
  public var numHiddenLayers: Int
  public var numAttentionHeads: Int
  public var numKeyValueHeads: Int
  public var headDim: Int

  /// A TinyLlama-1.1B-shaped decoder (22 layers, hidden 2048, grouped-query attention).
  public static let reference = LlamaConfig(
    vocabSize: 32000, hiddenSize: 2048, intermediateSize: 5632, numHiddenLayers: 22,
    numAttentionHeads: 32, numKeyValueHeads: 4, headDim: 64)

  /// Every dimension multiplied by `scale` (at least 1); the layer count is kept.
  public func scaled(_ scale: Double) -> LlamaConfig {
    func s(_ d: Int) -> Int { max(1, Int((Double(d) * scale).rounded())) }
    return LlamaConfig(
      vocabSize: s(vocabSize), hiddenSize: s(hiddenSize), intermediateSize: s(intermediateSize),
      numHiddenLayers: numHiddenLayers, numAttentionHeads: s(numAttentionHeads),
      numKeyValueHeads: s(numKeyValueHeads), headDim: s(headDim))
  }

  /// Hugging Face `config.json` text for this shape (sorted keys, stable bytes).
  public func configJSON(dtype: DType) -> String {
    let torchDType: String
    switch dtype {
    case .bf16: torchDType = "bfloat16"
    case .f32: torchDType = "float32"
    default: torchDType = "float16"
    }
    return """
      {
        "architectures": ["LlamaForCausalLM"],
        "head_dim": \(headDim),
        "hidden_act": "silu",
        "hidden_size": \(hiddenSize),
        "intermediate_size": \(intermediateSize),
        "max_position_embeddings": 2048,
        "model_type": "llama",
        "num_attention_heads": \(numAttentionHeads),
        "num_hidden_layers": \(numHiddenLayers),
        "num_key_value_heads": \(numKeyValueHeads),
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "tie_word_embeddings": false,
        "torch_dtype": "\(torchDType)",
        "vocab_size": \(vocabSize)
      }

      """
  }

  /// The tensors of this decoder, in Hugging Face naming.
  public func layout() -> Layout {
    var keys: [LayoutKey] = []
    func add(_ name: String, _ component: String, _ shape: [Int]) {
      keys.append(LayoutKey(name: name, component: component, dtype: .f32, shape: shape, optional: false))
    }
    let q = numAttentionHeads * headDim
    let kv = numKeyValueHeads * headDim
    add("model.embed_tokens.weight", "embed", [vocabSize, hiddenSize])
    for l in 0..<numHiddenLayers {
      let p = "model.layers.\(l)."
      add(p + "input_layernorm.weight", "layers", [hiddenSize])
      add(p + "self_attn.q_proj.weight", "layers", [q, hiddenSize])
      add(p + "self_attn.k_proj.weight", "layers", [kv, hiddenSize])
      add(p + "self_attn.v_proj.weight", "layers", [kv, hiddenSize])
      add(p + "self_attn.o_proj.weight", "layers", [hiddenSize, q])
      add(p + "post_attention_layernorm.weight", "layers", [hiddenSize])
      add(p + "mlp.gate_proj.weight", "layers", [intermediateSize, hiddenSize])
      add(p + "mlp.up_proj.weight", "layers", [intermediateSize, hiddenSize])
      add(p + "mlp.down_proj.weight", "layers", [hiddenSize, intermediateSize])
    }
    add("model.norm.weight", "norm", [hiddenSize])
    add("lm_head.weight", "lm_head", [vocabSize, hiddenSize])
    return Layout(architecture: .llama, keys: keys)
  }
}
