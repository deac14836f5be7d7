import Foundation

/// Every way a safetensors file, a sharded checkpoint or a write can fail.
///
/// Each case names the file and, where it applies, the tensor or byte offset, so the message
/// tells a person which file to replace and why.
public enum SafeTensorsError: Error, LocalizedError, Equatable, Sendable {
  case cannotOpen(path: String, reason: String)
  case tooShort(path: String, size: Int)
  case headerTooLarge(path: String, length: UInt64)
  case headerBeyondFile(path: String, length: UInt64, fileSize: Int)
  case invalidUTF8(path: String, offset: Int)
  case invalidJSON(path: String, offset: Int, reason: String)
  case duplicateKey(path: String, key: String, offset: Int)
  case invalidMetadata(path: String, key: String, reason: String)
  case invalidTensorEntry(path: String, tensor: String, reason: String)
  case unknownDType(path: String, tensor: String, dtype: String)
  case byteLengthMismatch(path: String, tensor: String, expected: Int, actual: Int)
  case gapOrOverlap(path: String, tensor: String, expectedBegin: Int, begin: Int)
  case dataLengthMismatch(path: String, headerEnd: Int, dataLength: Int)
  case shardIndex(path: String, reason: String)
  case missingTensor(path: String, tensor: String)
  case writeFailed(path: String, reason: String)
  case writerMisuse(path: String, reason: String)
  case abandoned(path: String, reason: String)

  public var errorDescription: String? {
    switch self {
    case .cannotOpen(let path, let reason):
      return "\(path): cannot open: \(reason)."
    case .tooShort(let path, let size):
      return "\(path): not a safetensors file: it is \(size) bytes long, shorter than the 8-byte header length."
    case .headerTooLarge(let path, let length):
      return
        "\(path): header length \(length) bytes exceeds the 100 MB limit of the safetensors format; the file is damaged or not safetensors."
    case .headerBeyondFile(let path, let length, let fileSize):
      return
        "\(path): header claims \(length) bytes but the file has only \(fileSize) bytes; the file is truncated or not safetensors."
    case .invalidUTF8(let path, let offset):
      return "\(path): header is not valid UTF-8 (byte \(offset) of the header)."
    case .invalidJSON(let path, let offset, let reason):
      return "\(path): header is not valid JSON at byte \(offset) of the header: \(reason)."
    case .duplicateKey(let path, let key, let offset):
      return
        "\(path): header has the key \"\(key)\" twice (second at byte \(offset) of the header); readers disagree on which wins, so the file is refused."
    case .invalidMetadata(let path, let key, let reason):
      return "\(path): __metadata__ entry \"\(key)\": \(reason)."
    case .invalidTensorEntry(let path, let tensor, let reason):
      return "\(path): tensor \"\(tensor)\": \(reason)."
    case .unknownDType(let path, let tensor, let dtype):
      return "\(path): tensor \"\(tensor)\" has unknown dtype \"\(dtype)\"."
    case .byteLengthMismatch(let path, let tensor, let expected, let actual):
      return "\(path): tensor \"\(tensor)\": shape × dtype size is \(expected) bytes but data_offsets span \(actual) bytes."
    case .gapOrOverlap(let path, let tensor, let expectedBegin, let begin):
      let what = begin > expectedBegin ? "a gap" : "an overlap"
      return
        "\(path): tensor \"\(tensor)\" starts at data offset \(begin) but the previous tensor ends at \(expectedBegin) (\(what)); offsets must be contiguous from 0."
    case .dataLengthMismatch(let path, let headerEnd, let dataLength):
      return
        "\(path): tensors end at data offset \(headerEnd) but the file holds \(dataLength) data bytes; the file is truncated or has trailing bytes."
    case .shardIndex(let path, let reason):
      return "\(path): sharded checkpoint index: \(reason)."
    case .missingTensor(let path, let tensor):
      return "\(path): no tensor named \"\(tensor)\"."
    case .writeFailed(let path, let reason):
      return "\(path): write failed: \(reason). Nothing was left in place."
    case .abandoned(let path, let reason):
      return "\(path) was not written: \(reason)"
    case .writerMisuse(let path, let reason):
      return "\(path): internal writer error: \(reason)."
    }
  }
}
