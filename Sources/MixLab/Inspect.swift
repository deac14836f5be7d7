import Architectures
import Foundation
import SafeTensors

/// What `mixlab inspect` reports. The snake_case JSON names are a public contract.
public struct InspectReport: Codable, Sendable {
  public var path: String
  public var architecture: String
  public var components: [String: Int]
  public var layerCounts: [String: Int]
  public var tensorCount: Int
  public var parameterCount: Int
  public var dtypes: [String: Int]
  public var extraKeys: [String]
  public var missingKeys: [String]
  public var metadata: [String: String]
  public var size: Int
  public var shards: [ShardReport]?
  /// Present unless hashing was skipped.
  public var sha256: String?
  public var autov2: String?
  public var tensorDataSHA256: String?
  public var nonfinite: [NonFinite]?

  public struct ShardReport: Codable, Sendable {
    public var file: String
    public var size: Int
    public var sha256: String?
    public var tensorDataSHA256: String?
    enum CodingKeys: String, CodingKey {
      case file, size, sha256
      case tensorDataSHA256 = "tensor_data_sha256"
    }
  }

  enum CodingKeys: String, CodingKey {
    case path, architecture, components, dtypes, metadata, size, shards, sha256, autov2, nonfinite
    case layerCounts = "layer_counts"
    case tensorCount = "tensor_count"
    case parameterCount = "parameter_count"
    case extraKeys = "extra_keys"
    case missingKeys = "missing_keys"
    case tensorDataSHA256 = "tensor_data_sha256"
  }
}

/// `mixlab inspect`: architecture, components, counts, hashes and a non-finite scan.
public enum Inspect {
  /// Inspects a .safetensors file or a sharded checkpoint folder.
  ///
  /// - Parameters:
  ///   - path: file or folder.
  ///   - hash: read all data to compute hashes and scan for NaN/Inf (one read pass);
  ///     false reads the header only.
  /// - Throws: `SafeTensorsError` naming the file and tensor at fault.
  public static func run(path: String, hash: Bool = true) throws -> InspectReport {
    let ckpt = try Checkpoint(path: path)
    let names = ckpt.entries.map(\.info.name)
    let arch = Detection.architecture(of: ckpt.entries.map { ($0.info.name, $0.info.shape) })
    var components: [String: Int] = [:]
    var dtypes: [String: Int] = [:]
    var params = 0
    for e in ckpt.entries {
      components[Detection.component(of: e.info.name, in: arch), default: 0] += 1
      dtypes[e.info.dtype.rawValue, default: 0] += 1
      params += e.info.elementCount
    }
    let (extra, missing) = Detection.layoutDifferences(names: names, arch: arch)
    var report = InspectReport(
      path: path, architecture: arch.rawValue, components: components,
      layerCounts: Detection.layerCounts(of: names, in: arch), tensorCount: ckpt.entries.count,
      parameterCount: params, dtypes: dtypes, extraKeys: extra, missingKeys: missing, metadata: ckpt.metadata,
      size: ckpt.shards.reduce(0) { $0 + $1.file.size })
    var shardReports = ckpt.shards.map {
      InspectReport.ShardReport(file: ($0.path as NSString).lastPathComponent, size: $0.file.size)
    }
    if hash {
      var nonfinite: [NonFinite] = []
      for (i, f) in ckpt.shards.enumerated() {
        let r = Scanner.scan(f, perTensor: false)
        shardReports[i].sha256 = r.sha256
        shardReports[i].tensorDataSHA256 = r.tensorDataSHA256
        nonfinite += r.nonFinite
      }
      if ckpt.isSharded {
        report.sha256 = ShardDigest.combine(shardReports.map { ($0.file, $0.sha256!) })
        report.tensorDataSHA256 = ShardDigest.combine(shardReports.map { ($0.file, $0.tensorDataSHA256!) })
      } else {
        report.sha256 = shardReports[0].sha256
        report.tensorDataSHA256 = shardReports[0].tensorDataSHA256
      }
      report.autov2 = report.sha256.map(Digest.autoV2)
      report.nonfinite = nonfinite.sorted { $0.key < $1.key }
    }
    if ckpt.isSharded { report.shards = shardReports }
    return report
  }

  /// A plain-text rendering for terminals.
  public static func text(_ r: InspectReport) -> String {
    var lines: [String] = []
    func row(_ k: String, _ v: String) { lines.append(k.padding(toLength: 20, withPad: " ", startingAt: 0) + v) }
    row("path", r.path)
    row("architecture", r.architecture)
    row("tensors", "\(r.tensorCount)")
    row("parameters", Format.count(r.parameterCount))
    row("size", Format.bytes(r.size))
    row("dtypes", r.dtypes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    if let s = r.sha256 {
      row("sha256", s)
      row("autov2", r.autov2 ?? "")
      row("tensor_data_sha256", r.tensorDataSHA256 ?? "")
    } else {
      row("sha256", "(not computed: --no-hash)")
    }
    lines.append("")
    lines.append("component           tensors   layers")
    for (c, n) in r.components.sorted(by: { $0.key < $1.key }) {
      let layers = r.layerCounts[c].map(String.init) ?? "-"
      lines.append(c.padding(toLength: 20, withPad: " ", startingAt: 0) + String(n).leftPad(7) + layers.leftPad(9))
    }
    if !r.extraKeys.isEmpty {
      lines.append("")
      var byComponent: [String: Int] = [:]
      let arch = Architecture(rawValue: r.architecture) ?? .unknown
      for k in r.extraKeys { byComponent[Detection.component(of: k, in: arch), default: 0] += 1 }
      let summary = byComponent.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
      lines.append("extra keys          \(r.extraKeys.count) (\(summary))")
      for k in r.extraKeys.prefix(8) { lines.append("  " + k) }
      if r.extraKeys.count > 8 { lines.append("  … \(r.extraKeys.count - 8) more (--json lists all)") }
    }
    if !r.missingKeys.isEmpty {
      lines.append("")
      lines.append("missing keys        \(r.missingKeys.count)")
      for k in r.missingKeys.prefix(8) { lines.append("  " + k) }
      if r.missingKeys.count > 8 { lines.append("  … \(r.missingKeys.count - 8) more (--json lists all)") }
    }
    if let nf = r.nonfinite {
      lines.append("")
      if nf.isEmpty {
        lines.append("non-finite          none")
      } else {
        lines.append("non-finite          \(nf.count) tensors")
        for n in nf.prefix(20) { lines.append("  \(n.key): \(n.nan) NaN, \(n.inf) Inf") }
        if nf.count > 20 { lines.append("  … \(nf.count - 20) more (--json lists all)") }
      }
    }
    if let shards = r.shards {
      lines.append("")
      lines.append("shards")
      for s in shards { lines.append("  \(s.file)  \(Format.bytes(s.size))  \(s.sha256 ?? "")") }
    }
    return lines.joined(separator: "\n")
  }
}
