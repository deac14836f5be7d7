/// Element conversion between stored bytes and the compute types `Float` and `Double`.
///
/// Sources may be unaligned (a header whose length is not a multiple of 8 shifts all data),
/// so loads are unaligned loads; the loops are plain so the compiler vectorises them.
public enum Codec {
  /// Decodes `count` elements of `dtype` at `src` into `dst` as `Float` (exact for every
  /// format narrower than f32; f64 rounds to nearest).
  public static func decode(_ dtype: DType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
    switch dtype {
    case .f32:
      (UnsafeMutableRawPointer(dst)).copyMemory(from: src, byteCount: count * 4)
    case .f16:
      for i in 0..<count {
        let h = src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)
        dst[i] = Float(bitPattern: FloatBits.halfToFloatBits(h))
      }
    case .bf16:
      for i in 0..<count {
        let h = src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)
        dst[i] = Float(bitPattern: UInt32(h) << 16)
      }
    case .f64:
      for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i &* 8, as: Double.self)) }
    case .f8e4m3, .f8e5m2:
      let table = dtype == .f8e4m3 ? FloatBits.e4m3ToFloatTable : FloatBits.e5m2ToFloatTable
      table.withUnsafeBufferPointer { t in
        for i in 0..<count { dst[i] = Float(bitPattern: t[Int(src.load(fromByteOffset: i, as: UInt8.self))]) }
      }
    case .bool, .u8:
      for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: UInt8.self)) }
    case .i8:
      for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: Int8.self)) }
    case .i16:
      for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i &* 2, as: Int16.self)) }
    case .u16:
      for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)) }
    case .i32:
      for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i &* 4, as: Int32.self)) }
    case .u32:
      for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self)) }
    case .i64:
      for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i &* 8, as: Int64.self)) }
    case .u64:
      for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self)) }
    }
  }

  /// Decodes into `Double`; exact for every float format and for integers up to 32 bits
  /// (64-bit integers beyond 2^53 round to nearest).
  public static func decode(_ dtype: DType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Double>) {
    switch dtype {
    case .f64:
      (UnsafeMutableRawPointer(dst)).copyMemory(from: src, byteCount: count * 8)
    case .f32:
      for i in 0..<count { dst[i] = Double(src.loadUnaligned(fromByteOffset: i &* 4, as: Float.self)) }
    case .f16, .bf16:
      // Through a Float block: both loops vectorize, the mixed-width one does not.
      withUnsafeTemporaryAllocation(of: Float.self, capacity: min(count, 4096)) { tmp in
        var done = 0
        while done < count {
          let n = min(4096, count - done)
          decode(dtype, src + done * 2, count: n, into: tmp.baseAddress!)
          for i in 0..<n { dst[done + i] = Double(tmp[i]) }
          done += n
        }
      }
    case .i64:
      for i in 0..<count { dst[i] = Double(src.loadUnaligned(fromByteOffset: i &* 8, as: Int64.self)) }
    case .u64:
      for i in 0..<count { dst[i] = Double(src.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self)) }
    case .i32:
      // Not through Float: 32-bit integers above 2^24 would round.
      for i in 0..<count { dst[i] = Double(src.loadUnaligned(fromByteOffset: i &* 4, as: Int32.self)) }
    case .u32:
      for i in 0..<count { dst[i] = Double(src.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self)) }
    default:
      withUnsafeTemporaryAllocation(of: Float.self, capacity: min(count, 4096)) { tmp in
        var done = 0
        while done < count {
          let n = min(4096, count - done)
          decode(dtype, src + done * dtype.size, count: n, into: tmp.baseAddress!)
          for i in 0..<n { dst[done + i] = Double(tmp[i]) }
          done += n
        }
      }
    }
  }

  /// Encodes `Float` values as `dtype` (a float type), rounding to nearest even.
  public static func encode(_ src: UnsafePointer<Float>, count: Int, as dtype: DType, into dst: UnsafeMutableRawPointer) {
    switch dtype {
    case .f32:
      dst.copyMemory(from: src, byteCount: count * 4)
    case .f16:
      let out = dst.assumingMemoryBound(to: UInt16.self)
      for i in 0..<count { out[i] = FloatBits.floatToHalf(src[i]) }
    case .bf16:
      let out = dst.assumingMemoryBound(to: UInt16.self)
      for i in 0..<count { out[i] = FloatBits.floatToBF16(src[i]) }
    case .f64:
      let out = dst.assumingMemoryBound(to: Double.self)
      for i in 0..<count { out[i] = Double(src[i]) }
    case .f8e4m3:
      let out = dst.assumingMemoryBound(to: UInt8.self)
      for i in 0..<count { out[i] = UInt8(FloatBits.encodeSmall(Double(src[i]), expBits: 4, mantBits: 3, ieee: false)) }
    case .f8e5m2:
      let out = dst.assumingMemoryBound(to: UInt8.self)
      for i in 0..<count { out[i] = UInt8(FloatBits.encodeSmall(Double(src[i]), expBits: 5, mantBits: 2, ieee: true)) }
    default:
      preconditionFailure("encode to integer dtype \(dtype) is not a merge output")
    }
  }

  /// Encodes `Double` values as `dtype`, rounding once from double precision.
  public static func encode(_ src: UnsafePointer<Double>, count: Int, as dtype: DType, into dst: UnsafeMutableRawPointer) {
    switch dtype {
    case .f64:
      dst.copyMemory(from: src, byteCount: count * 8)
    case .f32:
      let out = dst.assumingMemoryBound(to: Float.self)
      for i in 0..<count { out[i] = Float(src[i]) }
    case .f16, .bf16:
      // Round to odd into a Float block, then the Float encoder: each loop vectorizes at its
      // own width (the fused mixed-width loop did not), and the result is the same single
      // rounding as `doubleToHalf`/`doubleToBF16`.
      withUnsafeTemporaryAllocation(of: Float.self, capacity: min(count, 4096)) { tmp in
        let t = tmp.baseAddress!
        var done = 0
        while done < count {
          let n = min(4096, count - done)
          for i in 0..<n { t[i] = FloatBits.doubleToFloatRoundToOdd(src[done + i]) }
          encode(t, count: n, as: dtype, into: dst + done * 2)
          done += n
        }
      }
    case .f8e4m3:
      let out = dst.assumingMemoryBound(to: UInt8.self)
      for i in 0..<count { out[i] = UInt8(FloatBits.encodeSmall(src[i], expBits: 4, mantBits: 3, ieee: false)) }
    case .f8e5m2:
      let out = dst.assumingMemoryBound(to: UInt8.self)
      for i in 0..<count { out[i] = UInt8(FloatBits.encodeSmall(src[i], expBits: 5, mantBits: 2, ieee: true)) }
    default:
      preconditionFailure("encode to integer dtype \(dtype) is not a merge output")
    }
  }

  /// Counts NaN and infinite elements of a float tensor's bytes.
  ///
  /// Non-finite values are rare, so each block of elements is first screened by a loop that
  /// vectorises, and counted element by element only when the screen fires.
  public static func countNonFinite(_ dtype: DType, _ src: UnsafeRawPointer, count: Int) -> (nan: Int, inf: Int) {
    guard dtype.isFloat else { return (0, 0) }
    let block = 4096
    var nan = 0
    var inf = 0
    var start = 0
    while start < count {
      let n = min(block, count - start)
      let p = src + start * dtype.size
      if mayHoldNonFinite(dtype, p, count: n) {
        let r = countNonFiniteExactly(dtype, p, count: n)
        nan &+= r.nan
        inf &+= r.inf
      }
      start += n
    }
    return (nan, inf)
  }

  /// False when none of the elements can be NaN or infinite. Adding one exponent unit to an
  /// element's magnitude bits carries into the sign bit exactly when every exponent bit is
  /// set, so OR-ing those sums over the block and testing the sign bit screens it without a
  /// branch per element. (E4M3 has no infinity; only its all-ones magnitude, NaN, carries.)
  @inline(__always)
  static func mayHoldNonFinite(_ dtype: DType, _ src: UnsafeRawPointer, count: Int) -> Bool {
    switch dtype {
    case .f16, .bf16:
      let unit: UInt16 = dtype == .f16 ? 0x0400 : 0x0080
      var acc: UInt16 = 0
      for i in 0..<count { acc |= (src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self) & 0x7FFF) &+ unit }
      return acc & 0x8000 != 0
    case .f32:
      var acc: UInt32 = 0
      for i in 0..<count { acc |= (src.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self) & 0x7FFF_FFFF) &+ 0x0080_0000 }
      return acc & 0x8000_0000 != 0
    case .f64:
      var acc: UInt64 = 0
      for i in 0..<count {
        acc |= (src.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self) & 0x7FFF_FFFF_FFFF_FFFF) &+ 0x0010_0000_0000_0000
      }
      return acc & 0x8000_0000_0000_0000 != 0
    case .f8e4m3, .f8e5m2:
      let unit: UInt8 = dtype == .f8e4m3 ? 0x01 : 0x04
      var acc: UInt8 = 0
      for i in 0..<count { acc |= (src.load(fromByteOffset: i, as: UInt8.self) & 0x7F) &+ unit }
      return acc & 0x80 != 0
    default:
      return false
    }
  }

  static func countNonFiniteExactly(_ dtype: DType, _ src: UnsafeRawPointer, count: Int) -> (nan: Int, inf: Int) {
    var nan = 0
    var inf = 0
    switch dtype {
    case .f16:
      for i in 0..<count {
        let h = src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self) & 0x7FFF
        if h >= 0x7C00 { if h == 0x7C00 { inf &+= 1 } else { nan &+= 1 } }
      }
    case .bf16:
      for i in 0..<count {
        let h = src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self) & 0x7FFF
        if h >= 0x7F80 { if h == 0x7F80 { inf &+= 1 } else { nan &+= 1 } }
      }
    case .f32:
      for i in 0..<count {
        let u = src.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self) & 0x7FFF_FFFF
        if u >= 0x7F80_0000 { if u == 0x7F80_0000 { inf &+= 1 } else { nan &+= 1 } }
      }
    case .f64:
      for i in 0..<count {
        let u = src.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self) & 0x7FFF_FFFF_FFFF_FFFF
        if u >= 0x7FF0_0000_0000_0000 { if u == 0x7FF0_0000_0000_0000 { inf &+= 1 } else { nan &+= 1 } }
      }
    case .f8e4m3:
      for i in 0..<count where src.load(fromByteOffset: i, as: UInt8.self) & 0x7F == 0x7F { nan &+= 1 }
    case .f8e5m2:
      for i in 0..<count {
        let b = src.load(fromByteOffset: i, as: UInt8.self) & 0x7F
        if b >= 0x7C { if b == 0x7C { inf &+= 1 } else { nan &+= 1 } }
      }
    default:
      break
    }
    return (nan, inf)
  }
}
