import Foundation
import Testing

@testable import SlipwayCore

/// `SlipPeek`: the slip id read from a body that is not a valid slip, to name its park. Never more than a label.
@Suite("Peeking at a parked body's slip id")
struct SlipPeekTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("a valid slip's id, template and sequence are read, wherever they are among its fields")
    func readsAValidSlip() throws {
        var slip = Slip(id: "order-42", template: "order", itinerary: [ItineraryStep(step: "a")])
        slip.sequence = 3
        let peek = try #require(SlipPeek.read(try SlipCodec().encode(slip)))
        #expect(peek == SlipPeek(slipID: "order-42", template: "order", sequence: 3))
        let reordered = Self.bytes(#"{"variables":{"id":"inner","x":[1,{"id":"no"}]},"sequence":7,"id":"late-id"}"#)
        #expect(SlipPeek.read(reordered) == SlipPeek(slipID: "late-id", template: nil, sequence: 7))
    }

    @Test("a slip that breaks the format (no itinerary, a string version, truncated) still names itself")
    func readsInvalidSlips() {
        #expect(SlipPeek.read(Self.bytes(#"{"formatVersion":1,"id":"s-1","template":"t","state":"running"}"#))?.slipID == "s-1")
        #expect(SlipPeek.read(Self.bytes(#"{"formatVersion":"1","id":"s-2","sequence":"x"}"#)) == SlipPeek(slipID: "s-2"))
        #expect(SlipPeek.read(Self.bytes(#"{"id":"s-3","template":"t","itinerary":[{"step":"a""#))?.template == "t")
        #expect(SlipPeek.read(Self.bytes("\n\t {\"id\" : \"s-4\" }"))?.slipID == "s-4")
    }

    @Test("no id unless the top level is an object with one valid, plain and single id string")
    func refusesWhatIsNotAnID() {
        for body in [
            "", "[]", #"["id","x"]"#, #""id""#, "{not json", #"{"id":42}"#, #"{"id":"has a space"}"#,
            #"{"id":"a.b"}"#, #"{"id":""}"#, #"{"id":"\u0041"}"#, #"{"nested":{"id":"x"}}"#,
            #"{"id":"one","id":"two"}"#, #"{"id":"x\"y"}"#, "{\"id\":\"" + String(repeating: "a", count: 65) + "\"}",
        ] {
            #expect(SlipPeek.read(Self.bytes(body)) == nil, "\(body)")
        }
        #expect(SlipPeek.read(Self.bytes(#"{"id":"ok","template":"bad name","sequence":-1}"#)) == SlipPeek(slipID: "ok"))
        #expect(SlipPeek.read(Self.bytes(#"{"id":"ok","sequence":1.5}"#))?.sequence == nil)
        #expect(SlipPeek.read(Self.bytes(#"{"id":"ok","sequence":99999999999999999999}"#))?.sequence == nil)
        #expect(SlipPeek.read([0xFF, 0xFE, 0x7B]) == nil)
    }

    @Test("hostile bodies cost one bounded pass: deep nesting is skipped, past the scan limit nothing is read")
    func boundedOnHostileBodies() {
        let deep = String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000)
        #expect(SlipPeek.read(Self.bytes(#"{"a":\#(deep),"id":"after-deep"}"#))?.slipID == "after-deep")
        #expect(SlipPeek.read(Self.bytes(#"{"a":\#(String(repeating: "[", count: 300_000)),"id":"never"}"#)) == nil)
        let padding = String(repeating: "x", count: SlipPeek.maxScannedBytes)
        #expect(SlipPeek.read(Self.bytes(#"{"id":"early","pad":"\#(padding)"}"#))?.slipID == "early")
        #expect(SlipPeek.read(Self.bytes(#"{"pad":"\#(padding)","id":"beyond"}"#)) == nil)
    }
}
