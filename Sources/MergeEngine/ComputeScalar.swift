import SafeTensors

/// The compute precisions: `Float` (default) and `Double` (the "E2E FP64" workflow).
public protocol ComputeScalar: BinaryFloatingPoint, Sendable {
  /// Decodes stored elements into this precision.
  static func decode(_ dtype: DType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Self>)
  /// Encodes values of this precision as `dtype`, rounding once.
  static func encode(_ src: UnsafePointer<Self>, count: Int, as dtype: DType, into dst: UnsafeMutableRawPointer)
  /// The magnitude's bit pattern, zero-extended: ordering keys equals ordering magnitudes.
  var magnitudeKey: UInt64 { get }
  /// Significant bits of `magnitudeKey` (31 for Float, 63 for Double).
  static var keyBits: Int { get }
  init(_ d: Double)
  var double: Double { get }
  /// Zeroes every value whose magnitude key is outside [lo, hi], with native-width integer
  /// compares so the loop vectorizes.
  static func keepMagnitudes(_ v: UnsafeMutablePointer<Self>, count: Int, lo: UInt64, hi: UInt64)
}

extension Float: ComputeScalar {
  @inline(__always)
  public static func decode(_ dtype: DType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
    Codec.decode(dtype, src, count: count, into: dst)
  }
  @inline(__always)
  public static func encode(_ src: UnsafePointer<Float>, count: Int, as dtype: DType, into dst: UnsafeMutableRawPointer) {
    Codec.encode(src, count: count, as: dtype, into: dst)
  }
  @inline(__always) public var magnitudeKey: UInt64 { UInt64(bitPattern & 0x7FFF_FFFF) }
  public static var keyBits: Int { 31 }
  @inline(__always) public var double: Double { Double(self) }

  public static func keepMagnitudes(_ v: UnsafeMutablePointer<Float>, count: Int, lo: UInt64, hi: UInt64) {
    // Keys are below 2³¹, so signed 32-bit compares are exact (and vectorize on SSE2).
    guard lo <= hi else {
      for e in 0..<count { v[e] = 0 }
      return
    }
    // One unsigned compare per element: k ∈ [lo, hi] ⟺ k − lo ≤ hi − lo (mod 2³²).
    let l = UInt32(clamping: lo)
    let span = UInt32(clamping: min(hi, 0x7FFF_FFFF)) &- l
    let raw = UnsafeMutableRawPointer(v).assumingMemoryBound(to: UInt32.self)
    for e in 0..<count {
      let k = raw[e] & 0x7FFF_FFFF
      let mask: UInt32 = (k &- l) <= span ? 0xFFFF_FFFF : 0
      raw[e] &= mask
    }
  }
}

extension Double: ComputeScalar {
  @inline(__always)
  public static func decode(_ dtype: DType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Double>) {
    Codec.decode(dtype, src, count: count, into: dst)
  }
  @inline(__always)
  public static func encode(_ src: UnsafePointer<Double>, count: Int, as dtype: DType, into dst: UnsafeMutableRawPointer) {
    Codec.encode(src, count: count, as: dtype, into: dst)
  }
  @inline(__always) public var magnitudeKey: UInt64 { bitPattern & 0x7FFF_FFFF_FFFF_FFFF }
  public static var keyBits: Int { 63 }
  @inline(__always) public var double: Double { self }

  public static func keepMagnitudes(_ v: UnsafeMutablePointer<Double>, count: Int, lo: UInt64, hi: UInt64) {
    guard lo <= hi else {
      for e in 0..<count { v[e] = 0 }
      return
    }
    let span = min(hi, 0x7FFF_FFFF_FFFF_FFFF) &- lo
    let raw = UnsafeMutableRawPointer(v).assumingMemoryBound(to: UInt64.self)
    for e in 0..<count {
      let k = raw[e] & 0x7FFF_FFFF_FFFF_FFFF
      let mask: UInt64 = (k &- lo) <= span ? .max : 0
      raw[e] &= mask
    }
  }
}

/// Compute precision named in recipes and records.
public enum ComputeType: String, Sendable, Codable, CaseIterable {
  case f32, f64
}
