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
            name: "restart", amqpURL: broker.url, environment: ["charge-card": ["SLIPWAY_EXAMPLE_DELAY_MS": "1500"]])
        try fleet.startAll()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let slips = try (1...300).map { try producer.order(["orderId": .string("R-\($0)")]) }
        for slip in slips { try await producer.sender.send(slip) }

        // Wait until the saga is well under way, then take the broker down and up again (its data kept).
        let waitUntil = ContinuousClock.now.advanced(by: .seconds(60))
        while try await fleet.finished(slips).count < 20 && ContinuousClock.now < waitUntil {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await broker.restart()
        // 1.5 s per charge, 8 at a time: the 300 slips need about 56 s, the restart about 8 s (longer on a busy
        // machine, where the broker keeps serving while it shuts down).
        let finishedAtRestart = try await fleet.finished(slips).count
        #expect(finishedAtRestart < slips.count, "the restart must catch slips in flight")

        // The terminal events of slips that ended while the broker was down or before this listener existed are not
        // ours to see: the ledger and the hop records are the truth, so the test reads those.
        try await fleet.expectEverySlipRanEachStepOnce(slips, timeout: .seconds(180))
    }
}
