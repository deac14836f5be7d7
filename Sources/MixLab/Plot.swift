import Foundation

/// A small self-contained SVG scatter/line plot (deterministic bytes: fixed formatting, no
/// timestamps), for sweep results.
public struct ScatterPlot: Sendable {
  public var title: String
  public var xLabel: String
  public var yLabel: String
  public var points: [(x: Double, y: Double)]
  /// Index of a point to highlight (the best one).
  public var highlight: Int?
  /// Draw a line through the points in x order (when y is a function of x alone).
  public var connect: Bool

  public init(
    title: String, xLabel: String, yLabel: String, points: [(x: Double, y: Double)], highlight: Int?, connect: Bool = true
  ) {
    self.title = title
    self.xLabel = xLabel
    self.yLabel = yLabel
    self.points = points
    self.highlight = highlight
    self.connect = connect
  }

  static func f(_ v: Double) -> String { String(format: "%.1f", v) }
  static func label(_ v: Double) -> String { String(format: "%.4g", v) }
  static func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
  }

  public func svg() -> String {
    let w = 640.0
    let h = 400.0
    let left = 70.0
    let right = 20.0
    let top = 40.0
    let bottom = 50.0
    let xs = points.map(\.x)
    let ys = points.map(\.y)
    var (x0, x1) = (xs.min() ?? 0, xs.max() ?? 1)
    var (y0, y1) = (ys.min() ?? 0, ys.max() ?? 1)
    if x1 - x0 < 1e-12 { (x0, x1) = (x0 - 0.5, x1 + 0.5) }
    if y1 - y0 < 1e-12 { (y0, y1) = (y0 - 0.5, y1 + 0.5) }
    let pad = (y1 - y0) * 0.05
    y0 -= pad
    y1 += pad
    func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (w - left - right) }
    func py(_ y: Double) -> Double { h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom) }
    var s = """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" viewBox="0 0 \(Int(w)) \(Int(h))" font-family="sans-serif" font-size="12">
      <rect width="100%" height="100%" fill="white"/>
      <text x="\(Self.f(w / 2))" y="22" text-anchor="middle" font-size="15">\(Self.escape(title))</text>

      """
    // Axes and ticks.
    s +=
      "<line x1=\"\(Self.f(left))\" y1=\"\(Self.f(h - bottom))\" x2=\"\(Self.f(w - right))\" y2=\"\(Self.f(h - bottom))\" stroke=\"black\"/>\n"
    s +=
      "<line x1=\"\(Self.f(left))\" y1=\"\(Self.f(top))\" x2=\"\(Self.f(left))\" y2=\"\(Self.f(h - bottom))\" stroke=\"black\"/>\n"
    for i in 0...4 {
      let xv = x0 + (x1 - x0) * Double(i) / 4
      let yv = y0 + (y1 - y0) * Double(i) / 4
      s += "<text x=\"\(Self.f(px(xv)))\" y=\"\(Self.f(h - bottom + 16))\" text-anchor=\"middle\">\(Self.label(xv))</text>\n"
      s += "<text x=\"\(Self.f(left - 6))\" y=\"\(Self.f(py(yv) + 4))\" text-anchor=\"end\">\(Self.label(yv))</text>\n"
      s +=
        "<line x1=\"\(Self.f(left))\" y1=\"\(Self.f(py(yv)))\" x2=\"\(Self.f(w - right))\" y2=\"\(Self.f(py(yv)))\" stroke=\"#ddd\"/>\n"
    }
    s +=
      "<text x=\"\(Self.f((left + w - right) / 2))\" y=\"\(Self.f(h - 12))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
    s +=
      "<text x=\"16\" y=\"\(Self.f((top + h - bottom) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(Self.f((top + h - bottom) / 2)))\">\(Self.escape(yLabel))</text>\n"
    // A line through the points in x order, then the points.
    let sorted = points.enumerated().sorted { $0.element.x < $1.element.x }
    if connect && sorted.count > 1 {
      let path = sorted.map { "\(Self.f(px($0.element.x))),\(Self.f(py($0.element.y)))" }.joined(separator: " ")
      s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"#7aa6d8\"/>\n"
    }
    for (i, p) in points.enumerated() {
      let best = i == highlight
      s +=
        "<circle cx=\"\(Self.f(px(p.x)))\" cy=\"\(Self.f(py(p.y)))\" r=\"\(best ? 6 : 4)\" fill=\"\(best ? "#d62728" : "#1f77b4")\"><title>\(Self.label(p.x)) → \(Self.label(p.y))</title></circle>\n"
    }
    if let b = highlight, b < points.count {
      let p = points[b]
      let nearRight = px(p.x) > w - right - 80
      let anchor = nearRight ? "end" : "start"
      let dx = nearRight ? -8.0 : 8.0
      s +=
        "<text x=\"\(Self.f(px(p.x) + dx))\" y=\"\(Self.f(py(p.y) - 8))\" text-anchor=\"\(anchor)\" fill=\"#d62728\">best \(Self.label(p.x))</text>\n"
    }
    s += "</svg>\n"
    return s
  }
}
