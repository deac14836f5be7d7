/// Carries a value across a concurrency boundary that the compiler cannot see is safe.
///
/// Used only where the code hands a buffer to exactly one other job and does not touch it
/// until that job is done (writer buffers, disjoint slices in parallel loops).
public struct UncheckedSendable<T>: @unchecked Sendable {
  public var value: T
  public init(_ value: T) { self.value = value }
}
