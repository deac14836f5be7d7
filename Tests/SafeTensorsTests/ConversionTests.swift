import Foundation
import Testing

@testable import SafeTensors

/// Independent reference decoders, written from the format definitions rather than from the
/// code under test.
enum Reference {
  /// IEEE binary16.
  static func half(_ h: UInt16) -> Double {
    let sign: Double = h & 0x8000 != 0 ? -1 : 1
    let e = Int((h >> 10) & 0x1F)
    let m = Double(h & 0x3FF)
    if e == 0x1F { return m == 0 ? sign * .infinity : .nan }
    if e == 0 { return sign * m * 0x1p-24 }
    return sign * (1 + m / 1024) * Double(sign: .plus, exponent: e - 15, significand: 1)
  }

  /// bfloat16: the top half of an IEEE binary32.
  static func bf16(_ b: UInt16) -> Double {
    let sign: Double = b & 0x8000 != 0 ? -1 : 1
    let e = Int((b >> 7) & 0xFF)
    let m = Double(b & 0x7F)
    if e == 0xFF { return m == 0 ? sign * .infinity : .nan }
    if e == 0 { return sign * m * 0x1p-133 }
    return sign * (1 + m / 128) * Double(sign: .plus, exponent: e - 127, significand: 1)
  }

  /// F8_E4M3 "fn": bias 7, no infinities, S.1111.111 is NaN.
  static func e4m3(_ b: UInt8) -> Double {
    let sign: Double = b & 0x80 != 0 ? -1 : 1
    let e = Int((b >> 3) & 0xF)
    let m = Double(b & 7)
    if e == 15 && m == 7 { return .nan }
    if e == 0 { return sign * m * 0x1p-9 }
    return sign * (1 + m / 8) * Double(sign: .plus, exponent: e - 7, significand: 1)
  }

  /// F8_E5M2: bias 15, IEEE-like infinities and NaNs.
  static func e5m2(_ b: UInt8) -> Double {
    let sign: Double = b & 0x80 != 0 ? -1 : 1
    let e = Int((b >> 2) & 0x1F)
    let m = Double(b & 3)
    if e == 31 { return m == 0 ? sign * .infinity : .nan }
    if e == 0 { return sign * m * 0x1p-16 }
    return sign * (1 + m / 4) * Double(sign: .plus, exponent: e - 15, significand: 1)
  }
}

/// Same value, or both NaN; zeros compared with their sign.
func sameValue(_ a: Double, _ b: Double) -> Bool {
  (a.isNaN && b.isNaN) || (a == b && a.sign == b.sign)
}

@Suite("Float conversions")
struct ConversionTests {
  static let halfNaNs = (0...0xFFFF).filter { ($0 & 0x7C00) == 0x7C00 && ($0 & 0x3FF) != 0 }.count

  // MARK: Exhaustive round trips

  @Test("every f16 pattern widens exactly and round-trips through f32 and f64")
  func halfRoundTripsAllPatterns() {
    var mismatches: [String] = []
    var nanCount = 0
    for bits in 0...0xFFFF {
      let h = UInt16(bits)
      let expected = Reference.half(h)
      let f = FloatBits.halfToFloat(h)
      if !sameValue(Double(f), expected) { mismatches.append("widen \(String(bits, radix: 16)) → \(f), expected \(expected)") }
      let viaFloat = FloatBits.floatToHalf(f)
      let viaDouble = FloatBits.doubleToHalf(Double(f))
      if expected.isNaN {
        nanCount += 1
        // NaN stays NaN with its sign; the quiet bit may be set on the way.
        for back in [viaFloat, viaDouble] where !(back & 0x7C00 == 0x7C00 && back & 0x3FF != 0 && back & 0x8000 == h & 0x8000) {
          mismatches.append("NaN \(String(bits, radix: 16)) came back as \(String(back, radix: 16))")
        }
      } else {
        if viaFloat != h { mismatches.append("f16→f32→f16 \(String(bits, radix: 16)) → \(String(viaFloat, radix: 16))") }
        if viaDouble != h { mismatches.append("f16→f64→f16 \(String(bits, radix: 16)) → \(String(viaDouble, radix: 16))") }
      }
    }
    #expect(nanCount == Self.halfNaNs)
    #expect(mismatches.isEmpty, "\(mismatches.count) mismatches, first: \(mismatches.prefix(5))")
  }

  @Test("every bf16 pattern widens exactly and round-trips through f32 and f64")
  func bf16RoundTripsAllPatterns() {
    var mismatches: [String] = []
    for bits in 0...0xFFFF {
      let b = UInt16(bits)
      let expected = Reference.bf16(b)
      let f = FloatBits.bf16ToFloat(b)
      if !sameValue(Double(f), expected) { mismatches.append("widen \(String(bits, radix: 16)) → \(f), expected \(expected)") }
      let viaFloat = FloatBits.floatToBF16(f)
      let viaDouble = FloatBits.doubleToBF16(Double(f))
      if expected.isNaN {
        for back in [viaFloat, viaDouble] where !(back & 0x7F80 == 0x7F80 && back & 0x7F != 0 && back & 0x8000 == b & 0x8000) {
          mismatches.append("NaN \(String(bits, radix: 16)) came back as \(String(back, radix: 16))")
        }
      } else {
        if viaFloat != b { mismatches.append("bf16→f32→bf16 \(String(bits, radix: 16)) → \(String(viaFloat, radix: 16))") }
        if viaDouble != b { mismatches.append("bf16→f64→bf16 \(String(bits, radix: 16)) → \(String(viaDouble, radix: 16))") }
      }
    }
    #expect(mismatches.isEmpty, "\(mismatches.count) mismatches, first: \(mismatches.prefix(5))")
  }

  @Test("Codec round-trips every f16 and bf16 pattern through Float and Double buffers", arguments: [DType.f16, .bf16])
  func codecRoundTripsAllPatterns(dtype: DType) {
    let patterns = (0...0xFFFF).map { UInt16($0) }
    let raw = leBytes(patterns)
    var floats = [Float](repeating: 0, count: patterns.count)
    var doubles = [Double](repeating: 0, count: patterns.count)
    raw.withUnsafeBytes { src in
      Codec.decode(dtype, src.baseAddress!, count: patterns.count, into: &floats)
      Codec.decode(dtype, src.baseAddress!, count: patterns.count, into: &doubles)
    }
    var fromFloat = [UInt16](repeating: 0, count: patterns.count)
    var fromDouble = [UInt16](repeating: 0, count: patterns.count)
    fromFloat.withUnsafeMutableBytes { Codec.encode(floats, count: patterns.count, as: dtype, into: $0.baseAddress!) }
    fromDouble.withUnsafeMutableBytes { Codec.encode(doubles, count: patterns.count, as: dtype, into: $0.baseAddress!) }
    let reference: (UInt16) -> Double = { dtype == .f16 ? Reference.half($0) : Reference.bf16($0) }
    var bad = 0
    for (i, p) in patterns.enumerated() {
      let v = reference(p)
      if !sameValue(Double(floats[i]), v) || !sameValue(doubles[i], v) { bad += 1 }
      // The vectorized decoder gives the scalar one's bits, NaN payloads included.
      if dtype == .f16 && floats[i].bitPattern != FloatBits.halfToFloatBits(p) { bad += 1 }
      if v.isNaN {
        if !reference(fromFloat[i]).isNaN || !reference(fromDouble[i]).isNaN { bad += 1 }
      } else if fromFloat[i] != p || fromDouble[i] != p {
        bad += 1
      }
    }
    #expect(bad == 0)
  }

  // MARK: Rounding

  /// Every pair of adjacent non-negative finite values of a 16-bit format (plus the step from
  /// the largest finite value to infinity), with the value the next pattern would have had
  /// with an unbounded exponent.
  static func adjacentPairs(finiteLimit: UInt16, decode: (UInt16) -> Double, overflowValue: Double) -> [(UInt16, Double, Double)]
  {
    (0..<Int(finiteLimit)).map { i in
      let lo = UInt16(i)
      let hiValue = lo + 1 == finiteLimit ? overflowValue : decode(lo + 1)
      return (lo, decode(lo), hiValue)
    }
  }

  /// Failures of round-to-nearest-even at each midpoint between adjacent values, and of
  /// rounding to the nearer value one ulp (of Float, and of Double) above and below it.
  static func midpointFailures(
    finiteLimit: UInt16, decode: (UInt16) -> Double, overflowValue: Double,
    fromDouble: (Double) -> UInt16, fromFloat: (Float) -> UInt16
  ) -> [String] {
    var failures: [String] = []
    func check(_ got: UInt16, _ want: UInt16, _ what: String, _ x: some BinaryFloatingPoint) {
      if got != want { failures.append("\(what) \(x): got 0x\(String(got, radix: 16)), want 0x\(String(want, radix: 16))") }
    }
    for (lo, a, b) in adjacentPairs(finiteLimit: finiteLimit, decode: decode, overflowValue: overflowValue) {
      let hi = lo + 1
      let even = lo & 1 == 0 ? lo : hi
      let mid = (a + b) / 2  // exact in Float and Double: one bit more than the format holds
      let fmid = Float(mid)
      precondition(Double(fmid) == mid)
      for (s, sign) in [(1.0, UInt16(0)), (-1.0, UInt16(0x8000))] {
        check(fromDouble(s * mid), even | sign, "double midpoint", s * mid)
        // One Double ulp above the midpoint rounds to the midpoint in Float: narrowing through
        // Float would round twice and pick the even neighbour.
        check(fromDouble(s * mid.nextUp), hi | sign, "double just above", s * mid.nextUp)
        check(fromDouble(s * mid.nextDown), lo | sign, "double just below", s * mid.nextDown)
        check(fromFloat(Float(s) * fmid), even | sign, "float midpoint", Float(s) * fmid)
        check(fromFloat(Float(s) * fmid.nextUp), hi | sign, "float just above", Float(s) * fmid.nextUp)
        check(fromFloat(Float(s) * fmid.nextDown), lo | sign, "float just below", Float(s) * fmid.nextDown)
      }
    }
    return failures
  }

  @Test("f16 narrowing: ties to even at every midpoint (subnormals and the overflow step included)")
  func halfMidpoints() {
    // 0x7BFF = 65504; the next step would be 65536, which is infinity (0x7C00, even).
    let failures = Self.midpointFailures(
      finiteLimit: 0x7C00, decode: Reference.half, overflowValue: 65536,
      fromDouble: FloatBits.doubleToHalf, fromFloat: FloatBits.floatToHalf)
    #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(5))")
  }

  @Test("bf16 narrowing: ties to even at every midpoint (subnormals and the overflow step included)")
  func bf16Midpoints() {
    let failures = Self.midpointFailures(
      finiteLimit: 0x7F80, decode: Reference.bf16, overflowValue: 0x1p128,
      fromDouble: FloatBits.doubleToBF16, fromFloat: FloatBits.floatToBF16)
    #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(5))")
  }

  @Test("overflow gives infinity with the sign kept; the largest finite values survive")
  func overflow() {
    for s in [1.0, -1.0] {
      let sign: UInt16 = s > 0 ? 0 : 0x8000
      // f16: 65504 is the largest finite value, 65520 the midpoint to the (virtual) 65536.
      #expect(FloatBits.doubleToHalf(s * 65504) == 0x7BFF | sign)
      #expect(FloatBits.doubleToHalf(s * 65519.999) == 0x7BFF | sign)
      #expect(FloatBits.doubleToHalf(s * 65520) == 0x7C00 | sign)
      #expect(FloatBits.doubleToHalf(s * 1e300) == 0x7C00 | sign)
      #expect(FloatBits.doubleToHalf(s * .greatestFiniteMagnitude) == 0x7C00 | sign)
      #expect(FloatBits.doubleToHalf(s * .infinity) == 0x7C00 | sign)
      #expect(FloatBits.floatToHalf(Float(s) * 65519.996) == 0x7BFF | sign)
      #expect(FloatBits.floatToHalf(Float(s) * 65520) == 0x7C00 | sign)
      #expect(FloatBits.floatToHalf(Float(s) * 1e30) == 0x7C00 | sign)
      #expect(FloatBits.floatToHalf(Float(s) * .greatestFiniteMagnitude) == 0x7C00 | sign)
      #expect(FloatBits.floatToHalf(Float(s) * .infinity) == 0x7C00 | sign)
      // bf16: Float's largest value lies above the midpoint between 0x7F7F and 2^128.
      #expect(FloatBits.floatToBF16(Float(s) * .greatestFiniteMagnitude) == 0x7F80 | sign)
      #expect(FloatBits.floatToBF16(Float(s) * .infinity) == 0x7F80 | sign)
      #expect(FloatBits.doubleToBF16(s * 1e300) == 0x7F80 | sign)
      #expect(FloatBits.doubleToBF16(s * Double(Float.greatestFiniteMagnitude)) == 0x7F80 | sign)
      #expect(FloatBits.doubleToBF16(s * 0x1.FEp127) == 0x7F7F | sign)
    }
    #expect(FloatBits.halfToFloat(0x7C00) == .infinity)
    #expect(FloatBits.halfToFloat(0xFC00) == -.infinity)
    #expect(FloatBits.bf16ToFloat(0xFF80) == -.infinity)
  }

  @Test("subnormals: smallest values, underflow to signed zero, and the step into the normals")
  func subnormals() {
    #expect(FloatBits.halfToFloat(0x0001) == 0x1p-24)
    #expect(FloatBits.halfToFloat(0x03FF) == 0x1.FF8p-15)
    #expect(FloatBits.halfToFloat(0x0400) == 0x1p-14)
    #expect(FloatBits.halfToFloat(0x8001) == -0x1p-24)
    #expect(FloatBits.floatToHalf(0x1p-24) == 0x0001)
    #expect(FloatBits.floatToHalf(0x1p-25) == 0x0000)  // tie: to even (zero)
    #expect(FloatBits.floatToHalf(0x1.000002p-25) == 0x0001)
    #expect(FloatBits.floatToHalf(0x1.8p-24) == 0x0002)  // tie between 1 and 2 quanta: to even
    #expect(FloatBits.floatToHalf(0x1p-30) == 0x0000)
    #expect(FloatBits.floatToHalf(-0x1p-30) == 0x8000)
    #expect(FloatBits.floatToHalf(.leastNonzeroMagnitude) == 0x0000)
    #expect(FloatBits.floatToHalf(-.leastNonzeroMagnitude) == 0x8000)
    #expect(FloatBits.floatToHalf(-0.0) == 0x8000)
    #expect(FloatBits.doubleToHalf(-0.0) == 0x8000)
    #expect(FloatBits.doubleToHalf(.leastNonzeroMagnitude) == 0x0000)
    #expect(FloatBits.doubleToHalf(0x1p-25) == 0x0000)
    #expect(FloatBits.doubleToHalf(0x1.0000000000001p-25) == 0x0001)
    // Largest subnormal plus half a quantum rounds up into the smallest normal.
    #expect(FloatBits.floatToHalf(0x1.FFCp-15) == 0x0400)
    #expect(FloatBits.doubleToHalf(0x1.FFCp-15) == 0x0400)
    // bf16 has Float's exponent range: its subnormals are Float subnormals.
    #expect(FloatBits.bf16ToFloat(0x0001) == 0x1p-133)
    #expect(FloatBits.floatToBF16(0x1p-133) == 0x0001)
    #expect(FloatBits.floatToBF16(0x1p-134) == 0x0000)
    #expect(FloatBits.floatToBF16(.leastNonzeroMagnitude) == 0x0000)
    #expect(FloatBits.doubleToBF16(0x1p-134) == 0x0000)
    #expect(FloatBits.doubleToBF16(0x1.0000000000001p-134) == 0x0001)
    #expect(FloatBits.doubleToBF16(1e-300) == 0x0000)
    #expect(FloatBits.doubleToBF16(-1e-300) == 0x8000)
  }

  @Test("NaN stays NaN in every narrowing, sign kept")
  func nanNarrowing() {
    let nans: [Float] = [.nan, -.nan, .signalingNaN, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFFF_FFFF)]
    for n in nans {
      let neg: UInt16 = n.sign == .minus ? 0x8000 : 0
      let h = FloatBits.floatToHalf(n)
      #expect(h & 0x7C00 == 0x7C00 && h & 0x3FF != 0 && h & 0x8000 == neg)
      let hd = FloatBits.doubleToHalf(Double(n))
      #expect(hd & 0x7C00 == 0x7C00 && hd & 0x3FF != 0 && hd & 0x8000 == neg)
      let b = FloatBits.floatToBF16(n)
      #expect(b & 0x7F80 == 0x7F80 && b & 0x7F != 0 && b & 0x8000 == neg)
      let bd = FloatBits.doubleToBF16(Double(n))
      #expect(bd & 0x7F80 == 0x7F80 && bd & 0x7F != 0 && bd & 0x8000 == neg)
    }
  }

  // MARK: Fast paths against the exact encoder

  /// Deterministic f32 bit patterns: half drawn from all 2^32, half with exponents near the
  /// target format's range, where rounding actually happens.
  static func samplePatterns(count: Int, seed: UInt64, exponents: ClosedRange<UInt32>) -> [UInt32] {
    var rng = SplitMix(seed)
    return (0..<count).map { i in
      let r = UInt32(truncatingIfNeeded: rng.next())
      if i % 2 == 0 { return r }
      let e = exponents.lowerBound + UInt32(rng.below(Int(exponents.upperBound - exponents.lowerBound + 1)))
      return (r & 0x807F_FFFF) | (e << 23)
    }
  }

  @Test("floatToHalf agrees with encodeSmall on 1M deterministic f32 patterns")
  func floatToHalfAgreesWithEncodeSmall() {
    var failures: [UInt32] = []
    for bits in Self.samplePatterns(count: 1 << 20, seed: 16, exponents: 95...145) {
      let f = Float(bitPattern: bits)
      let fast = FloatBits.floatToHalf(f)
      let exact = UInt16(truncatingIfNeeded: FloatBits.encodeSmall(Double(f), expBits: 5, mantBits: 10, ieee: true))
      let bothNaN = f.isNaN && fast & 0x7FFF > 0x7C00 && exact & 0x7FFF > 0x7C00 && fast & 0x8000 == exact & 0x8000
      if fast != exact && !bothNaN { failures.append(bits) }
    }
    #expect(failures.isEmpty, "first disagreeing patterns: \(failures.prefix(5).map { String($0, radix: 16) })")
  }

  @Test("floatToBF16 agrees with encodeSmall on 1M deterministic f32 patterns")
  func floatToBF16AgreesWithEncodeSmall() {
    var failures: [UInt32] = []
    for bits in Self.samplePatterns(count: 1 << 20, seed: 17, exponents: 0...255) {
      let f = Float(bitPattern: bits)
      let fast = FloatBits.floatToBF16(f)
      let exact = UInt16(truncatingIfNeeded: FloatBits.encodeSmall(Double(f), expBits: 8, mantBits: 7, ieee: true))
      let bothNaN = f.isNaN && fast & 0x7FFF > 0x7F80 && exact & 0x7FFF > 0x7F80 && fast & 0x8000 == exact & 0x8000
      if fast != exact && !bothNaN { failures.append(bits) }
    }
    #expect(failures.isEmpty, "first disagreeing patterns: \(failures.prefix(5).map { String($0, radix: 16) })")
  }

  // MARK: 8-bit floats

  @Test(
    "F8_E4M3 decodes hand-known values",
    arguments: [
      (UInt8(0x00), 0.0), (0x80, -0.0), (0x01, 0x1p-9), (0x07, 7 * 0x1p-9), (0x08, 0x1p-6), (0x38, 1.0),
      (0xB8, -1.0), (0x40, 2.0), (0x3C, 1.5), (0x77, 240.0), (0x78, 256.0), (0x7E, 448.0), (0xFE, -448.0),
    ] as [(UInt8, Double)])
  func e4m3KnownValues(bits: UInt8, value: Double) {
    let got = Double(Float(bitPattern: FloatBits.e4m3ToFloatTable[Int(bits)]))
    #expect(sameValue(got, value), "0x\(String(bits, radix: 16)) decoded as \(got)")
  }

  @Test(
    "F8_E5M2 decodes hand-known values",
    arguments: [
      (UInt8(0x00), 0.0), (0x80, -0.0), (0x01, 0x1p-16), (0x04, 0x1p-14), (0x3C, 1.0), (0xBC, -1.0), (0x3E, 1.5),
      (0x7B, 57344.0), (0x7C, Double.infinity), (0xFC, -Double.infinity),
    ] as [(UInt8, Double)])
  func e5m2KnownValues(bits: UInt8, value: Double) {
    let got = Double(Float(bitPattern: FloatBits.e5m2ToFloatTable[Int(bits)]))
    #expect(sameValue(got, value), "0x\(String(bits, radix: 16)) decoded as \(got)")
  }

  @Test("F8 NaN patterns: E4M3 has only S.1111.111, E5M2 has S.11111.xx with xx ≠ 0")
  func f8NaNs() {
    let e4m3NaNs = (0...255).filter { Float(bitPattern: FloatBits.e4m3ToFloatTable[$0]).isNaN }
    #expect(e4m3NaNs == [0x7F, 0xFF])
    let e5m2NaNs = (0...255).filter { Float(bitPattern: FloatBits.e5m2ToFloatTable[$0]).isNaN }
    #expect(e5m2NaNs == [0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF])
    #expect((0...255).allSatisfy { !Float(bitPattern: FloatBits.e4m3ToFloatTable[$0]).isInfinite })
  }

  @Test("F8 tables match the format definitions for all 256 patterns; E5M2 is the top byte of an f16")
  func f8TablesMatchDefinitions() {
    for b in 0...255 {
      let e4 = Double(Float(bitPattern: FloatBits.e4m3ToFloatTable[b]))
      #expect(sameValue(e4, Reference.e4m3(UInt8(b))), "E4M3 0x\(String(b, radix: 16))")
      let e5 = Double(Float(bitPattern: FloatBits.e5m2ToFloatTable[b]))
      #expect(sameValue(e5, Reference.e5m2(UInt8(b))), "E5M2 0x\(String(b, radix: 16))")
      #expect(sameValue(e5, Double(FloatBits.halfToFloat(UInt16(b) << 8))), "E5M2 0x\(String(b, radix: 16)) vs f16")
    }
  }

  @Test("F8 encode round-trips all 256 patterns through Float and Double", arguments: [DType.f8e4m3, .f8e5m2])
  func f8RoundTrip(dtype: DType) {
    let patterns = (0...255).map { UInt8($0) }
    var floats = [Float](repeating: 0, count: 256)
    var doubles = [Double](repeating: 0, count: 256)
    patterns.withUnsafeBytes { src in
      Codec.decode(dtype, src.baseAddress!, count: 256, into: &floats)
      Codec.decode(dtype, src.baseAddress!, count: 256, into: &doubles)
    }
    var viaFloat = [UInt8](repeating: 0, count: 256)
    var viaDouble = [UInt8](repeating: 0, count: 256)
    viaFloat.withUnsafeMutableBytes { Codec.encode(floats, count: 256, as: dtype, into: $0.baseAddress!) }
    viaDouble.withUnsafeMutableBytes { Codec.encode(doubles, count: 256, as: dtype, into: $0.baseAddress!) }
    let reference: (UInt8) -> Double = { dtype == .f8e4m3 ? Reference.e4m3($0) : Reference.e5m2($0) }
    for p in patterns {
      if reference(p).isNaN {
        #expect(reference(viaFloat[Int(p)]).isNaN && reference(viaDouble[Int(p)]).isNaN)
        #expect(viaFloat[Int(p)] & 0x80 == p & 0x80, "NaN sign kept for 0x\(String(p, radix: 16))")
      } else {
        #expect(
          viaFloat[Int(p)] == p, "0x\(String(p, radix: 16)) via Float came back as 0x\(String(viaFloat[Int(p)], radix: 16))")
        #expect(
          viaDouble[Int(p)] == p, "0x\(String(p, radix: 16)) via Double came back as 0x\(String(viaDouble[Int(p)], radix: 16))")
      }
    }
  }

  @Test("F8 narrowing rounds to nearest even; E4M3 overflow is NaN, E5M2 overflow is infinity")
  func f8Rounding() {
    func e4(_ d: Double) -> UInt32 { FloatBits.encodeSmall(d, expBits: 4, mantBits: 3, ieee: false) }
    func e5(_ d: Double) -> UInt32 { FloatBits.encodeSmall(d, expBits: 5, mantBits: 2, ieee: true) }
    #expect(e4(1.0625) == 0x38)  // midpoint of 1 and 1.125: to even (1)
    #expect(e4(1.1875) == 0x3A)  // midpoint of 1.125 and 1.25: to even (1.25)
    #expect(e4(1.0625.nextUp) == 0x39)
    #expect(e4(464) == 0x7E)  // midpoint of 448 and (NaN-coded) 480: to even 448
    #expect(e4(464.0.nextUp) == 0x7F)
    #expect(e4(1e9) == 0x7F)
    #expect(e4(-1e9) == 0xFF)
    #expect(e4(.infinity) == 0x7F)
    #expect(e4(0x1p-10) == 0x00)  // half the smallest subnormal: to even (0)
    #expect(e4(0x1.8p-9) == 0x02)  // 1.5 quanta: to even (2)
    #expect(e4(-0x1p-12) == 0x80)
    #expect(e5(61440) == 0x7C)  // midpoint of 57344 and 65536: to even (infinity)
    #expect(e5(61439) == 0x7B)
    #expect(e5(-1e9) == 0xFC)
    #expect(e5(.infinity) == 0x7C)
    #expect(e5(0x1p-17) == 0x00)
    #expect(e5(0x1.8p-16) == 0x02)
  }
}

@Suite("Double narrowing fast paths")
struct DoubleNarrowingTests {
  /// The branch-free `doubleToHalf`/`doubleToBF16` agree with the general single-rounding
  /// encoder on random doubles spread over every binade that matters (subnormal to overflow).
  @Test func fastPathsAgreeWithTheGeneralEncoder() {
    var state: UInt64 = 0x1234_5678_9ABC_DEF0
    for _ in 0..<400_000 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      let exponent = Int((state >> 32) % 300) - 150  // 2⁻¹⁵⁰ … 2¹⁴⁹
      let mantissa = Double(state >> 11 & 0xF_FFFF_FFFF_FFFF) / Double(1 << 52)
      let sign: Double = state & 1 == 0 ? 1 : -1
      let d = sign * (1 + mantissa) * Double(sign: .plus, exponent: exponent, significand: 1)
      #expect(
        FloatBits.doubleToHalf(d) == UInt16(FloatBits.encodeSmall(d, expBits: 5, mantBits: 10, ieee: true)), "f16 of \(d)")
      #expect(
        FloatBits.doubleToBF16(d) == UInt16(FloatBits.encodeSmall(d, expBits: 8, mantBits: 7, ieee: true)), "bf16 of \(d)")
    }
    for d in [0.0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude] {
      #expect(FloatBits.doubleToHalf(d) == UInt16(FloatBits.encodeSmall(d, expBits: 5, mantBits: 10, ieee: true)))
      #expect(FloatBits.doubleToBF16(d) == UInt16(FloatBits.encodeSmall(d, expBits: 8, mantBits: 7, ieee: true)))
    }
    #expect(Float16(bitPattern: FloatBits.doubleToHalf(.nan)).isNaN)
    #expect(FloatBits.doubleToBF16(.nan) & 0x7FFF > 0x7F80)
  }
}
