/// One weight-space metric of a merge: a name, what it covers (`overall`,
/// `component:<name>`, `block:<name>`) and its value.
public struct Metric: Sendable, Equatable, Codable {
  public var name: String
  public var scope: String
  public var value: Double

  public init(name: String, scope: String, value: Double) {
    self.name = name
    self.scope = scope
    self.value = value
  }
}

/// Sums gathered while merging (no extra pass over the inputs), turned into metrics per scope:
/// overall, per component, per block. Only computed tensors count (copied tensors equal their
/// source); `tensors_measured` says how many.
///
/// - `rel_l2@<input>` = ‖out − x‖ / ‖x‖ and `cosine@<input>` = ⟨out, x⟩ / (‖out‖·‖x‖) for
///   every input a tensor reads; without a suffix (`rel_l2`, `cosine`, `norm_ratio` =
///   ‖out‖ / ‖base‖) they compare with the base, i.e. the reference input;
/// - `kept_fraction`: delta entries left after drop and trim, over all entries (task-vector
///   methods); `sign_agreement`: among those, the share agreeing with the elected sign;
/// - `nonfinite`: NaN and infinite values in the output (overall).
public struct SimilarityAccumulator: Sendable {
  struct Sums: Sendable {
    var outSq = 0.0
    var dot: [Int: Double] = [:]
    var inSq: [Int: Double] = [:]
    var diffSq: [Int: Double] = [:]
    var kept = 0.0
    var total = 0.0
    var agree = 0.0
    var voting = 0.0
    var tensors = 0

    mutating func add(_ s: [Double], leaves: [Int]) {
      outSq += s[0]
      for (l, input) in leaves.enumerated() {
        dot[input, default: 0] += s[1 + 3 * l]
        inSq[input, default: 0] += s[2 + 3 * l]
        diffSq[input, default: 0] += s[3 + 3 * l]
      }
      let t = 1 + 3 * leaves.count
      kept += s[t]
      total += s[t + 1]
      agree += s[t + 2]
      voting += s[t + 3]
      tensors += 1
    }
  }

  var scopes: [String: Sums] = [:]
  var order: [String] = []

  public init() {}

  mutating func add(_ sums: [Double], leaves: [Int], component: String, block: String) {
    guard !sums.isEmpty else { return }
    for scope in ["overall", "component:\(component)", "block:\(block)"] {
      if scopes[scope] == nil { order.append(scope) }
      scopes[scope, default: Sums()].add(sums, leaves: leaves)
    }
  }

  /// The metrics, scope by scope in first-seen order (overall first), names sorted.
  public func metrics(inputNames: [String], reference: Int, nonFinite: Int) -> [Metric] {
    var out: [Metric] = []
    for scope in order {
      let s = scopes[scope]!
      var m: [String: Double] = [:]
      for (input, inSq) in s.inSq {
        let name = inputNames[input]
        let diff = s.diffSq[input] ?? 0
        let dot = s.dot[input] ?? 0
        let relL2 = inSq > 0 ? (diff / inSq).squareRoot() : (diff == 0 ? 0 : .infinity)
        let denom = (s.outSq * inSq).squareRoot()
        let cosine = denom > 0 ? dot / denom : (s.outSq == 0 && inSq == 0 ? 1 : 0)
        m["rel_l2@\(name)"] = relL2
        m["cosine@\(name)"] = cosine
        if input == reference {
          m["rel_l2"] = relL2
          m["cosine"] = cosine
          m["norm_ratio"] = inSq > 0 ? (s.outSq / inSq).squareRoot() : 0
        }
      }
      if s.total > 0 {
        m["kept_fraction"] = s.kept / s.total
        m["sign_agreement"] = s.voting > 0 ? s.agree / s.voting : 1
      }
      m["tensors_measured"] = Double(s.tensors)
      if scope == "overall" { m["nonfinite"] = Double(nonFinite) }
      for name in m.keys.sorted() { out.append(Metric(name: name, scope: scope, value: m[name]!)) }
    }
    return out
  }
}
