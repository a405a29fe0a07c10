import ExampleLedger
import Foundation
import Slipway
import SlipwayTransport
import Testing

/// The example order saga over a real RabbitMQ, each processor a separate OS process.
@Suite("Order saga over RabbitMQ, processors as processes")
struct SagaTests {
    @Test("an order completes through all four processors and is charged exactly once")
    func orderCompletes() async throws {
        let fleet = try SagaFleet(name: "complete")
        try fleet.startAll()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let slip = try producer.order(["sku": "gadget", "quantity": 2])

        let events = try await producer.run([slip])

        #expect(events[slip.id]?.state == .completed)
        #expect(try await fleet.ledger.journal(slipID: slip.id) == ["charge", "ship", "notify"])
        let effects = try await fleet.ledger.effects(slipID: slip.id)
        #expect(effects.activeCharges == 1 && effects.charges == 1)
        #expect(effects.activeShipments == 1 && effects.notifications == 1)
        // The inbox step's effect, in its own hop record file: one reservation of the two gadgets.
        #expect(try await fleet.reservations(slipID: slip.id) == .held)
        #expect(try await fleet.available(sku: "gadget") == Warehouse.initialStock["gadget"]! - 2)
    }

    struct FailureCase: Sendable, CustomTestStringConvertible {
        var step: String
        var values: [String: JSONValue]
        var state: SlipState
        /// What the external systems did, in order: effects, then their undos newest first.
        var journal: [String]
        /// What reserve-stock (an inbox step) left in its own file.
        var reservations: Warehouse.Reservations
        var testDescription: String { "fault at \(step)" }
    }

    static let failures: [FailureCase] = [
        FailureCase(step: "reserve-stock", values: ["sku": "sold-out"], state: .faulted, journal: [], reservations: .init()),
        FailureCase(
            step: "charge-card", values: ["card": .string(Ledger.declinedCard)], state: .compensated,
            journal: [], reservations: .released),
        FailureCase(
            step: "ship-order", values: ["country": "AQ"], state: .compensated,
            journal: ["charge", "refund"], reservations: .released),
        FailureCase(
            step: "notify-customer", values: ["email": "not-an-address"], state: .compensated,
            journal: ["charge", "ship", "cancel-shipment", "refund"], reservations: .released),
    ]

    @Test("a saga failing at a step compensates exactly the completed steps, newest first", arguments: failures)
    func failureCompensates(_ failure: FailureCase) async throws {
        let fleet = try SagaFleet(name: "fault-\(failure.step)")
        try fleet.startAll()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let slip = try producer.order(failure.values)

        let event = try #require(try await producer.run([slip])[slip.id])

        #expect(event.state == failure.state)
        #expect(event.fault?.step == failure.step)
        #expect(try await fleet.ledger.journal(slipID: slip.id) == failure.journal)
        #expect(try await fleet.ledger.effects(slipID: slip.id).hasNoNetEffect)
        #expect(try await fleet.reservations(slipID: slip.id) == failure.reservations)
        // The warehouse's undo in its own file, after the external systems' undos: the walk back ends with it.
        let undone = event.log?.filter { $0.kind == .compensate }.map(\.step) ?? []
        #expect(undone.last == (failure.reservations.made == 0 ? nil : "reserve-stock"), "undone: \(undone)")
        #expect(try await fleet.available(sku: "widget") == Warehouse.initialStock["widget"])
    }

    @Test("a duplicate of a hop already processed, published straight to the step's queue, does not charge twice")
    func duplicateHopRunsOnce() async throws {
        let fleet = try SagaFleet(name: "duplicate")
        try fleet.startAll()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let slip = try producer.order()
        let follower = try await producer.follow([slip])
        defer { follower.stop() }

        // The very same message (same slip, same hop) twice, as a producer retrying a publish would do.
        try await producer.sender.send(slip)
        try await producer.sender.send(slip)
        let first = try await producer.collect(follower, count: 1, timeout: .seconds(60))
        #expect(first[slip.id]?.state == .completed)

        // A later slip through the same queues: by the time it completes, the duplicate has been consumed.
        let later = try producer.order(["orderId": "T-2"])
        #expect(try await producer.run([later])[later.id]?.state == .completed)

        let effects = try await fleet.ledger.effects(slipID: slip.id)
        #expect(effects.charges == 1)
        #expect(try await fleet.ledger.journal(slipID: slip.id) == ["charge", "ship", "notify"])
        #expect(try await fleet.ledger.calls(slipID: slip.id) == ["charge", "ship", "notify"], "a step ran again")
        #expect(try await fleet.reservations(slipID: slip.id) == .held, "reserve-stock reserved again")
        #expect(await follower.next(timeout: .milliseconds(500)) == nil, "a duplicate must not end the slip twice")
    }

    @Test("a garbage body published to a step's queue is parked with its reason, and the processor serves the next slip")
    func garbageIsParked() async throws {
        let fleet = try SagaFleet(name: "garbage")
        try fleet.startAll()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let queue = fleet.topology.executeQueue(step: "charge-card")
        try await producer.transport.declareQueue(queue)

        try await producer.transport.publish([.toQueue(queue, body: Array("{not json at all".utf8))])
        let slip = try producer.order()
        let events = try await producer.run([slip])

        #expect(events[slip.id]?.state == .completed)
        let parked = try await producer.parked(count: 1)
        try #require(parked.count == 1)
        #expect(parked[0].headers[ParkedHeaders.reasonCode] == "malformed")
        #expect(parked[0].headers[ParkedHeaders.originalQueue] == queue)
        #expect(parked[0].headers[ParkedHeaders.reason]?.isEmpty == false)
        #expect(parked[0].body == Array("{not json at all".utf8), "the parked body is the original, for inspection and replay")
    }

    @Test("a slip of an unknown format version, a misrouted slip and an oversize message are parked with their reasons")
    func unsupportedAndMisroutedAreParked() async throws {
        let fleet = try SagaFleet(name: "refused")
        try fleet.start("ship-order")
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let queue = fleet.topology.executeQueue(step: "ship-order")
        try await producer.transport.declareQueue(queue)
        var newer = try JSONSerialization.jsonObject(with: Data(SlipCodec().encode(producer.order()))) as! [String: Any]
        newer["formatVersion"] = 2
        let misrouted = try producer.order()  // Its itinerary starts at reserve-stock, not ship-order.

        // Over the default 1 MiB limit: a slip whose variables carry 2 MiB, published raw (a sender refuses it).
        var oversize = try producer.order()
        oversize.variables["blob"] = .string(String(repeating: "x", count: 2 << 20))

        try await producer.transport.publish([
            .toQueue(queue, body: Array(try JSONSerialization.data(withJSONObject: newer))),
            .toQueue(queue, body: try SlipCodec().encode(misrouted)),
            .toQueue(queue, body: try SlipCodec().encode(oversize)),
        ])

        let parked = try await producer.parked(count: 3)
        let codes = Set(parked.compactMap { $0.headers[ParkedHeaders.reasonCode] })
        #expect(codes == ["unsupported-version", "misrouted", "too-large"])
        #expect(parked.first { $0.headers[ParkedHeaders.reasonCode] == "too-large" }?.body.count ?? 0 > 2 << 20)
        #expect(parked.first { $0.headers[ParkedHeaders.reasonCode] == "misrouted" }?.headers[ParkedHeaders.slipID] == misrouted.id)
    }

    @Test("200 slips in flight while charge-card is killed with SIGKILL and restarted: none lost, none doubled")
    func killAndRestartLosesNothing() async throws {
        // A slower charge-card keeps slips queued and in flight at the moment of the kill.
        let fleet = try SagaFleet(name: "kill", environment: ["charge-card": ["SLIPWAY_EXAMPLE_DELAY_MS": "30"]])
        try fleet.startAll()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let slips = try (1...200).map { index in
            try producer.order([
                "orderId": .string("K-\(index)"),
                // Every tenth order is declined, so compensations run through the crash too.
                "card": index % 10 == 0 ? .string(Ledger.declinedCard) : "4242-4242-4242-4242",
            ])
        }
        let follower = try await producer.follow(slips)
        defer { follower.stop() }
        for slip in slips { try await producer.sender.send(slip) }

        // Kill once some slips have ended and many are still on their way.
        var events: [String: SlipEvent] = [:]
        var duplicates = 0
        try await producer.collect(follower, until: 20, into: &events, duplicates: &duplicates, timeout: .seconds(60))
        await fleet.kill("charge-card")
        try fleet.start("charge-card")
        try await producer.collect(follower, until: 200, into: &events, duplicates: &duplicates, timeout: .seconds(120))
        // Anything that would end a slip twice has had time to arrive while the last slips finished.
        while let extra = await follower.next(timeout: .milliseconds(500)) {
            if events[extra.slipID] != nil { duplicates += 1 }
        }

        #expect(events.count == 200, "lost: \(200 - events.count)")
        #expect(duplicates == 0, "a slip ended twice")
        for (index, slip) in slips.enumerated() {
            let declined = (index + 1) % 10 == 0
            let effects = try await fleet.ledger.effects(slipID: slip.id)
            #expect(events[slip.id]?.state == (declined ? .compensated : .completed), "slip \(index + 1)")
            #expect(effects.charges == (declined ? 0 : 1), "slip \(index + 1) charged \(effects.charges) times")
            #expect(effects.shipments == (declined ? 0 : 1), "slip \(index + 1): \(effects)")
            let reservations = try await fleet.reservations(slipID: slip.id)
            #expect(reservations == (declined ? .released : .held), "slip \(index + 1): \(reservations)")
            if declined { #expect(effects.hasNoNetEffect, "slip \(index + 1): \(effects)") }
        }
    }
}
