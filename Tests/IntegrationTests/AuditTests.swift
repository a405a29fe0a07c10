import ExampleLedger
import Foundation
import Slipway
import SlipwayAudit
import Testing

/// The audit sink as a process beside the saga's processors, and the `slip audit` queries an operator runs.
@Suite("Audit trail over RabbitMQ")
struct AuditTests {
    /// Polls `slip audit show ID --json` until the sink has recorded the slip's end.
    static func recordedTimeline(_ fleet: SagaFleet, _ slipID: String, timeout: Duration = .seconds(60)) async throws
        -> AuditTimeline
    {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            let result = try await fleet.slip(["audit", "show", slipID, "--json"])
            if result.status == 0 {
                let timeline = try SlipCodec.makeDecoder().decode(AuditTimeline.self, from: Data(result.output.utf8))
                if timeline.slip.terminal { return timeline }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw HarnessError("the audit trail did not record the end of slip \(slipID) within \(timeout)")
    }

    struct Row: Equatable, CustomStringConvertible {
        var sequence: Int, kind: String, step: String, outcome: String
        init(_ sequence: Int, _ kind: String, _ step: String, _ outcome: String) {
            (self.sequence, self.kind, self.step, self.outcome) = (sequence, kind, step, outcome)
        }
        init(_ hop: AuditHop) { self.init(hop.sequence, hop.kind, hop.step, hop.outcome) }
        var description: String { "\(sequence) \(kind) \(step) \(outcome)" }
    }

    @Test("after completed and compensated orders, `slip audit show` lists exactly their hops in order, as JSON too")
    func showListsTheHopsInOrder() async throws {
        let fleet = try SagaFleet(name: "audit-show")
        try fleet.startAll()
        try fleet.startSink()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let completed = try producer.order()
        let compensated = try producer.order(["country": "AQ"])
        _ = try await producer.run([completed, compensated])

        let done = try await Self.recordedTimeline(fleet, completed.id)
        #expect(done.slip.state == .completed)
        #expect(
            done.hops.map(Row.init) == [
                Row(0, "execute", "reserve-stock", "completed"), Row(1, "execute", "charge-card", "completed"),
                Row(2, "execute", "ship-order", "completed"), Row(3, "execute", "notify-customer", "completed"),
                Row(3, "terminal", "notify-customer", "completed"),
            ])
        let undone = try await Self.recordedTimeline(fleet, compensated.id)
        #expect(undone.slip.state == .compensated)
        #expect(undone.slip.faultStep == "ship-order")
        #expect(
            undone.hops.map(Row.init) == [
                Row(0, "execute", "reserve-stock", "completed"), Row(1, "execute", "charge-card", "completed"),
                Row(2, "execute", "ship-order", "faulted"), Row(3, "compensate", "charge-card", "completed"),
                Row(4, "compensate", "reserve-stock", "completed"), Row(4, "terminal", "reserve-stock", "compensated"),
            ])
        #expect(undone.hops.allSatisfy { $0.processor.contains(":") })

        let human = try await fleet.slip(["audit", "show", compensated.id])
        #expect(human.status == 0)
        for step in ["reserve-stock", "charge-card", "ship-order", "compensated"] { #expect(human.output.contains(step)) }
        let unknown = try await fleet.slip(["audit", "show", "no-such-slip"])
        #expect(unknown.status != 0 && unknown.errors.hasPrefix("slip: ") && unknown.output.isEmpty)
    }

    @Test("the sink killed with SIGKILL mid-run and restarted ends with exactly one row per hop")
    func sinkKillLosesAndDuplicatesNothing() async throws {
        let fleet = try SagaFleet(name: "audit-kill")
        try fleet.startAll()
        try fleet.startSink()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let slips = try (1...200).map { index in
            try producer.order(["orderId": .string("A-\(index)"), "card": index % 5 == 0 ? .string(Ledger.declinedCard) : "4242-4242-4242-4242"])
        }
        let follower = try await producer.follow(slips)
        defer { follower.stop() }
        for slip in slips { try await producer.sender.send(slip) }
        _ = try await producer.collect(follower, count: 30, timeout: .seconds(60))
        await fleet.kill("audit-sink")
        try fleet.startSink()
        _ = try await producer.collect(follower, count: slips.count - 30, timeout: .seconds(120))

        let store = try AuditStore.openForReading(path: fleet.auditDB)
        for (index, slip) in slips.enumerated() {
            let timeline = try await Self.recordedTimeline(fleet, slip.id)
            let declined = (index + 1) % 5 == 0
            // Completed: four executes and the end. Declined: reserve, charge (faulted), undo reserve, the end.
            #expect(timeline.hops.count == (declined ? 4 : 5), "slip \(index + 1): \(timeline.hops.map(Row.init))")
            #expect(Set(timeline.hops.map(\.eventID)).count == timeline.hops.count)
        }
        #expect(try store.stats().events == slips.count * 5 - (slips.count / 5))
    }

    @Test("an event delivered twice adds no row")
    func duplicateEventsAddNoRows() async throws {
        let fleet = try SagaFleet(name: "audit-dup")
        try fleet.startAll()
        try fleet.startSink()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let slip = try producer.order()
        let ended = try #require(try await producer.run([slip])[slip.id])
        let before = try await Self.recordedTimeline(fleet, slip.id)

        // The very same terminal event again, as a publisher retrying after a lost confirm would send it.
        var again = ended
        again.log = nil
        try await producer.transport.publish([
            OutgoingMessage(
                exchange: fleet.topology.eventsExchange, routingKey: ended.routingKey,
                body: [UInt8](try SlipCodec.makeEncoder().encode(again)), messageID: ended.id)
        ])
        // A later slip's end is recorded after the duplicate: the sink has consumed it by then.
        let later = try producer.order(["orderId": "T-2"])
        _ = try await producer.run([later])
        _ = try await Self.recordedTimeline(fleet, later.id)

        let after = try await Self.recordedTimeline(fleet, slip.id)
        #expect(after.hops == before.hops)
        #expect(after.slip.events == before.slip.events)
    }

    @Test("`slip audit stuck` finds a slip whose next processor is down, and not one that completed")
    func stuckFindsTheSlipWaitingForADownProcessor() async throws {
        let fleet = try SagaFleet(name: "audit-stuck")
        try fleet.startAll()
        try fleet.startSink()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let completed = try producer.order()
        _ = try await producer.run([completed])
        _ = try await Self.recordedTimeline(fleet, completed.id)

        _ = await fleet.stop("ship-order")
        let waiting = try producer.order(["orderId": "T-stuck"])
        try await producer.sender.send(waiting)

        var stuck: AuditStuckList?
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while ContinuousClock.now < deadline {
            let result = try await fleet.slip(["audit", "stuck", "--older-than", "1s", "--json"])
            try #require(result.status == 0, "\(result.errors)")
            let list = try SlipCodec.makeDecoder().decode(AuditStuckList.self, from: Data(result.output.utf8))
            if list.slips.contains(where: { $0.slipID == waiting.id }) {
                stuck = list
                break
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        let found = try #require(stuck, "the slip waiting for ship-order was never reported stuck")
        let entry = try #require(found.slips.first { $0.slipID == waiting.id })
        #expect(entry.lastStep == "charge-card" && entry.state == .running)
        #expect(!found.slips.contains { $0.slipID == completed.id })
    }
}
