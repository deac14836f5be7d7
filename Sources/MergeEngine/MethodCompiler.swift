/// Resolves a step's parameters for one tensor into a concrete kernel configuration.
enum MethodCompiler {
  static func resolve(_ node: NodeSpec, ctx: KeyContext, seed: UInt64, operandCount n: Int) throws(MergeError) -> ResolvedMethod {
    let info = Catalog.info(node.method)
    func num(_ name: String) throws(MergeError) -> Double {
      let v: Double
      if let given = node.params[name] {
        v = try given.resolve(ctx, name: name)
      } else if let d = info.param(name)?.defaultValue {
        v = d
      } else {
        throw .parameter(name: name, key: ctx.key, reason: "required by \(node.method.rawValue) (step \(node.id))")
      }
      if let p = info.param(name), let problem = p.check(v) {
        throw .parameter(name: name, key: ctx.key, reason: "\(problem) (step \(node.id), value \(v))")
      }
      return v
    }
    func opt(_ name: String) -> String {
      node.options[name] ?? info.option(name)?.defaultValue ?? ""
    }
    func weights(default d: Double) throws(MergeError) -> [Double] {
      guard let ws = node.weights else { return Array(repeating: d, count: n) }
      guard ws.count == n else {
        throw .parameter(name: "weights", key: ctx.key, reason: "\(ws.count) weights for \(n) models (step \(node.id))")
      }
      var out: [Double] = []
      for (i, w) in ws.enumerated() {
        let v = try w.resolve(ctx, name: "weights[\(i)]")
        guard v.isFinite else { throw .parameter(name: "weights[\(i)]", key: ctx.key, reason: "must be finite") }
        out.append(v)
      }
      return out
    }
    func sign(_ s: String) -> TaskConfig.Consensus {
      switch s {
      case "magnitude_sum": return .magnitudeSum
      case "sign_count": return .signCount
      default: return .none
      }
    }
    func rescale(_ s: String) -> TaskConfig.Rescale {
      switch s {
      case "l1": return .l1
      case "none": return .none
      default: return .inverse
      }
    }
    func mean(normalize: Bool) -> TaskConfig.Combine {
      normalize ? .mean(byCount: opt("average") == "count") : .sum
    }
    switch node.method {
    case .weightedSum: return .linear(.weightedSum(try num("alpha")))
    case .addDifference: return .linear(.addDifference(try num("alpha")))
    case .average: return .linear(.average(try weights(default: 1), normalize: opt("normalize") == "true"))
    case .tripleSum: return .linear(.tripleSum(try num("alpha"), try num("beta")))
    case .sumTwice: return .linear(.sumTwice(try num("alpha"), try num("beta")))
    case .slerp: return .gram(.slerp(t: try num("t"), interpolateNorms: opt("norms") == "interpolate"))
    case .multislerp:
      return .gram(
        .multislerp(weights: try weights(default: 1), normalize: opt("normalize_weights") == "true", eps: try num("eps")))
    case .karcher:
      return .gram(.karcher(weights: try weights(default: 1 / Double(n)), maxIter: Int(try num("max_iter")), tol: try num("tol")))
    case .taskArithmetic:
      var c = TaskConfig(weights: try weights(default: 1))
      c.lambda = try num("lambda")
      c.combine = mean(normalize: opt("normalize") == "true")
      return .task(c)
    case .ties:
      var c = TaskConfig(weights: try weights(default: 1))
      c.lambda = try num("lambda")
      c.trim = .topK(density: try num("density"), inclusive: opt("topk") == "inclusive")
      c.consensus = sign(opt("sign"))
      c.tiedVoteElectsPositive = opt("sign_tie") != "none"
      c.combine = mean(normalize: opt("normalize") == "true")
      return .task(c)
    case .dare:
      var c = TaskConfig(weights: try weights(default: 1))
      c.lambda = try num("lambda")
      c.drop = .bernoulli(p: try num("drop"))
      c.rescale = rescale(opt("rescale"))
      c.consensus = sign(opt("sign"))
      let normalize = opt("normalize") == "auto" ? c.consensus != .none : opt("normalize") == "true"
      c.combine = mean(normalize: normalize)
      c.seed = seed
      return .task(c)
    case .della:
      var c = TaskConfig(weights: try weights(default: 1))
      let density = try num("density")
      let epsilon = try num("epsilon")
      guard density - epsilon > 0, density + epsilon < 1 else {
        throw .parameter(name: "epsilon", key: ctx.key, reason: "density ± epsilon must stay inside (0, 1) (step \(node.id))")
      }
      c.lambda = try num("lambda")
      c.drop = .della(density: density, epsilon: epsilon, wholeTensor: opt("scope") == "tensor")
      c.rescale = rescale(opt("rescale"))
      c.consensus = sign(opt("sign"))
      c.combine = mean(normalize: opt("normalize") == "true")
      c.seed = seed
      return .task(c)
    case .breadcrumbs:
      var c = TaskConfig(weights: try weights(default: 1))
      c.lambda = try num("lambda")
      c.trim = .band(gamma: try num("gamma"), density: try num("density"))
      c.consensus = sign(opt("sign"))
      c.combine = mean(normalize: opt("normalize") == "true")
      return .task(c)
    case .modelStock:
      var c = TaskConfig(weights: Array(repeating: 1, count: n))
      c.combine = .modelStock(consecutive: opt("pairs") == "consecutive", eps: try num("eps"), perRow: opt("scope") == "row")
      return .task(c)
    case .geometricMedian:
      var c = TaskConfig(weights: try weights(default: 1))
      c.combine = .geometricMedian(eps: try num("eps"), maxIter: Int(try num("max_iter")), ftol: try num("ftol"))
      return .task(c)
    case .tiesSoup:
      var c = TaskConfig(weights: Array(repeating: 1, count: n))
      c.lambda = try num("lambda")
      c.trim = .topK(density: try num("density"), inclusive: true)
      c.consensus = .signCount
      c.combine = .mean(byCount: true)
      c.tiedVoteElectsPositive = false
      return .task(c)
    case .tsd:
      var c = TaskConfig(weights: Array(repeating: 1, count: n))
      let p = try num("drop")
      c.lambda = try num("lambda") / (1 - p)
      c.drop = .bernoulli(p: p)
      c.trim = .topK(density: try num("density"), inclusive: true)
      c.consensus = .signCount
      c.combine = .mean(byCount: true)
      c.seed = seed
      c.tiedVoteElectsPositive = false
      return .task(c)
    case .tgmd:
      var c = TaskConfig(weights: Array(repeating: 1, count: n))
      let p = try num("drop")
      c.lambda = try num("lambda") / (1 - p)
      c.drop = .bernoulli(p: p)
      c.trim = .topK(density: try num("density"), inclusive: true)
      c.consensus = sign(opt("sign"))
      c.combine = .geometricMedian(eps: try num("eps"), maxIter: Int(try num("max_iter")), ftol: try num("ftol"))
      c.seed = seed
      c.tiedVoteElectsPositive = false
      return .task(c)
    case .dgmla:
      var c = TaskConfig(weights: Array(repeating: 1, count: n))
      let density = try num("density")
      let epsilon = try num("epsilon")
      guard density - epsilon > 0, density + epsilon < 1 else {
        throw .parameter(name: "epsilon", key: ctx.key, reason: "density ± epsilon must stay inside (0, 1) (step \(node.id))")
      }
      c.lambda = try num("lambda")
      c.drop = .della(density: density, epsilon: epsilon, wholeTensor: false)
      c.rescale = .inverse
      c.consensus = sign(opt("sign"))
      c.combine = .geometricMedian(eps: try num("eps"), maxIter: Int(try num("max_iter")), ftol: try num("ftol"))
      c.seed = seed
      c.tiedVoteElectsPositive = false
      return .task(c)
    }
  }
}
