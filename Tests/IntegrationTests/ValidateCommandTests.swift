import Foundation
import Testing

/// `slip validate FILE`, the real binary: a refusal reads "refused (<code>): <reason>", in words a person reads.
@Suite("slip validate")
struct ValidateCommandTests {
    static func validate(_ contents: String) async throws -> (status: Int32, output: String, errors: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-tests/validate")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("\(UUID().uuidString).json").path
        try contents.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        return try await runToEnd(try Binaries.path("slip"), ["validate", file])
    }

    @Test("a JSON array, broken JSON, an empty file and a string formatVersion are each refused with code and reason")
    func refusals() async throws {
        let array = try await Self.validate(#"[{"formatVersion": 1}]"#)
        #expect(array.status == 2)
        #expect(array.errors == "slip: refused (malformed): the slip must be a JSON object, not an array\n", "\(array.errors)")

        let broken = try await Self.validate("{\n  \"formatVersion\": 1,\n  \"id\": oops\n}\n")
        #expect(broken.status == 2)
        #expect(broken.errors.hasPrefix("slip: refused (malformed): the body is not valid JSON: unexpected 'o' at line 3, column 9"), "\(broken.errors)")
        #expect(broken.errors.contains("line 3"), "\(broken.errors)")

        let empty = try await Self.validate("")
        #expect(empty.status == 2)
        #expect(empty.errors.hasPrefix("slip: refused (malformed): '") && empty.errors.hasSuffix("' is empty\n"), "\(empty.errors)")

        let version = try await Self.validate(#"{"formatVersion": "1"}"#)
        #expect(version.status == 2)
        #expect(
            version.errors.hasPrefix("slip: refused (unsupported-version): 'formatVersion' must be an integer, not a string"),
            "\(version.errors)")

        for errors in [array.errors, broken.errors, empty.errors, version.errors] {
            #expect(!errors.contains("Dictionary<") && !errors.contains("cannot read"), "\(errors)")
        }
    }

    @Test("probe-step --help lists the arguments that make it misbehave, then the processor options")
    func probeStepHelp() async throws {
        let help = try await runToEnd(try Binaries.path("probe-step"), ["--help"])
        #expect(help.status == 0, "\(help.errors)")
        for knob in [
            "throwTimes", "sleepMs", "sleepTimes", "crashTimes", "fault", "terminate", "waitMs", "removeSteps",
            "insertNext", "failUndo", "undoSleepMs", "--amqp-url", "--concurrency",
        ] {
            #expect(help.output.contains(knob), "probe-step --help does not mention \(knob)")
        }
    }
}
