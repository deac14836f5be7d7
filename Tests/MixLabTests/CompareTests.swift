import Architectures
import Foundation
import SafeTensors
import Testing

@testable import MixLab

#if canImport(FoundationXML)
  import FoundationXML
#endif

/// A tensor of a hand-made file: name, dtype, shape and values.
struct HandTensor {
  var name: String
  var dtype: DType = .f32
  var shape: [Int]
  var values: [Double]

  init(_ name: String, _ shape: [Int], _ values: [Double], dtype: DType = .f32) {
    self.name = name
    self.shape = shape
    self.values = values
    self.dtype = dtype
  }
}

/// Writes a safetensors file holding `tensors` (float dtypes only).
func writeModel(_ path: String, _ tensors: [HandTensor]) throws {
  let w = try SafeTensorsWriter(
    path: path, specs: tensors.map { TensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape) }, metadata: [:])
  for info in w.tensors {
    let t = tensors.first { $0.name == info.name }!
    var bytes = [UInt8](repeating: 0, count: info.byteCount)
    bytes.withUnsafeMutableBytes { raw in
      t.values.withUnsafeBufferPointer {
        Codec.encode($0.baseAddress!, count: t.values.count, as: info.dtype, into: raw.baseAddress!)
      }
    }
    try bytes.withUnsafeBytes { try w.append($0) }
  }
  _ = try w.finish()
}

/// Every float tensor of a file as `Double`, read independently of the code under test.
func readAll(_ path: String) throws -> [String: [Double]] {
  let f = try SafeTensorsFile(path: path)
  var out: [String: [Double]] = [:]
  for t in f.tensors where t.dtype.isFloat {
    var v = [Double](repeating: 0, count: t.elementCount)
    v.withUnsafeMutableBufferPointer { f.read(t, elements: 0..<t.elementCount, into: $0.baseAddress!) }
    out[t.name] = v
  }
  return out
}

/// A temporary folder removed when the value goes away.
final class Scratch {
  let path: String
  init() throws {
    path = FileManager.default.temporaryDirectory.path + "/mixlab-compare-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }
  deinit { try? FileManager.default.removeItem(atPath: path) }
  func file(_ name: String) -> String { path + "/" + name }
}

/// Small SD1 models for the compare tests (written once per process).
enum CompareModels {
  static let folder = FileManager.default.temporaryDirectory.path + "/mixlab-compare-models-\(getpid())"
  static var sd1: [String] { get throws { try sd1Result.get() } }
  private static let sd1Result = Result {
    atexit { try? FileManager.default.removeItem(atPath: CompareModels.folder) }
    return try Synthesizer(architecture: .sd1, count: 3, seed: 1, scale: 0.03).write(to: folder).map(\.path)
  }
}

func diffOptions(threads: Int = 0, workspace: Workspace? = nil) -> Diff.Options {
  var o = Diff.Options()
  o.threads = threads
  o.workspace = workspace
  return o
}

/// The block a key belongs to, written out independently of `CompareBlocks` for the keys the
/// tests look at.
func expectedBlock(_ key: String) -> String? {
  func number(after prefix: String) -> Int? {
    guard key.hasPrefix(prefix) else { return nil }
    return Int(key.dropFirst(prefix.count).prefix { $0.isNumber })
  }
  if let i = number(after: "model.diffusion_model.input_blocks.") { return String(format: "IN%02d", i) }
  if let i = number(after: "model.diffusion_model.output_blocks.") { return String(format: "OUT%02d", i) }
  if key.hasPrefix("model.diffusion_model.middle_block.") { return "M00" }
  if key.hasPrefix("model.diffusion_model.time_embed.") { return "BASE" }
  if key.hasPrefix("model.diffusion_model.out.") { return "OUT11" }
  if key.hasPrefix("first_stage_model.") { return "VAE" }
  if key.hasPrefix("cond_stage_model.transformer.") { return "CLIP_L" }
  return nil
}

func expectedComponent(_ key: String) -> String? {
  if key.hasPrefix("model.diffusion_model.") { return "unet" }
  if key.hasPrefix("first_stage_model.") { return "vae" }
  if key.hasPrefix("cond_stage_model.transformer.") { return "clip_l" }
  return nil
}

func near(_ a: Double?, _ b: Double, rel: Double = 1e-9) -> Bool {
  guard let a else { return false }
  return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)
}

@Suite("diff: tensors, blocks, recipes and runs")
struct DiffTests {
  @Test("a file against itself: nothing differs, rel_l2 0, cosine 1, max_abs 0 in every block")
  func identical() throws {
    let m = try CompareModels.sd1
    let r = try Diff.run(m[1], m[1], options: diffOptions())
    #expect(r.tensorsDiffering == [] && r.onlyInA == [] && r.onlyInB == [])
    #expect(r.tensorsCompared == 1131 && r.tensorsEqual == 1131)
    let blocks = try #require(r.blocks)
    #expect(blocks.count == 28, "BASE, IN00–IN11, M00, OUT00–OUT11, VAE, CLIP_L")
    for b in blocks + (r.components ?? []) {
      #expect(b.metrics == DiffMetrics(relL2: 0, cosine: 1, maxAbs: 0), "\(b.block)")
      #expect(b.differing == 0)
    }
    #expect(!Diff.differs(r))
  }

  @Test("hand-made values: rel_l2, cosine and max_abs per tensor and per block")
  func handValues() throws {
    let s = try Scratch()
    // w: a = (3, 4), b = (0, 4): ‖a−b‖ = 3, ‖a‖ = 5, a·b = 16, ‖b‖ = 4.
    // x.p, x.q in one block: a = (1, 0 | 0, 2), b = (1, 0 | 0, 0): Σa² = 5, Σb² = 1, Σab = 1, Σ(a−b)² = 4.
    try writeModel(
      s.file("a.safetensors"),
      [HandTensor("w", [2], [3, 4]), HandTensor("x.p", [2], [1, 0]), HandTensor("x.q", [2], [0, 2])])
    try writeModel(
      s.file("b.safetensors"),
      [HandTensor("w", [2], [0, 4]), HandTensor("x.p", [2], [1, 0]), HandTensor("x.q", [2], [0, 0])])
    let r = try Diff.run(s.file("a.safetensors"), s.file("b.safetensors"), options: diffOptions())
    #expect(r.tensorsDiffering == ["w", "x.q"])
    #expect(r.tensorsEqual == 1)
    let w = try #require(r.tensors?.first { $0.key == "w" })
    #expect(near(w.metrics.relL2, 0.6) && near(w.metrics.cosine, 0.8) && w.metrics.maxAbs == 3)
    let xq = try #require(r.tensors?.first { $0.key == "x.q" })
    #expect(xq.metrics.relL2 == 1 && xq.metrics.cosine == 0 && xq.metrics.maxAbs == 2, "b = 0: cosine 0 by definition")
    // Unknown architecture: every key is component "other", block OTHER.
    let block = try #require(r.blocks?.first)
    #expect(r.blocks?.count == 1 && block.block == "OTHER" && block.tensors == 3 && block.differing == 2)
    // Block sums: Σa² = 25 + 5 = 30, Σb² = 16 + 1 = 17, Σab = 16 + 1 = 17, Σ(a−b)² = 9 + 4 = 13.
    #expect(near(block.metrics.relL2, (13.0 / 30).squareRoot()))
    #expect(near(block.metrics.cosine, 17 / (30.0.squareRoot() * 17.0.squareRoot())))
    #expect(block.metrics.maxAbs == 3)
    #expect(Diff.differs(r))
  }

  @Test("keys only in one side, shape mismatches (not compared) and dtype mismatches (compared by value)")
  func keysShapesDtypes() throws {
    let s = try Scratch()
    try writeModel(
      s.file("a.safetensors"),
      [
        HandTensor("same", [2], [1, 2]), HandTensor("shape", [2, 2], [1, 2, 3, 4]), HandTensor("onlyA", [1], [1]),
        HandTensor("half", [2], [0.5, 0.25]),
      ])
    try writeModel(
      s.file("b.safetensors"),
      [
        HandTensor("same", [2], [1, 2]), HandTensor("shape", [4], [1, 2, 3, 4]), HandTensor("onlyB", [1], [1]),
        HandTensor("half", [2], [0.5, 0.25], dtype: .f16),
      ])
    let r = try Diff.run(s.file("a.safetensors"), s.file("b.safetensors"), options: diffOptions())
    #expect(r.onlyInA == ["onlyA"] && r.onlyInB == ["onlyB"])
    #expect(r.shapeMismatches == [KeyMismatch(key: "shape", a: "[2, 2]", b: "[4]")])
    #expect(r.dtypeMismatches == [KeyMismatch(key: "half", a: "F32", b: "F16")])
    #expect(r.tensorsCompared == 2 && r.tensorsDiffering == [], "f32 and f16 holding the same values are equal")
    #expect(Diff.differs(r), "keys only in one side are a difference")
    let text = Diff.text(r)
    #expect(text.contains("only in A: 1 (onlyA)") && text.contains("shape mismatch: shape [2, 2] vs [4]"))
  }

  @Test("NaN in a tensor: reported per side, metrics of its block are null")
  func nonFinite() throws {
    let s = try Scratch()
    try writeModel(s.file("a.safetensors"), [HandTensor("w", [2], [1, 2]), HandTensor("v", [1], [1])])
    try writeModel(s.file("b.safetensors"), [HandTensor("w", [2], [1, .nan]), HandTensor("v", [1], [1])])
    let r = try Diff.run(s.file("a.safetensors"), s.file("b.safetensors"), options: diffOptions())
    #expect(r.nonfiniteA == [] && r.nonfiniteB == ["w"])
    #expect(r.tensorsDiffering == ["w"])
    #expect(r.blocks?.first?.metrics.relL2 == nil)
    let json = try Format.json(r)
    #expect(json.contains("\"rel_l2\" : null"), "non-finite metrics are JSON null")
  }

  @Test("per-block aggregation on a synthesized SD1 matches sums computed here")
  func blocksSD1() throws {
    let m = try CompareModels.sd1
    let r = try Diff.run(m[0], m[2], options: diffOptions())
    let a = try readAll(m[0])
    let b = try readAll(m[2])
    var sums: [String: (aa: Double, bb: Double, ab: Double, dd: Double, mx: Double, n: Int)] = [:]
    for (k, x) in a {
      guard let block = expectedBlock(k), let y = b[k] else { continue }
      var s = sums[block] ?? (0, 0, 0, 0, 0, 0)
      for i in x.indices {
        s.aa += x[i] * x[i]
        s.bb += y[i] * y[i]
        s.ab += x[i] * y[i]
        s.dd += (x[i] - y[i]) * (x[i] - y[i])
        s.mx = max(s.mx, abs(x[i] - y[i]))
      }
      s.n += 1
      sums[block] = s
    }
    let blocks = try #require(r.blocks)
    #expect(blocks.map(\.block).prefix(3) == ["BASE", "IN00", "IN01"] && blocks.last?.block == "CLIP_L")
    for name in ["BASE", "IN00", "IN04", "IN11", "M00", "OUT00", "OUT11", "VAE"] {
      let row = try #require(blocks.first { $0.block == name }, "\(name)")
      let s = try #require(sums[name])
      #expect(row.tensors == s.n, "\(name)")
      #expect(near(row.metrics.relL2, (s.dd / s.aa).squareRoot(), rel: 1e-9), "\(name)")
      #expect(near(row.metrics.cosine, s.ab / (s.aa.squareRoot() * s.bb.squareRoot()), rel: 1e-12), "\(name)")
      #expect(row.metrics.maxAbs == s.mx, "\(name)")
    }
    #expect(r.components?.map(\.block) == ["unet", "clip_l", "vae"])
  }

  @Test("recipes: one parameter and one input differ; the rest is equal")
  func recipes() throws {
    let t = try TempWorkspace()
    let m = try CompareModels.sd1
    let a = try t.recipe("e", "a.yaml", soupRecipe(m[0], m[1]))
    let b = try t.recipe("e", "b.yaml", soupRecipe(m[0], m[2], weights: "[1, 3]"))
    let r = try Diff.run(a, b, options: diffOptions(workspace: t.workspace))
    let rd = try #require(r.recipe)
    #expect(!rd.equal)
    #expect(rd.changes.map(\.path) == ["steps.soup.weights", "inputs.b.path"])
    #expect(rd.changes[0].a == "[1, 1]" && rd.changes[0].b == "[1, 3]")
    #expect(rd.changes[0].text == "step soup: weights [1, 1] → [1, 3]")
    #expect(rd.changes[1].text == "input b: \(m[1]) → \(m[2])")
    #expect(r.blocks == nil, "recipe files carry no tensors")
    let same = try Diff.run(a, a, options: diffOptions(workspace: t.workspace))
    #expect(same.recipe?.equal == true && same.recipe?.changes == [])
    // A default written out is no change: average's weights default to 1 per model.
    let c = try t.recipe("e", "c.yaml", soupRecipe(m[0], m[1]).replacingOccurrences(of: "    weights: [1, 1]\n", with: ""))
    #expect(try Diff.run(a, c, options: diffOptions(workspace: t.workspace)).recipe?.equal == true)
  }

  @Test("runs: recipe difference plus tensors, equal ones known from hashes; hash level once an output is gone")
  func runs() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2]))
    try t.recipe("e", "soup3.yaml", soupRecipe(m[1], m[2], weights: "[1, 3]"))
    let results = try t.run("experiments/e")
    let x = try #require(results.first { $0.recipe == "soup" }?.outputSHA256)
    let y = try #require(results.first { $0.recipe == "soup3" }?.outputSHA256)
    let r = try Diff.run(String(x.prefix(10)), String(y.prefix(12)), options: diffOptions(workspace: t.workspace))
    #expect(r.a.kind == "run" && r.a.recipe == "e/soup" && r.b.recipe == "e/soup3")
    #expect(r.recipe?.changes.map(\.path) == ["steps.soup.weights"])
    #expect(r.identical == false && r.numeric == true)
    #expect(r.notes.contains { $0.contains("known equal from their SHA-256") }, "\(r.notes)")
    let differing = try #require(r.tensorsDiffering)
    #expect(!differing.isEmpty && r.tensorsEqual! >= 1)
    #expect(!differing.contains("cond_stage_model.transformer.text_model.embeddings.position_ids"))

    // Once one output is gone, the recorded hashes still tell which tensors differ.
    try FileManager.default.removeItem(atPath: t.root + "/artifacts/e/soup3.safetensors")
    let h = try Diff.run(String(x.prefix(10)), String(y.prefix(12)), options: diffOptions(workspace: t.workspace))
    #expect(h.numeric == false)
    #expect(h.tensorsDiffering == differing)
    #expect(h.blocks?.first { $0.differing > 0 }?.metrics == DiffMetrics(relL2: nil, cosine: nil, maxAbs: nil))
    #expect(h.notes.contains { $0.contains("is gone") })

    // A run against the file it wrote: identical tensors.
    let file = t.root + "/artifacts/e/soup.safetensors"
    let self_ = try Diff.run(String(x.prefix(10)), file, options: diffOptions(workspace: t.workspace))
    #expect(self_.tensorsDiffering == [] && self_.identical == true)
  }

  @Test("unresolvable arguments name themselves")
  func errors() throws {
    let m = try CompareModels.sd1
    #expect {
      try Diff.run(m[0], "/nonexistent/model.safetensors", options: diffOptions())
    } throws: { message($0).contains("/nonexistent/model.safetensors") && message($0).contains("not a run hash") }
    let t = try TempWorkspace()
    #expect {
      try Diff.run(m[0], "abcdef12", options: diffOptions(workspace: t.workspace))
    } throws: { message($0).contains("no recorded run matches `abcdef12`") }
    let recipe = try t.recipe("e", "a.yaml", soupRecipe(m[0], m[1]))
    #expect {
      try Diff.run(recipe, m[0], options: diffOptions(workspace: t.workspace))
    } throws: { message($0).contains("nothing to compare") }
  }

  @Test("results do not depend on the thread count (several pieces per tensor)")
  func threadsDiff() throws {
    let s = try Scratch()
    var g = SplitMix64(seed: 7)
    let n = 300_001
    let x = (0..<n).map { _ in g.unit() }
    let y = x.map { $0 + 0.01 * g.unit() }
    try writeModel(s.file("a.safetensors"), [HandTensor("big", [n], x), HandTensor("small", [3], [1, 2, 3])])
    try writeModel(s.file("b.safetensors"), [HandTensor("big", [n], y), HandTensor("small", [3], [1, 2, 4])])
    let reports = try [1, 2, 3].map {
      try Diff.run(s.file("a.safetensors"), s.file("b.safetensors"), options: diffOptions(threads: $0))
    }
    #expect(reports[0] == reports[1] && reports[1] == reports[2])
    // And the numbers are right.
    let big = try #require(reports[0].tensors?.first { $0.key == "big" })
    let xf = x.map { Double(Float($0)) }
    let yf = y.map { Double(Float($0)) }
    var dd = 0.0
    var aa = 0.0
    for i in 0..<n {
      dd += (xf[i] - yf[i]) * (xf[i] - yf[i])
      aa += xf[i] * xf[i]
    }
    #expect(near(big.metrics.relL2, (dd / aa).squareRoot(), rel: 1e-10))
  }

  @Test("the heatmap is well-formed SVG, one cell per block and metric, same bytes every time")
  func svg() throws {
    let m = try CompareModels.sd1
    let r = try Diff.run(m[0], m[1], options: diffOptions())
    let text = Diff.picture(r)
    #expect(text == Diff.picture(try Diff.run(m[0], m[1], options: diffOptions(threads: 1))))
    let shape = try SVGShape.parse(text)
    #expect(shape.root == "svg")
    let rows = (r.blocks?.count ?? 0) + (r.components?.count ?? 0) + 1
    #expect(shape.count["rect", default: 0] >= rows * 3)
    for b in r.blocks ?? [] { #expect(shape.texts.contains(b.block)) }
    #expect(shape.texts.contains("rel L2") && shape.texts.contains("1 − cosine"))
    let html = Diff.picture(r, html: true)
    #expect(html.hasPrefix("<!DOCTYPE html>") && html.contains("<svg"))
  }
}

@Suite("distance: Gram pass, MDS map, outliers")
struct DistanceTests {
  func inputs(_ paths: [String]) throws -> [DistanceInput] {
    try Distance.resolve(paths, withInputs: false, workspace: nil)
  }

  @Test("L2 and cosine per component match a direct computation")
  func matrix() throws {
    let m = try CompareModels.sd1
    let r = try Distance.run(try inputs(m))
    #expect(r.models.map(\.name) == ["sd1-00", "sd1-01", "sd1-02"])
    #expect(r.components.map(\.component) == ["all", "unet", "clip_l", "vae"])
    #expect(r.skippedKeys == ["cond_stage_model.transformer.text_model.embeddings.position_ids"])
    let data = try m.map(readAll)
    for comp in r.components {
      for i in 0..<3 {
        for j in 0..<3 {
          var dd = 0.0
          var ab = 0.0
          var aa = 0.0
          var bb = 0.0
          for (k, x) in data[i] {
            guard let c = expectedComponent(k), comp.component == "all" || comp.component == c else { continue }
            let y = data[j][k]!
            for e in x.indices {
              dd += (x[e] - y[e]) * (x[e] - y[e])
              ab += x[e] * y[e]
              aa += x[e] * x[e]
              bb += y[e] * y[e]
            }
          }
          if i == j {
            #expect(comp.l2[i][j] == 0 && comp.cosine[i][j] == 1)
          } else {
            #expect(near(comp.l2[i][j], dd.squareRoot(), rel: 1e-9), "\(comp.component) \(i) \(j)")
            #expect(near(comp.cosine[i][j], ab / (aa.squareRoot() * bb.squareRoot()), rel: 1e-12))
          }
          #expect(comp.l2[i][j] == comp.l2[j][i])
        }
      }
      // The map reproduces the distances (three points always fit in a plane).
      for i in 0..<3 {
        for j in 0..<3 {
          let p = try #require(comp.map[i])
          let q = try #require(comp.map[j])
          let d = ((p[0] - q[0]) * (p[0] - q[0]) + (p[1] - q[1]) * (p[1] - q[1])).squareRoot()
          #expect(abs(d - comp.l2[i][j]!) <= 1e-9 * comp.l2[0][1]!)
        }
      }
    }
    #expect(r.outliers.isEmpty)
  }

  @Test("results and picture do not depend on the thread count")
  func threads() throws {
    let m = try CompareModels.sd1
    var reports: [DistanceReport] = []
    for t in [1, 2, 3] {
      var o = Distance.Options()
      o.threads = t
      reports.append(try Distance.run(try inputs(m), options: o))
    }
    #expect(reports[0] == reports[1] && reports[1] == reports[2])
    #expect(Distance.picture(reports[0]) == Distance.picture(reports[2]))
  }

  @Test("classical MDS of four points on a square gives back the square")
  func mdsSquare() {
    let pts: [(Double, Double)] = [(0, 0), (3, 0), (3, 3), (0, 3)]
    let d = pts.map { p in pts.map { q in ((p.0 - q.0) * (p.0 - q.0) + (p.1 - q.1) * (p.1 - q.1)).squareRoot() } }
    let (map, explained) = ClassicalMDS.embed(d)
    #expect(explained.map { abs($0 - 1) < 1e-12 } == true)
    for i in 0..<4 {
      for j in 0..<4 {
        let e = ((map[i][0] - map[j][0]) * (map[i][0] - map[j][0]) + (map[i][1] - map[j][1]) * (map[i][1] - map[j][1]))
          .squareRoot()
        #expect(abs(e - d[i][j]) < 1e-12)
      }
    }
    // Centred at the origin, and the same bytes when repeated.
    #expect(abs(map.map { $0[0] }.reduce(0, +)) < 1e-12 && abs(map.map { $0[1] }.reduce(0, +)) < 1e-12)
    #expect(ClassicalMDS.embed(d).points == map)
  }

  @Test("Jacobi eigenvalues of a known matrix, sorted, with the sign convention")
  func eigen() {
    // [[2, 1], [1, 2]]: eigenvalues 3 (1, 1)/√2 and 1 (1, −1)/√2.
    let (values, vectors) = SymmetricEigen.decompose([2, 1, 1, 2], n: 2)
    #expect(abs(values[0] - 3) < 1e-14 && abs(values[1] - 1) < 1e-14)
    #expect(abs(vectors[0][0] - 0.5.squareRoot()) < 1e-14 && abs(vectors[0][1] - 0.5.squareRoot()) < 1e-14)
    #expect(vectors[1][0] > 0 && abs(vectors[1][0] + vectors[1][1]) < 1e-14)
  }

  @Test("a model far from the cluster is an outlier; one with NaN weights is flagged and not placed")
  func outliers() throws {
    let line: [Double] = [0, 0.1, 0.2, 0.15, 0.05, 10]
    let d = line.map { a in line.map { abs(a - $0) } }
    let o = Outliers.byMedoid(d)
    #expect(o.flagged == [5])
    #expect(Outliers.byMedoid(Array(d.prefix(3)).map { Array($0.prefix(3)) }).flagged == [], "fewer than 4 models: no fence")

    let s = try Scratch()
    for (i, v) in [1.0, 1.1, 0.9, 1.05, 40].enumerated() {
      try writeModel(s.file("m\(i).safetensors"), [HandTensor("w", [3], [v, v, 1])])
    }
    try writeModel(s.file("bad.safetensors"), [HandTensor("w", [3], [1, .nan, 1])])
    let paths = (0..<5).map { s.file("m\($0).safetensors") } + [s.file("bad.safetensors")]
    let r = try Distance.run(try inputs(paths))
    let all = try #require(r.components.first)
    #expect(all.map[5] == nil && all.map[0] != nil)
    #expect(r.models[5].nonfiniteTensors == ["w"])
    #expect(r.outliers.contains { $0.model == "bad" && $0.component == "weights" })
    #expect(r.outliers.contains { $0.model == "m4" && $0.component == "all" })
    #expect(!r.outliers.contains { $0.model == "m0" })
    let json = try Format.json(r)
    #expect(json.contains("\"map\" : [") && json.contains("null"))
    let shape = try SVGShape.parse(Distance.picture(r))
    #expect(shape.texts.contains { $0.hasPrefix("not placed: bad") })
    #expect(shape.texts.contains("m4 (outlier)"))
  }

  @Test("the map is well-formed SVG with a labelled point per model and a scale bar")
  func svg() throws {
    let m = try CompareModels.sd1
    let r = try Distance.run(try inputs(m))
    let shape = try SVGShape.parse(Distance.picture(r))
    #expect(shape.root == "svg")
    #expect(shape.count["circle", default: 0] >= 3 * r.components.count)
    for name in ["sd1-00", "sd1-01", "sd1-02", "all", "unet", "vae"] {
      #expect(shape.texts.contains { $0 == name || $0.hasPrefix(name + " ") }, "\(name)")
    }
    #expect(shape.texts.contains { $0.hasSuffix("(L2)") })
  }

  @Test("fewer than two models, or a missing file, is an error naming it")
  func errors() throws {
    let m = try CompareModels.sd1
    #expect { try Distance.run(try inputs([m[0]])) } throws: { message($0).contains("at least two models") }
    #expect { try inputs([m[0], "/no/such.safetensors"]) } throws: { message($0).contains("/no/such.safetensors") }
  }
}

@Suite("report: distance map and per-block diff of every run")
struct ReportCompareTests {
  @Test("after a run, REPORT.md shows the map and the per-block diff against the reference input")
  func report() throws {
    let t = try TempWorkspace()
    let m = try t.copyModels()
    try t.recipe("e", "soup.yaml", soupRecipe(m[1], m[2], weights: "[1, 3]"))
    let run = try #require(try t.run("experiments/e").first)
    let dir = t.root + "/artifacts/e"
    let report = try String(contentsOfFile: dir + "/REPORT.md", encoding: .utf8)
    #expect(report.contains("![distance map of soup and its inputs](soup.map.svg)"))
    #expect(report.contains("![per-block difference of soup from a](soup.diff.svg)"))
    #expect(report.contains("| a | reference |") && report.contains("| b | input |"))
    for f in ["soup.map.svg", "soup.diff.svg", "soup.compare.json"] {
      #expect(FileManager.default.fileExists(atPath: dir + "/" + f), "\(f)")
    }
    #expect(try SVGShape.parse(String(contentsOfFile: dir + "/soup.map.svg", encoding: .utf8)).root == "svg")
    let stored = try JSONDecoder().decode(
      RunComparison.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/soup.compare.json")))
    #expect(stored.outputSHA256 == run.outputSHA256 && stored.reference == "a")
    // The stored per-block numbers are those of `mixlab diff` between the reference and the output.
    let d = try Diff.run(m[1], dir + "/soup.safetensors", options: diffOptions(workspace: t.workspace))
    for (x, y) in zip(stored.blocks, try #require(d.blocks)) {
      // The report's pass leaves integer tensors (position ids) out; diff counts them.
      #expect(x.block == y.block)
      if x.block != "CLIP_L" { #expect(x.tensors == y.tensors && x.differing == y.differing, "\(x.block)") }
      #expect(near(x.metrics.relL2, y.metrics.relL2 ?? -1, rel: 1e-6), "\(x.block)")
      #expect(x.metrics.maxAbs == y.metrics.maxAbs)
    }
    // A report regenerated later draws the same pictures from the stored numbers.
    let before = try Data(contentsOf: URL(fileURLWithPath: dir + "/soup.map.svg"))
    try Report.write(experiment: try Experiment.load(t.root + "/experiments/e"), workspace: t.workspace)
    #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/soup.map.svg")) == before)
  }
}

/// The structure of an SVG document as XMLParser sees it.
struct SVGShape {
  var root = ""
  var count: [String: Int] = [:]
  var texts: [String] = []

  static func parse(_ text: String) throws -> SVGShape {
    final class Delegate: NSObject, XMLParserDelegate {
      var shape = SVGShape()
      var inText = false
      var current = ""
      func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
      ) {
        if shape.root.isEmpty { shape.root = name }
        shape.count[name, default: 0] += 1
        if name == "text" {
          inText = true
          current = ""
        }
      }
      func parser(_ parser: XMLParser, foundCharacters string: String) { if inText { current += string } }
      func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text" {
          shape.texts.append(current)
          inText = false
        }
      }
    }
    let parser = XMLParser(data: Data(text.utf8))
    let d = Delegate()
    parser.delegate = d
    guard parser.parse() else {
      throw MixLabError.message("not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?")")
    }
    return d.shape
  }
}

/// SplitMix64 for test data.
struct SplitMix64 {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  /// Uniform in [−1, 1).
  mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 52) - 1 }
}
