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
public protocol Kernel<T> {
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
  mutating func combine(pass: Int, group: Group, ordered: UnsafePointer<Double>)
  mutating func endPass(_ pass: Int, counters: UnsafePointer<UInt32>) throws(MergeError)
  func apply(group: Group, operands: Operands<T>, into out: UnsafeMutablePointer<T>)
  /// Tells the kernel the largest group it will see (for per-group statistics slots).
  mutating func setGroupCapacity(_ capacity: Int)
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
  public mutating func combine(pass: Int, group: Group, ordered: UnsafePointer<Double>) {}
  public mutating func endPass(_ pass: Int, counters: UnsafePointer<UInt32>) throws(MergeError) {}
  public mutating func setGroupCapacity(_ capacity: Int) {}
}

/// Engine constants that are part of the output's definition.
public enum Engine {
  /// Version of the engine's numeric definitions (group size, RNG, formulas). Bumped whenever
  /// any output byte could change, and recorded in every run.
  public static let version = "1"
  /// Target elements per group (whole rows, at least one row).
  public static let groupElements = 65536
}
