/// Exact conversions between the narrow float formats of safetensors and `Float`/`Double`.
///
/// Widening is exact by construction (every f16, bf16 and f8 value is a `Float`). Narrowing
/// rounds to nearest, ties to even, keeps infinities and NaN, and is done straight from the
/// source precision (a `Double` is never rounded to `Float` first, which could round twice).
/// Integer bit operations are used instead of `Float16`, whose conversions are library calls
/// on Linux x86-64 at the default target.
public enum FloatBits {

  // MARK: Widening

  /// f16 bit pattern → `Float`, exact; built once as a 256 KiB table.
  public static let halfToFloatTable: [UInt32] = (0...0xFFFF).map { halfToFloatBitsSlow(UInt16($0)) }

  /// F8_E4M3 (the "fn" variant: no infinities, NaN = S.1111.111) → `Float` bits.
  public static let e4m3ToFloatTable: [UInt32] = (0...0xFF).map { decodeSmall(UInt32($0), expBits: 4, mantBits: 3, ieee: false) }

  /// F8_E5M2 (IEEE-like, with infinities) → `Float` bits.
  public static let e5m2ToFloatTable: [UInt32] = (0...0xFF).map { decodeSmall(UInt32($0), expBits: 5, mantBits: 2, ieee: true) }

  @inline(__always)
  public static func halfToFloat(_ h: UInt16) -> Float {
    Float(bitPattern: halfToFloatBits(h))
  }

  /// f16 → `Float` bits without branches or tables, so loops over it vectorize: rebias the
  /// exponent; infinities/NaN get the rest of the exponent range; subnormals are renormalized
  /// by one exact float subtraction (2⁻¹⁴·(1 + m/1024) − 2⁻¹⁴ = m·2⁻²⁴).
  @inline(__always)
  public static func halfToFloatBits(_ h: UInt16) -> UInt32 {
    let hh = UInt32(h)
    let sign = (hh & 0x8000) << 16
    let em = hh & 0x7FFF
    let o = (em << 13) &+ 0x3800_0000
    let infNan = o &+ 0x3800_0000
    let sub = (Float(bitPattern: o &+ 0x0080_0000) - Float(bitPattern: 0x3880_0000)).bitPattern
    let r = em >= 0x7C00 ? infNan : (em < 0x0400 ? sub : o)
    return sign | r
  }

  @inline(__always)
  public static func bf16ToFloat(_ b: UInt16) -> Float {
    Float(bitPattern: UInt32(b) << 16)
  }

  static func halfToFloatBitsSlow(_ h: UInt16) -> UInt32 {
    decodeSmall(UInt32(h), expBits: 5, mantBits: 10, ieee: true)
  }

  /// Decodes a small sign/exponent/mantissa float into `Float` bits (all these formats fit).
  static func decodeSmall(_ bits: UInt32, expBits: Int, mantBits: Int, ieee: Bool) -> UInt32 {
    let sign: UInt32 = (bits >> UInt32(expBits + mantBits)) & 1
    let expField = Int((bits >> UInt32(mantBits)) & ((1 << UInt32(expBits)) - 1))
    let mant = bits & ((1 << UInt32(mantBits)) - 1)
    let bias = (1 << (expBits - 1)) - 1
    let maxExp = (1 << expBits) - 1
    let signBit = sign << 31
    if ieee && expField == maxExp {
      return mant == 0 ? signBit | 0x7F80_0000 : signBit | 0x7FC0_0000 | (mant << UInt32(23 - mantBits))
    }
    if !ieee && expField == maxExp && mant == (1 << UInt32(mantBits)) - 1 {
      return signBit | 0x7FC0_0000
    }
    var value: Float
    if expField == 0 {
      value = Float(mant) * Float(sign: .plus, exponent: 1 - bias - mantBits, significand: 1)
    } else {
      value = (1 + Float(mant) / Float(1 << mantBits)) * Float(sign: .plus, exponent: expField - bias, significand: 1)
    }
    if sign == 1 { value = -value }
    return value.bitPattern
  }

  // MARK: Narrowing from Float (fast paths)

  /// `Float` → f16 bits, round to nearest even; overflow gives ±infinity; NaN stays NaN.
  @inline(__always)
  public static func floatToHalf(_ f: Float) -> UInt16 {
    // All three cases are computed and one is selected, so loops over this vectorize.
    let bits = f.bitPattern
    let sign = bits & 0x8000_0000
    let u = bits ^ sign
    // ≥ 65536: infinity, or NaN (payload's top bits kept, quiet bit set).
    let special: UInt32 = u > 0x7F80_0000 ? (0x7E00 | ((u >> 13) & 0x3FF)) : 0x7C00
    // Below the smallest normal half: adding 0.5 aligns the 10 mantissa bits at the bottom and
    // the float addition rounds to nearest even.
    let sub = (Float(bitPattern: u) + Float(bitPattern: 0x3F00_0000)).bitPattern &- 0x3F00_0000
    // Normal: rebias the exponent (15 − 127), add the rounding bias and the odd bit.
    let normal = (u &+ 0xC800_0FFF &+ ((u >> 13) & 1)) >> 13
    let o = u >= 0x4780_0000 ? special : (u < 0x3880_0000 ? sub : normal)
    return UInt16(truncatingIfNeeded: o | (sign >> 16))
  }

  /// `Float` → bf16 bits, round to nearest even; NaN stays a (quiet) NaN.
  @inline(__always)
  public static func floatToBF16(_ f: Float) -> UInt16 {
    let u = f.bitPattern
    if u & 0x7FFF_FFFF > 0x7F80_0000 {
      return UInt16(truncatingIfNeeded: (u >> 16) | 0x0040)
    }
    let rounded = u &+ 0x7FFF &+ ((u >> 16) & 1)
    return UInt16(truncatingIfNeeded: rounded >> 16)
  }

  // MARK: Narrowing from Double (exact single rounding)

  /// Rounds a `Double` once into a small binary float format and returns its bit pattern.
  ///
  /// - Parameters:
  ///   - v: the value.
  ///   - expBits: exponent field width.
  ///   - mantBits: stored mantissa width.
  ///   - ieee: true when the top exponent encodes infinity/NaN (f16, bf16, E5M2); false for
  ///     E4M3 "fn", whose only NaN is all ones and which has no infinity (overflow → NaN, as
  ///     PyTorch's cast does).
  public static func encodeSmall(_ v: Double, expBits: Int, mantBits: Int, ieee: Bool) -> UInt32 {
    let totalBits = 1 + expBits + mantBits
    let signBit: UInt32 = v.sign == .minus ? 1 << UInt32(totalBits - 1) : 0
    let expMask: UInt32 = (1 << UInt32(expBits)) - 1
    let mantMask: UInt32 = (1 << UInt32(mantBits)) - 1
    let infBits: UInt32 = expMask << UInt32(mantBits)
    let nanBits: UInt32 = ieee ? infBits | (1 << UInt32(mantBits - 1)) : infBits | mantMask
    if v.isNaN { return signBit | nanBits }
    let a = v.magnitude
    let bias = (1 << (expBits - 1)) - 1
    // Largest finite biased exponent and mantissa.
    let maxBiased = ieee ? Int(expMask) - 1 : Int(expMask)
    let maxMant: UInt32 = ieee ? mantMask : mantMask - 1
    let overflow = ieee ? signBit | infBits : signBit | nanBits
    if a.isInfinite { return overflow }
    if a == 0 { return signBit }
    let minNormalExp = 1 - bias
    var e = Int(a.exponent)
    if e < minNormalExp {
      let quantum = Double(sign: .plus, exponent: minNormalExp - mantBits, significand: 1)
      let q = (a / quantum).rounded(.toNearestOrEven)
      return signBit | UInt32(q)  // q == 2^mantBits encodes the smallest normal, as it should
    }
    let quantum = Double(sign: .plus, exponent: e - mantBits, significand: 1)
    var q = UInt64((a / quantum).rounded(.toNearestOrEven))
    if q == UInt64(1) << UInt64(mantBits + 1) {
      e += 1
      q >>= 1
    }
    let biased = e + bias
    let mant = UInt32(q - (UInt64(1) << UInt64(mantBits)))
    if biased > maxBiased || (biased == maxBiased && mant > maxMant) { return overflow }
    return signBit | (UInt32(biased) << UInt32(mantBits)) | mant
  }

  /// `Double` → `Float` rounded to odd: truncated toward zero, with the last bit set when
  /// anything was cut off. A value rounded to odd at 24 bits and then to nearest even at ≤ 22
  /// bits is the correctly rounded value (no double-rounding error), so the Float encoders
  /// give exact single roundings from `Double`; every step vectorizes.
  @inline(__always)
  public static func doubleToFloatRoundToOdd(_ d: Double) -> Float {
    let f = Float(d)
    let back = Double(f)
    var bits = f.bitPattern
    bits = back.magnitude > d.magnitude ? bits &- 1 : bits
    bits = back != d ? bits | 1 : bits
    return Float(bitPattern: bits)
  }

  /// `Double` → f16 bits, rounded once (round to odd at 24 bits, then to nearest even).
  @inline(__always)
  public static func doubleToHalf(_ d: Double) -> UInt16 {
    floatToHalf(doubleToFloatRoundToOdd(d))
  }

  /// `Double` → bf16 bits, rounded once (round to odd at 24 bits, then to nearest even).
  @inline(__always)
  public static func doubleToBF16(_ d: Double) -> UInt16 {
    floatToBF16(doubleToFloatRoundToOdd(d))
  }
}
