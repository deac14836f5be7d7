import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Progress on standard error: a redrawn bar with throughput and ETA on a terminal, plain
/// lines at most every few seconds otherwise, nothing when quiet.
public final class ProgressReporter: @unchecked Sendable {
  // Sendable: all mutable state is guarded by `lock`.
  private let label: String
  private let total: Int
  private let interactive: Bool
  private let quiet: Bool
  private let start = Date()
  private lazy var lastPrint: Date = interactive ? .distantPast : start
  private var lastFraction = -1.0
  private let lock = NSLock()

  public init(label: String, totalBytes: Int, quiet: Bool = false) {
    self.label = label
    self.total = max(1, totalBytes)
    self.interactive = isatty(2) == 1
    self.quiet = quiet
  }

  /// Reports that `done` of the total bytes are processed.
  public func update(_ done: Int, detail: String = "") {
    guard !quiet else { return }
    lock.lock()
    defer { lock.unlock() }
    let now = Date()
    let fraction = min(1, Double(done) / Double(total))
    let elapsed = now.timeIntervalSince(start)
    if interactive {
      guard now.timeIntervalSince(lastPrint) > 0.1 || fraction >= 1 else { return }
    } else {
      guard now.timeIntervalSince(lastPrint) > 5 || (fraction >= 1 && lastFraction < 1) else { return }
    }
    lastPrint = now
    lastFraction = fraction
    let rate = elapsed > 0 ? Double(done) / elapsed : 0
    let eta = rate > 0 ? Double(total - done) / rate : 0
    let stats = "\(Int(fraction * 100))%  \(Format.bytes(Int(rate)))/s  ETA \(Format.seconds(eta))"
    if interactive {
      let width = 30
      let filled = Int(fraction * Double(width))
      let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
      FileHandle.standardError.write(Data("\r\u{1B}[K\(label) \(bar) \(stats) \(detail)".utf8))
    } else {
      FileHandle.standardError.write(Data("\(label): \(stats) \(detail)\n".utf8))
    }
  }

  /// Ends the bar line.
  public func finish(_ message: String? = nil) {
    guard !quiet else { return }
    lock.lock()
    defer { lock.unlock() }
    if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    if let message { FileHandle.standardError.write(Data((message + "\n").utf8)) }
  }
}
