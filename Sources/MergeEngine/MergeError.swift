import Foundation
import SafeTensors

/// Everything that can stop a merge, each naming the model, key or parameter at fault.
public enum MergeError: Error, LocalizedError, Equatable, Sendable {
  case parameter(name: String, key: String, reason: String)
  case invalidSpec(String)
  case missingKey(model: String, key: String, step: String)
  case shapeMismatch(model: String, key: String, shape: [Int], expected: [Int], step: String)
  case nonFinite(report: [String])
  case integerTensor(key: String, step: String)
  case numeric(method: String, key: String, reason: String)
  case io(String)

  public var errorDescription: String? {
    switch self {
    case .parameter(let name, let key, let reason):
      return "parameter \(name) for tensor \(key): \(reason)."
    case .invalidSpec(let m):
      return m
    case .missingKey(let model, let key, let step):
      return
        "step \(step): model \(model) has no tensor \(key). Set key_policy: copy_reference to take the reference model's tensor instead, or exclude the key."
    case .shapeMismatch(let model, let key, let shape, let expected, let step):
      return
        "step \(step): tensor \(key) of model \(model) has shape \(shape) but the reference has \(expected); the models are probably different architectures. Set key_policy: copy_reference to keep the reference's tensor."
    case .nonFinite(let report):
      let shown = report.prefix(10).joined(separator: "; ")
      let more = report.count > 10 ? " (and \(report.count - 10) more)" : ""
      return
        "inputs hold NaN or infinite values: \(shown)\(more). Set nonfinite: zero to treat them as 0, or nonfinite: propagate to merge them as they are."
    case .integerTensor(let key, let step):
      return
        "step \(step): tensor \(key) is an integer tensor and cannot be merged; integer tensors are copied from the reference model."
    case .numeric(let method, let key, let reason):
      return "\(method) on tensor \(key): \(reason)."
    case .io(let m):
      return m
    }
  }
}
