import Architectures
import SafeTensors

/// A method with every parameter resolved for one tensor.
public enum ResolvedMethod: Sendable, Equatable {
  case linear(LinearForm)
  case gram(GramSolver)
  case task(TaskConfig)
}

/// Where a step reads an operand: a decoded input tensor or an earlier step's result.
public enum Slot: Sendable, Hashable {
  case leaf(Int)
  case step(Int)
}

/// One input tensor a program reads.
public struct Leaf: Sendable, Hashable {
  public var input: Int
  public var key: String
  /// Replace NaN/Inf by 0 on read (non-finite policy `zero`).
  public var sanitize: Bool
}

/// One step of a per-tensor program.
public struct CompiledStep: Sendable {
  public var node: Int
  public var method: ResolvedMethod
  public var operands: [Slot]
  public var base: Slot?
}

/// Everything needed to compute one output tensor: leaves, then steps in order; the last
/// step is the result.
public struct Program: Sendable {
  public var leaves: [Leaf]
  public var steps: [CompiledStep]
}

public enum PlannedSource: Sendable {
  case copy(input: Int, key: String, sanitize: Bool)
  case compute(Program)
}

/// One output tensor and how it is produced.
public struct PlannedTensor: Sendable {
  public var spec: TensorSpec
  public var component: String
  public var block: String
  public var source: PlannedSource
  /// A key-policy decision taken for this tensor, for the dry-run report.
  public var note: String?
}

/// The validated plan of a merge: one entry per output tensor in canonical write order.
public struct MergePlan: Sendable {
  public var architecture: Architecture
  public var tensors: [PlannedTensor]
  public var inputNames: [String]
  public var nodeIDs: [String]
  /// The input that defines the output's keys (the base the metrics compare against).
  public var referenceInput: Int
  public var computeType: ComputeType
  public var metadata: [String: String]
  public var notes: [String]

  public var outputSpecs: [TensorSpec] { tensors.map(\.spec) }
  public var outputBytes: Int { tensors.reduce(0) { $0 + $1.spec.byteCount } }
}

/// Turns a `MergeSpec` and the opened inputs into a `MergePlan`, checking everything that
/// can be checked from headers alone: keys present, shapes equal, integer tensors not merged,
/// parameters in range, NaN/Inf policy. No tensor data is read.
public enum Planner {
  /// - Parameters:
  ///   - nonFinite: per input, the tensors holding NaN/Inf (from the hashing pass).
  /// - Throws: `MergeError` naming the model, key or parameter.
  public static func plan(
    _ spec: MergeSpec, inputs: [Checkpoint], nonFinite: [Int: [String: NonFinite]] = [:]
  ) throws(MergeError) -> MergePlan {
    guard inputs.count == spec.inputNames.count, spec.reference < inputs.count else {
      throw .invalidSpec("the merge names \(spec.inputNames.count) inputs but \(inputs.count) were opened")
    }
    let reference = inputs[spec.reference]
    let arch = Detection.architecture(of: reference.entries.map { ($0.info.name, $0.info.shape) })
    let blocks = BlockMap(architecture: arch, timeEmbed: spec.timeEmbed)
    let layerCount = Planner.layerCount(reference.entries.map(\.info.name))

    // Output keys: the reference's, plus keys an assembly rule copies from another input.
    var keys = reference.entries.map(\.info.name)
    var seen = Set(keys)
    for rule in spec.rules {
      if case .input(let i) = rule.source, i != spec.reference {
        for e in inputs[i].entries where !seen.contains(e.info.name) {
          let ctx = context(e.info.name, arch: arch, blocks: blocks, layers: layerCount)
          if rule.selector.matches(ctx) && firstRule(spec, ctx)?.source == rule.source {
            keys.append(e.info.name)
            seen.insert(e.info.name)
          }
        }
      }
    }

    var planned: [PlannedTensor] = []
    var notes: [String] = []
    var nonFiniteReport: [String] = []
    for key in keys {
      let ctx = context(key, arch: arch, blocks: blocks, layers: layerCount)
      let source = firstRule(spec, ctx)?.source ?? mainSource(spec.main)
      var builder = ProgramBuilder(spec: spec, inputs: inputs, key: key, ctx: ctx)
      var result: PlannedSource
      var note: String?
      do {
        switch source {
        case .drop:
          continue
        case .input(let i):
          try builder.requireTensor(input: i, key: key, step: "copy")
          result = .copy(input: i, key: key, sanitize: false)
        case .inputEMA(let i):
          let emaKey = Planner.emaKey(for: key)
          guard let emaKey, inputs[i].entry(emaKey) != nil else {
            // Keys without an EMA copy (text encoder, VAE) come from the model itself.
            try builder.requireTensor(input: i, key: key, step: "ema")
            result = .copy(input: i, key: key, sanitize: false)
            break
          }
          result = .copy(input: i, key: emaKey, sanitize: false)
        case .node(let j):
          if let refEntry = reference.entry(key), !refEntry.info.dtype.isFloat {
            result = .copy(input: spec.reference, key: key, sanitize: false)
            note = "integer tensor copied from \(spec.inputNames[spec.reference])"
          } else {
            _ = try builder.compile(.node(j))
            result = .compute(builder.program)
          }
        }
      } catch let error {
        switch error {
        case .missingKey, .shapeMismatch:
          guard spec.keyPolicy == .copyReference, reference.entry(key) != nil else { throw error }
          result = .copy(input: spec.reference, key: key, sanitize: false)
          note = "\(error.errorDescription ?? "") → copied from \(spec.inputNames[spec.reference])"
          notes.append("\(key): \(error.errorDescription ?? "")")
        default:
          throw error
        }
      }
      // Non-finite inputs.
      var sources: [(Int, String)] = []
      switch result {
      case .copy(let i, let k, _): sources = [(i, k)]
      case .compute(let p): sources = p.leaves.map { ($0.input, $0.key) }
      }
      for (i, k) in sources {
        if let nf = nonFinite[i]?[k] {
          if spec.nonFinitePolicy == .error {
            nonFiniteReport.append("model \(spec.inputNames[i]) tensor \(k): \(nf.nan) NaN, \(nf.inf) Inf")
          }
        }
      }
      if spec.nonFinitePolicy == .zero {
        switch result {
        case .copy(let i, let k, _):
          if nonFinite[i]?[k] != nil { result = .copy(input: i, key: k, sanitize: true) }
        case .compute(var p):
          for li in p.leaves.indices where nonFinite[p.leaves[li].input]?[p.leaves[li].key] != nil {
            p.leaves[li].sanitize = true
          }
          result = .compute(p)
        }
      }
      let sourceInfo: TensorInfo
      switch result {
      case .copy(let i, let k, _): sourceInfo = inputs[i].entry(k)!.info
      case .compute(let p): sourceInfo = inputs[p.leaves[0].input].entry(p.leaves[0].key)!.info
      }
      let dtype: DType
      if case .compute = result {
        dtype = spec.outputDType
      } else {
        dtype = sourceInfo.dtype.isFloat ? spec.outputDType : sourceInfo.dtype
      }
      planned.append(
        PlannedTensor(
          spec: TensorSpec(name: key, dtype: dtype, shape: sourceInfo.shape), component: ctx.component, block: ctx.block,
          source: result, note: note))
    }
    if !nonFiniteReport.isEmpty { throw .nonFinite(report: nonFiniteReport.sorted()) }
    // Canonical write order.
    let order = CanonicalLayout.order(planned.map(\.spec))
    var byName: [String: PlannedTensor] = [:]
    for p in planned { byName[p.spec.name] = p }
    return MergePlan(
      architecture: arch, tensors: order.map { byName[$0.name]! }, inputNames: spec.inputNames,
      nodeIDs: spec.nodes.map(\.id), referenceInput: spec.reference, computeType: spec.computeType, metadata: spec.metadata,
      notes: notes)
  }

  static func mainSource(_ r: Ref) -> Source {
    switch r {
    case .input(let i): return .input(i)
    case .node(let j): return .node(j)
    }
  }

  static func firstRule(_ spec: MergeSpec, _ ctx: KeyContext) -> AssemblyRule? {
    spec.rules.first { $0.selector.matches(ctx) }
  }

  static func context(_ key: String, arch: Architecture, blocks: BlockMap, layers: Int) -> KeyContext {
    KeyContext(
      key: key, component: Detection.component(of: key, in: arch), block: blocks.block(of: key),
      layerPosition: blocks.layerPosition(of: key, layerCount: layers))
  }

  static func layerCount(_ names: [String]) -> Int {
    var maxIndex = -1
    for n in names {
      if let i = BlockMap.layerIndex(of: n) { maxIndex = max(maxIndex, i) }
    }
    return maxIndex + 1
  }

  /// `model.diffusion_model.a.b` → `model_ema.diffusion_modelab` (the LDM EMA naming).
  public static func emaKey(for key: String) -> String? {
    guard key.hasPrefix("model.diffusion_model.") else { return nil }
    return "model_ema." + key.dropFirst("model.".count).replacingOccurrences(of: ".", with: "")
  }
}

/// Builds the program of one tensor, compiling each reachable step once.
struct ProgramBuilder {
  let spec: MergeSpec
  let inputs: [Checkpoint]
  let key: String
  let ctx: KeyContext
  var program = Program(leaves: [], steps: [])
  var leafIndex: [Int: Int] = [:]
  var stepIndex: [Int: Int] = [:]

  init(spec: MergeSpec, inputs: [Checkpoint], key: String, ctx: KeyContext) {
    self.spec = spec
    self.inputs = inputs
    self.key = key
    self.ctx = ctx
  }

  var referenceShape: [Int]? { inputs[spec.reference].entry(key)?.info.shape }

  func requireTensor(input i: Int, key: String, step: String) throws(MergeError) {
    guard inputs[i].entry(key) != nil else { throw .missingKey(model: spec.inputNames[i], key: key, step: step) }
  }

  mutating func compile(_ ref: Ref) throws(MergeError) -> Slot {
    switch ref {
    case .input(let i):
      if let l = leafIndex[i] { return .leaf(l) }
      guard let e = inputs[i].entry(key) else {
        throw .missingKey(model: spec.inputNames[i], key: key, step: "merge")
      }
      if let ref = referenceShape, ref != e.info.shape {
        throw .shapeMismatch(model: spec.inputNames[i], key: key, shape: e.info.shape, expected: ref, step: "merge")
      }
      guard e.info.dtype.isFloat else { throw .integerTensor(key: key, step: "merge") }
      leafIndex[i] = program.leaves.count
      program.leaves.append(Leaf(input: i, key: key, sanitize: false))
      return .leaf(program.leaves.count - 1)
    case .node(let j):
      if let s = stepIndex[j] { return .step(s) }
      let node = spec.nodes[j]
      var operands: [Slot] = []
      do {
        for r in node.operands { operands.append(try compile(r)) }
      } catch {
        throw relabel(error, step: node.id)
      }
      var base: Slot?
      if let b = node.base {
        do { base = try compile(b) } catch { throw relabel(error, step: node.id) }
      }
      let method = try MethodCompiler.resolve(node, ctx: ctx, seed: node.seed ?? spec.seed, operandCount: operands.count)
      stepIndex[j] = program.steps.count
      program.steps.append(CompiledStep(node: j, method: method, operands: operands, base: base))
      return .step(program.steps.count - 1)
    }
  }

  func relabel(_ e: MergeError, step: String) -> MergeError {
    switch e {
    case .missingKey(let m, let k, "merge"): return .missingKey(model: m, key: k, step: step)
    case .shapeMismatch(let m, let k, let s, let x, "merge"):
      return .shapeMismatch(model: m, key: k, shape: s, expected: x, step: step)
    case .integerTensor(let k, "merge"): return .integerTensor(key: k, step: step)
    default: return e
    }
  }
}
