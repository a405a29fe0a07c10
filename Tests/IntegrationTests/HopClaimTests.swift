import ExampleLedger
import Foundation
import Slipway
import SlipwayStores
import Testing

/// Two processes of one step sharing one state directory (one hop record file), as several instances on one host do:
/// the hop claim in the file keeps them from running one hop twice. The step is charge-card, the saga's second: it
/// calls the ledger after `SLIPWAY_EXAMPLE_DELAY_MS` (reserve-stock, an inbox step, has no delay to hold a claim with).
@Suite("Hop claims across processes", .serialized)
struct HopClaimTests {
    static let step = "charge-card"
    /// The step's hop in an order's slip: the second (reserve-stock's is the first).
    static func sequence(_ slip: Slip) -> Int { slip.sequence + 1 }

    /// Waits until the process started as `name` logs that it serves its step (its consumers are registered).
    static func waitUntilServing(_ fleet: SagaFleet, _ name: String) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while !fleet.log(name).contains("serving step") {
            guard ContinuousClock.now < deadline else { throw HarnessError("\(name) did not start: \(fleet.log(name))") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The state directory's hop record of the step, opened as one more process would.
    static func hopRecord(_ fleet: SagaFleet) throws -> SQLiteHopRecordStore {
        try SQLiteHopRecordStore(
            path: fleet.directory.appendingPathComponent("state/\(step).hops.sqlite").path, keepFor: nil)
    }

    /// An order as reserve-stock forwards it (its reservation made up), to be published to charge-card's queue
    /// directly: reserve-stock drops a duplicate of a hop it has recorded and forwarded, so copies sent to it would
    /// never reach charge-card twice.
    static func pastReserveStock(_ fleet: SagaFleet, _ producer: Producer) throws -> Slip {
        var slip = try producer.order()
        slip.completeStep(
            compensationData: ["reservationId": "made-up-by-the-test"],
            compensateAddress: fleet.topology.compensateQueue(step: "reserve-stock"),
            variableUpdates: ["reservationId": "made-up-by-the-test"],
            entry: LogEntry(
                sequence: slip.sequence, step: "reserve-stock", kind: .execute, outcome: .completed, attempt: 1,
                startedAt: Date(), durationMicros: 1, processor: "test", reason: nil))
        return slip
    }

    @Test("the same hop delivered to two processes sharing a state directory at once: the handler runs once")
    func duplicateAcrossProcessesRunsOnce() async throws {
        // Slow enough (8 s: at 5 s, a machine busy with a parallel test run once read the second copy only after the
        // hop was recorded) that both copies are in the two processes at the same time, even on a busy machine; and one
        // unacknowledged delivery per process, so that the broker must hand the second copy to the process that does
        // not hold the first (round robin alone is not a promise: under load both copies went to one process, whose
        // in-process guard then kept the claim from ever being asked).
        let slow = ["SLIPWAY_EXAMPLE_DELAY_MS": "8000", "SLIPWAY_LOG_LEVEL": "info", "SLIPWAY_PREFETCH": "1"]
        let fleet = try SagaFleet(name: "claim-dup", environment: [Self.step: slow, "\(Self.step)-2": slow])
        try fleet.startAll()
        try fleet.start("\(Self.step)-2", executable: Self.step, arguments: [])
        defer { fleet.stopAll() }
        try await Self.waitUntilServing(fleet, Self.step)
        try await Self.waitUntilServing(fleet, "\(Self.step)-2")
        let producer = try Producer(fleet: fleet)
        let slip = try Self.pastReserveStock(fleet, producer)
        let follower = try await producer.follow([slip])
        defer { follower.stop() }

        // The very same message twice: the broker hands one copy to each consumer in turn.
        let queue = fleet.topology.executeQueue(step: Self.step)
        try await producer.transport.declareQueue(queue)
        for _ in 0..<2 {
            try await producer.transport.publish([
                .toQueue(queue, body: try SlipCodec().encode(slip), correlationID: slip.id, contentType: SlipCodec.contentType)
            ])
        }
        let first = try await producer.collect(follower, count: 1, timeout: .seconds(60))
        #expect(first[slip.id]?.state == .completed)
        // A later slip through the same queues: by the time it completes, the second copy has been dealt with.
        let later = try producer.order(["orderId": "T-2"])
        #expect(try await producer.run([later])[later.id]?.state == .completed)

        let calls = try await fleet.ledger.calls(slipID: slip.id)
        #expect(calls == ["charge", "ship", "notify"], "a step ran twice: \(calls)")
        #expect(try await fleet.ledger.effects(slipID: slip.id).charges == 1)
        #expect(await follower.next(timeout: .milliseconds(500)) == nil, "a duplicate must not end the slip twice")
        // Each process got a copy: one ran it, the other waited for its claim.
        let logs = fleet.log(Self.step) + fleet.log("\(Self.step)-2")
        #expect(logs.contains("another instance is running this hop: waiting for it"))
    }

    @Test("a process SIGKILLed while holding a hop's claim: the redelivered hop is taken over and completes")
    func claimOfKilledProcessIsTakenOver() async throws {
        // A short lease (renewed every third of it) and a handler longer than it.
        let environment = ["SLIPWAY_EXAMPLE_DELAY_MS": "6000", "SLIPWAY_CLAIM_LEASE_MS": "2000", "SLIPWAY_LOG_LEVEL": "info"]
        let fleet = try SagaFleet(name: "claim-kill", environment: [Self.step: environment, "\(Self.step)-2": environment])
        try fleet.startAll()
        defer { fleet.stopAll() }
        try await Self.waitUntilServing(fleet, Self.step)
        let producer = try Producer(fleet: fleet)
        let slip = try producer.order()
        let follower = try await producer.follow([slip])
        defer { follower.stop() }
        try await producer.sender.send(slip)

        // Until the first process holds the hop's claim (a probe claim in its place is given back at once).
        let record = try Self.hopRecord(fleet)
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        var holder: String?
        while holder == nil, ContinuousClock.now < deadline {
            switch try await record.claim(slipID: slip.id, sequence: Self.sequence(slip), owner: "test-probe", lease: .seconds(1)) {
            case .held(let owner, _): holder = owner
            case .claimed:
                try await record.releaseClaim(slipID: slip.id, sequence: Self.sequence(slip), owner: "test-probe")
                try await Task.sleep(for: .milliseconds(20))
            case .recorded: Issue.record("the hop finished before the kill")
                return
            }
        }
        #expect(holder != nil, "the first process never claimed the hop")
        // The second process is serving when the first dies, so the redelivery reaches it while the claim is live:
        // a holder of this host that no longer runs is not waited for.
        try fleet.start("\(Self.step)-2", executable: Self.step, arguments: [])
        try await Self.waitUntilServing(fleet, "\(Self.step)-2")
        await fleet.kill(Self.step)

        let event = try await producer.collect(follower, count: 1, timeout: .seconds(60))
        #expect(event[slip.id]?.state == .completed)
        // Killed in the handler's delay, before the ledger call: the step's request was made once, by the taker.
        #expect(try await fleet.ledger.calls(slipID: slip.id) == ["charge", "ship", "notify"])
    }

    @Test("a claim whose holder cannot be checked (another host) and stopped renewing is taken over after its lease")
    func expiredClaimIsTakenOver() async throws {
        let environment = ["SLIPWAY_LOG_LEVEL": "info"]
        let fleet = try SagaFleet(name: "claim-lease", environment: [Self.step: environment])
        try fleet.startAll()
        defer { fleet.stopAll() }
        try await Self.waitUntilServing(fleet, Self.step)
        let producer = try Producer(fleet: fleet)
        let slip = try producer.order()
        let follower = try await producer.follow([slip])
        defer { follower.stop() }
        // An instance on another host claimed the hop and died: its claim runs out in 3 s.
        let record = try Self.hopRecord(fleet)
        #expect(
            try await record.claim(slipID: slip.id, sequence: Self.sequence(slip), owner: "gone-host:7", lease: .seconds(3))
                == .claimed)
        try await producer.sender.send(slip)

        let event = try await producer.collect(follower, count: 1, timeout: .seconds(60))
        #expect(event[slip.id]?.state == .completed)
        #expect(try await fleet.ledger.calls(slipID: slip.id) == ["charge", "ship", "notify"])
        let log = fleet.log(Self.step)
        #expect(log.contains("another instance is running this hop: waiting for it"))
        #expect(log.contains("took the hop over"))
    }
}
