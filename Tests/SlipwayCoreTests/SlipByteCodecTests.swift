import Foundation
import Testing

@testable import SlipwayCore

/// `SlipCodec` reads and writes slips byte by byte and leaves anything unusual to Foundation's decoder
/// (Sources/SlipwayCore/SlipJSON.swift). The fuzzer checks that both paths always agree; these tests check that the
/// byte path is the one taken for what processors see, since that is what it is for.
@Suite("Slip byte codec")
struct SlipByteCodecTests {
    func fast(_ body: [UInt8]) -> Slip? {
        body.withUnsafeBufferPointer(SlipCodec.fastDecode)
    }

    /// Where the byte path stopped, with the bytes around it.
    func stop(_ body: [UInt8]) -> String {
        guard let position = SlipCodec.fastDecodeStop(body) else { return "it did not stop" }
        let around = body[max(0, position - 40)..<min(body.count, position + 20)]
        return "stopped at byte \(position): …\(String(decoding: around, as: UTF8.self))…"
    }

    @Test("slips this codec writes are read by the byte path, equal to what Foundation reads")
    func writtenSlipsTakeTheBytePath() throws {
        let codec = SlipCodec()
        var slip = SlipCodecTests.fullSlip()
        slip.variables["escapes"] = "quote \" backslash \\ slash / newline \n tab \t"
        slip.variables["negative"] = -42
        slip.variables["fraction"] = 0.1
        let body = try codec.encode(slip)
        let read = try #require(fast(body), "the byte path gave up: \(stop(body))")
        #expect(read == slip)
        #expect(read == (try codec.decodeWithFoundation(Data(body))))
    }

    @Test("the writer writes the very bytes Foundation's encoder writes")
    func sameBytesAsFoundation() throws {
        let slip = SlipCodecTests.fullSlip()
        let foundation = try SlipCodec.makeEncoder().encode(slip)
        #expect(try SlipCodec().encode(slip) == [UInt8](foundation))
        let event = SlipEvent(
            slipID: slip.id, template: slip.template, kind: .terminal, step: "ship-order", sequence: 3, attempt: 1,
            outcome: "compensated", state: .compensated, processor: "w1:42", reason: "why", fault: slip.fault,
            createdAt: slip.createdAt, log: slip.log)
        #expect(try event.jsonBytes() == [UInt8](try SlipCodec.makeEncoder().encode(event)))
        let hop = SlipEvent(hop: slip.log[1], slip: slip)
        #expect(try hop.jsonBytes() == [UInt8](try SlipCodec.makeEncoder().encode(hop)))
    }

    @Test("good fixtures: both paths agree, and once written by this codec the byte path reads every one")
    func fixtures() throws {
        let codec = SlipCodec()
        for fixture in Fixture.good {
            // Fixtures use other RFC 3339 forms and \u escapes too, which are Foundation's to read.
            let body = try fixture.bytes()
            let slow = try codec.decodeWithFoundation(Data(body))
            #expect(fast(body).map { $0 == slow } ?? true, "\(fixture.name)")
            let written = try codec.encode(slow)
            let read = fast(written)
            #expect(read != nil, "the byte path gave up on \(fixture.name) as written: \(stop(written))")
            #expect(read.map { $0 == slow } ?? true, "\(fixture.name)")
        }
    }

    @Test("what the byte path leaves to Foundation", arguments: [
        #"{"formatVersion": 2}"#,  // another version: Foundation says which
        #"{"formatVersion": 1.0}"#,  // a number Foundation reads as an integer
        #"{"formatVersion": 1, "unknown": 1}"#,  // refused, with the field named
        #"{"formatVersion": 1, "formatVersion": 1}"#,  // a repeated field
        #"{"formatVersion": 1, "id": "\u0041"}"#,  // a \u escape
        "{\"formatVersion\": 1, \"id\": \"\u{1}\"}",  // a raw control character
        #"{"formatVersion": 1} x"#,  // trailing bytes
    ])
    func leftToFoundation(_ text: String) {
        #expect(fast([UInt8](text.utf8)) == nil)
    }

    @Test("nesting past the limit is left to Foundation's path, which refuses it before parsing")
    func deepVariables() throws {
        let deep = String(repeating: "[", count: 70) + String(repeating: "]", count: 70)
        var slip = SlipCodecTests.fullSlip()
        slip.variables = [:]
        var body = String(decoding: try SlipCodec().encode(slip), as: UTF8.self)
        body = body.replacingOccurrences(of: #""variables":{}"#, with: #""variables":{"deep":\#(deep)}"#)
        #expect(fast([UInt8](body.utf8)) == nil)
        #expect(rejection(of: body)?.code == .malformed)
    }
}
