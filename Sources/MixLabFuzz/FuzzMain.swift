import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// `mixlab-fuzz`: a deterministic mutation fuzzer for the safetensors reader and the recipe
/// parser (no libFuzzer needed). benchmarks/fuzz.sh drives it; docs/reliability.md has the
/// figures.
///
/// ```
/// mixlab-fuzz <safetensors|recipe> [--seconds S] [--runs N] [--seed N] [--corpus DIR] (the reader's
/// seeds are built in; `--corpus` adds files)
///             [--findings DIR] [--stats FILE]
/// mixlab-fuzz replay <safetensors|recipe> FILE|DIR…
/// ```
///
/// A session starts from the corpus, then mutates pool entries (structure-aware edits and
/// splices); a mutant whose outcome signature (accepted shape, or kind of refusal) is new
/// joins the pool, a cheap stand-in for coverage feedback. The same seed and corpus give the
/// same sequence of inputs.
@main
enum FuzzMain {
  static func main() {
    var args = Array(CommandLine.arguments.dropFirst())
    func usage() -> Never {
      FileHandle.standardError.write(
        Data(
          "usage: mixlab-fuzz <safetensors|recipe> [--seconds S] [--runs N] [--seed N] [--corpus DIR] [--findings DIR] [--stats FILE]\n       mixlab-fuzz replay <safetensors|recipe> FILE|DIR…\n"
            .utf8))
      exit(2)
    }
    guard let first = args.first else { usage() }
    if first == "replay" {
      guard args.count >= 3, let target = FuzzTarget(rawValue: args[1]) else { usage() }
      exit(replay(target, paths: Array(args[2...])))
    }
    guard let target = FuzzTarget(rawValue: first) else { usage() }
    args.removeFirst()
    var options = Session.Options()
    while !args.isEmpty {
      let flag = args.removeFirst()
      guard let value = args.first else { usage() }
      args.removeFirst()
      switch flag {
      case "--seconds": options.seconds = Double(value) ?? options.seconds
      case "--runs": options.runs = Int(value)
      case "--seed": options.seed = UInt64(value) ?? options.seed
      case "--corpus": options.corpus = value
      case "--findings": options.findings = value
      case "--stats": options.stats = value
      default: usage()
      }
    }
    let result = Session(target: target, options: options).run()
    print(result.summary)
    exit(result.broken > 0 ? 79 : 0)
  }

  /// Runs each file once and prints its outcome; exit 1 if any broke an invariant.
  static func replay(_ target: FuzzTarget, paths: [String]) -> Int32 {
    let scratch = Session.scratchPath(target)
    defer { unlink(scratch) }
    var status: Int32 = 0
    for file in Session.corpusFiles(paths) {
      let bytes = [UInt8](FileManager.default.contents(atPath: file) ?? Data())
      let outcome = target.run(bytes, scratch: scratch)
      if case .broken = outcome { status = 1 }
      print("\(file): \(outcome.signature)")
    }
    return status
  }
}

/// One fuzzing session of one target.
struct Session {
  struct Options {
    var seconds = 10.0
    var runs: Int?
    var seed: UInt64 = 1
    var corpus: String?
    var findings = "fuzz-findings"
    var stats: String?
  }

  struct Result {
    var target: FuzzTarget
    var seconds: Double
    var executions: Int
    var accepted: Int
    var broken: Int
    var signatures: Int
    var pool: Int

    var summary: String {
      let rate = seconds > 0 ? Double(executions) / seconds : 0
      return String(
        format: "%@: %d executions in %.1f s (%.0f/s), %d accepted, %d distinct outcomes, pool %d, broken invariants %d",
        target.rawValue, executions, seconds, rate, accepted, signatures, pool, broken)
    }

    var json: String {
      "{\"target\":\"\(target.rawValue)\",\"seconds\":\(seconds),\"executions\":\(executions),\"accepted\":\(accepted),\"broken\":\(broken),\"signatures\":\(signatures),\"pool\":\(pool)}\n"
    }
  }

  let target: FuzzTarget
  let options: Options

  static func scratchPath(_ target: FuzzTarget) -> String {
    var isDir: ObjCBool = false
    let base =
      FileManager.default.fileExists(atPath: "/dev/shm", isDirectory: &isDir) && isDir.boolValue
      ? "/dev/shm" : NSTemporaryDirectory()
    return "\(base)/mixlab-fuzz-\(target.rawValue)-\(getpid()).bin"
  }

  /// Files named, and the files of folders named, sorted so a session is reproducible.
  static func corpusFiles(_ paths: [String]) -> [String] {
    var out: [String] = []
    for p in paths {
      var isDir: ObjCBool = false
      guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { continue }
      if isDir.boolValue {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: p)) ?? []
        out += names.filter { !$0.hasPrefix(".") }.sorted().map { p + "/" + $0 }
      } else {
        out.append(p)
      }
    }
    return out
  }

  /// The seeds a session starts from: the built-in ones of `target` (the reader's, made in
  /// memory, see `SeedFiles`), then the files of `corpus` (the recipe seeds live in
  /// Tests/Fuzz/corpus/recipes/).
  static func seeds(_ target: FuzzTarget, corpus: [String]) -> [(name: String, bytes: [UInt8])] {
    let builtIn = target == .safetensors ? SeedFiles.safetensors() : []
    return builtIn
      + corpusFiles(corpus).map {
        (($0 as NSString).lastPathComponent, [UInt8](FileManager.default.contents(atPath: $0) ?? Data()))
      }
  }

  func run() -> Result {
    Findings.install(folder: options.findings, target: target.rawValue)
    let scratch = Session.scratchPath(target)
    defer { unlink(scratch) }
    var rng = SplitMix(options.seed)
    var pool = Session.seeds(target, corpus: options.corpus.map { [$0] } ?? []).map(\.bytes)
    if pool.isEmpty { pool = [Array("{}".utf8)] }
    var seen = Set<String>()
    var result = Result(target: target, seconds: 0, executions: 0, accepted: 0, broken: 0, signatures: 0, pool: 0)
    let start = Date()
    var lastStats = start
    func execute(_ input: [UInt8]) -> Outcome {
      Findings.begin(input)
      let outcome = target.run(input, scratch: scratch)
      Findings.end()
      result.executions += 1
      switch outcome {
      case .accepted: result.accepted += 1
      case .refused: break
      case .broken(let why):
        result.broken += 1
        let path = "\(options.findings)/invariant-\(target.rawValue)-\(getpid())-\(result.broken)"
        _ = FileManager.default.createFile(atPath: path, contents: Data(input))
        FileHandle.standardError.write(Data("mixlab-fuzz: invariant broken (\(path)): \(why)\n".utf8))
      }
      return outcome
    }
    for input in pool { seen.insert(execute(input).signature) }
    while true {
      if let runs = options.runs, result.executions >= runs { break }
      let now = Date()
      if options.runs == nil, now.timeIntervalSince(start) >= options.seconds { break }
      if let stats = options.stats, now.timeIntervalSince(lastStats) >= 1 {
        lastStats = now
        var snapshot = result
        snapshot.seconds = now.timeIntervalSince(start)
        snapshot.signatures = seen.count
        snapshot.pool = pool.count
        try? Data(snapshot.json.utf8).write(to: URL(fileURLWithPath: stats), options: .atomic)
      }
      let base = rng.pick(pool)
      let other = rng.pick(pool)
      let mutant = Mutator.mutate(base, other: other, target: target, rng: &rng)
      let outcome = execute(mutant)
      if seen.insert(outcome.signature).inserted && pool.count < 4096 { pool.append(mutant) }
    }
    result.seconds = Date().timeIntervalSince(start)
    result.signatures = seen.count
    result.pool = pool.count
    if let stats = options.stats { try? Data(result.json.utf8).write(to: URL(fileURLWithPath: stats), options: .atomic) }
    return result
  }
}
