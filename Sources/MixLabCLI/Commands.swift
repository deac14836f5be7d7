import Architectures
import ArgumentParser
import Foundation
import MixLab
import Recipes
import SafeTensors

enum MixLabVersion {
  static let string = MixLab.Version.mixlab
}

struct SynthCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "synth", abstract: "Write a family of synthetic models with a real key layout (model 0 is the base).")

  @Option(help: "Architecture: sd1, sdxl or llama.") var arch: String
  @Option(help: "Number of models (the base plus count − 1 variants).") var count: Int
  @Option(help: "Seed; the same arguments give the same bytes.") var seed: UInt64
  @Option(help: "Output folder.") var out: String
  @Option(help: "Multiply every dimension by this factor (at least 1), for fast tests.") var scale: Double = 1
  @Option(help: "Float dtype: f16, bf16 or f32.") var dtype: String = "f16"
  @Option(help: "Also write optional layout keys of these components (comma-separated: ema, scheduler).") var with: String?
  @Option(help: "Llama only: write shards of at most this size (e.g. 50MB).") var shardSize: String?
  @Flag(help: "Print the result as JSON.") var json = false

  func validate() throws {
    guard let a = Architecture(rawValue: arch), [.sd1, .sdxl, .llama].contains(a) else {
      throw ValidationError("--arch must be sd1, sdxl or llama (got \"\(arch)\")")
    }
    guard count >= 1 && count <= 10_000 else { throw ValidationError("--count must be between 1 and 10000") }
    guard scale > 0 && scale <= 1 else { throw ValidationError("--scale must be in (0, 1]") }
    guard let d = DType(userSpelling: dtype), [.f16, .bf16, .f32].contains(d) else {
      throw ValidationError("--dtype must be f16, bf16 or f32 (got \"\(dtype)\")")
    }
    if let shardSize, ByteCount.parse(shardSize) == nil {
      throw ValidationError("--shard-size must be a size such as 50MB or 2GB (got \"\(shardSize)\")")
    }
  }

  func run() throws {
    let extras = Set((with ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
    let s = Synthesizer(
      architecture: Architecture(rawValue: arch)!, count: count, seed: seed, scale: scale,
      dtype: DType(userSpelling: dtype)!, extras: extras, shardBytes: shardSize.flatMap(ByteCount.parse))
    let report = try Synth.run(s, to: out, quiet: json)
    if json {
      print(try Format.json(report))
    } else {
      for m in report.models {
        print("\(m.path)  \(Format.bytes(m.size))  sha256 \(m.sha256)")
      }
    }
  }
}

struct InspectCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "inspect",
    abstract: "Architecture, components, layer counts, dtypes, extra keys, NaN/Inf per tensor and hashes of a checkpoint.")

  @Argument(help: "A .safetensors file or a sharded checkpoint folder.") var path: String
  @Flag(help: "Read the header only: no hashes, no NaN/Inf scan.") var noHash = false
  @Flag(help: "Print JSON.") var json = false

  func run() throws {
    let report = try Inspect.run(path: path, hash: !noHash)
    print(json ? try Format.json(report) : Inspect.text(report))
    if let nf = report.nonfinite, !nf.isEmpty, !json {
      FileHandle.standardError.write(Data("warning: \(nf.count) tensors hold NaN or Inf values\n".utf8))
    }
  }
}
