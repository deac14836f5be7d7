import Crypto
import Foundation

/// SHA-256 helpers shared by the reader, the writer and the provenance layer.
public enum Digest {
  /// Lower-case hex of `bytes`.
  public static func hex<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(64)
    for b in bytes {
      out.append(digits[Int(b >> 4)])
      out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// SHA-256 of `bytes` as lower-case hex.
  public static func sha256<D: DataProtocol>(_ bytes: D) -> String {
    hex(SHA256.hash(data: bytes))
  }

  /// SHA-256 of a string's UTF-8 bytes as lower-case hex.
  public static func sha256(_ text: String) -> String {
    sha256(Array(text.utf8))
  }

  /// The "AutoV2" short hash Stable Diffusion tools show: the first 10 hex digits of the
  /// whole-file SHA-256.
  public static func autoV2(_ sha256Hex: String) -> String {
    String(sha256Hex.prefix(10))
  }
}

/// A running SHA-256 over raw buffers.
public struct StreamingSHA256: Sendable {
  private var state = SHA256()
  public init() {}

  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    if bytes.count > 0 { state.update(bufferPointer: bytes) }
  }

  public mutating func update(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { update($0) }
  }

  /// Lower-case hex digest.
  public func finalizeHex() -> String {
    Digest.hex(state.finalize())
  }
}
