import Dispatch
import Foundation
import SafeTensors

/// Where the merged checkpoint goes.
public enum OutputTarget: Sendable {
  /// One .safetensors file.
  case file(String)
  /// A folder of `model-0000i-of-0000n.safetensors` shards plus `model.safetensors.index.json`.
  case sharded(folder: String, maxShardBytes: Int)
}

/// Knobs that change speed and memory, never the output bytes.
public struct ExecutionOptions: Sendable {
  public var threads: Int
  public var memoryBudget: Int
  public var progress: (@Sendable (_ doneBytes: Int, _ totalBytes: Int, _ key: String) -> Void)?
  /// For a `.file` target: called when the output is complete and fsynced, before it is
  /// renamed into place; a returned reason abandons it (see `SafeTensorsWriter.finish`).
  public var beforeRename: (@Sendable () -> String?)?

  public init(threads: Int = 0, memoryBudget: Int = 1 << 30, progress: (@Sendable (Int, Int, String) -> Void)? = nil) {
    self.threads = threads
    self.memoryBudget = memoryBudget
    self.progress = progress
  }

  var workerCount: Int { threads > 0 ? threads : ProcessInfo.processInfo.activeProcessorCount }
}

/// What the merge produced.
public struct MergeOutcome: Sendable {
  public var files: [WriteResult]
  /// Output tensors holding NaN or infinite values (counted on the bytes as written).
  public var nonFinite: [NonFinite] = []
  /// Weight-space metrics computed while merging (see `SimilarityAccumulator`).
  public var metrics: [Metric] = []
  /// Per computed tensor, the output's sums against each input it read (for the report's
  /// comparison, so it need not read the output again).
  public var tensorSums: [String: TensorSums] = [:]
  /// SHA-256 of the output: the file's, or for shards the combined digest.
  public var sha256: String
  public var tensorDataSHA256: String
  public var tensorSHA256: [String: String]
  public var size: Int
  public var seconds: Double
}

/// Sums of one computed output tensor against the inputs its program read, over the merge's
/// values before the final rounding to the output dtype.
public struct TensorSums: Sendable, Equatable {
  /// Plan input index of each leaf (an input read twice appears twice).
  public var inputs: [Int]
  /// Σ out².
  public var outSquared: Double
  /// Per leaf: Σ out·x, Σ x², Σ (out − x)², max |out − x|.
  public var dot: [Double]
  public var inputSquared: [Double]
  public var squaredDifference: [Double]
  public var maxAbsDifference: [Double]
}

/// Time spent per phase, printed to standard error at the end of a run when the environment
/// sets `MIXLAB_TRACE=1` (for benchmarks; never changes output).
final class PhaseTimes: @unchecked Sendable {
  // Sendable: mutated only by the executor's calling thread.
  static let enabled = ProcessInfo.processInfo.environment["MIXLAB_TRACE"] == "1"
  var seconds: [String: Double] = [:]
  func measure<R>(_ phase: String, _ body: () throws -> R) rethrows -> R {
    guard PhaseTimes.enabled else { return try body() }
    let t0 = Date()
    defer { seconds[phase, default: 0] += Date().timeIntervalSince(t0) }
    return try body()
  }
  func report() {
    guard PhaseTimes.enabled else { return }
    let lines = seconds.sorted { $0.value > $1.value }.map { String(format: "  %-24@ %8.2f s", $0.key, $0.value) }
    FileHandle.standardError.write(Data(("phases:\n" + lines.joined(separator: "\n") + "\n").utf8))
  }
}

/// What lives for a whole run of the executor (phase timings for traces).
final class RunContext {
  let times = PhaseTimes()
  var nonFinite: [String: (nan: Int, inf: Int)] = [:]
  var similarity = SimilarityAccumulator()
  var tensorSums: [String: TensorSums] = [:]

  /// Adds a computed tensor's sums to the metrics and keeps them per tensor.
  func record<T>(_ r: TensorRun<T>, _ t: PlannedTensor, leaves: [Int]) {
    similarity.add(r.similarity, leaves: leaves, component: t.component, block: t.block)
    guard !r.similarity.isEmpty else { return }
    tensorSums[t.spec.name] = TensorSums(
      inputs: leaves, outSquared: r.similarity[0], dot: leaves.indices.map { r.similarity[1 + 3 * $0] },
      inputSquared: leaves.indices.map { r.similarity[2 + 3 * $0] },
      squaredDifference: leaves.indices.map { r.similarity[3 + 3 * $0] }, maxAbsDifference: r.maxima)
  }

  /// Counts NaN/Inf in bytes just handed to the writer for tensor `name`.
  func count(_ name: String, dtype: DType, bytes: UnsafeRawBufferPointer) {
    guard dtype.isFloat, let base = bytes.baseAddress, bytes.count >= dtype.size else { return }
    let r = Codec.countNonFinite(dtype, base, count: bytes.count / dtype.size)
    if r.nan + r.inf > 0 {
      let old = nonFinite[name] ?? (0, 0)
      nonFinite[name] = (old.nan + r.nan, old.inf + r.inf)
    }
  }
}

/// Runs a plan: tensor by tensor in canonical order; within a tensor, statistics passes and
/// the final pass stream over groups of whole rows in batches sized to the memory budget,
/// workers take groups, and the output goes to the canonical writer in order.
public enum Executor {
  public static func run(
    _ plan: MergePlan, inputs: [Checkpoint], to target: OutputTarget, options: ExecutionOptions = ExecutionOptions()
  ) throws -> MergeOutcome {
    let start = Date()
    let specs = plan.outputSpecs
    var shards: [[TensorSpec]]
    let files: [String]
    switch target {
    case .file(let path):
      shards = [specs]
      files = [path]
    case .sharded(let folder, let maxBytes):
      shards = Sharding.plan(specs, maxShardBytes: maxBytes)
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      files = shards.indices.map { folder + "/" + Sharding.shardName($0, of: shards.count) }
    }
    let byName = Dictionary(uniqueKeysWithValues: plan.tensors.map { ($0.spec.name, $0) })
    let total = plan.outputBytes
    var done = 0
    var results: [WriteResult] = []
    let pool = RunContext()
    for (s, group) in shards.enumerated() {
      let writer = try SafeTensorsWriter(path: files[s], specs: group, metadata: plan.metadata)
      for info in writer.tensors {
        let t = byName[info.name]!
        let before = done
        try runTensor(t, info: info, plan: plan, inputs: inputs, writer: writer, options: options, pool: pool) { bytes in
          options.progress?(before + bytes, total, info.name)
        }
        done += info.byteCount
        options.progress?(done, total, info.name)
      }
      var check: (() -> String?)? = nil
      if case .file = target { check = options.beforeRename }
      results.append(try pool.times.measure("writer finish") { try writer.finish(check: check) })
    }
    pool.times.report()
    var hashes: [String: String] = [:]
    for r in results { hashes.merge(r.tensorSHA256) { a, _ in a } }
    let sha: String
    let dataSHA: String
    if case .sharded(let folder, _) = target {
      var weightMap: [String: String] = [:]
      for (s, g) in shards.enumerated() { for t in g { weightMap[t.name] = (files[s] as NSString).lastPathComponent } }
      let index = Sharding.indexJSON(weightMap: weightMap, totalSize: total)
      try Data(index).write(to: URL(fileURLWithPath: folder + "/model.safetensors.index.json"), options: .atomic)
      sha = ShardDigest.combine(results.map { (($0.path as NSString).lastPathComponent, $0.sha256) })
      dataSHA = ShardDigest.combine(results.map { (($0.path as NSString).lastPathComponent, $0.tensorDataSHA256) })
    } else {
      sha = results[0].sha256
      dataSHA = results[0].tensorDataSHA256
    }
    return MergeOutcome(
      files: results,
      nonFinite: pool.nonFinite.map { NonFinite(key: $0.key, nan: $0.value.nan, inf: $0.value.inf) }.sorted { $0.key < $1.key },
      metrics: pool.similarity.metrics(
        inputNames: plan.inputNames, reference: plan.referenceInput,
        nonFinite: pool.nonFinite.values.reduce(0) { $0 + $1.nan + $1.inf }),
      tensorSums: pool.tensorSums, sha256: sha, tensorDataSHA256: dataSHA, tensorSHA256: hashes,
      size: results.reduce(0) { $0 + $1.size },
      seconds: Date().timeIntervalSince(start))
  }

  static func runTensor(
    _ t: PlannedTensor, info: TensorInfo, plan: MergePlan, inputs: [Checkpoint], writer: SafeTensorsWriter,
    options: ExecutionOptions, pool: RunContext, progress: (Int) -> Void
  ) throws {
    switch t.source {
    case .copy(let i, let key, let sanitize):
      try copy(input: inputs[i], key: key, sanitize: sanitize, to: info, writer: writer, options: options, context: pool)
    case .compute(let program):
      switch plan.computeType {
      case .f32:
        var r = TensorRun<Float>(program: program, info: info, inputs: inputs, options: options, pool: pool)
        try r.run(writer: writer, progress: progress)
        pool.record(r, t, leaves: program.leaves.map(\.input))
      case .f64:
        var r = TensorRun<Double>(program: program, info: info, inputs: inputs, options: options, pool: pool)
        try r.run(writer: writer, progress: progress)
        pool.record(r, t, leaves: program.leaves.map(\.input))
      }
    }
  }

  /// Copies a tensor, converting float dtypes (via `Double` when the source is f64, so it is
  /// rounded once) and never touching integer tensors' bytes.
  static func copy(
    input: Checkpoint, key: String, sanitize: Bool, to out: TensorInfo, writer: SafeTensorsWriter, options: ExecutionOptions,
    context: RunContext
  ) throws {
    guard let e = input.entry(key) else { throw MergeError.io("\(input.path): tensor \(key) disappeared") }
    let file = input.file(of: e)
    let src = e.info
    let chunk = 1 << 20
    if src.dtype == out.dtype && !sanitize {
      var at = 0
      while at < src.elementCount {
        let n = min(chunk, src.elementCount - at)
        try file.withBytes(of: src, elements: at..<(at + n)) {
          context.count(out.name, dtype: out.dtype, bytes: $0)
          try writer.append($0)
        }
        file.file.release(file.fileRange(of: src))
        at += n
      }
      return
    }
    let wide = src.dtype == .f64 || out.dtype == .f64
    let outBytes = UnsafeMutableRawPointer.allocate(byteCount: chunk * out.dtype.size, alignment: 64)
    defer { outBytes.deallocate() }
    var at = 0
    while at < src.elementCount {
      let n = min(chunk, src.elementCount - at)
      if wide {
        try withUnsafeTemporaryAllocation(of: Double.self, capacity: n) { buf in
          file.read(src, elements: at..<(at + n), into: buf.baseAddress!)
          if sanitize { for j in 0..<n where !buf[j].isFinite { buf[j] = 0 } }
          Codec.encode(buf.baseAddress!, count: n, as: out.dtype, into: outBytes)
          let bytes = UnsafeRawBufferPointer(start: outBytes, count: n * out.dtype.size)
          context.count(out.name, dtype: out.dtype, bytes: bytes)
          try writer.append(bytes)
        }
      } else {
        try withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { buf in
          file.read(src, elements: at..<(at + n), into: buf.baseAddress!)
          if sanitize { for j in 0..<n where !buf[j].isFinite { buf[j] = 0 } }
          Codec.encode(buf.baseAddress!, count: n, as: out.dtype, into: outBytes)
          let bytes = UnsafeRawBufferPointer(start: outBytes, count: n * out.dtype.size)
          context.count(out.name, dtype: out.dtype, bytes: bytes)
          try writer.append(bytes)
        }
      }
      at += n
    }
    file.file.release(file.fileRange(of: src))
  }
}

/// One computed tensor in compute precision `T`.
struct TensorRun<T: ComputeScalar> {
  let program: Program
  let info: TensorInfo
  let inputs: [Checkpoint]
  let options: ExecutionOptions
  let leafFiles: [SafeTensorsFile]
  let leafInfos: [TensorInfo]
  let kernels: [AnyKernel<T>]
  let rows: Int
  let rowLength: Int
  let groupRows: Int
  let groupCount: Int
  /// Slice length for element-wise programs: leaves, steps and result of a slice stay in the
  /// core's cache between decode, apply and encode.
  static var sliceElements: Int { 8192 }

  /// True when every step is element-wise (linear or a Gram combination), so a group can be
  /// evaluated in slices.
  var elementWise: Bool {
    kernels.allSatisfy {
      switch $0 {
      case .linear, .gram: return true
      case .task: return false
      }
    }
  }

  /// Sums for the weight-space metrics of this tensor: |out|², and per leaf ⟨out, x⟩, |x|²,
  /// |out − x|²; then kept, total, agreeing and voting entries of the last task step.
  var similarity: [Double] = []
  /// Per leaf, max |out − x| over the tensor.
  var maxima: [Double] = []
  /// True when the output dtype holds fewer bits than the compute type (values are rounded
  /// on the way to the file).
  var roundsOutput: Bool { info.dtype.size < MemoryLayout<T>.size }
  var metricSlots: Int { 1 + 3 * program.leaves.count + 4 }
  var lastTaskStep: Int? { kernels.lastIndex { if case .task = $0 { return true } else { return false } } }

  /// Keep the inputs' pages mapped between the passes of a multi-pass method when they fit
  /// in half the budget, instead of releasing and faulting them in again each pass. (Decoding
  /// f16 again per pass costs less than reading a materialized f32 copy: half the bytes.)
  var retainPages = false

  let pool: RunContext

  init(program: Program, info: TensorInfo, inputs: [Checkpoint], options: ExecutionOptions, pool: RunContext) {
    self.pool = pool
    self.program = program
    self.info = info
    self.inputs = inputs
    self.options = options
    var files: [SafeTensorsFile] = []
    var infos: [TensorInfo] = []
    for leaf in program.leaves {
      let e = inputs[leaf.input].entry(leaf.key)!
      files.append(inputs[leaf.input].file(of: e))
      infos.append(e.info)
    }
    leafFiles = files
    leafInfos = infos
    let count = info.elementCount
    rows = info.shape.count >= 2 ? info.shape[0] : 1
    rowLength = rows > 0 ? max(1, count / max(rows, 1)) : 1
    kernels = program.steps.map { step in
      TensorRun.makeKernel(
        step.method, key: info.name, operands: step.operands.count, hasBase: step.base != nil, elementCount: count)
    }
    let whole = kernels.contains { $0.wholeTensor }
    groupRows = whole ? max(rows, 1) : max(1, Engine.groupElements / rowLength)
    groupCount = count == 0 ? 0 : (rows + groupRows - 1) / groupRows
    let capacity = min(count, groupRows * rowLength)
    for k in kernels.indices { kernels[k].setGroupCapacity(capacity) }
  }

  static func makeKernel(_ m: ResolvedMethod, key: String, operands: Int, hasBase: Bool, elementCount: Int) -> AnyKernel<T> {
    switch m {
    case .linear(let form): return .linear(LinearKernel<T>(form: form))
    case .gram(let solver): return .gram(GramKernel<T>(solver: solver, key: key, count: operands, hasBase: hasBase))
    case .task(let config):
      return .task(TaskMergeKernel<T>(config: config, key: key, models: operands, elementCount: elementCount))
    }
  }

  func group(_ g: Int) -> Group {
    let r0 = g * groupRows
    let r1 = min(rows, r0 + groupRows)
    return Group(index: g, elementStart: r0 * rowLength, count: (r1 - r0) * rowLength, rowStart: r0, rowLength: rowLength)
  }

  var maxGroupElements: Int { min(info.elementCount, groupRows * rowLength) }

  /// Groups per batch: bounded by the budget after the workers' scratch.
  func batchSize(workers: Int) -> Int {
    let g = maxGroupElements
    let scratchPerWorker = (program.leaves.count + program.steps.count * 3 + 4) * g * MemoryLayout<T>.stride
    let perGroup = g * (info.dtype.size + leafInfos.reduce(0) { $0 + $1.dtype.size }) + g * MemoryLayout<T>.stride
    let avail = options.memoryBudget - workers * scratchPerWorker
    // Beyond a few groups per worker larger batches buy nothing but resident memory.
    let useful = 8 * workers
    return max(workers, min(groupCount, useful, max(1, avail / max(perGroup, 1))))
  }

  mutating func run(writer: SafeTensorsWriter, progress: (Int) -> Void) throws {
    guard groupCount > 0 else { return }
    let workers = max(1, min(options.workerCount, groupCount))
    let batch = batchSize(workers: workers)
    let needsPasses = kernels.contains { $0.passCount > 0 }
    let inputBytes = leafInfos.reduce(0) { $0 + $1.byteCount }
    retainPages = needsPasses && inputBytes <= options.memoryBudget / 2
    // Statistics passes, step by step.
    for s in kernels.indices {
      for pass in 0..<kernels[s].passCount where kernels[s].wantsPass(pass) {
        try pool.times.measure("pass \(kernels[s].passLabel(pass))") {
          try statisticsPass(step: s, pass: pass, workers: workers, batch: batch)
        }
      }
    }
    // Final pass.
    let outSize = info.dtype.size
    let outBuffer = UnsafeMutableRawPointer.allocate(byteCount: batch * maxGroupElements * outSize, alignment: 64)
    defer { outBuffer.deallocate() }
    let slots = metricSlots
    let metricBuffer = UnsafeMutablePointer<Double>.allocate(capacity: batch * slots)
    defer { metricBuffer.deallocate() }
    let leafCount = program.leaves.count
    let maxBuffer = UnsafeMutablePointer<Double>.allocate(capacity: max(1, batch * leafCount))
    defer { maxBuffer.deallocate() }
    similarity = Array(repeating: 0, count: slots)
    maxima = Array(repeating: 0, count: leafCount)
    var g0 = 0
    var bytesDone = 0
    while g0 < groupCount {
      let g1 = min(groupCount, g0 + batch)
      let firstElement = group(g0).elementStart
      let shared = UncheckedSendable((self, outBuffer, metricBuffer, maxBuffer))
      metricBuffer.initialize(repeating: 0, count: batch * slots)
      maxBuffer.initialize(repeating: 0, count: max(1, batch * leafCount))
      let start = g0
      let t0 = Date()
      defer { if PhaseTimes.enabled { pool.times.seconds["final pass compute", default: 0] += Date().timeIntervalSince(t0) } }
      DispatchQueue.concurrentPerform(iterations: workers) { w in
        let (run, out, sums, most) = shared.value
        run.withScratch { scratch in
          var g = start + w
          while g < g1 {
            let grp = run.group(g)
            let groupSums = sums + (g - start) * slots
            let groupMaxima = most + (g - start) * leafCount
            // Element-wise programs run in cache-sized slices of the group (same values:
            // nothing is reduced); others need the whole group at once.
            let slice = run.elementWise ? TensorRun.sliceElements : grp.count
            var off = 0
            while off < grp.count {
              let part = Group(
                index: grp.index, elementStart: grp.elementStart + off, count: min(slice, grp.count - off),
                rowStart: grp.rowStart,
                rowLength: slice == grp.count ? grp.rowLength : 1)
              let result = run.evaluate(part, upTo: run.kernels.count, scratch: scratch, stats: groupSums + slots - 4)
              let stored = out + (part.elementStart - firstElement) * outSize
              T.encode(result, count: part.count, as: run.info.dtype, into: stored)
              // Metrics describe the output as stored: read the rounded values back (into the
              // step's own buffer; a leaf's buffer is never overwritten).
              if run.roundsOutput && result >= scratch + run.program.leaves.count * run.maxGroupElements {
                T.decode(run.info.dtype, UnsafeRawPointer(stored), count: part.count, into: result)
              }
              run.measure(result, group: part, scratch: scratch, into: groupSums, maxima: groupMaxima)
              off += part.count
            }
            g += workers
          }
        }
      }
      // Group sums combine in group order, so metrics do not depend on scheduling either.
      for g in g0..<g1 {
        for j in 0..<slots { similarity[j] += metricBuffer[(g - g0) * slots + j] }
        for l in 0..<leafCount where maxBuffer[(g - g0) * leafCount + l] > maxima[l] {
          maxima[l] = maxBuffer[(g - g0) * leafCount + l]
        }
      }
      let last = group(g1 - 1)
      let bytes = (last.elementStart + last.count - firstElement) * outSize
      let written = UnsafeRawBufferPointer(start: outBuffer, count: bytes)
      pool.count(info.name, dtype: info.dtype, bytes: written)
      try pool.times.measure("append (writer backpressure)") { try writer.append(written) }
      release(elements: firstElement..<(last.elementStart + last.count))
      bytesDone += bytes
      progress(bytesDone)
      g0 = g1
    }
  }

  mutating func statisticsPass(step s: Int, pass: Int, workers: Int, batch: Int) throws {
    let (ordered, counters) = kernels[s].slots(pass: pass)
    let orderedBuf = UnsafeMutablePointer<Double>.allocate(capacity: max(1, batch * ordered))
    defer { orderedBuf.deallocate() }
    let counterBuf = UnsafeMutablePointer<UInt32>.allocate(capacity: max(1, workers * counters))
    defer { counterBuf.deallocate() }
    counterBuf.initialize(repeating: 0, count: max(1, workers * counters))
    var g0 = 0
    while g0 < groupCount {
      let g1 = min(groupCount, g0 + batch)
      let shared = UncheckedSendable((self, orderedBuf, counterBuf))
      let start = g0
      DispatchQueue.concurrentPerform(iterations: workers) { w in
        let (run, ord, cnt) = shared.value
        run.withScratch { scratch in
          var g = start + w
          while g < g1 {
            let grp = run.group(g)
            _ = run.evaluate(grp, upTo: s, scratch: scratch)
            let ops = run.operands(of: s, scratch: scratch, group: grp)
            run.kernels[s].partial(
              pass: pass, group: grp, operands: ops, ordered: ord + (g - start) * ordered, counters: cnt + w * counters)
            g += workers
          }
        }
      }
      for g in g0..<g1 { kernels[s].combine(pass: pass, group: group(g), ordered: orderedBuf + (g - g0) * ordered) }
      if !retainPages {
        let first = group(g0).elementStart
        let last = group(g1 - 1)
        release(elements: first..<(last.elementStart + last.count))
      }
      g0 = g1
    }
    if counters > 0 {
      for w in 1..<workers {
        let src = counterBuf + w * counters
        for j in 0..<counters { counterBuf[j] &+= src[j] }
      }
    }
    try kernels[s].endPass(pass, counters: counterBuf)
  }

  func decodeLeaf(_ l: Int, group grp: Group, into dst: UnsafeMutablePointer<T>) {
    let range = grp.elementStart..<(grp.elementStart + grp.count)
    leafFiles[l].withBytes(of: leafInfos[l], elements: range) { raw in
      T.decode(leafInfos[l].dtype, raw.baseAddress!, count: grp.count, into: dst)
    }
    if program.leaves[l].sanitize {
      for e in 0..<grp.count where !dst[e].isFinite { dst[e] = 0 }
    }
  }

  /// Per-worker buffers: one per leaf and one per step, each a group long.
  func withScratch(_ body: (UnsafeMutablePointer<T>) -> Void) {
    let g = maxGroupElements
    let n = (program.leaves.count + program.steps.count) * g
    let p = UnsafeMutablePointer<T>.allocate(capacity: max(1, n))
    defer { p.deallocate() }
    body(p)
  }

  func buffer(_ slot: Slot, scratch: UnsafeMutablePointer<T>, group grp: Group) -> UnsafeMutablePointer<T> {
    let g = maxGroupElements
    switch slot {
    case .leaf(let l):
      return scratch + l * g
    case .step(let s): return scratch + (program.leaves.count + s) * g
    }
  }

  func operands(of s: Int, scratch: UnsafeMutablePointer<T>, group grp: Group) -> Operands<T> {
    let step = program.steps[s]
    return Operands(
      values: step.operands.map { UnsafePointer(buffer($0, scratch: scratch, group: grp)) },
      base: step.base.map { UnsafePointer(buffer($0, scratch: scratch, group: grp)) })
  }

  /// Decodes the leaves of a group and applies steps before `upTo`; returns the last
  /// evaluated step's buffer (the result when `upTo` is the step count).
  func evaluate(
    _ grp: Group, upTo: Int, scratch: UnsafeMutablePointer<T>, stats: UnsafeMutablePointer<Double>? = nil
  ) -> UnsafeMutablePointer<T> {
    for l in program.leaves.indices { decodeLeaf(l, group: grp, into: buffer(.leaf(l), scratch: scratch, group: grp)) }
    var last = buffer(.leaf(0), scratch: scratch, group: grp)
    let statsStep = stats == nil ? nil : lastTaskStep
    for s in 0..<upTo {
      let out = buffer(.step(s), scratch: scratch, group: grp)
      kernels[s].apply(
        group: grp, operands: operands(of: s, scratch: scratch, group: grp), into: out, stats: s == statsStep ? stats : nil)
      last = out
    }
    return last
  }

  /// Adds |out|² and, per leaf, ⟨out, x⟩, |x|² and |out − x|² of one group (or slice) to `sums`.
  func measure(
    _ out: UnsafeMutablePointer<T>, group grp: Group, scratch: UnsafeMutablePointer<T>, into sums: UnsafeMutablePointer<Double>,
    maxima: UnsafeMutablePointer<Double>
  ) {
    let n = grp.count
    sums[0] += Dots.squares(out, n)
    for l in program.leaves.indices {
      let x = UnsafePointer(buffer(.leaf(l), scratch: scratch, group: grp))
      let s = Dots.similarity(UnsafePointer(out), x, n)
      sums[1 + 3 * l] += s.dot
      sums[2 + 3 * l] += s.bb
      sums[3 + 3 * l] += s.diff
      if s.maxAbs > maxima[l] { maxima[l] = s.maxAbs }
    }
  }

  func release(elements: Range<Int>) {
    for (l, file) in leafFiles.enumerated() {
      let t = leafInfos[l]
      let lo = file.dataStart + t.begin + elements.lowerBound * t.dtype.size
      let hi = file.dataStart + t.begin + elements.upperBound * t.dtype.size
      file.file.release(lo..<hi)
    }
  }
}
