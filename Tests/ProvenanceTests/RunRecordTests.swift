import Foundation
import Testing

@testable import Provenance

@Suite("RunRecord")
struct RunRecordTests {
  @Test("canonical JSON round-trips and re-encodes to the same bytes")
  func roundTrip() throws {
    let record = Fixture.record(3)
    let bytes = record.canonicalJSON()
    let decoded = try RunRecord.decode(bytes)
    #expect(decoded == record)
    #expect(decoded.canonicalJSON() == bytes)
  }

  @Test("bytes do not depend on dictionary insertion order")
  func dictionaryOrder() throws {
    var a = Fixture.record(1)
    var b = a
    a.output.tensorSHA256 = [:]
    b.output.tensorSHA256 = [:]
    let keys = (0..<200).map { "model.layers.\($0).mlp.down_proj.weight" }
    for k in keys { a.output.tensorSHA256[k] = Fixture.hex(k) }
    for k in keys.reversed() { b.output.tensorSHA256[k] = Fixture.hex(k) }
    #expect(a == b)
    #expect(a.canonicalJSON() == b.canonicalJSON())
  }

  @Test("the JSON has snake_case sorted keys, explicit nulls, literal slashes and a trailing newline")
  func format() throws {
    var record = Fixture.record(2)
    record.seed = nil
    let text = String(decoding: record.canonicalJSON(), as: UTF8.self)
    #expect(text.hasSuffix("}\n"))
    #expect(!text.hasSuffix("\n\n"))
    #expect(text.contains("\"seed\" : null"))
    #expect(text.contains("\"shards\" : null"))
    #expect(text.contains("\"recipe_path\" : \"experiments/soup/r2.yaml\""))
    for key in [
      "format_version", "run_id", "recipe_yaml", "recipe_canonical", "recipe_hash", "tensor_data_sha256",
      "tensor_sha256", "layer_counts", "mixlab_version", "engine_version", "method_semantics", "swift_version",
      "memory_budget", "chunk_elements", "compute_dtype", "started_at", "wall_seconds", "peak_rss_bytes",
    ] {
      #expect(text.contains("\"\(key)\" : "), "missing \(key)")
    }
    // Top-level keys appear in sorted order.
    let topLevel = text.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map {
      String($0.dropFirst(3).prefix { $0 != "\"" })
    }
    #expect(topLevel == topLevel.sorted())
    #expect(topLevel.count == 17)  // … evaluations included
  }

  @Test("a manifest of known content encodes to known bytes")
  func golden() throws {
    let metric = MetricRecord(name: "l2", scope: "block:IN04", value: 0.1)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    let text = String(decoding: try encoder.encode(metric), as: UTF8.self)
    #expect(text == "{\n  \"name\" : \"l2\",\n  \"scope\" : \"block:IN04\",\n  \"value\" : 0.1\n}")
    let record = Fixture.record(0)
    let json = String(decoding: record.canonicalJSON(), as: UTF8.self)
    #expect(json.hasPrefix("{\n  \"engine\" : {\n    \"engine_version\" : \"1\",\n"))
  }

  @Test("extreme values survive: UInt64.max seed, non-finite metrics, unicode")
  func extremes() throws {
    var record = Fixture.record(1)
    record.seed = .max
    record.metrics = [
      MetricRecord(name: "inf", scope: "overall", value: .infinity),
      MetricRecord(name: "nan", scope: "overall", value: .nan),
    ]
    record.notes["NOTES.md"] = "Ünïcödé \u{1F9EA} \"quoted\" back\\slash\n"
    let decoded = try RunRecord.decode(record.canonicalJSON())
    #expect(decoded.seed == .max)
    #expect(decoded.metrics[0].value == .infinity)
    #expect(decoded.metrics[1].value.isNaN)
    #expect(decoded.notes == record.notes)
    #expect(String(decoding: record.canonicalJSON(), as: UTF8.self).contains("18446744073709551615"))
  }

  @Test("decode names what is wrong")
  func decodeErrors() throws {
    let good = try #require(
      try JSONSerialization.jsonObject(with: Fixture.record(1).canonicalJSON()) as? [String: Any])
    func attempt(_ change: (inout [String: Any]) -> Void) -> String {
      var object = good
      change(&object)
      let data = try! JSONSerialization.data(withJSONObject: object)
      do {
        _ = try RunRecord.decode(data, source: "runs/x/manifest.json")
        return "decoded"
      } catch {
        return (error as? LocalizedError)?.errorDescription ?? "\(error)"
      }
    }
    let missing = attempt { $0["recipe_hash"] = nil }
    #expect(missing.contains("runs/x/manifest.json") && missing.contains("recipe_hash"))
    let nested = attempt { object in
      var output = object["output"] as! [String: Any]
      output["autov2"] = nil
      object["output"] = output
    }
    #expect(nested.contains("autov2") && nested.contains("output"))
    #expect(attempt { $0["format_version"] = 2 }.contains("format_version 2"))
    let badTime = attempt { object in
      var execution = object["execution"] as! [String: Any]
      execution["started_at"] = "yesterday"
      object["execution"] = execution
    }
    #expect(badTime.contains("started_at"))
    #expect(attempt { $0["seed"] = NSNull() } == "decoded")
  }

  @Test(
    "ISO 8601 times parse exactly",
    arguments: [
      ("1970-01-01T00:00:00Z", Int64(0)),
      ("2025-01-01T00:00:00Z", 1_735_689_600),
      ("2025-01-01T00:00:00.999Z", 1_735_689_600),
      ("2025-01-01T01:00:00+01:00", 1_735_689_600),
      ("2024-12-31T19:30:00-04:30", 1_735_689_600),
      ("2024-02-29T12:00:00Z", 1_709_208_000),
      ("1969-12-31T23:59:59Z", -1),
    ])
  func parseTimes(text: String, seconds: Int64) {
    #expect(RunRecord.seconds(fromISO8601: text) == seconds)
  }

  @Test(
    "malformed ISO 8601 times are refused",
    arguments: [
      "", "2025-01-01", "2025-01-01 00:00:00Z", "2025-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
      "2025-01-01T24:00:00Z", "2025-01-01T00:00:00", "2025-01-01T00:00:00.Z", "2025-01-01T00:00:00+0100",
      "2025-01-01T00:00:00Zjunk",
    ])
  func refuseTimes(text: String) {
    #expect(RunRecord.seconds(fromISO8601: text) == nil)
  }

  @Test("iso8601 formats UTC with milliseconds and parses back")
  func formatTimes() {
    #expect(RunRecord.iso8601(Date(timeIntervalSince1970: 1_735_689_600.25)) == "2025-01-01T00:00:00.250Z")
    #expect(RunRecord.iso8601(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
    // Every 37 days and a second, from 1969 back to 1570 and forward to 2049.
    for seconds in stride(from: Int64(-86_400 * 365 * 400), to: 86_400 * 365 * 80, by: 86_400 * 37 + 1) {
      let text = RunRecord.iso8601(Date(timeIntervalSince1970: Double(seconds) + 0.5))
      #expect(text.hasSuffix(".500Z"))
      #expect(RunRecord.seconds(fromISO8601: text) == seconds)
    }
  }

  @Test("commitTime comes from started_at, so equal records commit at equal times")
  func commitTime() {
    var record = Fixture.record(0)
    #expect(record.commitTime == 1_735_689_600)
    record.execution.startedAt = "not a time"
    #expect(record.commitTime == 0)
  }

  @Test("the current platform is described")
  func platform() {
    let platform = PlatformRecord.current()
    #expect(!platform.os.isEmpty && !platform.arch.isEmpty && !platform.cpu.isEmpty)
    #if arch(x86_64)
      #expect(platform.arch == "x86_64")
    #endif
    #expect(platform.swiftVersion.hasPrefix("6.") || platform.swiftVersion.hasPrefix("7"))
  }

  @Test("git files: manifest, verbatim recipe and notes under runs/<output sha256>")
  func gitFiles() throws {
    let record = Fixture.record(4)
    let files = try record.gitFiles()
    let folder = "runs/" + record.output.sha256
    #expect(record.gitFolder == folder)
    #expect(
      Set(files.keys)
        == [folder + "/manifest.json", folder + "/recipe.yaml", folder + "/notes/NOTES.md", folder + "/notes/ideas.txt"])
    #expect(files[folder + "/manifest.json"] == record.canonicalJSON())
    #expect(files[folder + "/recipe.yaml"] == Data(record.recipeYAML.utf8))
    #expect(files[folder + "/notes/ideas.txt"] == Data("more base".utf8))
    #expect(record.commitMessage.hasPrefix("soup/r4: \(record.output.autov2) (run \(record.runID.prefix(12)))\n\n"))

    var badHash = record
    badHash.output.sha256 = "../../etc"
    #expect(throws: ProvenanceError.self) { try badHash.gitFiles() }
    var badNote = record
    badNote.notes["../escape"] = "x"
    #expect(throws: ProvenanceError.self) { try badNote.gitFiles() }
  }
}
