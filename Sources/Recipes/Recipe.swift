import MergeEngine
import SafeTensors

/// A parameter as written in a recipe: like `ParamValue`, plus positional block lists whose
/// names depend on the architecture of the inputs.
public indirect enum RecipeParam: Sendable, Equatable {
  case constant(Double)
  /// Block values by name (BASE, IN00, …, M00, OUT…, VAE).
  case blocks([String: Double], fallback: Double?)
  /// Block values in block order; the length selects SD1/SD2 (26 or 27 with VAE) or SDXL
  /// (20 or 21 with VAE).
  case blockList([Double])
  case gradient([Double])
  case rules([(pattern: KeyPattern, value: RecipeParam)], fallback: RecipeParam?)

  public static func == (a: RecipeParam, b: RecipeParam) -> Bool {
    switch (a, b) {
    case (.constant(let x), .constant(let y)): return x == y
    case (.blocks(let x, let f), .blocks(let y, let g)): return x == y && f == g
    case (.blockList(let x), .blockList(let y)): return x == y
    case (.gradient(let x), .gradient(let y)): return x == y
    case (.rules(let x, let f), .rules(let y, let g)):
      return x.count == y.count && zip(x, y).allSatisfy { $0.pattern == $1.pattern && $0.value == $1.value } && f == g
    default: return false
    }
  }

  /// The engine's form, once the block names of the architecture are known.
  public func engineValue(blockNames: [String]) throws(RecipeParamError) -> ParamValue {
    switch self {
    case .constant(let v): return .constant(v)
    case .blocks(let v, let f): return .blocks(v, fallback: f)
    case .gradient(let v): return .gradient(v)
    case .blockList(let v):
      let withoutVAE = blockNames.filter { $0 != "VAE" }
      if v.count == blockNames.count {
        return .blocks(Dictionary(uniqueKeysWithValues: zip(blockNames, v)), fallback: nil)
      }
      if v.count == withoutVAE.count {
        return .blocks(Dictionary(uniqueKeysWithValues: zip(withoutVAE, v)), fallback: nil)
      }
      throw RecipeParamError(
        message:
          "a block list for this architecture has \(withoutVAE.count) values (\(withoutVAE.first ?? "")…\(withoutVAE.last ?? "")) or \(blockNames.count) with VAE; this one has \(v.count)"
      )
    case .rules(let rules, let fallback):
      var out: [ParamValue.KeyRule] = []
      for r in rules { out.append(.init(pattern: r.pattern, value: try r.value.engineValue(blockNames: blockNames))) }
      return .rules(out, fallback: try fallback?.engineValue(blockNames: blockNames))
    }
  }
}

public struct RecipeParamError: Error, Sendable {
  public var message: String
}

/// Where an input's bytes come from.
public enum InputSource: Sendable, Equatable {
  /// A .safetensors file or sharded folder, relative to the recipe's folder unless absolute.
  case file(path: String)
  /// The output of another recipe of the same experiment.
  case recipe(name: String)
  /// A deterministic synthetic model (`mixlab synth` parameters), materialized on demand.
  case synth(SynthInput)
}

public struct SynthInput: Sendable, Equatable, Hashable {
  public var arch: String
  public var seed: UInt64
  public var index: Int
  public var scale: Double
  public var dtype: String
}

public struct RecipeInput: Sendable, Equatable {
  public var name: String
  public var source: InputSource
  /// Expected file SHA-256 (full hex or a prefix of at least 10, like AutoV2).
  public var sha256: String?
  public var line: Int
}

public struct RecipeStep: Sendable, Equatable {
  public var name: String
  public var method: MethodName
  public var models: [String]
  public var base: String?
  public var weights: [RecipeParam]?
  public var params: [String: RecipeParam]
  public var options: [String: String]
  public var seed: UInt64?
  public var line: Int
}

public enum AssembleSelector: Sendable, Equatable {
  case all
  case components([String])
  case blocks([String])
  case match(String)
  case regex(String)
}

public enum AssembleSource: Sendable, Equatable {
  case from(String)
  case ema(String)
  case drop
}

public struct AssembleRule: Sendable, Equatable {
  public var selector: AssembleSelector
  public var source: AssembleSource
  public var line: Int
}

public struct RecipeOutput: Sendable, Equatable {
  public var from: String
  public var assemble: [AssembleRule]
  public var dtype: DType
  public var compute: ComputeType
  public var seed: UInt64
  public var timeEmbed: TimeEmbedPlacement
  public var keyPolicy: KeyPolicy
  public var nonFinite: NonFinitePolicy
  public var reference: String?
  public var shardBytes: Int?
  public var metadata: [String: String]
}

/// A parsed, validated recipe (format version 1).
public struct Recipe: Sendable {
  public static let formatVersion = 1

  public var file: String
  public var name: String
  public var text: String
  public var description: String?
  public var inputs: [RecipeInput]
  /// In dependency order.
  public var steps: [RecipeStep]
  public var output: RecipeOutput
  /// Canonical JSON (sorted keys, defaults filled in, paths left out).
  public var canonical: String
  /// SHA-256 of `canonical`.
  public var hash: String
  /// Commands that score the output after a merge (not part of the hash: they do not change
  /// the output).
  public var evaluators: [EvaluatorSpec] = []
  /// For a point of a parameter sweep: the swept parameters and their values.
  public var sweepPoint: SweepPoint?

  /// The input whose keys, shapes and integer tensors define the output.
  public var referenceInput: String { Recipe.referenceInput(inputs: inputs, steps: steps, output: output) }

  /// `output.reference`, else the base of the main step (following steps down), else its
  /// first model, else the first input.
  static func referenceInput(inputs: [RecipeInput], steps: [RecipeStep], output: RecipeOutput) -> String {
    if let r = output.reference { return r }
    let inputNames = Set(inputs.map(\.name))
    var name = output.from
    var seen = Set<String>()
    while seen.insert(name).inserted {
      if inputNames.contains(name) { return name }
      guard let s = steps.first(where: { $0.name == name }) else { break }
      name = s.base ?? s.models[0]
    }
    return inputs[0].name
  }

  /// Names of the inputs the merge reads: those reachable from `output.from`, the output's
  /// reference and its assemble rules through the steps. An input only an evaluator names
  /// (a scoring reference) is not among them, so it is never presented as a parent of the mix.
  public var mergeInputs: Set<String> { Recipe.reachable(inputs: inputs, steps: steps, output: output).inputs }

  /// Warnings about the recipe, each `file:line: message`: inputs and steps that nothing
  /// reads. An unused input is still resolved and hashed (it is part of what the recipe
  /// declares) but it is not a parent of the mix: the card and `mergeInputs` leave it out. An
  /// input that only an evaluator names (`{input:NAME}`, a scoring reference) is not warned about.
  public var warnings: [String] {
    let used = Recipe.reachable(inputs: inputs, steps: steps, output: output)
    let evaluated = Set(
      evaluators.flatMap { $0.command.flatMap(RecipeParser.placeholders(in:)) }.filter { $0.hasPrefix("input:") }
        .map { String($0.dropFirst(6)) })
    var out: [String] = []
    for input in inputs where !used.inputs.contains(input.name) && !evaluated.contains(input.name) {
      out.append(
        "\(file):\(input.line): input `\(input.name)` is never used (no step, `output.from`, `output.reference`, assemble rule or evaluator reads it); it is not a parent of the mix — remove it or use it"
      )
    }
    for step in steps where !used.steps.contains(step.name) {
      out.append(
        "\(file):\(step.line): step `\(step.name)` is never used: `output.from` does not lead to it, so it does not change the output — remove it, or check `output.from`"
      )
    }
    return out
  }

  /// Inputs and steps reachable from the output (see `mergeInputs`).
  static func reachable(inputs: [RecipeInput], steps: [RecipeStep], output: RecipeOutput) -> (
    inputs: Set<String>, steps: Set<String>
  ) {
    let inputNames = Set(inputs.map(\.name))
    var roots = [output.from]
    if let r = output.reference { roots.append(r) }
    for rule in output.assemble {
      switch rule.source {
      case .from(let n), .ema(let n): roots.append(n)
      case .drop: break
      }
    }
    var usedInputs = Set<String>()
    var usedSteps = Set<String>()
    var stack = roots
    while let name = stack.popLast() {
      if inputNames.contains(name) {
        usedInputs.insert(name)
      } else if let s = steps.first(where: { $0.name == name }), usedSteps.insert(name).inserted {
        stack.append(contentsOf: s.models)
        if let b = s.base { stack.append(b) }
      }
    }
    return (usedInputs, usedSteps)
  }

  /// Names of other recipes this one reads.
  public var dependencies: [String] {
    inputs.compactMap { if case .recipe(let n) = $0.source { return n } else { return nil } }
  }
}

/// An external evaluator: a command run after the merge whose standard output is a JSON
/// object of named numbers, recorded as metrics of the run.
public struct EvaluatorSpec: Sendable, Equatable {
  public var name: String
  /// argv; placeholders `{artifact}`, `{output_sha256}`, `{recipe}`, `{experiment}`,
  /// `{workspace}` and `{input:NAME}` are expanded when it runs.
  public var command: [String]
  public var timeout: Double
  public var line: Int
  /// Metrics of this evaluator for which lower is better (a distance, an FID, a loss).
  public var minimize: [String]
  /// Metrics of this evaluator for which higher is better, whatever their name suggests.
  public var maximize: [String]

  public init(name: String, command: [String], timeout: Double, line: Int, minimize: [String] = [], maximize: [String] = []) {
    self.name = name
    self.command = command
    self.timeout = timeout
    self.line = line
    self.minimize = minimize
    self.maximize = maximize
  }
}

/// Which sweep a recipe point comes from and the values it takes.
public struct SweepPoint: Sendable, Equatable {
  /// The swept recipe's name (the points are `<name>-<index>`).
  public var sweep: String
  public var index: Int
  /// Parameter path (e.g. `steps.blend.alpha` or `steps.blend.alpha.blocks.IN04`) → value.
  public var values: [(path: String, value: Double)]

  public static func == (a: SweepPoint, b: SweepPoint) -> Bool {
    a.sweep == b.sweep && a.index == b.index && a.values.map(\.path) == b.values.map(\.path)
      && a.values.map(\.value) == b.values.map(\.value)
  }
}
