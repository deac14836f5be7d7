import Foundation

/// A fresh folder under the system temporary directory, removed when the value goes away.
final class TemporaryDirectory: @unchecked Sendable {
  // Sendable: `path` is immutable.
  let path: String

  init() throws {
    path = NSTemporaryDirectory() + "mixlab-prov-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  deinit {
    try? FileManager.default.removeItem(atPath: path)
  }

  func file(_ name: String) -> String { path + "/" + name }
}

/// Output of a command-line tool run by a test.
struct ToolResult {
  var status: Int32
  var stdout: String
  var stderr: String
}

/// Runs `executable` (found on PATH) with `arguments`; nil when it is not installed.
func runTool(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:]) throws
  -> ToolResult?
{
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  process.arguments = [executable] + arguments
  var environment = ProcessInfo.processInfo.environment
  environment["LC_ALL"] = "C"
  environment.merge(extra) { $1 }
  process.environment = environment
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  try process.run()
  // Drain stderr on another thread so neither pipe can fill up and stall the child.
  nonisolated(unsafe) var stderr = Data()
  let drained = DispatchSemaphore(value: 0)
  Thread.detachNewThread {
    stderr = err.fileHandleForReading.readDataToEndOfFile()
    drained.signal()
  }
  let stdout = out.fileHandleForReading.readDataToEndOfFile()
  drained.wait()
  process.waitUntilExit()
  if process.terminationStatus == 127 { return nil }
  return ToolResult(
    status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
    stderr: String(decoding: stderr, as: UTF8.self))
}

/// Runs the `git` command-line tool, or returns nil when it is not installed, so checks that
/// plain git can read the repository are skipped gracefully on machines without git.
func runGit(_ arguments: [String]) throws -> ToolResult? {
  try runTool("git", arguments, environment: ["GIT_CONFIG_NOSYSTEM": "1"])
}
