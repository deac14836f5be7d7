import Architectures
import Foundation
import SafeTensors

/// `mixlab synth`: a deterministic family of synthetic models.
public enum Synth {
  public struct Report: Codable, Sendable {
    public var architecture: String
    public var seed: UInt64
    public var scale: Double
    public var dtype: String
    public var models: [Synthesizer.Output]
  }

  /// Writes the family and returns what was written.
  public static func run(_ s: Synthesizer, to folder: String, quiet: Bool = false) throws -> Report {
    let perModel = try s.specs().reduce(0) { $0 + $1.byteCount }
    let progress = ProgressReporter(label: "synth", totalBytes: perModel * s.count, quiet: quiet)
    let outputs = try s.write(to: folder) { model, done, _ in
      progress.update(model * perModel + done, detail: "model \(model + 1)/\(s.count)")
    }
    progress.finish()
    return Report(architecture: s.architecture.rawValue, seed: s.seed, scale: s.scale, dtype: s.dtype.rawValue, models: outputs)
  }
}
