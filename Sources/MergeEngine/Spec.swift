import Architectures
import SafeTensors

/// A key pattern: a glob over the whole key (`*` any run of characters, `?` one character),
/// or a regular expression searched anywhere in the key.
public enum KeyPattern: Sendable, Hashable, Codable, CustomStringConvertible {
  case glob(String)
  case regex(String)

  public func matches(_ key: String) -> Bool {
    switch self {
    case .glob(let g): return KeyPattern.globMatch(Array(g.utf8), Array(key.utf8))
    case .regex(let r):
      guard let re = try? Regex(r) else { return false }
      return key.firstMatch(of: re) != nil
    }
  }

  /// Checks a regex compiles; recipes validate patterns before any tensor is read.
  public static func validateRegex(_ r: String) -> String? {
    do {
      _ = try Regex(r)
      return nil
    } catch {
      return "\(error)"
    }
  }

  public var description: String {
    switch self {
    case .glob(let g): return g
    case .regex(let r): return "/\(r)/"
    }
  }

  static func globMatch(_ p: [UInt8], _ s: [UInt8]) -> Bool {
    var pi = 0
    var si = 0
    var star = -1
    var mark = 0
    while si < s.count {
      if pi < p.count && (p[pi] == UInt8(ascii: "?") || p[pi] == s[si]) {
        pi += 1
        si += 1
      } else if pi < p.count && p[pi] == UInt8(ascii: "*") {
        star = pi
        mark = si
        pi += 1
      } else if star >= 0 {
        pi = star + 1
        mark += 1
        si = mark
      } else {
        return false
      }
    }
    while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
    return pi == p.count
  }
}

/// What a parameter is resolved against for one tensor.
public struct KeyContext: Sendable {
  public var key: String
  public var component: String
  public var block: String
  /// Depth position in [0, 1] for layered models, nil for keys outside layers.
  public var layerPosition: Double?
}

/// A numeric parameter that may vary by tensor: a constant, one value per block, a gradient
/// over layer depth, or rules on key names (first match wins).
public indirect enum ParamValue: Sendable, Equatable {
  case constant(Double)
  case blocks([String: Double], fallback: Double?)
  case gradient([Double])
  case rules([KeyRule], fallback: ParamValue?)

  public struct KeyRule: Sendable, Equatable {
    public var pattern: KeyPattern
    public var value: ParamValue
    public init(pattern: KeyPattern, value: ParamValue) {
      self.pattern = pattern
      self.value = value
    }
  }

  /// The value for one tensor.
  ///
  /// - Throws: `MergeError.parameter` when a block has no value and there is no fallback.
  public func resolve(_ ctx: KeyContext, name: String) throws(MergeError) -> Double {
    switch self {
    case .constant(let v):
      return v
    case .blocks(let values, let fallback):
      if let v = values[ctx.block] { return v }
      if ctx.block == "VAE", let v = values["BASE"] { return v }
      if let fallback { return fallback }
      throw .parameter(name: name, key: ctx.key, reason: "no value for block \(ctx.block)")
    case .gradient(let values):
      guard !values.isEmpty else { throw .parameter(name: name, key: ctx.key, reason: "empty gradient") }
      if values.count == 1 { return values[0] }
      let x = (ctx.layerPosition ?? 0) * Double(values.count - 1)
      let lo = min(values.count - 1, max(0, Int(x.rounded(.down))))
      let hi = min(values.count - 1, lo + 1)
      let frac = x - Double(lo)
      return values[lo] + (values[hi] - values[lo]) * frac
    case .rules(let rules, let fallback):
      for r in rules where r.pattern.matches(ctx.key) { return try r.value.resolve(ctx, name: name) }
      if let fallback { return try fallback.resolve(ctx, name: name) }
      throw .parameter(name: name, key: ctx.key, reason: "no filter matches this key and there is no default")
    }
  }

  /// True when the value is the same for every tensor.
  public var isConstant: Bool {
    if case .constant = self { return true }
    return false
  }
}

/// A reference to an input model or an earlier step.
public enum Ref: Sendable, Hashable {
  case input(Int)
  case node(Int)
}

/// The merge methods. Raw values are the names recipes use.
public enum MethodName: String, Sendable, CaseIterable, Codable {
  case weightedSum = "weighted_sum"
  case addDifference = "add_difference"
  case average
  case tripleSum = "triple_sum"
  case sumTwice = "sum_twice"
  case slerp
  case multislerp
  case karcher
  case taskArithmetic = "task_arithmetic"
  case ties
  case dare
  case della
  case breadcrumbs
  case modelStock = "model_stock"
  case geometricMedian = "geometric_median"
  // Named presets of the Stable Diffusion merging community (see docs/methods.md).
  case tiesSoup = "ties_soup"
  case tsd
  case tgmd
  case dgmla
}

/// One step of a recipe graph.
public struct NodeSpec: Sendable {
  public var id: String
  public var method: MethodName
  public var operands: [Ref]
  public var base: Ref?
  /// Per-operand weights (nil: method default).
  public var weights: [ParamValue]?
  public var params: [String: ParamValue]
  public var options: [String: String]
  public var seed: UInt64?

  public init(
    id: String, method: MethodName, operands: [Ref], base: Ref? = nil, weights: [ParamValue]? = nil,
    params: [String: ParamValue] = [:], options: [String: String] = [:], seed: UInt64? = nil
  ) {
    self.id = id
    self.method = method
    self.operands = operands
    self.base = base
    self.weights = weights
    self.params = params
    self.options = options
    self.seed = seed
  }
}

/// Which output keys an assembly rule claims.
public enum KeySelector: Sendable, Equatable {
  case all
  case components(Set<String>)
  case blocks(Set<String>)
  case pattern(KeyPattern)

  func matches(_ ctx: KeyContext) -> Bool {
    switch self {
    case .all: return true
    case .components(let c): return c.contains(ctx.component)
    case .blocks(let b): return b.contains(ctx.block)
    case .pattern(let p): return p.matches(ctx.key)
    }
  }
}

/// Where the claimed keys come from.
public enum Source: Sendable, Equatable {
  /// Computed by a step.
  case node(Int)
  /// Copied from an input model.
  case input(Int)
  /// UNet keys taken from the input's EMA copy (`model_ema.*`).
  case inputEMA(Int)
  /// Left out of the output.
  case drop
}

/// One assembly rule: first match wins; keys no rule claims come from the main step.
public struct AssemblyRule: Sendable, Equatable {
  public var selector: KeySelector
  public var source: Source
  public init(selector: KeySelector, source: Source) {
    self.selector = selector
    self.source = source
  }
}

/// What to do when an input lacks a key or has another shape.
public enum KeyPolicy: String, Sendable, Codable, CaseIterable {
  /// Stop before any math, naming model and key.
  case error
  /// Copy the reference input's tensor for that key.
  case copyReference = "copy_reference"
}

/// What to do with NaN and infinite input values.
public enum NonFinitePolicy: String, Sendable, Codable, CaseIterable {
  /// Stop before any math, naming model and key.
  case error
  /// Treat them as 0 in that model.
  case zero
  /// Merge them like any value (the output will likely be non-finite too).
  case propagate
}

/// A complete merge, independent of any file format: inputs, steps, assembly and policies.
public struct MergeSpec: Sendable {
  public var inputNames: [String]
  public var nodes: [NodeSpec]
  /// The step (or input) giving every key no rule claims.
  public var main: Ref
  public var rules: [AssemblyRule]
  /// The input whose keys, shapes and integer tensors define the output.
  public var reference: Int
  public var computeType: ComputeType
  public var outputDType: DType
  public var seed: UInt64
  public var timeEmbed: TimeEmbedPlacement
  public var keyPolicy: KeyPolicy
  public var nonFinitePolicy: NonFinitePolicy
  public var metadata: [String: String]

  public init(
    inputNames: [String], nodes: [NodeSpec], main: Ref, rules: [AssemblyRule] = [], reference: Int = 0,
    computeType: ComputeType = .f32, outputDType: DType = .f16, seed: UInt64 = 0,
    timeEmbed: TimeEmbedPlacement = .base, keyPolicy: KeyPolicy = .error, nonFinitePolicy: NonFinitePolicy = .error,
    metadata: [String: String] = [:]
  ) {
    self.inputNames = inputNames
    self.nodes = nodes
    self.main = main
    self.rules = rules
    self.reference = reference
    self.computeType = computeType
    self.outputDType = outputDType
    self.seed = seed
    self.timeEmbed = timeEmbed
    self.keyPolicy = keyPolicy
    self.nonFinitePolicy = nonFinitePolicy
    self.metadata = metadata
  }
}
