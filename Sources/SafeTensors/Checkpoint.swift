import Foundation

/// A model checkpoint: one .safetensors file, a folder of shards described by a Hugging Face
/// style `*.safetensors.index.json`, or a Hugging Face folder holding a single
/// `model.safetensors` and no index.
public final class Checkpoint: Sendable {
  /// One tensor and the shard that holds it.
  public struct Entry: Sendable {
    public var info: TensorInfo
    public var shard: Int
  }

  /// The path as given (file or folder).
  public let path: String
  public let shards: [SafeTensorsFile]
  /// Every tensor, sorted by name.
  public let entries: [Entry]
  /// Metadata of a single file, or the union over shards plus the index's own `metadata`.
  public let metadata: [String: String]
  /// The index file for a sharded checkpoint.
  public let indexPath: String?
  private let byName: [String: Int]

  /// True when `path` is a folder of shards.
  public var isSharded: Bool { indexPath != nil }

  /// Opens a file or a sharded folder, validating every shard and the index.
  ///
  /// - Throws: `SafeTensorsError` naming the file, shard or tensor at fault.
  public init(path: String) throws(SafeTensorsError) {
    self.path = path
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
      throw .cannotOpen(path: path, reason: "no such file or folder")
    }
    if let single = isDir.boolValue ? Checkpoint.unindexedModelFile(in: path) : path {
      let f = try SafeTensorsFile(path: single)
      shards = [f]
      indexPath = nil
      metadata = f.metadata
      entries = f.tensors.map { Entry(info: $0, shard: 0) }.sorted { $0.info.name < $1.info.name }
    } else {
      let (index, files, weightMap, indexMeta) = try Checkpoint.readIndex(folder: path)
      indexPath = index
      var opened: [SafeTensorsFile] = []
      var fileIndex: [String: Int] = [:]
      for name in files {
        fileIndex[name] = opened.count
        opened.append(try SafeTensorsFile(path: (path as NSString).appendingPathComponent(name)))
      }
      var all: [Entry] = []
      var meta = indexMeta
      for (s, f) in opened.enumerated() {
        for (k, v) in f.metadata where meta[k] == nil { meta[k] = v }
        for t in f.tensors {
          guard let listed = weightMap[t.name] else {
            throw .shardIndex(
              path: index, reason: "shard \(files[s]) holds tensor \"\(t.name)\" that the weight_map does not list")
          }
          guard listed == files[s] else {
            throw .shardIndex(
              path: index, reason: "tensor \"\(t.name)\" is in shard \(files[s]) but the weight_map says \(listed)")
          }
          all.append(Entry(info: t, shard: s))
        }
      }
      if all.count != weightMap.count {
        let present = Set(all.map(\.info.name))
        let missing = weightMap.keys.filter { !present.contains($0) }.sorted().first ?? "?"
        throw .shardIndex(path: index, reason: "tensor \"\(missing)\" is listed in the weight_map but not found in its shard")
      }
      shards = opened
      metadata = meta
      entries = all.sorted { $0.info.name < $1.info.name }
    }
    var byName: [String: Int] = [:]
    for (i, e) in entries.enumerated() {
      if byName[e.info.name] != nil {
        throw .shardIndex(path: path, reason: "tensor \"\(e.info.name)\" appears in more than one shard")
      }
      byName[e.info.name] = i
    }
    self.byName = byName
  }

  /// The entry for `name`, or nil.
  public func entry(_ name: String) -> Entry? { byName[name].map { entries[$0] } }

  /// The file holding `e`.
  public func file(of e: Entry) -> SafeTensorsFile { shards[e.shard] }

  /// Total bytes of tensor data over all shards.
  public var dataBytes: Int { shards.reduce(0) { $0 + $1.file.size - $1.dataStart } }

  /// `model.safetensors` of a folder that has it and no index file, else nil.
  private static func unindexedModelFile(in folder: String) -> String? {
    let items = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    guard items.contains("model.safetensors"), !items.contains(where: { $0.hasSuffix(".safetensors.index.json") }) else {
      return nil
    }
    return (folder as NSString).appendingPathComponent("model.safetensors")
  }

  private static func readIndex(folder: String) throws(SafeTensorsError) -> (String, [String], [String: String], [String: String])
  {
    let items = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    let indexes = items.filter { $0.hasSuffix(".safetensors.index.json") }.sorted()
    let index: String
    if indexes.contains("model.safetensors.index.json") {
      index = (folder as NSString).appendingPathComponent("model.safetensors.index.json")
    } else if let first = indexes.first, indexes.count == 1 {
      index = (folder as NSString).appendingPathComponent(first)
    } else if indexes.isEmpty {
      throw .shardIndex(
        path: folder,
        reason:
          "the folder has neither model.safetensors.index.json nor model.safetensors; pass a .safetensors file or a checkpoint folder"
      )
    } else {
      throw .shardIndex(
        path: folder, reason: "the folder has several index files (\(indexes.joined(separator: ", "))); pass one model's folder")
    }
    guard let data = FileManager.default.contents(atPath: index) else {
      throw .cannotOpen(path: index, reason: "cannot read")
    }
    let root: JSONValue
    do {
      root = try StrictJSONParser.parse(Array(data))
    } catch {
      throw .shardIndex(path: index, reason: "not valid JSON at byte \(error.offset): \(error.reason)")
    }
    guard case .object(let members) = root else { throw .shardIndex(path: index, reason: "must be a JSON object") }
    var weightMap: [String: String] = [:]
    var meta: [String: String] = [:]
    var files: [String] = []
    for m in members {
      switch m.key {
      case "weight_map":
        guard case .object(let pairs) = m.value else { throw .shardIndex(path: index, reason: "weight_map must be an object") }
        for p in pairs {
          guard case .string(let file) = p.value else {
            throw .shardIndex(path: index, reason: "weight_map entry \"\(p.key)\" must name a file")
          }
          guard !file.contains("/"), !file.contains("\\"), file != "..", file != ".", !file.isEmpty else {
            throw .shardIndex(
              path: index, reason: "weight_map entry \"\(p.key)\" names \"\(file)\", which is not a plain file name in the folder"
            )
          }
          weightMap[p.key] = file
          if !files.contains(file) { files.append(file) }
        }
      case "metadata":
        if case .object(let pairs) = m.value {
          for p in pairs {
            switch p.value {
            case .string(let s): meta[p.key] = s
            case .number(let n): meta[p.key] = n
            default: break
            }
          }
        }
      default:
        break
      }
    }
    guard !weightMap.isEmpty else { throw .shardIndex(path: index, reason: "weight_map is missing or empty") }
    return (index, files.sorted(), weightMap, meta)
  }
}
