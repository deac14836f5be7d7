import Foundation
import SafeTensors
import Testing

/// The result of one run of the binary.
struct Run {
  var status: Int32
  var stdout: String
  var stderr: String

  /// The standard output as a JSON object.
  func json() throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
    return try #require(object as? [String: Any], "not a JSON object: \(stdout)")
  }
}

/// A temporary folder removed when the value goes away.
final class Workspace {
  let path: String

  init() {
    path = FileManager.default.temporaryDirectory.path + "/mixlab-e2e-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: path) }

  func file(_ name: String) -> String { "\(path)/\(name)" }
}

enum Binary {
  /// The built `mixlab`: next to the test bundle (SwiftPM puts every product of a build in
  /// one folder), else in the package's `.build/debug`.
  static let url: URL? = {
    var candidates: [URL] = []
    let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    candidates.append(me.deletingLastPathComponent().appendingPathComponent("mixlab"))
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
      candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("mixlab"))
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    candidates.append(root.appendingPathComponent(".build/debug/mixlab"))
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
  }()

  /// Runs `mixlab args…` and waits for it.
  static func run(_ args: [String]) throws -> Run {
    let bin = try #require(
      url, "the mixlab binary was not found next to the test bundle or in .build/debug; run `swift build` first")
    let p = Process()
    p.executableURL = bin
    p.arguments = args
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Run(
      status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
  }
}

/// SHA-256 of a file by the system's `sha256sum`, when it exists: a check independent of
/// mixlab's own hashing code.
func systemSHA256(_ path: String) -> String? {
  guard FileManager.default.isExecutableFile(atPath: "/usr/bin/sha256sum") else { return nil }
  let p = Process()
  p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
  p.arguments = [path]
  let out = Pipe()
  p.standardOutput = out
  guard (try? p.run()) != nil else { return nil }
  let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
  p.waitUntilExit()
  return text.split(separator: " ").first.map(String.init)
}

/// Error output must be one paragraph: no blank line, ending in a newline, naming `path`.
func expectOneParagraph(_ r: Run, naming path: String, sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(r.status != 0, sourceLocation: sourceLocation)
  let text = r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
  #expect(!text.isEmpty && !text.contains("\n\n"), "not one paragraph: \(r.stderr)", sourceLocation: sourceLocation)
  #expect(text.contains(path), "does not name \(path): \(r.stderr)", sourceLocation: sourceLocation)
  #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"), sourceLocation: sourceLocation)
}

@Suite("mixlab binary, end to end")
struct CLITests {
  @Test("mixlab --help lists the commands; --version prints one")
  func help() throws {
    let r = try Binary.run(["--help"])
    #expect(r.status == 0)
    #expect(r.stdout.contains("USAGE: mixlab") && r.stdout.contains("synth") && r.stdout.contains("inspect"))
    let s = try Binary.run(["synth", "--help"])
    #expect(s.status == 0 && s.stdout.contains("--arch") && s.stdout.contains("--scale") && s.stdout.contains("--dtype"))
    let i = try Binary.run(["inspect", "--help"])
    #expect(i.status == 0 && i.stdout.contains("--no-hash") && i.stdout.contains("--json"))
    let v = try Binary.run(["--version"])
    #expect(v.status == 0 && !v.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
  }

  @Test("synth then inspect --json: the contract's names and values")
  func synthThenInspect() throws {
    let ws = Workspace()
    let out = ws.file("models")
    let s = try Binary.run(["synth", "--arch", "sd1", "--count", "2", "--seed", "3", "--out", out, "--scale", "0.05", "--json"])
    try #require(s.status == 0, "synth failed: \(s.stderr)")
    let report = try s.json()
    let models = try #require(report["models"] as? [[String: Any]])
    #expect(models.count == 2)
    let path = out + "/sd1-01.safetensors"
    #expect(models[1]["path"] as? String == path)

    let r = try Binary.run(["inspect", "--json", path])
    try #require(r.status == 0, "inspect failed: \(r.stderr)")
    let j = try r.json()
    #expect(j["architecture"] as? String == "sd1")
    #expect(j["components"] as? [String: Int] == ["clip_l": 197, "unet": 686, "vae": 248])
    #expect(j["layer_counts"] as? [String: Int] == ["clip_l": 12, "unet": 25, "vae": 8])
    #expect(j["tensor_count"] as? Int == 1131)
    #expect(j["dtypes"] as? [String: Int] == ["F16": 1130, "I64": 1])
    #expect(j["extra_keys"] as? [String] == ["cond_stage_model.transformer.text_model.embeddings.position_ids"])
    #expect((j["nonfinite"] as? [Any])?.isEmpty == true)
    let file = try SafeTensorsFile(path: path)
    #expect(j["parameter_count"] as? Int == file.tensors.reduce(0) { $0 + $1.elementCount })
    let bytes = Array(FileManager.default.contents(atPath: path)!)
    let sha = Digest.sha256(bytes)
    #expect(j["sha256"] as? String == sha)
    if let system = systemSHA256(path) { #expect(system == sha) }
    #expect(j["autov2"] as? String == String(sha.prefix(10)))
    #expect(j["tensor_data_sha256"] as? String == Digest.sha256(bytes[file.dataStart...]))
    #expect(j["size"] as? Int == bytes.count)
    #expect(models[1]["sha256"] as? String == sha, "synth and inspect agree on the file's hash")
    let meta = try #require(j["metadata"] as? [String: String])
    #expect(meta["format"] == "pt" && meta["mixlab.synth"]?.contains("seed=3") == true)

    // --no-hash: header facts only, the same ones.
    let n = try Binary.run(["inspect", "--json", "--no-hash", path])
    try #require(n.status == 0)
    let k = try n.json()
    for absent in ["sha256", "autov2", "tensor_data_sha256", "nonfinite"] { #expect(k[absent] == nil, "\(absent)") }
    for same in ["architecture", "tensor_count", "parameter_count"] {
      #expect("\(k[same] ?? "nil")" == "\(j[same] ?? "nil")", "\(same)")
    }
    #expect(k["components"] as? [String: Int] == j["components"] as? [String: Int])

    // The text report says the same things.
    let t = try Binary.run(["inspect", path])
    #expect(t.status == 0 && t.stdout.contains("sd1") && t.stdout.contains(sha) && t.stdout.contains("non-finite          none"))
  }

  @Test("synth: same arguments, same bytes, across runs of the binary")
  func synthDeterministic() throws {
    let ws = Workspace()
    for dir in ["a", "b"] {
      let r = try Binary.run([
        "synth", "--arch", "sdxl", "--count", "2", "--seed", "11", "--out", ws.file(dir), "--scale", "0.02", "--dtype", "bf16",
      ])
      try #require(r.status == 0, "synth failed: \(r.stderr)")
    }
    for name in ["sdxl-00.safetensors", "sdxl-01.safetensors"] {
      let a = FileManager.default.contents(atPath: ws.file("a/" + name))
      #expect(a != nil && a == FileManager.default.contents(atPath: ws.file("b/" + name)), "\(name)")
    }
    let j = try Binary.run(["inspect", "--json", ws.file("a/sdxl-01.safetensors")]).json()
    #expect(j["architecture"] as? String == "sdxl")
    #expect(j["dtypes"] as? [String: Int] == ["BF16": ((j["tensor_count"] as? Int) ?? 0) - 1, "I64": 1])
    let components = try #require(j["components"] as? [String: Int])
    #expect(Set(components.keys) == ["clip_l", "clip_g", "unet", "vae"])
  }

  @Test("a model carrying EMA weights and scheduler buffers: still SD1, with those as extra keys")
  func emaAndScheduler() throws {
    let ws = Workspace()
    let s = try Binary.run([
      "synth", "--arch", "sd1", "--count", "1", "--seed", "4", "--out", ws.path, "--scale", "0.02", "--with", "ema,scheduler",
    ])
    try #require(s.status == 0, "synth failed: \(s.stderr)")
    let j = try Binary.run(["inspect", "--json", ws.file("sd1-00.safetensors")]).json()
    #expect(j["architecture"] as? String == "sd1")
    let components = try #require(j["components"] as? [String: Int])
    #expect(components["ema"] == 688 && components["scheduler"] == 12)
    let extra = try #require(j["extra_keys"] as? [String])
    #expect(extra.count == 688 + 12 + 1)
    #expect(extra.contains("model_ema.decay") && extra.contains("alphas_cumprod"))
    #expect(extra.contains("cond_stage_model.transformer.text_model.embeddings.position_ids"))
    #expect((j["missing_keys"] as? [String])?.isEmpty == true)
  }

  @Test("inspect reports NaN and Inf per tensor, and warns in text mode")
  func nonFinite() throws {
    let ws = Workspace()
    let path = ws.file("nan.safetensors")
    let specs = [TensorSpec(name: "bad", dtype: .f16, shape: [4]), TensorSpec(name: "good", dtype: .f32, shape: [2])]
    let w = try SafeTensorsWriter(path: path, specs: specs, metadata: [:])
    for t in w.tensors {
      let bytes: [UInt8] = t.name == "bad" ? [0x00, 0x7E, 0x00, 0x7C, 0x00, 0x3C, 0x01, 0xFC] : [UInt8](repeating: 0, count: 8)
      try bytes.withUnsafeBytes { try w.append($0) }
    }
    try w.finish()
    let j = try Binary.run(["inspect", "--json", path]).json()
    let nf = try #require(j["nonfinite"] as? [[String: Any]])
    #expect(nf.count == 1)
    #expect(nf.first?["key"] as? String == "bad" && nf.first?["nan"] as? Int == 2 && nf.first?["inf"] as? Int == 1)
    #expect(j["architecture"] as? String == "unknown")
    let t = try Binary.run(["inspect", path])
    #expect(t.status == 0 && t.stdout.contains("bad: 2 NaN, 1 Inf") && t.stderr.contains("warning"))
  }

  @Test("a malformed file exits non-zero with one paragraph naming the file", arguments: ["short", "json", "offsets", "missing"])
  func malformed(kind: String) throws {
    let ws = Workspace()
    let path = ws.file("\(kind).safetensors")
    let header = Array("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}".utf8)
    func prefix(_ n: Int) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * $0)) } }
    let bytes: [UInt8]?
    switch kind {
    case "short": bytes = [1, 2, 3]
    case "json": bytes = prefix(5) + Array("{oops".utf8)
    case "offsets": bytes = prefix(header.count) + header + [0, 0, 0, 0]
    default: bytes = nil
    }
    if let bytes { try Data(bytes).write(to: URL(fileURLWithPath: path)) }
    for args in [["inspect", path], ["inspect", "--json", path], ["inspect", "--no-hash", path]] {
      let r = try Binary.run(args)
      expectOneParagraph(r, naming: path)
      #expect(r.stdout.isEmpty)
    }
  }

  @Test("synth refuses bad arguments with a message")
  func synthArguments() throws {
    let ws = Workspace()
    let cases: [([String], String)] = [
      (["--arch", "sd2"], "--arch"), (["--arch", "sd1", "--scale", "0"], "--scale"),
      (["--arch", "sd1", "--scale", "1.5"], "--scale"),
      (["--arch", "sd1", "--dtype", "f8"], "--dtype"), (["--arch", "llama", "--shard-size", "lots"], "--shard-size"),
    ]
    for (extra, mention) in cases {
      let r = try Binary.run(["synth", "--count", "1", "--seed", "1", "--out", ws.file("x")] + extra)
      #expect(r.status != 0 && r.stderr.contains(mention), "\(extra): \(r.stderr)")
    }
    #expect(!FileManager.default.fileExists(atPath: ws.file("x")))
  }

  @Test("a sharded Llama folder: inspect reads the index, reports each shard, and agrees with synth's hash")
  func shardedLlama() throws {
    let ws = Workspace()
    let s = try Binary.run([
      "synth", "--arch", "llama", "--count", "1", "--seed", "2", "--out", ws.path, "--scale", "0.03", "--shard-size", "300KB",
      "--json",
    ])
    try #require(s.status == 0, "synth failed: \(s.stderr)")
    let model = try #require((try s.json()["models"] as? [[String: Any]])?.first)
    let folder = ws.file("llama-00")
    let j = try Binary.run(["inspect", "--json", folder]).json()
    #expect(j["architecture"] as? String == "llama")
    #expect(j["tensor_count"] as? Int == 22 * 9 + 3)
    #expect(j["layer_counts"] as? [String: Int] == ["layers": 22])
    let shards = try #require(j["shards"] as? [[String: Any]])
    #expect(shards.count > 1)
    for shard in shards {
      let name = try #require(shard["file"] as? String)
      let bytes = try #require(FileManager.default.contents(atPath: folder + "/" + name))
      #expect(shard["sha256"] as? String == Digest.sha256(bytes), "\(name)")
      #expect(shard["size"] as? Int == bytes.count)
    }
    // One digest for the folder: SHA-256 of "<sha256>  <file>\n" lines sorted by file name.
    let lines = shards.compactMap { s -> String? in
      guard let f = s["file"] as? String, let h = s["sha256"] as? String else { return nil }
      return "\(h)  \(f)\n"
    }.sorted { $0.split(separator: " ").last! < $1.split(separator: " ").last! }
    #expect(j["sha256"] as? String == Digest.sha256(lines.joined()))
    #expect(model["sha256"] as? String == j["sha256"] as? String, "synth and inspect must report the same checkpoint hash")
  }

  @Test("an unsharded Llama folder (config.json + model.safetensors) inspects as its one file")
  func unshardedLlama() throws {
    let ws = Workspace()
    let s = try Binary.run([
      "synth", "--arch", "llama", "--count", "1", "--seed", "2", "--out", ws.path, "--scale", "0.02", "--json",
    ])
    try #require(s.status == 0, "synth failed: \(s.stderr)")
    let model = try #require((try s.json()["models"] as? [[String: Any]])?.first)
    let folder = ws.file("llama-00")
    #expect(model["path"] as? String == folder)
    let r = try Binary.run(["inspect", "--json", folder])
    try #require(r.status == 0, "inspect failed: \(r.stderr)")
    let j = try r.json()
    #expect(j["architecture"] as? String == "llama" && j["shards"] == nil)
    let bytes = try #require(FileManager.default.contents(atPath: folder + "/model.safetensors"))
    #expect(j["sha256"] as? String == Digest.sha256(bytes))
    #expect(model["sha256"] as? String == j["sha256"] as? String)
  }
}
