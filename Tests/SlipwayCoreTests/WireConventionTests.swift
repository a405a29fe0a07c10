import Foundation
import Testing

@testable import SlipwayCore

/// The names and shapes `docs/slip-format.md` promises to producers and subscribers in other languages.
@Suite("Wire conventions")
struct WireConventionTests {
    @Test("queues and exchanges are named <prefix>.<step>.<kind>, <prefix>.dead-letters and <prefix>.events")
    func names() {
        let topology = Topology()
        #expect(topology.executeQueue(step: "charge-card") == "slipway.charge-card.execute")
        #expect(topology.compensateQueue(step: "charge-card") == "slipway.charge-card.compensate")
        #expect(topology.queue(for: .compensate, step: "ship-order") == "slipway.ship-order.compensate")
        #expect(topology.deadLetterQueue == "slipway.dead-letters")
        #expect(topology.eventsExchange == "slipway.events")
        #expect(Topology(prefix: "staging").executeQueue(step: "a") == "staging.a.execute")
    }

    @Test("a batch of hop events is the events' own bytes in a JSON array, and reads back as those events")
    func eventBatch() throws {
        let events = (1...3).map { index in
            SlipEvent(
                slipID: "s\(index)", template: "t", kind: .execute, step: "charge", sequence: index, attempt: 1,
                outcome: "completed", state: .running, processor: "host:1", at: Date(timeIntervalSince1970: 1_800_000_000))
        }
        let bodies = try events.map { [UInt8](try SlipCodec.makeEncoder().encode($0)) }
        let batch = SlipEventWire.batchBody(bodies)
        #expect(try SlipEventWire.decode(batch) == events)
        #expect(try SlipEventWire.decode(bodies[1]) == [events[1]])
        #expect(SlipEventWire.batchRoutingKey(step: "charge") == "batch.charge.hops")
        #expect(throws: (any Error).self) { try SlipEventWire.decode(Array("[{\"id\":1}]".utf8)) }
    }

    @Test("a terminal event's routing key is terminal.<state>.<slip id>")
    func terminalRoutingKey() {
        let topology = Topology()
        #expect(topology.terminalRoutingKey(state: .compensationFailed, slipID: "s-1") == "terminal.compensation-failed.s-1")
        #expect(topology.terminalBindingKey(slipID: "s-1") == "terminal.*.s-1")
    }

    @Test("a slip event is written with the fields the format documentation lists")
    func eventFields() throws {
        let event = SlipEvent(
            slipID: "s-1", template: "order-fulfillment", kind: .terminal, step: "ship-order", sequence: 2, attempt: 1,
            outcome: "compensated", state: .compensated, processor: "w1:42", at: instant(plusMilliseconds: 125),
            reason: "undeliverable", fault: Fault(step: "ship-order", sequence: 2, reason: "undeliverable", attempts: 1))
        let data = try SlipCodec.makeEncoder().encode(event)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(
            Set(object.keys) == [
                "formatVersion", "id", "slipID", "template", "kind", "step", "sequence", "attempt", "outcome", "state",
                "processor", "at", "reason", "fault",
            ])
        #expect(object["formatVersion"] as? Int == 1)
        #expect(object["at"] as? String == "2026-11-22T05:34:20.125Z")
        #expect(object["kind"] as? String == "terminal")
        #expect(try SlipCodec.makeDecoder().decode(SlipEvent.self, from: data) == event)

        let bare = SlipEvent(
            slipID: "s-1", template: "t", kind: .parked, step: "a", sequence: 0, attempt: 1, outcome: "malformed",
            state: .running, processor: "w1:42", at: instant())
        let bareObject = try #require(
            try JSONSerialization.jsonObject(with: try SlipCodec.makeEncoder().encode(bare)) as? [String: Any])
        #expect(bareObject["reason"] == nil && bareObject["fault"] == nil)
    }

    @Test("the rejection codes are the five the format documentation lists")
    func rejectionCodes() {
        #expect(
            Fixture.codes.map(\.rawValue) == ["malformed", "unsupported-version", "invalid", "too-large", "misrouted"])
    }

    @Test("names are 1 to 64 of A-Z a-z 0-9 _ -", arguments: [
        ("charge-card", true), ("Step_2", true), (String(repeating: "a", count: 64), true), ("0", true),
        ("", false), (String(repeating: "a", count: 65), false), ("charge.card", false), ("charge card", false),
        ("é", false), ("a\n", false), ("a*", false), ("a#", false),
    ])
    func validNames(_ name: String, _ valid: Bool) {
        #expect(Slip.isValidName(name) == valid)
    }
}
