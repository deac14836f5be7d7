/// What a method accepts: operands, base, parameters with defaults and ranges, options.
/// Recipes validate against this table, `docs/methods.md` documents it, and the plan
/// compiler reads parameters through it, so the three cannot drift apart.
public struct MethodInfo: Sendable {
  public enum BaseUse: Sendable { case required, optional, none }

  public struct Param: Sendable {
    public var name: String
    public var defaultValue: Double?
    /// Inclusive/exclusive bounds; nil means unbounded.
    public var min: Double?
    public var minInclusive: Bool
    public var max: Double?
    public var maxInclusive: Bool
    public var help: String

    public func check(_ v: Double) -> String? {
      guard v.isFinite else { return "must be a finite number" }
      if let lo = min, minInclusive ? v < lo : v <= lo { return "must be \(minInclusive ? "≥" : ">") \(fmt(lo))\(rangeText)" }
      if let hi = max, maxInclusive ? v > hi : v >= hi { return "must be \(maxInclusive ? "≤" : "<") \(fmt(hi))\(rangeText)" }
      return nil
    }
    var rangeText: String {
      guard min != nil || max != nil else { return "" }
      let l = min.map { "\(minInclusive ? "[" : "(")\(fmt($0))" } ?? "(−∞"
      let h = max.map { "\(fmt($0))\(maxInclusive ? "]" : ")")" } ?? "∞)"
      return " (allowed: \(l), \(h))"
    }
    func fmt(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v) }
  }

  public struct Option: Sendable {
    public var name: String
    public var values: [String]
    public var defaultValue: String
    public var help: String
  }

  public var name: MethodName
  public var summary: String
  public var minOperands: Int
  public var maxOperands: Int?
  public var base: BaseUse
  public var weights: Bool
  public var seeded: Bool
  public var params: [Param]
  public var options: [Option]
  /// Version of this method's definition; recorded per run.
  public var semanticsVersion: String = "1"

  public func param(_ name: String) -> Param? { params.first { $0.name == name } }
  public func option(_ name: String) -> Option? { options.first { $0.name == name } }
}

public enum Catalog {
  static func p(
    _ name: String, _ def: Double?, min: Double? = nil, minInclusive: Bool = true, max: Double? = nil,
    maxInclusive: Bool = true, _ help: String
  ) -> MethodInfo.Param {
    MethodInfo.Param(
      name: name, defaultValue: def, min: min, minInclusive: minInclusive, max: max, maxInclusive: maxInclusive, help: help)
  }
  static func o(_ name: String, _ values: [String], _ def: String, _ help: String) -> MethodInfo.Option {
    MethodInfo.Option(name: name, values: values, defaultValue: def, help: help)
  }

  static let lambda = p("lambda", 1, "scale of the merged delta added to the base")
  static let sign = o(
    "sign", ["none", "magnitude_sum", "sign_count"], "magnitude_sum",
    "sign election: none, by the sign of Σ wᵢτᵢ, or by majority of signs")
  static let signNone = o(
    "sign", ["none", "magnitude_sum", "sign_count"], "none", "sign election: none, by the sign of Σ wᵢτᵢ, or by majority of signs"
  )
  static func normalize(_ def: Bool) -> MethodInfo.Option {
    o("normalize", ["true", "false"], def ? "true" : "false", "divide the merged delta by the (agreeing) weights")
  }
  static let average = o(
    "average", ["weight", "count"], "weight", "with normalize: divide by the agreeing models' weights or by their number")
  static let topk = o(
    "topk", ["exact", "inclusive"], "exact",
    "exact: keep ⌊density·n⌋ entries, ties by index (mergekit); inclusive: keep all ≥ the threshold magnitude (sd-mecha)")
  static let density = p("density", nil, min: 0, minInclusive: false, max: 1, "fraction of each delta kept")
  static let eps = p("eps", 1e-6, min: 0, minInclusive: false, "smallest distance in Weiszfeld reweighting")
  static let maxIter = p("max_iter", 100, min: 0, "Weiszfeld iterations at most")
  static let ftol = p("ftol", 1e-20, min: 0, "stop when the objective changes by at most ftol × itself")
  static let drop = p("drop", nil, min: 0, max: 1, maxInclusive: false, "probability of dropping each delta entry")
  static let rescale = o(
    "rescale", ["inverse", "l1", "none"], "inverse",
    "after dropping: divide by the keep probability, match the L1 norm, or nothing")

  public static let methods: [MethodName: MethodInfo] = {
    var m: [MethodName: MethodInfo] = [:]
    func add(_ info: MethodInfo) { m[info.name] = info }
    add(
      MethodInfo(
        name: .weightedSum, summary: "(1 − α)·A + α·B", minOperands: 2, maxOperands: 2, base: .none, weights: false,
        seeded: false,
        params: [p("alpha", 0.5, "weight of the second model")], options: []))
    add(
      MethodInfo(
        name: .addDifference, summary: "A + α·(B − C)", minOperands: 3, maxOperands: 3, base: .none, weights: false,
        seeded: false,
        params: [p("alpha", 1, "scale of the difference")], options: []))
    add(
      MethodInfo(
        name: .average, summary: "Σ wᵢ·Xᵢ / Σ wᵢ (uniform soup by default)", minOperands: 1, maxOperands: nil, base: .none,
        weights: true, seeded: false,
        params: [], options: [normalize(true)]))
    add(
      MethodInfo(
        name: .tripleSum, summary: "(1 − α − β)·A + α·B + β·C (supermerger)", minOperands: 3, maxOperands: 3, base: .none,
        weights: false, seeded: false,
        params: [p("alpha", nil, "weight of B"), p("beta", nil, "weight of C")], options: []))
    add(
      MethodInfo(
        name: .sumTwice, summary: "((1 − α)·A + α·B)·(1 − β) + β·C (supermerger)", minOperands: 3, maxOperands: 3, base: .none,
        weights: false, seeded: false,
        params: [p("alpha", nil, "weight of B in the first sum"), p("beta", nil, "weight of C in the second sum")], options: []))
    add(
      MethodInfo(
        name: .slerp, summary: "spherical interpolation of two whole tensors", minOperands: 2, maxOperands: 2, base: .none,
        weights: false, seeded: false,
        params: [p("t", 0.5, min: 0, max: 1, "interpolation position (0 = A, 1 = B)")],
        options: [
          o(
            "norms", ["keep", "interpolate"], "keep",
            "keep: angle of the unit vectors applied to the tensors as they are (mergekit); interpolate: unit vectors interpolated, norm interpolated linearly (sd-mecha)"
          )
        ]))
    add(
      MethodInfo(
        name: .multislerp, summary: "barycentric interpolation on the hypersphere (mergekit multislerp)", minOperands: 1,
        maxOperands: nil, base: .optional, weights: true, seeded: false,
        params: [p("eps", 1e-8, min: 0, "numerical floor")],
        options: [o("normalize_weights", ["true", "false"], "true", "divide the weights by their sum")]))
    add(
      MethodInfo(
        name: .karcher, summary: "weighted Karcher mean on the unit sphere, scaled by the mean norm", minOperands: 1,
        maxOperands: nil, base: .none, weights: true, seeded: false,
        params: [p("max_iter", 10, min: 0, "iterations at most"), p("tol", 1e-5, min: 0, "convergence tolerance")], options: []))
    add(
      MethodInfo(
        name: .taskArithmetic, summary: "base + λ·Σ wᵢ·(Xᵢ − base)", minOperands: 1, maxOperands: nil, base: .required,
        weights: true, seeded: false,
        params: [lambda], options: [normalize(false)]))
    add(
      MethodInfo(
        name: .ties, summary: "trim each delta to its top-k magnitudes, elect signs, merge agreeing entries", minOperands: 1,
        maxOperands: nil, base: .required, weights: true, seeded: false,
        params: [density, lambda],
        options: [
          sign, normalize(true), average, topk,
          o(
            "sign_tie", ["positive", "none"], "positive",
            "a tied vote elects + (mergekit) or nothing, dropping the element (sd-mecha)"),
        ]))
    add(
      MethodInfo(
        name: .dare, summary: "drop delta entries at random with probability p, rescale, merge", minOperands: 1, maxOperands: nil,
        base: .required, weights: true, seeded: true,
        params: [drop, lambda],
        options: [
          rescale, signNone,
          o(
            "normalize", ["auto", "true", "false"], "auto",
            "auto: true when electing signs, else false (mergekit's dare_ties / dare_linear)"), average,
        ]))
    add(
      MethodInfo(
        name: .della, summary: "drop with rank-based keep probabilities (DELLA), rescale, elect signs, merge", minOperands: 1,
        maxOperands: nil, base: .required, weights: true, seeded: true,
        params: [
          p("density", nil, min: 0, minInclusive: false, max: 1, maxInclusive: false, "mean keep probability"),
          p("epsilon", 0.1, min: 0, "spread of keep probabilities: density ± epsilon"), lambda,
        ],
        options: [
          rescale, sign, normalize(true), average,
          o("scope", ["row", "tensor"], "row", "rank magnitudes within each row (mergekit) or over the whole tensor"),
        ]))
    add(
      MethodInfo(
        name: .breadcrumbs, summary: "drop the largest γ and the smallest magnitudes, keep a band of `density`", minOperands: 1,
        maxOperands: nil, base: .required, weights: true, seeded: false,
        params: [density, p("gamma", 0.01, min: 0, max: 1, "fraction of largest magnitudes removed"), lambda],
        options: [signNone, normalize(false), average]))
    add(
      MethodInfo(
        name: .modelStock, summary: "base + t·mean(Xᵢ − base), t from the angle between the deltas", minOperands: 2,
        maxOperands: nil, base: .required, weights: false, seeded: false,
        params: [p("eps", 1e-6, min: 0, "floor of the norm product in cosines")],
        options: [
          o("pairs", ["all", "consecutive"], "all", "mean cosine over all pairs (mergekit) or consecutive pairs (sd-mecha)"),
          o("scope", ["tensor", "row"], "tensor", "one t per tensor, or one per row (mergekit filter_wise)"),
        ]))
    add(
      MethodInfo(
        name: .geometricMedian, summary: "Weiszfeld geometric median of the models (or of their deltas to a base)",
        minOperands: 1, maxOperands: nil, base: .optional, weights: true, seeded: false,
        params: [eps, maxIter, ftol], options: []))
    add(
      MethodInfo(
        name: .tiesSoup,
        summary: "TIES-SOUP: TIES with majority-of-signs election, mean by count, inclusive top-k (sd-mecha vote_sgn)",
        minOperands: 1, maxOperands: nil, base: .required, weights: false, seeded: false,
        params: [density, lambda], options: []))
    add(
      MethodInfo(
        name: .tsd, summary: "TSD: DARE drop, then TIES-SOUP, then 1/(1 − p) rescale", minOperands: 1, maxOperands: nil,
        base: .required, weights: false, seeded: true,
        params: [drop, density, lambda], options: []))
    add(
      MethodInfo(
        name: .tgmd, summary: "TGMD: DARE drop, TIES trim and sign election, geometric median, 1/(1 − p) rescale", minOperands: 1,
        maxOperands: nil, base: .required, weights: false, seeded: true,
        params: [drop, density, eps, maxIter, ftol, lambda], options: [sign]))
    add(
      MethodInfo(
        name: .dgmla, summary: "DGMLA: DELLA rank-based drop, sign election, geometric median", minOperands: 1, maxOperands: nil,
        base: .required, weights: false, seeded: true,
        params: [
          p("density", nil, min: 0, minInclusive: false, max: 1, maxInclusive: false, "mean keep probability"),
          p("epsilon", 0.1, min: 0, "spread of keep probabilities"), eps, maxIter, ftol, lambda,
        ],
        options: [sign]))
    return m
  }()

  public static func info(_ name: MethodName) -> MethodInfo { methods[name]! }

  /// Method semantics versions recorded per run.
  public static var semanticsVersions: [String: String] {
    var out: [String: String] = [:]
    for (k, v) in methods { out[k.rawValue] = v.semanticsVersion }
    return out
  }
}
