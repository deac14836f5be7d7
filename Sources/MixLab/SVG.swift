import Foundation

/// Numbers as text with IEEE arithmetic only (no locale, no printf), so pictures and tables
/// are the same bytes everywhere.
enum NumberText {
  /// `x` rounded to `decimals` places: `fixed(3.14159, 2)` = "3.14"; never "-0".
  static func fixed(_ x: Double, _ decimals: Int) -> String {
    guard x.isFinite else { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let v = (abs(x) * scale).rounded()
    guard v < 9e15 else { return scientific(x, digits: 4) }
    let units = Int64(v)
    let whole = units / Int64(scale)
    let frac = units % Int64(scale)
    var s = (x < 0 && units != 0 ? "-" : "") + String(whole)
    if decimals > 0 {
      let f = String(frac)
      s += "." + String(repeating: "0", count: decimals - f.count) + f
    }
    return s
  }

  /// Four significant digits: fixed notation from 0.001 to 99999, else `1.234e-05`; "n/a"
  /// for nil.
  static func short(_ x: Double?) -> String {
    guard let x else { return "n/a" }
    guard x.isFinite else { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
    if x == 0 { return "0" }
    let (_, e) = decompose(abs(x))
    if e >= -3 && e < 5 { return trimmed(fixed(x, max(0, 3 - e))) }
    return scientific(x, digits: 4)
  }

  /// A cosine: "1" when exactly 1, else six decimals (0.999987), or scientific `1 − 2.1e-09`
  /// style when closer to 1 than six decimals show.
  static func cosine(_ x: Double?) -> String {
    guard let x else { return "n/a" }
    if x == 1 { return "1" }
    if x > 0.9999995 { return "1-" + short(1 - x) }
    return fixed(x, 6)
  }

  /// Mantissa in [1, 10) and decimal exponent, by exact scaling steps.
  static func decompose(_ a: Double) -> (Double, Int) {
    var m = a
    var e = 0
    while m >= 10 {
      m /= 10
      e += 1
    }
    while m < 1 {
      m *= 10
      e -= 1
    }
    return (m, e)
  }

  static func scientific(_ x: Double, digits: Int) -> String {
    var (m, e) = decompose(abs(x))
    var text = fixed(m, digits - 1)
    if text.hasPrefix("10") {
      m /= 10
      e += 1
      text = fixed(m, digits - 1)
    }
    let exp = String(abs(e))
    return (x < 0 ? "-" : "") + trimmed(text) + "e" + (e < 0 ? "-" : "+") + (exp.count < 2 ? "0" : "") + exp
  }

  /// Drops trailing zeros of a decimal fraction ("1.500" → "1.5", "2.000" → "2").
  static func trimmed(_ s: String) -> String {
    guard s.contains(".") else { return s }
    var t = s
    while t.hasSuffix("0") { t.removeLast() }
    if t.hasSuffix(".") { t.removeLast() }
    return t
  }
}

/// A minimal SVG writer: elements appended in order, coordinates with two decimals, text
/// escaped; the same calls give the same bytes.
struct SVGDocument {
  var width: Double
  var height: Double
  private var body: [String] = []

  init(width: Double, height: Double) {
    self.width = width
    self.height = height
  }

  static func n(_ x: Double) -> String { NumberText.trimmed(NumberText.fixed(x, 2)) }

  static func escape(_ s: String) -> String {
    var out = ""
    for c in s {
      switch c {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&apos;"
      default: out.append(c)
      }
    }
    return out
  }

  mutating func raw(_ s: String) { body.append(s) }

  mutating func rect(
    x: Double, y: Double, width w: Double, height h: Double, fill: String, stroke: String? = nil, title: String? = nil
  ) {
    let n = SVGDocument.n
    var s = "<rect x=\"\(n(x))\" y=\"\(n(y))\" width=\"\(n(w))\" height=\"\(n(h))\" fill=\"\(fill)\""
    if let stroke { s += " stroke=\"\(stroke)\"" }
    if let title {
      s += "><title>\(SVGDocument.escape(title))</title></rect>"
    } else {
      s += "/>"
    }
    body.append(s)
  }

  mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String, width w: Double = 1) {
    let n = SVGDocument.n
    body.append(
      "<line x1=\"\(n(x1))\" y1=\"\(n(y1))\" x2=\"\(n(x2))\" y2=\"\(n(y2))\" stroke=\"\(stroke)\" stroke-width=\"\(n(w))\"/>")
  }

  mutating func circle(cx: Double, cy: Double, r: Double, fill: String, stroke: String? = nil, title: String? = nil) {
    let n = SVGDocument.n
    var s = "<circle cx=\"\(n(cx))\" cy=\"\(n(cy))\" r=\"\(n(r))\" fill=\"\(fill)\""
    if let stroke { s += " stroke=\"\(stroke)\" stroke-width=\"1.5\"" }
    s += title.map { "><title>\(SVGDocument.escape($0))</title></circle>" } ?? "/>"
    body.append(s)
  }

  mutating func polygon(_ points: [(Double, Double)], fill: String, stroke: String? = nil, title: String? = nil) {
    let n = SVGDocument.n
    var s = "<polygon points=\"\(points.map { "\(n($0.0)),\(n($0.1))" }.joined(separator: " "))\" fill=\"\(fill)\""
    if let stroke { s += " stroke=\"\(stroke)\" stroke-width=\"1.5\"" }
    s += title.map { "><title>\(SVGDocument.escape($0))</title></polygon>" } ?? "/>"
    body.append(s)
  }

  enum Anchor: String {
    case start, middle, end
  }

  mutating func text(
    _ t: String, x: Double, y: Double, size: Double = 12, anchor: Anchor = .start, bold: Bool = false,
    fill: String = "#222222"
  ) {
    let n = SVGDocument.n
    var s = "<text x=\"\(n(x))\" y=\"\(n(y))\" font-size=\"\(n(size))\""
    if anchor != .start { s += " text-anchor=\"\(anchor.rawValue)\"" }
    if bold { s += " font-weight=\"bold\"" }
    if fill != "#222222" { s += " fill=\"\(fill)\"" }
    s += ">\(SVGDocument.escape(t))</text>"
    body.append(s)
  }

  /// Approximate width of `t` at `size` (for layout only).
  static func textWidth(_ t: String, size: Double) -> Double { Double(t.count) * size * 0.6 }

  func render() -> String {
    let n = SVGDocument.n
    var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    out +=
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(n(width))\" height=\"\(n(height))\" viewBox=\"0 0 \(n(width)) \(n(height))\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
    out += "<rect x=\"0\" y=\"0\" width=\"\(n(width))\" height=\"\(n(height))\" fill=\"#ffffff\"/>\n"
    for e in body { out += e + "\n" }
    out += "</svg>\n"
    return out
  }

  /// The picture inside a minimal HTML page (for `--svg report.html`).
  func html(title: String) -> String {
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>\(SVGDocument.escape(title))</title></head><body>\n"
      + render().replacingOccurrences(of: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", with: "") + "</body></html>\n"
  }
}

/// A sequential colour ramp (ColorBrewer YlOrRd): light yellow for 0, dark red for 1.
enum ColorScale {
  static let stops: [(Double, Double, Double)] = [
    (255, 255, 204), (255, 237, 160), (254, 217, 118), (254, 178, 76), (253, 141, 60), (252, 78, 42), (227, 26, 28),
    (189, 0, 38), (128, 0, 38),
  ]

  static func color(_ t: Double) -> String {
    let x = t.isFinite ? min(1, max(0, t)) : 0
    let pos = x * Double(stops.count - 1)
    let i = min(stops.count - 2, Int(pos))
    let f = pos - Double(i)
    let a = stops[i]
    let b = stops[i + 1]
    return hex(a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f, a.2 + (b.2 - a.2) * f)
  }

  /// Black or white text, whichever reads better on the ramp at `t`.
  static func textColor(_ t: Double) -> String { t > 0.55 ? "#ffffff" : "#222222" }

  static func hex(_ r: Double, _ g: Double, _ b: Double) -> String {
    let digits = Array("0123456789abcdef")
    var s = "#"
    for v in [r, g, b] {
      let c = Int(min(255, max(0, v.rounded())))
      s.append(digits[c / 16])
      s.append(digits[c % 16])
    }
    return s
  }
}

/// The per-block heatmap of a diff: one row per block (then per component and overall),
/// one column per metric, each column coloured from 0 to its own largest value.
enum DiffSVG {
  static func render(_ r: DiffReport) -> SVGDocument {
    let blocks = r.blocks ?? []
    let comps = r.components ?? []
    let rows: [BlockDiff?] = blocks + (comps.isEmpty ? [] : [nil] + comps + (r.overall.map { [$0] } ?? []))
    let rowH = 20.0
    let labelW = 110.0
    let cellW = 118.0
    let left = 20.0
    let top = 118.0
    let columns = ["rel L2", "1 − cosine", "max |a − b|"]
    func value(_ b: BlockDiff, _ c: Int) -> Double? {
      switch c {
      case 0: return b.metrics.relL2
      case 1: return b.metrics.cosine.map { max(0, 1 - $0) }
      default: return b.metrics.maxAbs
      }
    }
    var maxima = [0.0, 0.0, 0.0]
    for b in blocks + comps {
      for c in 0..<3 { if let v = value(b, c), v.isFinite { maxima[c] = max(maxima[c], v) } }
    }
    let width = left + labelW + cellW * 3 + 110 + 20
    let height = top + Double(rows.count) * rowH + 92
    var doc = SVGDocument(width: width, height: height)
    doc.text("mixlab diff — per-block difference", x: left, y: 26, size: 16, bold: true)
    doc.text("A: \(r.a.label)", x: left, y: 46, size: 12)
    doc.text("B: \(r.b.label)", x: left, y: 62, size: 12)
    let differing = r.tensorsDiffering?.count ?? r.overall?.differing ?? 0
    var summary = "\(r.tensorsCompared ?? 0) tensors compared, \(differing) differ"
    if let a = r.onlyInA, !a.isEmpty { summary += ", \(a.count) only in A" }
    if let b = r.onlyInB, !b.isEmpty { summary += ", \(b.count) only in B" }
    if let s = r.shapeMismatches, !s.isEmpty { summary += ", \(s.count) shape mismatches" }
    doc.text(summary, x: left, y: 78, size: 12, fill: "#555555")
    // Header: metric name and the value its darkest colour stands for.
    doc.text("block", x: left, y: top - 10, size: 12, bold: true)
    for c in 0..<3 {
      let x = left + labelW + Double(c) * cellW + cellW / 2
      doc.text(columns[c], x: x, y: top - 22, size: 12, anchor: .middle, bold: true)
      doc.text("max \(NumberText.short(maxima[c]))", x: x, y: top - 8, size: 10, anchor: .middle, fill: "#555555")
    }
    doc.text("differing", x: left + labelW + 3 * cellW + 55, y: top - 10, size: 12, anchor: .middle, bold: true)
    var y = top
    for row in rows {
      guard let b = row else {
        y += rowH / 2
        doc.line(x1: left, y1: y - rowH / 4, x2: left + labelW + 3 * cellW + 110, y2: y - rowH / 4, stroke: "#999999")
        continue
      }
      doc.text(b.block, x: left + 4, y: y + 14, size: 12, bold: b.block == "all" || comps.contains(b))
      for c in 0..<3 {
        let x = left + labelW + Double(c) * cellW
        let tip = "\(b.block) \(columns[c]): \(NumberText.short(value(b, c)))"
        if let v = value(b, c), v.isFinite {
          let t = maxima[c] > 0 ? v / maxima[c] : 0
          doc.rect(x: x, y: y, width: cellW - 2, height: rowH - 2, fill: ColorScale.color(t), title: tip)
          let shown = c == 1 ? NumberText.short(v) : NumberText.short(v)
          doc.text(shown, x: x + cellW / 2 - 1, y: y + 14, size: 11, anchor: .middle, fill: ColorScale.textColor(t))
        } else {
          doc.rect(x: x, y: y, width: cellW - 2, height: rowH - 2, fill: "#d9d9d9", title: tip)
          let shown = b.differing > 0 ? (r.numeric == false ? "differs" : "n/a") : "n/a"
          doc.text(shown, x: x + cellW / 2 - 1, y: y + 14, size: 11, anchor: .middle, fill: "#555555")
        }
      }
      doc.text(
        "\(b.differing)/\(b.tensors)", x: left + labelW + 3 * cellW + 55, y: y + 14, size: 11, anchor: .middle,
        fill: b.differing > 0 ? "#222222" : "#888888")
      y += rowH
    }
    // Legend: the ramp, and what grey means.
    y += 16
    let rampW = 240.0
    let steps = 24
    for i in 0..<steps {
      doc.rect(
        x: left + Double(i) * rampW / Double(steps), y: y, width: rampW / Double(steps) + 0.5, height: 12,
        fill: ColorScale.color(Double(i) / Double(steps - 1)))
    }
    doc.text("0", x: left, y: y + 24, size: 10)
    doc.text("column max", x: left + rampW, y: y + 24, size: 10, anchor: .end)
    doc.text(
      "each column is coloured from 0 to its own maximum; grey: not computed", x: left, y: y + 42, size: 10, fill: "#555555")
    doc.text(
      "rel L2 = ‖a − b‖ / ‖a‖ over the block; 1 − cosine; max |a − b| = largest element difference", x: left, y: y + 56,
      size: 10, fill: "#555555")
    return doc
  }
}

/// The distance map: one panel per component (all, UNet, text encoders, VAE…), each a 2-D
/// classical MDS of the pairwise L2 distances, in L2 units with a scale bar, labels placed to
/// avoid each other, outliers in red.
enum DistanceSVG {
  static let panelW = 430.0
  static let panelH = 360.0

  static func render(_ r: DistanceReport, title: String = "mixlab distance") -> SVGDocument {
    let panels = r.components
    let cols = panels.count > 1 ? 2 : 1
    let rowsCount = (panels.count + cols - 1) / cols
    let top = 70.0
    let legendH = 70.0 + Double(r.models.filter { !$0.nonfiniteTensors.isEmpty }.count) * 14
    let width = 20 + Double(cols) * (panelW + 20)
    let height = top + Double(rowsCount) * (panelH + 20) + legendH
    var doc = SVGDocument(width: width, height: height)
    doc.text(title, x: 20, y: 28, size: 16, bold: true)
    doc.text(
      "\(r.models.count) models (\(r.architecture)), \(r.tensorsCompared) tensors; classical MDS of pairwise L2 distances, axes in L2 units",
      x: 20, y: 48, size: 12, fill: "#555555")
    for (p, comp) in panels.enumerated() {
      let x0 = 20 + Double(p % cols) * (panelW + 20)
      let y0 = top + Double(p / cols) * (panelH + 20)
      panel(&doc, comp, models: r.models, x0: x0, y0: y0)
    }
    // Legend.
    var y = top + Double(rowsCount) * (panelH + 20) + 8
    var x = 24.0
    let kinds: [(String, String)] = [
      ("output", "mix (run output)"), ("reference", "reference input"), ("input", "input"), ("file", "model"),
      ("outlier", "outlier (far from the medoid: beyond Q3 + 1.5·IQR)"),
    ]
    let present = Set(r.models.map { $0.role ?? "file" })
    for (kind, text) in kinds where present.contains(kind) || kind == "outlier" {
      marker(&doc, kind: kind, outlier: kind == "outlier", x: x + 6, y: y + 6, title: text)
      doc.text(text, x: x + 18, y: y + 10, size: 11)
      x += 30 + SVGDocument.textWidth(text, size: 11)
    }
    doc.circle(cx: x + 6, cy: y + 6, r: 9, fill: "none", stroke: "#aaaaaa", title: "medoid")
    doc.text("medoid (smallest summed distance)", x: x + 20, y: y + 10, size: 11)
    y += 28
    for m in r.models where !m.nonfiniteTensors.isEmpty {
      doc.text(
        "not placed: \(m.name) holds NaN/Inf in \(m.nonfiniteTensors.count) tensors (\(m.nonfiniteTensors[0]))", x: 24, y: y,
        size: 11, fill: "#b00020")
      y += 14
    }
    return doc
  }

  static func marker(_ doc: inout SVGDocument, kind: String, outlier: Bool, x: Double, y: Double, title: String) {
    let fill = outlier ? "#d7301f" : (kind == "output" ? "#08519c" : kind == "reference" ? "#222222" : "#6baed6")
    switch kind {
    case "output":
      // A diamond: the mix stands out among its parents.
      doc.polygon([(x, y - 8), (x + 8, y), (x, y + 8), (x - 8, y)], fill: fill, stroke: "#ffffff", title: title)
    case "reference":
      doc.rect(x: x - 6, y: y - 6, width: 12, height: 12, fill: fill, stroke: "#ffffff", title: title)
    default:
      doc.circle(cx: x, cy: y, r: 6, fill: fill, stroke: "#ffffff", title: title)
    }
  }

  static func panel(_ doc: inout SVGDocument, _ comp: ComponentDistance, models: [DistanceModel], x0: Double, y0: Double) {
    doc.rect(x: x0, y: y0, width: panelW, height: panelH, fill: "#fbfbfb", stroke: "#cccccc")
    var head = comp.component
    if let e = comp.explained { head += "  (map keeps \(NumberText.fixed(e * 100, 1))% of the variance)" }
    doc.text(head, x: x0 + 10, y: y0 + 20, size: 13, bold: true)
    let placed = comp.map.indices.filter { comp.map[$0] != nil }
    let plotX = x0 + 30
    let plotY = y0 + 36
    let plotW = panelW - 60
    let plotH = panelH - 80
    guard !placed.isEmpty else {
      doc.text("no model could be placed", x: x0 + panelW / 2, y: y0 + panelH / 2, size: 12, anchor: .middle)
      return
    }
    let xs = placed.map { comp.map[$0]![0] }
    let ys = placed.map { comp.map[$0]![1] }
    let minX = xs.min()!
    let maxX = xs.max()!
    let minY = ys.min()!
    let maxY = ys.max()!
    let span = max(maxX - minX, maxY - minY)
    // One scale for both axes, so distances on paper are proportional to L2.
    let scale = span > 0 ? min(plotW / max(maxX - minX, 1e-300), plotH / max(maxY - minY, 1e-300)) : 0
    let s = span > 0 ? scale : 0
    let cx = (minX + maxX) / 2
    let cy = (minY + maxY) / 2
    func px(_ i: Int) -> (Double, Double) {
      let p = comp.map[i]!
      return (plotX + plotW / 2 + (p[0] - cx) * s, plotY + plotH / 2 - (p[1] - cy) * s)
    }
    // Scale bar: a round L2 length about a quarter of the plot width.
    if s > 0 {
      let target = plotW / 4 / s
      let bar = niceLength(target)
      let bx = x0 + 14
      let by = y0 + panelH - 16
      doc.line(x1: bx, y1: by, x2: bx + bar * s, y2: by, stroke: "#444444", width: 2)
      doc.line(x1: bx, y1: by - 4, x2: bx, y2: by + 4, stroke: "#444444")
      doc.line(x1: bx + bar * s, y1: by - 4, x2: bx + bar * s, y2: by + 4, stroke: "#444444")
      doc.text("\(NumberText.short(bar)) (L2)", x: bx + bar * s + 6, y: by + 4, size: 10, fill: "#444444")
    } else {
      doc.text("all placed models coincide (distance 0)", x: x0 + 14, y: y0 + panelH - 12, size: 10, fill: "#444444")
    }
    // A run's output is joined to each of its inputs: where the mix sits among its parents.
    if let out = placed.first(where: { models[$0].role == "output" }) {
      let (ox, oy) = px(out)
      for i in placed where models[i].role == "input" || models[i].role == "reference" {
        let (x, y) = px(i)
        doc.line(x1: ox, y1: oy, x2: x, y2: y, stroke: "#c6dbef", width: 1.5)
      }
    }
    if let m = comp.medoid, comp.map[m] != nil {
      let (mx, my) = px(m)
      doc.circle(cx: mx, cy: my, r: 11, fill: "none", stroke: "#aaaaaa", title: "medoid: \(models[m].name)")
    }
    let outliers = Set(comp.outliers)
    // Markers first, then labels placed greedily (8 positions around each point) so that
    // labels overlap neither each other nor markers where avoidable.
    var boxes: [(Double, Double, Double, Double)] = []
    for i in placed {
      let (x, y) = px(i)
      boxes.append((x - 7, y - 7, x + 7, y + 7))
    }
    for i in placed {
      let (x, y) = px(i)
      let m = models[i]
      let tip = "\(m.name): (\(NumberText.short(comp.map[i]![0])), \(NumberText.short(comp.map[i]![1])))"
      marker(&doc, kind: m.role ?? "file", outlier: outliers.contains(m.name), x: x, y: y, title: tip)
    }
    for i in placed {
      let (x, y) = px(i)
      let m = models[i]
      let label = outliers.contains(m.name) ? "\(m.name) (outlier)" : m.name
      let w = SVGDocument.textWidth(label, size: 11)
      let h = 11.0
      let candidates: [(Double, Double, SVGDocument.Anchor)] = [
        (x + 10, y + 4, .start), (x - 10, y + 4, .end), (x, y - 11, .middle), (x, y + 19, .middle),
        (x + 9, y - 8, .start), (x - 9, y - 8, .end), (x + 9, y + 16, .start), (x - 9, y + 16, .end),
      ]
      func box(_ c: (Double, Double, SVGDocument.Anchor)) -> (Double, Double, Double, Double) {
        let lx = c.2 == .start ? c.0 : c.2 == .end ? c.0 - w : c.0 - w / 2
        return (lx, c.1 - h + 2, lx + w, c.1 + 2)
      }
      func overlap(_ a: (Double, Double, Double, Double)) -> Double {
        var total = 0.0
        for b in boxes {
          let ox = max(0, min(a.2, b.2) - max(a.0, b.0))
          let oy = max(0, min(a.3, b.3) - max(a.1, b.1))
          total += ox * oy
        }
        // Leaving the panel counts as overlap too.
        let outside =
          max(0, x0 - a.0) + max(0, a.2 - (x0 + panelW)) + max(0, y0 + 24 - a.1) + max(0, a.3 - (y0 + panelH - 24))
        return total + outside * h
      }
      var best = candidates[0]
      var bestCost = Double.infinity
      for c in candidates {
        let cost = overlap(box(c))
        if cost < bestCost {
          bestCost = cost
          best = c
        }
        if cost == 0 { break }
      }
      boxes.append(box(best))
      doc.text(
        label, x: best.0, y: best.1, size: 11, anchor: best.2, fill: outliers.contains(m.name) ? "#b00020" : "#222222")
    }
  }

  /// 1, 2 or 5 × 10ᵏ nearest below `x`.
  static func niceLength(_ x: Double) -> Double {
    guard x > 0, x.isFinite else { return 1 }
    var (m, e) = NumberText.decompose(x)
    m = m >= 5 ? 5 : m >= 2 ? 2 : 1
    var p = 1.0
    if e >= 0 { for _ in 0..<e { p *= 10 } } else { for _ in 0..<(-e) { p /= 10 } }
    return m * p
  }
}

extension Diff {
  /// The per-block heatmap as SVG text, or an HTML page holding it.
  public static func picture(_ r: DiffReport, html: Bool = false) -> String {
    let doc = DiffSVG.render(r)
    return html ? doc.html(title: "mixlab diff") : doc.render()
  }
}

extension Distance {
  /// The distance map as SVG text, or an HTML page holding it.
  public static func picture(_ r: DistanceReport, html: Bool = false) -> String {
    let doc = DistanceSVG.render(r)
    return html ? doc.html(title: "mixlab distance") : doc.render()
  }
}
