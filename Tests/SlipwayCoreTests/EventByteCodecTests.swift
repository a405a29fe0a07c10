import Foundation
import Testing

@testable import SlipwayCore

/// Events are read byte by byte too (the audit sink reads every one), with Foundation's decoder for the rest.
@Suite("Event byte codec")
struct EventByteCodecTests {
    static func events() -> [SlipEvent] {
        let slip = SlipCodecTests.fullSlip()
        // Events made now carry the time to the microsecond; the wire keeps milliseconds.
        var hops = [SlipEvent(hop: slip.log[0], slip: slip), SlipEvent(hop: slip.log[1], slip: slip)]
        for index in hops.indices { hops[index].at = instant(plusMilliseconds: 7 + index) }
        return hops + [
            SlipEvent(
                slipID: slip.id, template: slip.template, kind: .terminal, step: "ship-order", sequence: 3, attempt: 1,
                outcome: "compensated", state: .compensated, processor: "w1:42", at: instant(plusMilliseconds: 9),
                reason: "the address is not deliverable", fault: slip.fault, createdAt: slip.createdAt, log: slip.log),
            SlipEvent(
                id: "unknown.parked.1", slipID: "unknown", template: "unknown", kind: .parked, step: "charge-card",
                sequence: 0, attempt: 1, outcome: "malformed", state: .running, processor: "w2:51",
                at: instant(plusMilliseconds: 12), reason: "the body is not valid JSON: \"quoted\"\nand a newline"),
        ]
    }

    func fast(_ body: [UInt8]) -> [SlipEvent]? {
        body.withUnsafeBufferPointer(SlipEventWire.fastDecode)
    }

    @Test("single events and batches the processors write are read by the byte path, equal to Foundation's reading")
    func writtenEventsTakeTheBytePath() throws {
        let events = Self.events()
        let encoded = try events.map { try $0.jsonBytes() }
        for (event, body) in zip(events, encoded) {
            #expect(fast(body) == [event])
            #expect(try SlipEventWire.decodeWithFoundation(body, decoder: SlipCodec.makeDecoder()) == [event])
        }
        let batch = SlipEventWire.batchBody(encoded)
        #expect(fast(batch) == events)
        #expect(try SlipEventWire.decode(batch) == events)
    }

    @Test("mutated batches: whatever the byte path reads, Foundation reads the same; the rest is Foundation's")
    func mutationsAgree() throws {
        let batch = SlipEventWire.batchBody(try Self.events().map { try $0.jsonBytes() })
        let interesting: [UInt8] = Array("\"\\{}[],:0123456789.eE-+ntfu\u{7}".utf8) + [0x00, 0x80, 0xC0, 0xFF]
        var rng = SplitMix64(seed: 20_261_122)
        var taken = 0
        for _ in 0..<3_000 {
            var body = batch
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let index = Int.random(in: 0..<body.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: body[index] = interesting.randomElement(using: &rng)!
                case 1: body.insert(interesting.randomElement(using: &rng)!, at: index)
                case 2: body.remove(at: index)
                default: body.removeLast(Int.random(in: 0..<min(40, body.count), using: &rng))
                }
                if body.isEmpty { body = [UInt8(ascii: "[")] }
            }
            guard let events = fast(body) else { continue }
            taken += 1
            let foundation = try? SlipEventWire.decodeWithFoundation(body, decoder: SlipCodec.makeDecoder())
            #expect(foundation == events, "\(String(decoding: body, as: UTF8.self))")
        }
        #expect(taken > 0, "no mutant was read by the byte path: the test checks nothing")
    }

    @Test("an unknown field, which Foundation ignores, is left to Foundation")
    func unknownField() throws {
        var text = String(decoding: try Self.events()[0].jsonBytes(), as: UTF8.self)
        text.removeLast()
        text += #","addedLater":1}"#
        #expect(fast([UInt8](text.utf8)) == nil)
        #expect(try SlipEventWire.decode([UInt8](text.utf8)) == [Self.events()[0]])
    }
}
