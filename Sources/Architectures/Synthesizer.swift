import Dispatch
import Foundation
import SafeTensors

/// Writes families of synthetic checkpoints with a real key layout.
///
/// Model 0 is a base; model i ≥ 1 is the base plus a structured delta: a direction shared by
/// all models (so averaging keeps it), dense model-specific noise, a per-row scale, sparse
/// large spikes at model-specific positions, and a region where odd models flip the shared
/// direction's sign (so sign-electing methods such as TIES behave differently from averaging).
/// Every value is a pure function of (seed, key, model, element), so the same arguments give
/// the same bytes whatever the thread count.
public struct Synthesizer: Sendable {
  public var architecture: Architecture
  public var count: Int
  public var seed: UInt64
  public var scale: Double
  public var dtype: DType
  /// Optional layout components to include too ("ema", "scheduler").
  public var extras: Set<String>
  /// Write each Llama model as shards of at most this many bytes (nil: one file).
  public var shardBytes: Int?

  public init(
    architecture: Architecture, count: Int, seed: UInt64, scale: Double = 1, dtype: DType = .f16,
    extras: Set<String> = [], shardBytes: Int? = nil
  ) {
    self.architecture = architecture
    self.count = count
    self.seed = seed
    self.scale = scale
    self.dtype = dtype
    self.extras = extras
    self.shardBytes = shardBytes
  }

  /// One written model.
  public struct Output: Sendable, Codable {
    public var index: Int
    public var path: String
    public var size: Int
    public var sha256: String
    public var tensors: Int
  }

  public enum SynthError: Error, LocalizedError {
    case unsupported(String)
    public var errorDescription: String? {
      switch self {
      case .unsupported(let m): return m
      }
    }
  }

  /// The tensors of one model (shapes scaled, dtypes as written).
  public func specs() throws -> [TensorSpec] {
    guard let layout = layoutForSynthesis() else {
      throw SynthError.unsupported("synth supports --arch sd1, sdxl and llama, not \(architecture.rawValue)")
    }
    return layout.keys.compactMap { k in
      let isPositionIDs = k.name.hasSuffix("position_ids")
      guard !k.optional || isPositionIDs || extras.contains(k.component) else { return nil }
      let shape = architecture == .llama ? k.shape : k.shape.map { max(1, Int((Double($0) * scale).rounded())) }
      let dt = k.dtype.isFloat ? dtype : k.dtype
      return TensorSpec(name: k.name, dtype: dt, shape: k.dtype.isFloat || isPositionIDs ? shape : k.shape)
    }
  }

  func layoutForSynthesis() -> Layout? {
    switch architecture {
    case .sd1: return .sd1
    case .sdxl: return .sdxl
    case .llama: return LlamaConfig.reference.scaled(scale).layout()
    default: return nil
    }
  }

  /// Path of model `index` under `folder`.
  public func path(of index: Int, in folder: String) -> String {
    let digits = max(2, String(count - 1).count)
    var n = String(index)
    n = String(repeating: "0", count: max(0, digits - n.count)) + n
    let name = "\(architecture.rawValue)-\(n)"
    return architecture == .llama ? "\(folder)/\(name)" : "\(folder)/\(name).safetensors"
  }

  /// Writes all `count` models into `folder`.
  ///
  /// - Parameter progress: called after each tensor with (model, bytes done, bytes total).
  public func write(to folder: String, progress: (@Sendable (Int, Int, Int) -> Void)? = nil) throws -> [Output] {
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let specs = try specs()
    var outputs: [Output] = []
    for i in 0..<count {
      outputs.append(try writeModel(i, specs: specs, folder: folder, progress: progress))
    }
    return outputs
  }

  /// Writes only model `index` into `folder` (at `path(of:in:)`).
  public func write(model index: Int, to folder: String) throws -> Output {
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    return try writeModel(index, specs: try specs(), folder: folder, progress: nil)
  }

  private func writeModel(_ index: Int, specs: [TensorSpec], folder: String, progress: (@Sendable (Int, Int, Int) -> Void)?)
    throws
    -> Output
  {
    let meta = [
      "format": "pt",
      "mixlab.synth": "arch=\(architecture.rawValue) seed=\(seed) scale=\(scale) dtype=\(dtype.rawValue) model=\(index)",
    ]
    let total = specs.reduce(0) { $0 + $1.byteCount }
    if architecture != .llama {
      let path = path(of: index, in: folder)
      let writer = try SafeTensorsWriter(path: path, specs: specs, metadata: meta, hashTensors: false)
      try fill(writer, model: index, totalBytes: total, progress: progress)
      let r = try writer.finish()
      return Output(index: index, path: path, size: r.size, sha256: r.sha256, tensors: specs.count)
    }
    // Llama: a Hugging Face style folder with config.json and one or more shards.
    let dir = path(of: index, in: folder)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let config = LlamaConfig.reference.scaled(scale).configJSON(dtype: dtype)
    try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"), options: .atomic)
    let shards = shardBytes.map { Sharding.plan(specs, maxShardBytes: $0) } ?? [specs]
    var size = 0
    var weightMap: [String: String] = [:]
    var digests: [(file: String, sha256: String)] = []
    var done = 0
    for (s, group) in shards.enumerated() {
      let name = shards.count == 1 ? "model.safetensors" : Sharding.shardName(s, of: shards.count)
      let writer = try SafeTensorsWriter(path: dir + "/" + name, specs: group, metadata: meta, hashTensors: false)
      try fill(writer, model: index, totalBytes: total, doneBefore: done, progress: progress)
      done += group.reduce(0) { $0 + $1.byteCount }
      let r = try writer.finish()
      size += r.size
      digests.append((name, r.sha256))
      for t in group { weightMap[t.name] = name }
    }
    if shards.count > 1 {
      let index = Sharding.indexJSON(weightMap: weightMap, totalSize: total)
      try Data(index).write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"), options: .atomic)
    }
    // The hash `inspect` reports for the folder: the file's own, or the shards' combined.
    let sha256 = digests.count == 1 ? digests[0].sha256 : ShardDigest.combine(digests)
    return Output(index: index, path: dir, size: size, sha256: sha256, tensors: specs.count)
  }

  private func fill(
    _ writer: SafeTensorsWriter, model: Int, totalBytes: Int, doneBefore: Int = 0,
    progress: (@Sendable (Int, Int, Int) -> Void)?
  ) throws {
    let chunkElements = 1 << 20
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkElements * 8, alignment: 64)
    defer { scratch.deallocate() }
    var done = doneBefore
    for t in writer.tensors {
      let n = t.elementCount
      var start = 0
      while start < n {
        let m = min(chunkElements, n - start)
        let out = UncheckedSendable(scratch.baseAddress!)
        let first = start
        let tensor = t
        // Disjoint slices per worker; values depend only on the element index.
        let parts = m >= 65536 ? 8 : 1
        DispatchQueue.concurrentPerform(iterations: parts) { p in
          let lo = m * p / parts
          let hi = m * (p + 1) / parts
          self.generate(tensor, model: model, elements: (first + lo)..<(first + hi), into: out.value + lo * tensor.dtype.size)
        }
        try writer.append(UnsafeRawBufferPointer(start: scratch.baseAddress!, count: m * t.dtype.size))
        start += m
      }
      done += t.byteCount
      progress?(model, done, totalBytes)
    }
  }

  /// Fills `dst` with elements `range` of tensor `t` of model `model`, encoded as `t.dtype`.
  func generate(_ t: TensorInfo, model: Int, elements range: Range<Int>, into dst: UnsafeMutableRawPointer) {
    if !t.dtype.isFloat {
      fillInteger(t, elements: range, into: dst)
      return
    }
    let count = range.count
    withUnsafeTemporaryAllocation(of: Float.self, capacity: count) { buf in
      let values = buf.baseAddress!
      if let fixed = schedulerValues(t) {
        for (j, e) in range.enumerated() { values[j] = fixed(e) }
      } else {
        fillFloat(t, model: model, elements: range, into: values)
      }
      Codec.encode(values, count: count, as: t.dtype, into: dst)
    }
  }

  private func fillInteger(_ t: TensorInfo, elements range: Range<Int>, into dst: UnsafeMutableRawPointer) {
    let width = t.shape.last ?? 1
    for (j, e) in range.enumerated() {
      let v = t.name.hasSuffix("position_ids") ? e % max(width, 1) : 0
      switch t.dtype.size {
      case 8: dst.storeBytes(of: Int64(v), toByteOffset: j * 8, as: Int64.self)
      case 4: dst.storeBytes(of: Int32(v), toByteOffset: j * 4, as: Int32.self)
      case 2: dst.storeBytes(of: Int16(v), toByteOffset: j * 2, as: Int16.self)
      default: dst.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: j, as: UInt8.self)
      }
    }
  }

  /// Mean and standard deviation that make a key look like its real counterpart.
  static func statistics(of t: TensorInfo) -> (mean: Float, std: Float) {
    let n = t.name
    if t.shape.count <= 1 {
      if n.hasSuffix(".bias") || n.hasSuffix("_bias") { return (0, 0.02) }
      if n.contains("norm") || n.contains(".ln_") || n.hasSuffix("ln_final.weight") { return (1, 0.05) }
      if n.hasSuffix("logit_scale") { return (4.6, 0.01) }
      return (0, 0.05)
    }
    if n.contains("embedding") || n.contains("embed_tokens") { return (0, 0.02) }
    let fanIn = max(1, t.shape.dropFirst().reduce(1, *))
    return (0, 0.5 / Float(fanIn).squareRoot())
  }

  private func fillFloat(_ t: TensorInfo, model: Int, elements range: Range<Int>, into values: UnsafeMutablePointer<Float>) {
    let (mean, std) = Synthesizer.statistics(of: t)
    // Uniform on [-1, 1) times √3·std has standard deviation std.
    let amp = std * 1.732_050_8
    // One draw per element for the base value (top 24 bits), the shared delta direction
    // (next 24 bits) and the conflict region (low 16 bits); one per model for its own noise
    // (top 24 bits), spike position (low 16) and spike sign (bit 16).
    let base = CounterRNG(seed: seed, name: t.name, stream: 0)
    if model == 0 {
      for (j, e) in range.enumerated() {
        values[j] = mean + amp * (Float(base.bits(e) >> 40) * 0x1p-23 - 1)
      }
      return
    }
    let own = CounterRNG(seed: seed, name: t.name, stream: 100 &+ UInt64(model))
    let rows = CounterRNG(seed: seed, name: t.name, stream: 1_000_000 &+ UInt64(model))
    let deltaScale = 0.1 * amp
    let flip: Float = model % 2 == 1 ? -1 : 1
    let rowLength = max(1, t.rowLength)
    var e = range.lowerBound
    var j = 0
    while e < range.upperBound {
      let row = e / rowLength
      let rowEnd = min(range.upperBound, (row + 1) * rowLength)
      let rowScale = 0.5 + 1.5 * rows.unit(row)
      for x in e..<rowEnd {
        let b = base.bits(x)
        let o = own.bits(x)
        let baseValue = mean + amp * (Float(b >> 40) * 0x1p-23 - 1)
        let sharedValue = Float((b >> 16) & 0xFF_FFFF) * 0x1p-23 - 1
        // 30 % of elements form the conflict region, where odd models flip the direction.
        let direction = (b & 0xFFFF) < 19661 ? sharedValue * flip : sharedValue
        let noise = Float(o >> 40) * 0x1p-23 - 1
        // Sparse spikes (2 %) at model-specific positions, with a random sign.
        let spike: Float = (o & 0xFFFF) < 1311 ? ((o >> 16) & 1 == 0 ? 8 : -8) : 0
        values[j] = baseValue + deltaScale * (rowScale * (direction + 0.5 * noise) + spike)
        j += 1
      }
      e = rowEnd
    }
  }

  /// Real diffusion schedule buffers (scaled-linear betas, 0.00085 → 0.012), so scheduler
  /// keys look like a real checkpoint's.
  private func schedulerValues(_ t: TensorInfo) -> ((Int) -> Float)? {
    guard Detection.schedulerKeys.contains(t.name), t.shape.count == 1, t.shape[0] > 1 else { return nil }
    let n = t.shape[0]
    var betas: [Double] = []
    var cum: [Double] = []
    var acc = 1.0
    for i in 0..<n {
      let s = 0.00085.squareRoot() + (0.012.squareRoot() - 0.00085.squareRoot()) * Double(i) / Double(n - 1)
      betas.append(s * s)
      acc *= 1 - s * s
      cum.append(acc)
    }
    let name = t.name
    return { i in
      let a = cum[i]
      let prev = i == 0 ? 1.0 : cum[i - 1]
      let v: Double
      switch name {
      case "betas": v = betas[i]
      case "alphas_cumprod": v = a
      case "alphas_cumprod_prev": v = prev
      case "sqrt_alphas_cumprod": v = a.squareRoot()
      case "sqrt_one_minus_alphas_cumprod": v = (1 - a).squareRoot()
      case "log_one_minus_alphas_cumprod": v = Foundation.log(1 - a)
      case "sqrt_recip_alphas_cumprod": v = (1 / a).squareRoot()
      case "sqrt_recipm1_alphas_cumprod": v = (1 / a - 1).squareRoot()
      case "posterior_variance": v = betas[i] * (1 - prev) / (1 - a)
      case "posterior_log_variance_clipped": v = Foundation.log(max(betas[i] * (1 - prev) / (1 - a), 1e-20))
      case "posterior_mean_coef1": v = betas[i] * prev.squareRoot() / (1 - a)
      case "posterior_mean_coef2": v = (1 - prev) * (1 - betas[i]).squareRoot() / (1 - a)
      default: v = 0
      }
      return Float(v)
    }
  }
}
