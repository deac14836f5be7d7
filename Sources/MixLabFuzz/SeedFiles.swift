/// The safetensors seeds of the reader's fuzzer, built in memory: valid files (every dtype,
/// scalars and empty tensors, a tiny SD1-style layout, NaN/Inf, unusual names, keys out of
/// offset order, metadata only, integers, a zero-row tensor with a huge dimension) and files
/// broken in each way the strict reader refuses. No model file is committed: the same bytes
/// are made on every run, by hand (little-endian integers, JSON text), independently of
/// mixlab's writer.
enum SeedFiles {
  struct Tensor {
    var name: String
    var dtype: String
    var shape: [Int]
    /// nil: deterministic filler bytes.
    var payload: [UInt8]?
  }

  static let sizes: [String: Int] = [
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1, "U16": 2, "U32": 4,
    "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
  ]

  /// `n` filler bytes that differ with `salt`.
  static func filler(_ n: Int, salt: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 * 131 + salt * 17 + 7) } }

  static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
  static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
  static func le16(_ v: UInt16) -> [UInt8] { [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8)] }

  /// A JSON string literal (quotes, backslashes and control characters escaped; other
  /// characters as UTF-8).
  static func quoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
      switch u {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case _ where u.value < 0x20:
        out += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16)
      default: out.unicodeScalars.append(u)
      }
    }
    return out + "\""
  }

  /// A file: 8-byte header length, header (JSON of `tensors` laid out in order, or `header`
  /// verbatim), space padding to a multiple of 8 when `pad`, then the data (`data` or the
  /// tensors' bytes). `declared` overrides the header length field.
  static func build(
    _ tensors: [Tensor], metadata: [(String, String)]? = nil, header: [UInt8]? = nil, declared: UInt64? = nil,
    data: [UInt8]? = nil, pad: Bool = true
  ) -> [UInt8] {
    var fields: [String] = []
    if let metadata {
      fields.append("\"__metadata__\":{" + metadata.map { quoted($0.0) + ":" + quoted($0.1) }.joined(separator: ",") + "}")
    }
    var blob: [UInt8] = []
    for (i, t) in tensors.enumerated() {
      let payload = t.payload ?? filler(t.shape.reduce(sizes[t.dtype]!, *), salt: i)
      let shape = t.shape.map(String.init).joined(separator: ",")
      fields.append(
        quoted(t.name)
          + ":{\"dtype\":\"\(t.dtype)\",\"shape\":[\(shape)],\"data_offsets\":[\(blob.count),\(blob.count + payload.count)]}")
      blob += payload
    }
    var raw = header ?? Array(("{" + fields.joined(separator: ",") + "}").utf8)
    if pad { raw += [UInt8](repeating: 0x20, count: (8 - raw.count % 8) % 8) }
    return le64(declared ?? UInt64(raw.count)) + raw + (data ?? blob)
  }

  static func text(_ s: String) -> [UInt8] { Array(s.utf8) }

  /// Every seed, named `valid-…` (the reader must accept it) or `bad-…` (it must refuse it).
  static func safetensors() -> [(name: String, bytes: [UInt8])] {
    var out: [(String, [UInt8])] = []
    func add(_ name: String, _ bytes: [UInt8]) { out.append((name + ".safetensors", bytes)) }
    let byWidth = sizes.keys.sorted { (-sizes[$0]!, $0) < (-sizes[$1]!, $1) }
    add(
      "valid-all-dtypes",
      build(
        byWidth.map { Tensor(name: "t_" + $0.lowercased(), dtype: $0, shape: [3]) },
        metadata: [("format", "pt"), ("note", "fuzz seed ✓")]))
    add(
      "valid-scalar-empty",
      build([
        Tensor(name: "scalar", dtype: "F32", shape: []), Tensor(name: "empty", dtype: "F16", shape: [0, 4]),
        Tensor(name: "matrix", dtype: "BF16", shape: [2, 3]),
      ]))
    add(
      "valid-sd1-tiny",
      build(
        [
          Tensor(name: "model.diffusion_model.input_blocks.0.0.weight", dtype: "F16", shape: [4, 4, 3, 3]),
          Tensor(name: "model.diffusion_model.input_blocks.0.0.bias", dtype: "F16", shape: [4]),
          Tensor(name: "model.diffusion_model.out.2.weight", dtype: "F16", shape: [4, 4, 3, 3]),
          Tensor(
            name: "cond_stage_model.transformer.text_model.embeddings.position_ids", dtype: "I64", shape: [1, 4],
            payload: (0..<4).flatMap { le64(UInt64($0)) }),
          Tensor(name: "first_stage_model.decoder.conv_out.weight", dtype: "F16", shape: [3, 4, 3, 3]),
        ], metadata: [("format", "pt")]))
    let f32: [UInt32] = [
      0x7FC0_0000, Float.infinity.bitPattern, (-Float.infinity).bitPattern, 1, Float(0.5).bitPattern, (-Float(0)).bitPattern,
    ]
    add(
      "valid-nonfinite",
      build([
        Tensor(name: "f32", dtype: "F32", shape: [6], payload: f32.flatMap(le32)),
        Tensor(name: "f16", dtype: "F16", shape: [4], payload: [0x7E00, 0x7C00, 0xFC00, 0x0001].flatMap(le16)),
        Tensor(name: "bf16", dtype: "BF16", shape: [4], payload: [0x7FC0, 0x7F80, 0xFF80, 0x3F80].flatMap(le16)),
      ]))
    add(
      "valid-unicode-names",
      build([
        Tensor(name: "é/ü.weight", dtype: "F32", shape: [1]), Tensor(name: "a\"b\\c", dtype: "F16", shape: [2]),
        Tensor(name: "\u{2603}", dtype: "U8", shape: [1]),
      ]))
    // Keys in an order unlike the offsets, no padding, whitespace in the JSON.
    add(
      "valid-unordered-unpadded",
      build(
        [],
        header: text(
          "{ \"b\" : {\"data_offsets\":[4,8],\"shape\":[1],\"dtype\":\"F32\"},\n  \"a\" : {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]} }"
        ),
        data: filler(8, salt: 1), pad: false))
    add("valid-metadata-only", build([], metadata: [("k", "v"), ("empty", "")]))
    add(
      "valid-integers",
      build([
        Tensor(name: "ids", dtype: "I64", shape: [2, 2]), Tensor(name: "mask", dtype: "BOOL", shape: [4], payload: [0, 1, 1, 0]),
        Tensor(name: "u", dtype: "U8", shape: [3]), Tensor(name: "i8", dtype: "I8", shape: [2]),
      ]))
    add("valid-zero-rows-huge-trailing", build([Tensor(name: "z", dtype: "F32", shape: [0, 1 << 62, 4], payload: [])]))

    let ok = build([Tensor(name: "a", dtype: "F32", shape: [2]), Tensor(name: "b", dtype: "F16", shape: [2])])
    add("bad-truncated-data", Array(ok.dropLast(3)))
    add("bad-trailing-bytes", ok + [0, 1])
    func bad(_ name: String, _ header: String, data: [UInt8] = []) { add(name, build([], header: text(header), data: data)) }
    bad("bad-gap", #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: filler(8, salt: 2))
    bad(
      "bad-overlap",
      #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
      data: filler(8, salt: 3))
    bad(
      "bad-duplicate-key",
      #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
      data: filler(4, salt: 4))
    add(
      "bad-utf8",
      build(
        [], header: [0x7B, 0x22, 0xFF, 0xFE, 0x22] + text(#":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#),
        data: filler(4, salt: 5)))
    add("bad-header-length", build([Tensor(name: "a", dtype: "F32", shape: [1])], declared: 200_000_000))
    bad(
      "bad-shape-overflow", #"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#,
      data: filler(16, salt: 6))
    bad("bad-shape-mismatch", #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: filler(8, salt: 7))
    bad("bad-unknown-dtype", #"{"a":{"dtype":"F4","shape":[1],"data_offsets":[0,1]}}"#, data: [0])
    bad("bad-metadata-nonstring", #"{"__metadata__":{"n":1}}"#)
    bad("bad-negative-offset", #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}"#, data: [0])
    bad("bad-deep-json", "{\"a\":" + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "}")
    bad("bad-not-json", "hello, world")
    bad("bad-array-root", "[]")
    add("bad-too-short", [8, 0, 0, 0, 0])
    add("bad-empty", [])
    return out.sorted { $0.0 < $1.0 }
  }
}
