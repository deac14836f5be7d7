/// A slice of one tensor made of whole rows: the unit of parallel work and of reductions.
///
/// Groups are fixed by the tensor's shape alone (`Engine.groupElements` elements of whole
/// rows), never by thread count, chunk size or memory budget; reductions are summed within a
/// group in element order and across groups in group order, so every statistic, and thus
/// every output byte, is independent of how the work was scheduled.
public struct Group: Sendable {
  public var index: Int
  public var elementStart: Int
  public var count: Int
  public var rowStart: Int
  public var rowLength: Int
  public var rows: Int { count / rowLength }
}

/// The operand values of one group in compute precision.
public struct Operands<T: ComputeScalar> {
  public var values: [UnsafePointer<T>]
  public var base: UnsafePointer<T>?
}

/// A merge method as the executor drives it: zero or more statistics passes over the whole
/// tensor, then an element-wise (or row-wise) apply.
///
/// `partial` must be a pure function of the group's data: it runs on any thread. `combine` is
/// called in group order; `counters` (exact integer histograms) are summed over workers.
public protocol Kernel<T>: AnyObject {
  associatedtype T: ComputeScalar
  /// Number of statistics passes; a pass may still be skipped (`wantsPass`).
  var passCount: Int { get }
  /// When true the whole tensor is one group (methods that rank over the whole tensor).
  var wholeTensor: Bool { get }
  func wantsPass(_ pass: Int) -> Bool
  func slots(pass: Int) -> (ordered: Int, counters: Int)
  func partial(
    pass: Int, group: Group, operands: Operands<T>, ordered: UnsafeMutablePointer<Double>,
    counters: UnsafeMutablePointer<UInt32>)
  func combine(pass: Int, group: Group, ordered: UnsafePointer<Double>)
  func endPass(_ pass: Int, counters: UnsafePointer<UInt32>) throws(MergeError)
  func apply(group: Group, operands: Operands<T>, into out: UnsafeMutablePointer<T>)
  /// Tells the kernel the largest group it will see (for per-group statistics slots).
  func setGroupCapacity(_ capacity: Int)
}

extension Kernel {
  public var passCount: Int { 0 }
  public var wholeTensor: Bool { false }
  public func wantsPass(_ pass: Int) -> Bool { true }
  public func slots(pass: Int) -> (ordered: Int, counters: Int) { (0, 0) }
  public func partial(
    pass: Int, group: Group, operands: Operands<T>, ordered: UnsafeMutablePointer<Double>,
    counters: UnsafeMutablePointer<UInt32>
  ) {}
  public func combine(pass: Int, group: Group, ordered: UnsafePointer<Double>) {}
  public func endPass(_ pass: Int, counters: UnsafePointer<UInt32>) throws(MergeError) {}
  public func setGroupCapacity(_ capacity: Int) {}
}

/// Engine constants that are part of the output's definition.
public enum Engine {
  /// Version of the engine's numeric definitions (group size, RNG, formulas). Bumped whenever
  /// any output byte could change, and recorded in every run.
  public static let version = "1"
  /// Target elements per group (whole rows, at least one row).
  public static let groupElements = 65536
}

/// The kernels with static dispatch: `TensorRun<Float>` calls each case's methods directly,
/// so the compiler specializes them for the compute type (calls through `any Kernel<T>`
/// would run the unspecialized generic code, several times slower).
enum AnyKernel<T: ComputeScalar> {
  case linear(LinearKernel<T>)
  case gram(GramKernel<T>)
  case task(TaskMergeKernel<T>)

  var passCount: Int {
    switch self {
    case .linear(let k): return k.passCount
    case .gram(let k): return k.passCount
    case .task(let k): return k.passCount
    }
  }

  var wholeTensor: Bool {
    switch self {
    case .linear(let k): return k.wholeTensor
    case .gram(let k): return k.wholeTensor
    case .task(let k): return k.wholeTensor
    }
  }

  func wantsPass(_ pass: Int) -> Bool {
    switch self {
    case .linear(let k): return k.wantsPass(pass)
    case .gram(let k): return k.wantsPass(pass)
    case .task(let k): return k.wantsPass(pass)
    }
  }

  func slots(pass: Int) -> (ordered: Int, counters: Int) {
    switch self {
    case .linear(let k): return k.slots(pass: pass)
    case .gram(let k): return k.slots(pass: pass)
    case .task(let k): return k.slots(pass: pass)
    }
  }

  func partial(
    pass: Int, group: Group, operands: Operands<T>, ordered: UnsafeMutablePointer<Double>,
    counters: UnsafeMutablePointer<UInt32>
  ) {
    switch self {
    case .linear(let k): k.partial(pass: pass, group: group, operands: operands, ordered: ordered, counters: counters)
    case .gram(let k): k.partial(pass: pass, group: group, operands: operands, ordered: ordered, counters: counters)
    case .task(let k): k.partial(pass: pass, group: group, operands: operands, ordered: ordered, counters: counters)
    }
  }

  func combine(pass: Int, group: Group, ordered: UnsafePointer<Double>) {
    switch self {
    case .linear(let k): k.combine(pass: pass, group: group, ordered: ordered)
    case .gram(let k): k.combine(pass: pass, group: group, ordered: ordered)
    case .task(let k): k.combine(pass: pass, group: group, ordered: ordered)
    }
  }

  func endPass(_ pass: Int, counters: UnsafePointer<UInt32>) throws(MergeError) {
    switch self {
    case .linear(let k): try k.endPass(pass, counters: counters)
    case .gram(let k): try k.endPass(pass, counters: counters)
    case .task(let k): try k.endPass(pass, counters: counters)
    }
  }

  /// `stats`, when given, receives a task step's (kept, total, agreeing, voting) entry counts.
  func apply(group: Group, operands: Operands<T>, into out: UnsafeMutablePointer<T>, stats: UnsafeMutablePointer<Double>? = nil) {
    switch self {
    case .linear(let k): k.apply(group: group, operands: operands, into: out)
    case .gram(let k): k.apply(group: group, operands: operands, into: out)
    case .task(let k): k.apply(group: group, operands: operands, into: out, stats: stats)
    }
  }

  /// A name for the pass in traces.
  func passLabel(_ pass: Int) -> String {
    switch self {
    case .linear: return "linear"
    case .gram: return "gram"
    case .task(let k): return "\(k.passes[pass])"
    }
  }

  func setGroupCapacity(_ capacity: Int) {
    switch self {
    case .linear(let k): k.setGroupCapacity(capacity)
    case .gram(let k): k.setGroupCapacity(capacity)
    case .task(let k): k.setGroupCapacity(capacity)
    }
  }
}
