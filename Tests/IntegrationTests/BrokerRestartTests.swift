import ExampleLedger
import Foundation
import Slipway
import Testing

@Suite("Broker restarts")
struct BrokerRestartTests {
    @Test("RabbitMQ restarted while 300 slips are in flight: processors reconnect and every slip ends once, charged once")
    func brokerRestartLosesNothing() async throws {
        let broker = try await PrivateBroker.start()
        defer { broker.stop() }
        let fleet = try SagaFleet(
            name: "restart", amqpURL: broker.url, environment: ["charge-card": ["SLIPWAY_EXAMPLE_DELAY_MS": "500"]])
        try fleet.startAll()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let slips = try (1...300).map { try producer.order(["orderId": .string("R-\($0)")]) }
        for slip in slips { try await producer.sender.send(slip) }

        // Wait until the saga is well under way, then take the broker down and up again (its data kept).
        func finished() async throws -> Int {
            var count = 0
            for slip in slips where try await fleet.ledger.effects(slipID: slip.id).notifications > 0 { count += 1 }
            return count
        }
        let waitUntil = ContinuousClock.now.advanced(by: .seconds(60))
        while try await finished() < 20 && ContinuousClock.now < waitUntil {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await broker.restart()
        // 500 ms per charge, 8 at a time: the 300 slips need about 19 s, the restart about 8 s.
        let finishedAtRestart = try await finished()
        #expect(finishedAtRestart < slips.count, "the restart must catch slips in flight")

        // The terminal events of slips that ended while the broker was down or before this listener existed are not
        // ours to see: the ledger and the hop records are the truth, so the test reads those.
        var unfinished = slips
        let deadline = ContinuousClock.now.advanced(by: .seconds(180))
        while !unfinished.isEmpty && ContinuousClock.now < deadline {
            var still: [Slip] = []
            for slip in unfinished where try await fleet.ledger.effects(slipID: slip.id).notifications == 0 {
                still.append(slip)
            }
            unfinished = still
            if !unfinished.isEmpty { try await Task.sleep(for: .milliseconds(500)) }
        }
        #expect(unfinished.isEmpty, "\(unfinished.count) slips never finished (lost)")
        for slip in slips {
            let effects = try await fleet.ledger.effects(slipID: slip.id)
            #expect(effects.charges == 1 && effects.reservations == 1 && effects.shipments == 1, "\(effects)")
            #expect(effects.notifications == 1, "notified \(effects.notifications) times")
            // No process died, so no handler had a reason to run twice: redeliveries were answered from the record.
            #expect(try await fleet.ledger.calls(slipID: slip.id) == ["reserve", "charge", "ship", "notify"])
        }
    }
}
