import Foundation
import Testing

@testable import SafeTensors

/// Runs `python3 -c script args…` and returns its standard output.
func runPython(_ script: String, _ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  p.arguments = ["python3", "-c", script] + args
  let out = Pipe()
  let err = Pipe()
  p.standardOutput = out
  p.standardError = err
  try p.run()
  // Read both pipes before waiting so a large output cannot block the child.
  let o = out.fileHandleForReading.readDataToEndOfFile()
  let e = err.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Why an interop test cannot run; thrown so the test fails with instructions rather than
/// passing silently (CI installs the reference library, so a skip would hide a broken check).
struct ReferenceLibraryMissing: Error, CustomStringConvertible {
  var detail: String
  var description: String {
    "The Python reference implementation is needed: `python3 -c 'import safetensors, numpy'` failed (\(detail)). "
      + "Install it with `pip install safetensors numpy`."
  }
}

func requireReferenceSafetensors() throws {
  let r = try runPython("import safetensors, numpy; print(safetensors.__version__)", [])
  if r.status != 0 {
    throw ReferenceLibraryMissing(detail: r.stderr.split(separator: "\n").last.map(String.init) ?? "exit status \(r.status)")
  }
}

/// Reads a file with the reference library and prints, as JSON, its metadata and every
/// tensor's dtype, shape and values (floats as `float.hex()` of the f64 value, integers in
/// decimal). NumPy dtypes are loaded through `safe_open(framework="numpy")`; BF16 and F8,
/// which NumPy lacks, come from the reference parser's raw bytes and are decoded here from the
/// format definitions.
let pythonReader = #"""
  import json, sys
  import numpy as np
  from safetensors import safe_open, deserialize

  path = sys.argv[1]
  raw = {name: info for name, info in deserialize(open(path, "rb").read())}
  NUMPY = {"F64", "F32", "F16", "I64", "U64", "I32", "U32", "I16", "U16", "I8", "U8", "BOOL"}

  def f8(b, exp_bits, man_bits, ieee):
      bias = (1 << (exp_bits - 1)) - 1
      s = -1.0 if b & 0x80 else 1.0
      e = (b >> man_bits) & ((1 << exp_bits) - 1)
      m = b & ((1 << man_bits) - 1)
      top = (1 << exp_bits) - 1
      if ieee and e == top:
          return s * float("inf") if m == 0 else float("nan")
      if not ieee and e == top and m == (1 << man_bits) - 1:
          return float("nan")
      if e == 0:
          return s * m * 2.0 ** (1 - bias - man_bits)
      return s * (1 + m / (1 << man_bits)) * 2.0 ** (e - bias)

  out = {"tensors": {}}
  with safe_open(path, framework="numpy") as f:
      out["metadata"] = f.metadata()
      for name in f.keys():
          info = raw[name]
          dt, data = info["dtype"], bytes(info["data"])
          if dt in NUMPY:
              arr = f.get_tensor(name)
              assert arr.tobytes() == data, name
              flat = arr.ravel()
              if arr.dtype.kind == "f":
                  values = [float(x).hex() for x in flat.astype(np.float64)]
              else:
                  values = [str(int(x)) for x in flat]
          elif dt == "BF16":
              bits = np.frombuffer(data, dtype="<u2").astype("<u4") << 16
              values = [float(x).hex() for x in bits.view("<f4").astype(np.float64)]
          elif dt == "F8_E4M3":
              values = [f8(b, 4, 3, False).hex() for b in data]
          elif dt == "F8_E5M2":
              values = [f8(b, 5, 2, True).hex() for b in data]
          else:
              raise SystemExit("unexpected dtype " + dt)
          out["tensors"][name] = {"dtype": dt, "shape": list(info["shape"]), "values": values}
  print(json.dumps(out))
  """#

/// Writes two files with the reference library: NumPy dtypes through
/// `safetensors.numpy.save_file`, and BF16/F8 through the raw `serialize` API (which changed
/// shape in 0.5: `TensorSpec` objects, before that plain dicts).
let pythonWriter = #"""
  import sys
  import numpy as np
  import safetensors
  from safetensors import serialize
  from safetensors.numpy import save_file

  tensors = {
      "f64": np.array([1.5, -0.0, np.inf, np.nan, 5e-324, 0.1], dtype="<f8"),
      "f32": np.array([1.5, -0.0, -np.inf, np.nan, 1e-45, 0.1], dtype="<f4"),
      "f16": np.array([1, -2, 65504, 2.0 ** -24, np.inf, np.nan], dtype="<f2"),
      "i64": np.array([-(2 ** 63), -1, 0, 2 ** 53, 2 ** 63 - 1], dtype="<i8"),
      "u64": np.array([0, 1, 2 ** 64 - 1], dtype="<u8"),
      "i32": np.array([-(2 ** 31), -1, 16777217, 2 ** 31 - 1], dtype="<i4"),
      "u32": np.array([0, 2 ** 32 - 1], dtype="<u4"),
      "i16": np.array([-32768, -1, 32767], dtype="<i2"),
      "u16": np.array([0, 65535], dtype="<u2"),
      "i8": np.array([-128, 0, 127], dtype="i1"),
      "u8": np.array([0, 128, 255], dtype="u1"),
      "bool": np.array([True, False, True]),
      "matrix": np.arange(12, dtype="<f4").reshape(3, 4),
      "scalar": np.array(3.25, dtype="<f4"),
      "empty": np.zeros((0, 3), dtype="<f4"),
  }
  save_file(tensors, sys.argv[1], metadata={"format": "np", "zeta": "last", "alpha": "x\"y é"})

  def raw(dtype, buf):
      try:
          from safetensors import TensorSpec
      except ImportError:
          return {"dtype": dtype, "shape": list(buf.shape), "data": buf.tobytes()}
      return TensorSpec(dtype=dtype, shape=list(buf.shape), data_ptr=buf.ctypes.data, data_len=buf.nbytes)

  bf = np.array([0x3F80, 0xC000, 0x7F80, 0x7FC0, 0x0001], dtype="<u2")
  e4 = np.array([0x38, 0xC0, 0x7E, 0x7F, 0x01], dtype="u1")
  e5 = np.array([0x3C, 0xC0, 0x7B, 0x7C, 0x7F], dtype="u1")
  blob = serialize({"bf16": raw("bfloat16", bf), "e4m3": raw("float8_e4m3fn", e4), "e5m2": raw("float8_e5m2", e5)},
                   metadata={"k": "v"})
  open(sys.argv[2], "wb").write(bytes(blob))
  """#

/// What the Python reader printed.
struct PythonView: Decodable {
  struct Tensor: Decodable {
    var dtype: String
    var shape: [Int]
    var values: [String]
  }
  var metadata: [String: String]?
  var tensors: [String: Tensor]
}

@Suite("Interop with the reference Python safetensors")
struct PythonInteropTests {
  /// One tensor per writable dtype, with the specials each can hold, as raw bytes.
  static let samples: [Sample] =
    Sample.all + [
      Sample("f32.matrix", .f32, leBytes((0..<12).map { Float($0) * 0.25 - 1 }), (0..<12).map { Double($0) * 0.25 - 1 }),
      Sample("bf16.subnormal", .bf16, leBytes([UInt16(0x0001), 0x807F, 0x7F7F]), [0x1p-133, -0x1.FCp-127, 0x1.FEp127]),
    ]

  @Test("files mixlab writes load in the reference library with identical values and metadata")
  func referenceReadsOurFiles() throws {
    try requireReferenceSafetensors()
    let dir = TempDir("py")
    let path = dir.file("ours.safetensors")
    var specs = Self.samples.map { TensorSpec(name: $0.name, dtype: $0.dtype, shape: [$0.count]) }
    specs[specs.firstIndex { $0.name == "f32.matrix" }!].shape = [3, 4]
    specs.append(TensorSpec(name: "scalar", dtype: .f64, shape: []))
    specs.append(TensorSpec(name: "empty", dtype: .bf16, shape: [0, 3]))
    let metadata = ["format": "pt", "note": "quote \" backslash \\ newline \n é ✓", "empty": ""]
    let bytesFor = Dictionary(uniqueKeysWithValues: Self.samples.map { ($0.name, $0.bytes) })
    try writeCanonical(path, specs: specs, metadata: metadata) { t in
      t.name == "scalar" ? leBytes([-2.5]) : (bytesFor[t.name] ?? [])
    }
    let r = try runPython(pythonReader, [path])
    try #require(r.status == 0, "python failed: \(r.stderr)")
    let view = try JSONDecoder().decode(PythonView.self, from: Data(r.stdout.utf8))
    #expect(view.metadata == metadata)
    #expect(Set(view.tensors.keys) == Set(specs.map(\.name)))
    for spec in specs {
      let py = try #require(view.tensors[spec.name])
      #expect(py.dtype == spec.dtype.rawValue && py.shape == spec.shape, "\(spec.name)")
    }
    #expect(view.tensors["scalar"]?.values == ["-0x1.4000000000000p+1"])
    #expect(view.tensors["empty"]?.values == [])
    for s in Self.samples {
      let py = try #require(view.tensors[s.name]).values
      try #require(py.count == s.count, "\(s.name)")
      for i in 0..<s.count {
        if s.dtype.isFloat {
          let v = try #require(Double(py[i]), "\(s.name)[\(i)]: \(py[i])")
          #expect(sameValue(v, s.asDouble[i]), "\(s.name)[\(i)]: python \(py[i]), expected \(s.asDouble[i])")
        } else {
          #expect(py[i] == Self.integerText(s, i), "\(s.name)[\(i)]")
        }
      }
    }
  }

  /// The exact integer stored at element `i` of an integer sample, in decimal.
  static func integerText(_ s: Sample, _ i: Int) -> String {
    let b = Array(s.bytes[(i * s.dtype.size)..<((i + 1) * s.dtype.size)])
    let u = b.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    switch s.dtype {
    case .i8: return String(Int8(truncatingIfNeeded: u))
    case .i16: return String(Int16(truncatingIfNeeded: u))
    case .i32: return String(Int32(truncatingIfNeeded: u))
    case .i64: return String(Int64(bitPattern: u))
    default: return String(u)
    }
  }

  @Test("files the reference library writes read here with identical values and metadata")
  func weReadReferenceFiles() throws {
    try requireReferenceSafetensors()
    let dir = TempDir("py")
    let numpyFile = dir.file("numpy.safetensors")
    let rawFile = dir.file("raw.safetensors")
    let w = try runPython(pythonWriter, [numpyFile, rawFile])
    try #require(w.status == 0, "python failed: \(w.stderr)")
    // Our reading, element by element, against the reference library's own reading.
    for path in [numpyFile, rawFile] {
      let f = try SafeTensorsFile(path: path)
      let r = try runPython(pythonReader, [path])
      try #require(r.status == 0, "python failed: \(r.stderr)")
      let view = try JSONDecoder().decode(PythonView.self, from: Data(r.stdout.utf8))
      #expect(f.metadata == view.metadata ?? [:])
      #expect(Set(f.tensors.map(\.name)) == Set(view.tensors.keys))
      for t in f.tensors {
        let py = try #require(view.tensors[t.name])
        #expect(t.dtype.rawValue == py.dtype && t.shape == py.shape, "\(t.name)")
        var doubles = [Double](repeating: 0, count: t.elementCount)
        f.read(t, elements: 0..<t.elementCount, into: &doubles)
        for i in 0..<t.elementCount {
          if t.dtype.isFloat {
            let v = try #require(Double(py.values[i]))
            #expect(sameValue(doubles[i], v), "\(t.name)[\(i)]: ours \(doubles[i]), python \(py.values[i])")
          } else if t.dtype.size < 8 {
            #expect(String(Int64(doubles[i])) == py.values[i], "\(t.name)[\(i)]")
          } else {
            // 64-bit integers: compare the stored bits, not a Double.
            let text = f.withBytes(of: t, elements: i..<(i + 1)) { raw in
              t.dtype == .i64 ? String(raw.loadUnaligned(as: Int64.self)) : String(raw.loadUnaligned(as: UInt64.self))
            }
            #expect(text == py.values[i], "\(t.name)[\(i)]")
          }
        }
      }
    }
    let numpy = try SafeTensorsFile(path: numpyFile)
    #expect(numpy.metadata == ["format": "np", "zeta": "last", "alpha": "x\"y é"])
    #expect(numpy.info("scalar")?.shape == [] && numpy.info("empty")?.shape == [0, 3] && numpy.info("matrix")?.shape == [3, 4])
    let raw = try SafeTensorsFile(path: rawFile)
    var values = [Double](repeating: 0, count: 5)
    raw.read(raw.info("bf16")!, elements: 0..<5, into: &values)
    #expect(zip(values, [1, -2, .infinity, .nan, 0x1p-133]).allSatisfy(sameValue))
    raw.read(raw.info("e4m3")!, elements: 0..<5, into: &values)
    #expect(zip(values, [1, -2, 448, .nan, 0x1p-9]).allSatisfy(sameValue))
    raw.read(raw.info("e5m2")!, elements: 0..<5, into: &values)
    #expect(zip(values, [1, -2, 57344, .infinity, .nan]).allSatisfy(sameValue))
  }

  @Test("a reference file rewritten by the canonical writer reads back identically in Python")
  func rewriteRoundTrip() throws {
    try requireReferenceSafetensors()
    let dir = TempDir("py")
    let numpyFile = dir.file("numpy.safetensors")
    let w = try runPython(pythonWriter, [numpyFile, dir.file("raw.safetensors")])
    try #require(w.status == 0, "python failed: \(w.stderr)")
    let source = try SafeTensorsFile(path: numpyFile)
    let copy = dir.file("copy.safetensors")
    try writeCanonical(
      copy, specs: source.tensors.map { TensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape) }, metadata: source.metadata
    ) { t in
      source.withBytes(of: source.info(t.name)!) { Array($0) }
    }
    let a = try runPython(pythonReader, [numpyFile])
    let b = try runPython(pythonReader, [copy])
    try #require(a.status == 0 && b.status == 0, "python failed: \(a.stderr) \(b.stderr)")
    let va = try JSONDecoder().decode(PythonView.self, from: Data(a.stdout.utf8))
    let vb = try JSONDecoder().decode(PythonView.self, from: Data(b.stdout.utf8))
    #expect(va.metadata == vb.metadata)
    for (name, t) in va.tensors {
      #expect(vb.tensors[name]?.values == t.values && vb.tensors[name]?.shape == t.shape, "\(name)")
    }
  }
}
