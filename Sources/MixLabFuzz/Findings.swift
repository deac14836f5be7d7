import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Saving the input that crashed, hung or broke an invariant, from wherever that happened.
///
/// A trap or a fault kills the process, so the current input is kept in a buffer the signal
/// handler can write with async-signal-safe calls only (`open`, `write`, `_exit`). Exit
/// status: 77 crash, 78 hang (79, from the session, broken invariants); benchmarks/fuzz.sh
/// counts them.
enum Findings {
  nonisolated(unsafe) static var buffer = UnsafeMutableRawPointer.allocate(byteCount: 2 << 20, alignment: 16)
  nonisolated(unsafe) static var length = 0
  nonisolated(unsafe) static var crashPath: UnsafeMutablePointer<CChar>?
  nonisolated(unsafe) static var hangPath: UnsafeMutablePointer<CChar>?
  /// Executions finished; the watchdog compares it from one second to the next.
  nonisolated(unsafe) static var executions = 0
  nonisolated(unsafe) static var running = false

  /// Installs the handlers; findings go to `folder` as `<kind>-<target>-<pid>`.
  static func install(folder: String, target: String) {
    try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    crashPath = strdup("\(folder)/crash-\(target)-\(getpid())")
    hangPath = strdup("\(folder)/hang-\(target)-\(getpid())")
    // An alternate stack, so a stack overflow can still be reported.
    var stack = stack_t()
    stack.ss_sp = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
    stack.ss_size = 1 << 16
    stack.ss_flags = 0
    sigaltstack(&stack, nil)
    for sig in [SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGABRT, SIGFPE] {
      var action = sigaction()
      action.__sigaction_handler.sa_handler = { _ in
        Findings.save(Findings.crashPath)
        let note = "mixlab-fuzz: CRASH; input saved\n"
        _ = note.withCString { write(2, $0, strlen($0)) }
        _exit(77)
      }
      action.sa_flags = Int32(SA_ONSTACK)
      sigaction(sig, &action, nil)
    }
    // Watchdog: an input running for more than 10 s is a hang.
    Thread.detachNewThread {
      var last = -1
      var still = 0
      while true {
        sleep(1)
        let now = Findings.executions
        still = (now == last && Findings.running) ? still + 1 : 0
        last = now
        if still >= 10 {
          Findings.save(Findings.hangPath)
          FileHandle.standardError.write(Data("mixlab-fuzz: HANG (an input ran for 10 s); input saved\n".utf8))
          _exit(78)
        }
      }
    }
  }

  /// Remembers `input` as the one being executed.
  static func begin(_ input: [UInt8]) {
    input.withUnsafeBytes {
      length = min($0.count, 2 << 20); if length > 0 { buffer.copyMemory(from: $0.baseAddress!, byteCount: length) }
    }
    running = true
  }

  static func end() {
    running = false
    executions += 1
  }

  private static func save(_ path: UnsafeMutablePointer<CChar>?) {
    guard let path else { return }
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    if fd >= 0 {
      _ = write(fd, buffer, length)
      close(fd)
    }
  }
}
