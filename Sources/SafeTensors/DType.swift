/// A safetensors element type, spelled as in the format's header.
public enum DType: String, Sendable, Codable, CaseIterable, Hashable {
  case bool = "BOOL"
  case u8 = "U8"
  case i8 = "I8"
  case f8e5m2 = "F8_E5M2"
  case f8e4m3 = "F8_E4M3"
  case i16 = "I16"
  case u16 = "U16"
  case f16 = "F16"
  case bf16 = "BF16"
  case i32 = "I32"
  case u32 = "U32"
  case f32 = "F32"
  case f64 = "F64"
  case i64 = "I64"
  case u64 = "U64"

  /// Bytes per element.
  public var size: Int {
    switch self {
    case .bool, .u8, .i8, .f8e5m2, .f8e4m3: return 1
    case .i16, .u16, .f16, .bf16: return 2
    case .i32, .u32, .f32: return 4
    case .f64, .i64, .u64: return 8
    }
  }

  /// True for floating-point types, which merges convert; integer and bool tensors are copied.
  public var isFloat: Bool {
    switch self {
    case .f8e5m2, .f8e4m3, .f16, .bf16, .f32, .f64: return true
    default: return false
    }
  }

  /// Position in the reference implementation's dtype enumeration. The reference writer
  /// orders tensors by this rank, largest first, then by name, which keeps every tensor
  /// aligned to its element size; the canonical writer uses the same order.
  public var referenceRank: Int {
    switch self {
    case .bool: return 0
    case .u8: return 1
    case .i8: return 2
    case .f8e5m2: return 3
    case .f8e4m3: return 4
    case .i16: return 5
    case .u16: return 6
    case .f16: return 7
    case .bf16: return 8
    case .i32: return 9
    case .u32: return 10
    case .f32: return 11
    case .f64: return 12
    case .i64: return 13
    case .u64: return 14
    }
  }

  /// Accepts the header spelling and the lower-case names people type (`f16`, `bf16`, `fp16`).
  public init?(userSpelling text: String) {
    if let exact = DType(rawValue: text) {
      self = exact
      return
    }
    switch text.lowercased() {
    case "f16", "fp16", "float16", "half": self = .f16
    case "bf16", "bfloat16": self = .bf16
    case "f32", "fp32", "float32", "float": self = .f32
    case "f64", "fp64", "float64", "double": self = .f64
    case "int32": self = .i32
    case "int64": self = .i64
    default: return nil
    }
  }
}
