import Foundation

/// Splits a canonical tensor list into Hugging Face style shards and writes the index.
public enum Sharding {
  /// Groups `specs` (taken in canonical order) into consecutive shards of at most
  /// `maxShardBytes` each (a single tensor larger than that gets a shard of its own).
  public static func plan(_ specs: [TensorSpec], maxShardBytes: Int) -> [[TensorSpec]] {
    var shards: [[TensorSpec]] = []
    var current: [TensorSpec] = []
    var size = 0
    for s in CanonicalLayout.order(specs) {
      if !current.isEmpty && size + s.byteCount > maxShardBytes {
        shards.append(current)
        current = []
        size = 0
      }
      current.append(s)
      size += s.byteCount
    }
    if !current.isEmpty || shards.isEmpty { shards.append(current) }
    return shards
  }

  /// `model-0000i-of-0000n.safetensors`.
  public static func shardName(_ i: Int, of n: Int) -> String {
    func pad(_ v: Int) -> String {
      let s = String(v)
      return String(repeating: "0", count: max(0, 5 - s.count)) + s
    }
    return "model-\(pad(i + 1))-of-\(pad(n)).safetensors"
  }

  /// The canonical `model.safetensors.index.json` text: sorted keys, two-space indent.
  public static func indexJSON(weightMap: [String: String], totalSize: Int) -> [UInt8] {
    var out = Array("{\n  \"metadata\": {\n    \"total_size\": \(totalSize)\n  },\n  \"weight_map\": {".utf8)
    let keys = weightMap.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    for (i, k) in keys.enumerated() {
      out.append(contentsOf: Array((i == 0 ? "\n    " : ",\n    ").utf8))
      JSONText.appendQuoted(k, to: &out)
      out.append(contentsOf: Array(": ".utf8))
      JSONText.appendQuoted(weightMap[k]!, to: &out)
    }
    out.append(contentsOf: Array("\n  }\n}\n".utf8))
    return out
  }
}

/// How a sharded checkpoint gets one digest: SHA-256 of `sha256sum`-style lines
/// ("<hex>  <file>\n"), sorted by file name. `synth` and `inspect` both report it, so they
/// name a sharded model by the same hash.
public enum ShardDigest {
  public static func combine(_ parts: [(file: String, sha256: String)]) -> String {
    let text = parts.sorted { $0.file < $1.file }.map { "\($0.sha256)  \($0.file)\n" }.joined()
    return Digest.sha256(text)
  }
}
