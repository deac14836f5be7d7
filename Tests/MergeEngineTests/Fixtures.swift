import Foundation
import SafeTensors

@testable import MergeEngine

/// Small models written into a temp folder for engine tests.
final class TempDir {
  let path: String
  init() {
    path = NSTemporaryDirectory() + "mixlab-engine-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }
  deinit { try? FileManager.default.removeItem(atPath: path) }

  /// Writes tensors (name → (shape, values)) as `dtype` and opens the file.
  func model(_ name: String, dtype: DType = .f32, _ tensors: [String: ([Int], [Double])]) throws -> Checkpoint {
    let file = path + "/\(name).safetensors"
    let specs = tensors.map { TensorSpec(name: $0.key, dtype: dtype, shape: $0.value.0) }
    let writer = try SafeTensorsWriter(path: file, specs: specs, metadata: [:])
    for t in writer.tensors {
      let values = tensors[t.name]!.1
      precondition(values.count == t.elementCount)
      let bytes = UnsafeMutableRawPointer.allocate(byteCount: max(1, t.byteCount), alignment: 16)
      defer { bytes.deallocate() }
      values.withUnsafeBufferPointer { Codec.encode($0.baseAddress!, count: values.count, as: dtype, into: bytes) }
      try writer.append(UnsafeRawBufferPointer(start: bytes, count: t.byteCount))
    }
    try writer.finish()
    return try Checkpoint(path: file)
  }

  /// Writes tensors with a dtype each (name → (dtype, shape, values)); integer dtypes are
  /// stored as integers, so tests can check that merges copy them untouched.
  func model(_ name: String, typed tensors: [String: (DType, [Int], [Double])]) throws -> Checkpoint {
    let file = path + "/\(name).safetensors"
    let specs = tensors.map { TensorSpec(name: $0.key, dtype: $0.value.0, shape: $0.value.1) }
    let writer = try SafeTensorsWriter(path: file, specs: specs, metadata: [:])
    for t in writer.tensors {
      let values = tensors[t.name]!.2
      precondition(values.count == t.elementCount)
      let bytes = UnsafeMutableRawPointer.allocate(byteCount: max(1, t.byteCount), alignment: 16)
      defer { bytes.deallocate() }
      switch t.dtype {
      case .i64:
        for (j, v) in values.enumerated() { bytes.storeBytes(of: Int64(v), toByteOffset: 8 * j, as: Int64.self) }
      case .i32:
        for (j, v) in values.enumerated() { bytes.storeBytes(of: Int32(v), toByteOffset: 4 * j, as: Int32.self) }
      default:
        values.withUnsafeBufferPointer { Codec.encode($0.baseAddress!, count: values.count, as: t.dtype, into: bytes) }
      }
      try writer.append(UnsafeRawBufferPointer(start: bytes, count: t.byteCount))
    }
    try writer.finish()
    return try Checkpoint(path: file)
  }

  /// Plans and runs a whole `MergeSpec` (non-finite counts taken from a real scan of the
  /// inputs) and returns the merged tensors, the outcome and the plan.
  func run(
    _ spec: MergeSpec, inputs: [Checkpoint], threads: Int = 1, budget: Int = 1 << 28, name: String = "run"
  ) throws -> (values: [String: [Double]], outcome: MergeOutcome, plan: MergePlan) {
    var nonFinite: [Int: [String: NonFinite]] = [:]
    for (i, c) in inputs.enumerated() {
      for shard in c.shards {
        for nf in Scanner.scan(shard, perTensor: false).nonFinite { nonFinite[i, default: [:]][nf.key] = nf }
      }
    }
    let plan = try Planner.plan(spec, inputs: inputs, nonFinite: nonFinite)
    let file = self.path + "/\(name).safetensors"
    let outcome = try Executor.run(
      plan, inputs: inputs, to: .file(file), options: ExecutionOptions(threads: threads, memoryBudget: budget))
    return (try TempDir.read(file), outcome, plan)
  }

  /// Reads every tensor of a merged file as Double.
  static func read(_ path: String) throws -> [String: [Double]] {
    let f = try SafeTensorsFile(path: path)
    var out: [String: [Double]] = [:]
    for t in f.tensors {
      var v = [Double](repeating: 0, count: t.elementCount)
      v.withUnsafeMutableBufferPointer { f.read(t, elements: 0..<t.elementCount, into: $0.baseAddress!) }
      out[t.name] = v
    }
    return out
  }

  /// Runs one method over the given inputs and returns the merged tensors.
  func merge(
    _ method: MethodName, inputs: [Checkpoint], operands: [Int], base: Int? = nil, params: [String: Double] = [:],
    options: [String: String] = [:], weights: [Double]? = nil, seed: UInt64 = 0, compute: ComputeType = .f64,
    out: DType = .f64, threads: Int = 1, budget: Int = 1 << 28, name: String = "out"
  ) throws -> (values: [String: [Double]], outcome: MergeOutcome) {
    let node = NodeSpec(
      id: "merge", method: method, operands: operands.map { .input($0) }, base: base.map { .input($0) },
      weights: weights?.map { .constant($0) }, params: params.mapValues { .constant($0) }, options: options, seed: seed)
    let spec = MergeSpec(
      inputNames: inputs.indices.map { "m\($0)" }, nodes: [node], main: .node(0), reference: base ?? operands[0],
      computeType: compute, outputDType: out, seed: seed)
    let plan = try Planner.plan(spec, inputs: inputs)
    let path = self.path + "/\(name).safetensors"
    let outcome = try Executor.run(
      plan, inputs: inputs, to: .file(path), options: ExecutionOptions(threads: threads, memoryBudget: budget))
    return (try TempDir.read(path), outcome)
  }
}
