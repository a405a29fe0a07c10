@testable import Slipway
import Testing

/// The processor options that choose how a step keeps its hop record and drives its connections.
@Suite("Hop record retention and I/O options")
struct RetentionAndIOOptionTests {
    @Test("--hop-record-days and SLIPWAY_HOP_RECORD_DAYS set the retention; 0 keeps every record")
    func retentionOption() throws {
        #expect(try ProcessorOptions(arguments: [], environment: [:]).hopRecordRetention == .seconds(7 * 24 * 3600))
        let fromEnvironment = try ProcessorOptions(arguments: [], environment: ["SLIPWAY_HOP_RECORD_DAYS": "30"])
        #expect(fromEnvironment.hopRecordRetention == .seconds(30 * 24 * 3600))
        let flag = try ProcessorOptions(arguments: ["--hop-record-days", "0"], environment: ["SLIPWAY_HOP_RECORD_DAYS": "30"])
        #expect(flag.hopRecordRetention == nil)
        #expect(throws: ProcessorError.self) { try ProcessorOptions(arguments: ["--hop-record-days", "-1"], environment: [:]) }
        #expect(throws: ProcessorError.self) { try ProcessorOptions(arguments: [], environment: ["SLIPWAY_HOP_RECORD_DAYS": "a week"]) }
    }

    @Test("--io and SLIPWAY_IO choose one loop (the default) or a thread per connection; anything else is refused")
    func ioOption() throws {
        #expect(try ProcessorOptions(arguments: [], environment: [:]).io == .loop)
        #expect(try ProcessorOptions(arguments: [], environment: ["SLIPWAY_IO": "threads"]).io == .threads)
        #expect(try ProcessorOptions(arguments: ["--io", "loop"], environment: ["SLIPWAY_IO": "threads"]).io == .loop)
        let refused = #expect(throws: ProcessorError.self) { try ProcessorOptions(arguments: ["--io", "async"], environment: [:]) }
        #expect(refused?.description.contains("loop or threads") == true)
    }
}
