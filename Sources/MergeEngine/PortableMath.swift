/// Transcendental functions computed with IEEE +, −, ×, ÷ and √ only, so slerp and Karcher
/// results do not depend on the platform's math library (whose last-bit results differ
/// between glibc, musl and Apple's libm). Accurate to a few ulps; used on per-tensor scalars,
/// never per element, so speed does not matter.
public enum PortableMath {
  public static let pi = 3.141_592_653_589_793_116
  static let halfPi = 1.570_796_326_794_896_558

  /// sin(x) for any finite x.
  public static func sin(_ x: Double) -> Double {
    let (r, q) = reduce(x)
    switch q & 3 {
    case 0: return sinTaylor(r)
    case 1: return cosTaylor(r)
    case 2: return -sinTaylor(r)
    default: return -cosTaylor(r)
    }
  }

  /// cos(x) for any finite x.
  public static func cos(_ x: Double) -> Double {
    let (r, q) = reduce(x)
    switch q & 3 {
    case 0: return cosTaylor(r)
    case 1: return -sinTaylor(r)
    case 2: return -cosTaylor(r)
    default: return sinTaylor(r)
    }
  }

  /// acos(x) for x in [−1, 1] (clamped).
  public static func acos(_ x0: Double) -> Double {
    let x = min(1, max(-1, x0))
    if x > 0.5 { return 2 * asinSeries(((1 - x) / 2).squareRoot()) }
    if x < -0.5 { return pi - 2 * asinSeries(((1 + x) / 2).squareRoot()) }
    return halfPi - asinSeries(x)
  }

  /// Reduces x to r in [−π/4, π/4] and the quadrant q with x = r + q·π/2 (Cody–Waite, three
  /// parts of π/2, enough for the |x| < 1e5 seen here).
  static func reduce(_ x: Double) -> (Double, Int) {
    let q = (x / halfPi).rounded(.toNearestOrEven)
    let p1 = 1.570_796_326_734_125_614_166_259_765_625
    let p2 = 6.077_100_506_303_965_976_596_937_e-11
    let p3 = 2.022_266_248_795_950_732_4e-21
    let r = ((x - q * p1) - q * p2) - q * p3
    return (r, Int(q) & 3)
  }

  static func sinTaylor(_ r: Double) -> Double {
    // Horner form of Σ (−1)^k r^(2k+1)/(2k+1)!, k ≤ 10.
    let r2 = r * r
    var s = 0.0
    var k = 10
    while k >= 1 {
      let denom = Double((2 * k) * (2 * k + 1))
      s = (1 - s) * r2 / denom
      k -= 1
    }
    return r * (1 - s)
  }

  static func cosTaylor(_ r: Double) -> Double {
    let r2 = r * r
    var s = 0.0
    var k = 10
    while k >= 1 {
      let denom = Double((2 * k - 1) * (2 * k))
      s = (1 - s) * r2 / denom
      k -= 1
    }
    return 1 - s
  }

  /// asin(y) for |y| ≤ 1/√2 by its power series.
  static func asinSeries(_ y: Double) -> Double {
    let y2 = y * y
    var term = y
    var sum = y
    var n = 0
    while n < 200 {
      // term_{n+1} = term_n · (2n+1)² / ((2n+2)(2n+3)) · y²
      let a = Double(2 * n + 1)
      term = term * a * a / (Double(2 * n + 2) * Double(2 * n + 3)) * y2
      let next = sum + term
      if next == sum { break }
      sum = next
      n += 1
    }
    return sum
  }
}
