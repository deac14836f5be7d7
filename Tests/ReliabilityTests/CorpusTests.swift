import Foundation
import Testing

@testable import MixLabFuzz

/// What CI runs of the fuzzers: the committed seed corpus replayed through the same targets
/// `mixlab-fuzz` uses, and a short deterministic mutation session of each. The long sessions
/// are `benchmarks/fuzz.sh`.
@Suite("Fuzz corpus replay")
struct CorpusTests {
  static let corpus = Tool.packageRoot + "/Tests/Fuzz/corpus"

  /// The reader's seeds are made in memory (no model file is committed); the recipes' are
  /// files.
  static func seeds(_ target: FuzzTarget) -> [(name: String, bytes: [UInt8])] {
    Session.seeds(target, corpus: target == .safetensors ? [] : [corpus + "/recipes"])
  }

  @Test(
    "every corpus file is accepted or refused with a typed error; valid-* accepted, bad-*/hostile-* refused",
    arguments: FuzzTarget.allCases)
  func replay(_ target: FuzzTarget) throws {
    let seeds = Self.seeds(target)
    #expect(seeds.count >= 20, "the corpus is missing: \(seeds.count) seeds")
    let scratch = Session.scratchPath(target) + "-replay"
    defer { unlink(scratch) }
    for (name, bytes) in seeds {
      #expect(bytes.count <= 16 << 10, "\(name) is larger than a seed should be")
      let outcome = target.run(bytes, scratch: scratch)
      switch outcome {
      case .broken(let why): Issue.record("\(name): \(why)")
      case .accepted: #expect(!name.hasPrefix("bad-") && !name.hasPrefix("hostile-"), "\(name) was accepted")
      case .refused: #expect(!name.hasPrefix("valid-"), "\(name) was refused: \(outcome.signature)")
      }
    }
  }

  @Test("a short deterministic mutation session breaks no invariant", arguments: FuzzTarget.allCases)
  func mutate(_ target: FuzzTarget) throws {
    let pool = Self.seeds(target).map(\.bytes)
    let scratch = Session.scratchPath(target) + "-mutate"
    defer { unlink(scratch) }
    var rng = SplitMix(20_251_122)
    var outcomes: [String: Int] = [:]
    for _ in 0..<(target == .safetensors ? 3_000 : 1_500) {
      let input = Mutator.mutate(rng.pick(pool), other: rng.pick(pool), target: target, rng: &rng)
      let outcome = target.run(input, scratch: scratch)
      if case .broken(let why) = outcome {
        Issue.record("\(why); input: \(String(decoding: input.prefix(200), as: UTF8.self))")
      }
      outcomes[outcome.signature, default: 0] += 1
    }
    // Both outcomes and many kinds of refusal, or the mutations are not reaching the checks.
    #expect(outcomes.keys.contains { $0.hasPrefix("ok ") }, "\(outcomes)")
    #expect(outcomes.keys.filter { $0.hasPrefix("refused ") }.count >= 10, "\(outcomes.keys.sorted())")
  }
}
