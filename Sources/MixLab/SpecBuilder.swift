import Architectures
import MergeEngine
import Recipes
import SafeTensors

/// Turns a parsed recipe into the engine's `MergeSpec`, once the inputs are open (block
/// lists need the architecture to name their positions).
public enum SpecBuilder {
  public static func build(_ recipe: Recipe, inputs: [Checkpoint]) throws -> MergeSpec {
    let inputIndex = Dictionary(uniqueKeysWithValues: recipe.inputs.enumerated().map { ($1.name, $0) })
    let stepIndex = Dictionary(uniqueKeysWithValues: recipe.steps.enumerated().map { ($1.name, $0) })
    func ref(_ name: String) -> Ref {
      if let i = inputIndex[name] { return .input(i) }
      return .node(stepIndex[name]!)
    }
    let reference = inputIndex[recipe.referenceInput]!
    let arch = Detection.architecture(of: inputs[reference].entries.map { ($0.info.name, $0.info.shape) })
    let blockNames = BlockMap(architecture: arch, timeEmbed: recipe.output.timeEmbed).blockNames
    let knownBlocks = Set(blockNames)
    let ins = blockNames.filter { $0.hasPrefix("IN") }
    let outs = blockNames.filter { $0.hasPrefix("OUT") }
    let blockList =
      ins.isEmpty || outs.isEmpty
      ? blockNames.joined(separator: ", ") : "BASE, \(ins[0])–\(ins.last!), M00, \(outs[0])–\(outs.last!), VAE"
    /// A block the inputs' architecture does not have would silently never match.
    func unknownBlock(_ names: [String]) -> String? {
      names.sorted().first { !knownBlocks.contains($0) }
    }
    func noSuchBlock(_ block: String) -> String {
      "\(arch.rawValue) models have no block \(block) (their blocks: \(blockList))"
    }
    func checkBlocks(_ p: RecipeParam, step: String, name: String) throws {
      switch p {
      case .blocks(let values, _):
        if let bad = unknownBlock(Array(values.keys)) {
          let line = recipe.steps.first { $0.name == step }?.line ?? 1
          throw RecipeError(file: recipe.file, line: line, column: 1, message: "step `\(step)`, \(name): \(noSuchBlock(bad))")
        }
      case .rules(let rules, let fallback):
        for r in rules { try checkBlocks(r.value, step: step, name: name) }
        if let fallback { try checkBlocks(fallback, step: step, name: name) }
      default:
        break
      }
    }
    func engine(_ p: RecipeParam, step: String, name: String) throws -> ParamValue {
      try checkBlocks(p, step: step, name: name)
      do {
        return try p.engineValue(blockNames: blockNames)
      } catch {
        let line = recipe.steps.first { $0.name == step }?.line ?? 1
        throw RecipeError(file: recipe.file, line: line, column: 1, message: "step `\(step)`, \(name): \(error.message)")
      }
    }
    var nodes: [NodeSpec] = []
    for s in recipe.steps {
      var params: [String: ParamValue] = [:]
      for (k, v) in s.params { params[k] = try engine(v, step: s.name, name: k) }
      var weights: [ParamValue]?
      if let w = s.weights {
        weights = []
        for (i, v) in w.enumerated() { weights!.append(try engine(v, step: s.name, name: "weights[\(i)]")) }
      }
      let info = Catalog.info(s.method)
      nodes.append(
        NodeSpec(
          id: s.name, method: s.method, operands: s.models.map(ref), base: s.base.map(ref), weights: weights, params: params,
          options: s.options, seed: info.seeded ? (s.seed ?? recipe.output.seed) : nil))
    }
    var rules: [AssemblyRule] = []
    for r in recipe.output.assemble {
      let selector: KeySelector
      switch r.selector {
      case .all: selector = .all
      case .components(let c): selector = .components(Set(c))
      case .blocks(let b):
        if let bad = unknownBlock(b) {
          throw RecipeError(file: recipe.file, line: r.line, column: 1, message: "assemble rule: \(noSuchBlock(bad))")
        }
        selector = .blocks(Set(b))
      case .match(let g): selector = .pattern(.glob(g))
      case .regex(let x): selector = .pattern(.regex(x))
      }
      let source: Source
      switch r.source {
      case .drop: source = .drop
      case .ema(let n): source = .inputEMA(inputIndex[n]!)
      case .from(let n):
        switch ref(n) {
        case .input(let i): source = .input(i)
        case .node(let j): source = .node(j)
        }
      }
      rules.append(AssemblyRule(selector: selector, source: source))
    }
    var metadata = recipe.output.metadata
    metadata["format"] = "pt"
    metadata["mixlab.recipe_sha256"] = recipe.hash
    metadata["mixlab.engine"] = Engine.version
    return MergeSpec(
      inputNames: recipe.inputs.map(\.name), nodes: nodes, main: ref(recipe.output.from), rules: rules, reference: reference,
      computeType: recipe.output.compute, outputDType: recipe.output.dtype, seed: recipe.output.seed,
      timeEmbed: recipe.output.timeEmbed, keyPolicy: recipe.output.keyPolicy, nonFinitePolicy: recipe.output.nonFinite,
      metadata: metadata)
  }
}
