import Foundation
import Testing

@testable import SlipwayCore

@Suite("Slip codec")
struct SlipCodecTests {
    /// A slip with every field set, as a processor would see it mid-walk-back.
    static func fullSlip() -> Slip {
        var slip = Slip(
            id: "full-slip_01", template: "order-fulfillment",
            itinerary: [
                ItineraryStep(
                    step: "ship-order", arguments: ["carrier": "DHL", "express": true],
                    retry: RetryPolicy(maxAttempts: 5, initialDelayMs: 200, multiplier: 1.5, maxDelayMs: 5_000, jitter: 0.2),
                    timeoutMs: 10_000, compensateTimeoutMs: 30_000),
                ItineraryStep(step: "notify-customer", arguments: ["email": "ada@example.com", "copies": 2]),
            ],
            variables: [
                "orderId": "ord-1001", "amountCents": 3_980, "rate": 0.125, "big": .int(Int64.max),
                "tags": ["gift", "fragile"], "customer": ["name": "Zoë", "vip": true, "note": nil],
            ],
            deadline: instant(plusMilliseconds: 3_600_000), createdAt: instant(plusMilliseconds: 125))
        slip.state = .compensating
        slip.sequence = 3
        slip.attempt = 2
        slip.log = [
            LogEntry(
                sequence: 0, step: "reserve-stock", kind: .execute, outcome: .completed, attempt: 1,
                startedAt: instant(plusMilliseconds: 250), durationMicros: 18_250, processor: "w1:42"),
            LogEntry(
                sequence: 1, step: "charge-card", kind: .execute, outcome: .retried, attempt: 1,
                startedAt: instant(plusMilliseconds: 500), durationMicros: 30_001, processor: "w2:51",
                reason: "issuer timed out"),
            LogEntry(
                sequence: 1, step: "charge-card", kind: .execute, outcome: .completed, attempt: 2,
                startedAt: instant(plusMilliseconds: 1_625), durationMicros: Int64.max, processor: "w2:51"),
            LogEntry(
                sequence: 2, step: "ship-order", kind: .execute, outcome: .faulted, attempt: 1,
                startedAt: instant(plusMilliseconds: 2_000), durationMicros: 5_000, processor: "w1:42",
                reason: "the address is not deliverable"),
        ]
        slip.compensations = [
            CompensationRecord(
                step: "reserve-stock", address: "slipway.reserve-stock.compensate",
                data: ["reservationId": "res-77", "lines": [1, 2]], sequence: 0),
            CompensationRecord(
                step: "charge-card", address: "slipway.charge-card.compensate", data: nil, sequence: 1, timeoutMs: 15_000),
        ]
        slip.fault = Fault(step: "ship-order", sequence: 2, reason: "the address is not deliverable", attempts: 1)
        return slip
    }

    @Test("a slip with every field set survives encode and decode unchanged")
    func roundTrip() throws {
        let slip = Self.fullSlip()
        let codec = SlipCodec()
        let decoded = try codec.decode(try codec.encode(slip))
        #expect(decoded == slip)
        #expect(decoded.compensations[1].data == .null)
    }

    @Test("a new slip is version 1, running, at sequence 0 and attempt 1, with nothing logged")
    func newSlip() {
        let slip = orderSlip()
        #expect(slip.formatVersion == 1 && Slip.currentFormatVersion == 1)
        #expect(slip.state == .running && slip.sequence == 0 && slip.attempt == 1)
        #expect(slip.log.isEmpty && slip.compensations.isEmpty && slip.fault == nil)
        #expect(Slip.isValidName(Slip.newID()))
    }

    @Test("the encoder writes every collection, omits an absent fault and deadline, and writes UTC milliseconds")
    func encodedShape() throws {
        let slip = orderSlip()
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(try SlipCodec().encode(slip))) as? [String: Any])
        #expect(
            Set(object.keys) == [
                "formatVersion", "id", "template", "createdAt", "sequence", "attempt", "state", "itinerary", "log",
                "compensations", "variables",
            ])
        #expect(object["createdAt"] as? String == "2026-11-22T05:34:20.000Z")
        #expect(object["state"] as? String == "running")
        #expect(SlipState.compensationFailed.rawValue == "compensation-failed")
    }

    @Test("the content type names the format and its version")
    func contentType() {
        #expect(SlipCodec.contentType == "application/vnd.slipway.slip+json; version=1")
    }

    // MARK: Versions

    @Test("a slip of a newer format version is refused with its version in the reason")
    func newerVersion() throws {
        var text = String(decoding: try SlipCodec().encode(orderSlip()), as: UTF8.self)
        text = text.replacingOccurrences(of: "\"formatVersion\":1", with: "\"formatVersion\":2")
        let refusal = try #require(rejection(of: text))
        #expect(refusal.code == .unsupportedVersion)
        #expect(refusal.reason.contains("2"))
    }

    @Test("the version is checked first: a newer slip with fields unknown to version 1 is refused for its version")
    func versionBeforeUnknownFields() throws {
        let text = #"{"formatVersion": 2, "itinerary": [{"fork": {"branches": [[], []]}}], "joins": 3}"#
        #expect(rejection(of: text)?.code == .unsupportedVersion)
    }

    @Test("a slip without an integer formatVersion is refused as unsupported-version", arguments: [
        #"{"id": "a"}"#, #"{"formatVersion": "1"}"#, #"{"formatVersion": null}"#, #"{"formatVersion": 1.5}"#,
    ])
    func missingVersion(_ text: String) throws {
        let refusal = try #require(rejection(of: text))
        #expect(refusal.code == .unsupportedVersion)
        #expect(refusal.reason.contains("formatVersion"))
    }

    @Test("an unknown top-level field is refused, not dropped, naming the field")
    func unknownTopLevelField() throws {
        var text = String(decoding: try SlipCodec().encode(orderSlip()), as: UTF8.self)
        text.removeLast()
        text += #","priority":"high"}"#
        let refusal = try #require(rejection(of: text))
        #expect(refusal.code == .malformed)
        #expect(refusal.reason.contains("'priority'"))
    }

    // MARK: Nested fields and timestamps

    @Test(
        "an unknown field inside an itinerary step, log entry, compensation record or fault is refused, not dropped",
        arguments: [
            #""itinerary":[{"step":"a","arguments":{},"extra":1}]"#,
            #""itinerary":[{"step":"a","arguments":{}}],"log":[{"sequence":0,"step":"a","kind":"execute","outcome":"completed","attempt":1,"startedAt":"2026-11-22T05:34:20Z","durationMicros":1,"processor":"p","extra":1}]"#,
            #""itinerary":[{"step":"a","arguments":{}}],"compensations":[{"step":"a","address":"q","data":null,"sequence":0,"extra":1}]"#,
            #""itinerary":[{"step":"a","arguments":{}}],"fault":{"step":"a","sequence":0,"reason":"r","attempts":1,"extra":1}"#,
        ])
    func unknownNestedField(_ fields: String) {
        let text = #"{"formatVersion":1,"id":"a","template":"t","createdAt":"2026-11-22T05:34:20Z","sequence":1,"#
            + #""attempt":1,"state":"running","# + fields + "}"
        let refusal = rejection(of: text)
        #expect(refusal?.code == .malformed)
        #expect(refusal?.reason.contains("'extra'") == true)
    }

    @Test("a decoded slip re-encodes to the same bytes, so timestamps do not drift from hop to hop")
    func timestampsDoNotDrift() throws {
        let codec = SlipCodec()
        var drifting: [String] = []
        for milliseconds in 0..<1_000 {
            let written = String(format: "2026-11-22T05:34:20.%03dZ", milliseconds)
            let text = #"{"formatVersion":1,"id":"a","template":"t","createdAt":""# + written
                + #"","sequence":0,"attempt":1,"state":"running","itinerary":[{"step":"a","arguments":{}}]}"#
            let once = try codec.encode(try codec.decode([UInt8](text.utf8)))
            let twice = try codec.encode(try codec.decode(once))
            let rewritten = SlipCodec.formatTimestamp(try codec.decode(once).createdAt)
            if once != twice || rewritten != written { drifting.append("\(written) -> \(rewritten)") }
        }
        #expect(drifting.count == 0, "values that drift, e.g. \(drifting.prefix(3))")
    }

    @Test("a date with whole milliseconds survives encode and decode")
    func wholeMillisecondsSurvive() throws {
        let decoder = SlipCodec.makeDecoder()
        let encoder = SlipCodec.makeEncoder()
        var changed: [Int] = []
        for milliseconds in 0..<1_000 {
            let date = instant(plusMilliseconds: milliseconds)
            if try decoder.decode([Date].self, from: try encoder.encode([date]))[0] != date { changed.append(milliseconds) }
        }
        #expect(changed.count == 0, "milliseconds that change, e.g. \(changed.prefix(3))")
    }

    @Test("the binary-exact milliseconds the round-trip tests use do survive")
    func binaryExactMillisecondsSurvive() throws {
        for milliseconds in stride(from: 0, to: 1_000, by: 125) {
            let date = instant(plusMilliseconds: milliseconds)
            let data = try SlipCodec.makeEncoder().encode([date])
            #expect(try SlipCodec.makeDecoder().decode([Date].self, from: data)[0] == date)
        }
    }
}
