import Foundation
import Slipway
import SlipwayAudit
import Testing

/// The audit queue exists as soon as anything that publishes events has started: events are never sent to an exchange
/// with no queue bound (the broker would confirm and drop them).
@Suite("Audit queue declared by processors")
struct AuditQueueTests {
    @Test("slips run while no audit sink was ever started are all in the audit trail once the sink starts for the first time")
    func hopsBeforeTheSinksFirstStartAreRecorded() async throws {
        let fleet = try SagaFleet(name: "audit-late")
        try fleet.startAll()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let completed = try producer.order()
        let compensated = try producer.order(["country": "AQ"])
        let ends = try await producer.run([completed, compensated])
        #expect(ends[completed.id]?.state == .completed)
        #expect(ends[compensated.id]?.state == .compensated)

        // Only now does a sink start, for the first time: every hop is waiting in its queue.
        try fleet.startSink()
        typealias Row = AuditTests.Row
        let done = try await AuditTests.recordedTimeline(fleet, completed.id)
        #expect(
            done.hops.map(Row.init) == [
                Row(0, "execute", "reserve-stock", "completed"), Row(1, "execute", "charge-card", "completed"),
                Row(2, "execute", "ship-order", "completed"), Row(3, "execute", "notify-customer", "completed"),
                Row(3, "terminal", "notify-customer", "completed"),
            ], "sink log:\n\(fleet.log("audit-sink"))")
        let undone = try await AuditTests.recordedTimeline(fleet, compensated.id)
        #expect(
            undone.hops.map(Row.init) == [
                Row(0, "execute", "reserve-stock", "completed"), Row(1, "execute", "charge-card", "completed"),
                Row(2, "execute", "ship-order", "faulted"), Row(3, "compensate", "charge-card", "completed"),
                Row(4, "compensate", "reserve-stock", "completed"), Row(4, "terminal", "reserve-stock", "compensated"),
            ])
    }
}
