import Foundation
import Provenance
import SafeTensors

/// Run records with realistic shapes and distinct hashes, built from a tag and an index.
enum Fixture {
  static let baseTime: TimeInterval = 1_735_689_600  // 2025-01-01T00:00:00Z

  static func hex(_ seed: String) -> String { Digest.sha256(seed) }

  static let shapes: [String: (dtype: String, shape: [Int])] = [
    "model.diffusion_model.out.2.weight": ("F16", [4, 320, 3, 3]), "model.diffusion_model.out.2.bias": ("F16", [4]),
  ]

  static func record(
    _ i: Int, experiment: String = "soup", recipeHash: String? = nil, inputs: [String]? = nil,
    minutes: Double? = nil, reused: Bool = false
  ) -> RunRecord {
    let output = hex("output \(experiment) \(i)")
    let inputHashes = inputs ?? [hex("base"), hex("model \(experiment) \(i)")]
    return RunRecord(
      runID: hex("run \(experiment) \(i)"), experiment: experiment, recipeName: "r\(i)",
      recipePath: "experiments/\(experiment)/r\(i).yaml",
      recipeYAML: "# weights sum to 1\nmethod: linear\nmodels: [base, m\(i)]\nweights: [0.5, 0.5]\n",
      recipeCanonical: "{\"method\":\"linear\",\"models\":[\"base\",\"m\(i)\"],\"weights\":[0.5,0.5]}",
      recipeHash: recipeHash ?? hex("recipe \(experiment) \(i)"),
      notes: ["NOTES.md": "# \(experiment)\n\nTrying r\(i).\n", "ideas.txt": "more base"],
      inputs: inputHashes.enumerated().map { n, sha in
        InputRecord(
          name: "m\(n)", path: "models/m\(n).safetensors", sha256: sha, tensorDataSHA256: hex("data " + sha),
          size: 2_132_856_622, architecture: "sd1", tensorCount: 1131)
      },
      output: OutputRecord(
        path: "artifacts/\(experiment)/r\(i).safetensors", sha256: output, autov2: Digest.autoV2(output),
        tensorDataSHA256: hex("data " + output), size: 2_132_625_000, tensorCount: 2,
        tensorSHA256: [
          "model.diffusion_model.out.2.weight": hex("w \(output)"), "model.diffusion_model.out.2.bias": hex("b \(output)"),
        ],
        dtypes: ["F16": 2], components: ["unet": 2], layerCounts: ["unet": 25, "text_encoder": 12],
        architecture: "sd1"),
      seed: UInt64(i) * 7919,
      engine: EngineRecord(mixlabVersion: "0.1.0", engineVersion: "1", methodSemantics: ["linear": "1", "ties": "2"]),
      platform: PlatformRecord(os: "Linux 6.1.0", arch: "x86_64", cpu: "Test CPU @ 3.00GHz", swiftVersion: "6.3"),
      execution: ExecutionRecord(
        threads: 2, memoryBudget: 8 << 30, chunkElements: 1 << 20, computeDType: "f32",
        startedAt: RunRecord.iso8601(Date(timeIntervalSince1970: baseTime + (minutes ?? Double(i)) * 60 + 0.25)),
        wallSeconds: 12.5 + Double(i), peakRSSBytes: 900 << 20, reused: reused),
      metrics: [
        MetricRecord(name: "l2_to_base", scope: "overall", value: Double(i) / 3),
        MetricRecord(name: "cosine_to_base", scope: "component:unet", value: 0.999),
        MetricRecord(name: "cosine_to_base", scope: "block:IN04", value: 0.5),
      ])
  }

  /// Commits `record` to git and indexes it, as the runner does.
  @discardableResult
  static func store(_ record: RunRecord, git: GitStore, index: IndexDB) throws -> String {
    let commit = try git.commit(files: try record.gitFiles(), message: record.commitMessage, time: record.commitTime)
    try index.record(record, commitID: commit, tensorShapes: shapes)
    return commit
  }
}
