/// A counter-based random generator: every value is a pure function of
/// (seed, tensor name, stream, element index), so any chunking or thread count draws the same
/// numbers, and no two tensors or models share a stream.
///
/// The mixer is SplitMix64's finaliser over a key derived from the seed, the FNV-1a hash of
/// the tensor name and a stream number. Its output is frozen: changing it changes the bytes
/// of every seeded method and every synthesized model, so it is versioned with the method
/// semantics.
public struct CounterRNG: Sendable, Hashable {
  public let key: UInt64

  /// - Parameters:
  ///   - seed: the recipe's (or synth's) seed.
  ///   - name: the tensor name.
  ///   - stream: separates independent draws for the same tensor (e.g. the model index).
  public init(seed: UInt64, name: String, stream: UInt64) {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in name.utf8 {
      h ^= UInt64(b)
      h = h &* 0x0000_0100_0000_01B3
    }
    key = CounterRNG.mix(seed ^ CounterRNG.mix(h ^ CounterRNG.mix(stream &+ 0x9E37_79B9_7F4A_7C15)))
  }

  @inline(__always)
  public static func mix(_ z0: UInt64) -> UInt64 {
    var z = z0
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// 64 random bits for `counter`.
  @inline(__always)
  public func bits(_ counter: Int) -> UInt64 {
    CounterRNG.mix(key &+ UInt64(bitPattern: Int64(counter)) &* 0x9E37_79B9_7F4A_7C15)
  }

  /// Uniform in [0, 1) with 24 bits (exact in `Float`).
  @inline(__always)
  public func unit(_ counter: Int) -> Float {
    Float(bits(counter) >> 40) * 0x1p-24
  }

  /// Uniform in [0, 1) with 53 bits (exact in `Double`).
  @inline(__always)
  public func unitDouble(_ counter: Int) -> Double {
    Double(bits(counter) >> 11) * 0x1p-53
  }
}
