import ExampleLedger
import Foundation
import Slipway
import Testing

@Suite("Graceful shutdown")
struct ShutdownTests {
    @Test("SIGTERM while hops are in flight: the processor finishes them, exits 0, and nothing runs twice after restart")
    func sigtermFinishesHopsInFlight() async throws {
        // Slow charges, so that several are mid-hop when the signal comes.
        let fleet = try SagaFleet(name: "sigterm", environment: ["charge-card": ["SLIPWAY_EXAMPLE_DELAY_MS": "300", "SLIPWAY_LOG_LEVEL": "info"]])
        try fleet.startAll()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let slips = try (1...30).map { try producer.order(["orderId": .string("S-\($0)")]) }
        let follower = try await producer.follow(slips)
        defer { follower.stop() }
        for slip in slips { try await producer.sender.send(slip) }

        // Wait for the first charge calls: handlers are running now.
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        var charging = 0
        while charging == 0 && ContinuousClock.now < deadline {
            charging = 0
            for slip in slips where try await fleet.ledger.calls(slipID: slip.id).contains("charge") { charging += 1 }
            try await Task.sleep(for: .milliseconds(20))
        }
        try #require(charging > 0)
        let status = await fleet.stop("charge-card")
        #expect(status == 0, "a graceful stop exits 0")
        try fleet.start("charge-card")

        let events = try await producer.collect(follower, count: slips.count, timeout: .seconds(120))
        #expect(events.values.allSatisfy { $0.state == .completed })
        for slip in slips {
            #expect(try await fleet.ledger.calls(slipID: slip.id) == ["charge", "ship", "notify"])
            #expect(try await fleet.reservations(slipID: slip.id) == .held)
        }
    }
}
