import Foundation
import SlipwayCore
import Testing

@testable import SlipwayAudit

/// Parks of slips read only from their body (a signature that does not hold, a slip that breaks the format), and
/// where a slip that has not ended waits.
@Suite struct ParkAndWaitTests {
    static let now = Date(timeIntervalSince1970: 1_790_000_000)

    /// A parked event as a processor makes it for a body it could only peek at: an id of its own, state a guess.
    static func peekedPark(
        _ slipID: String, template: String = "order", step: String = "charge-card", sequence: Int = 0,
        code: String = "signature", at: Date
    ) -> SlipEvent {
        SlipEvent(
            id: "\(slipID).parked.\(UUID().uuidString.lowercased())", slipID: slipID, template: template, kind: .parked,
            step: step, sequence: sequence, attempt: 1, outcome: code, state: .running, processor: "h:1",
            at: wholeMilliseconds(at), reason: "the message is not signed")
    }

    @Test func aSlipParkedBeforeItsFirstHopIsListedUnderItsIdWithTheParkAsItsState() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        try store.record([Self.peekedPark("unsigned-1", at: Self.now.addingTimeInterval(-60))])

        let slip = try store.show(slipID: "unsigned-1").slip
        #expect(slip.template == "order")
        #expect(slip.lastKind == "parked" && slip.lastOutcome == "signature")
        #expect(slip.waitingOn?.kind == "dead-letters")
        let failures = try store.failures(since: Self.now.addingTimeInterval(-3_600), until: Self.now)
        #expect(failures.failures.map(\.slipID) == ["unsigned-1"])
        #expect(try store.stuck(olderThan: 30, now: Self.now).slips.map(\.slipID) == ["unsigned-1"])
    }

    @Test func aParkNeverReopensAFinishedSlipAndAnEndAlwaysReplacesAPark() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        // A body naming a finished slip, with any sequence (its own, unverified), parked after the end...
        let finished = Saga.completed("finished")
        try store.record(finished.events + [Self.peekedPark("finished", sequence: 999, at: finished.now.addingTimeInterval(1))])
        var slip = try store.show(slipID: "finished").slip
        #expect(slip.state == .completed && slip.lastKind == "terminal")
        #expect(try store.show(slipID: "finished").hops.filter { $0.kind == "parked" }.count == 1, "still in its timeline")

        // ...or recorded before the end arrives: the end wins either way.
        let other = Saga.completed("other")
        try store.record([Self.peekedPark("other", sequence: 999, at: other.now)])
        #expect(try store.show(slipID: "other").slip.lastKind == "parked")
        try store.record(other.events)
        slip = try store.show(slipID: "other").slip
        #expect(slip.state == .completed && slip.lastKind == "terminal")
    }

    @Test func aParkKeepsTheStateTheSlipHad() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        var saga = Saga("undoing")
        saga.hop("reserve-stock")
        saga.hop("charge-card", .faulted, state: .compensating, reason: "declined")
        try store.record(saga.events + [Self.peekedPark("undoing", step: "reserve-stock", sequence: 2, at: saga.now)])
        let slip = try store.show(slipID: "undoing").slip
        #expect(slip.state == .compensating)
        #expect(slip.lastKind == "parked" && slip.lastStep == "reserve-stock")
    }

    @Test func stuckSaysWhichQueueEachSlipWaitsOn() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        let old = Self.now.addingTimeInterval(-3_600)
        // Another slip of the template went reserve-stock -> charge-card: the guess for a slip after reserve-stock.
        let reference = Saga.completed("reference", at: old.addingTimeInterval(-600))
        var afterReserve = Saga("after-reserve", at: old)
        afterReserve.hop("reserve-stock")
        var afterShip = Saga("after-ship", at: old)  // no slip of the template ever went past ship-order
        afterShip.hop("reserve-stock")
        afterShip.hop("charge-card")
        afterShip.hop("ship-order")
        var retrying = Saga("retrying", at: old)
        retrying.hop("reserve-stock")
        retrying.hop("charge-card", .retried, attempt: 2, reason: "timeout")
        var undoing = Saga("undoing", at: old)
        undoing.hop("reserve-stock")
        undoing.hop("charge-card")
        undoing.hop("ship-order", .faulted, state: .compensating, reason: "no carrier")
        var undoneOnce = Saga("undone-once", at: old)
        undoneOnce.hop("reserve-stock")
        undoneOnce.hop("charge-card")
        undoneOnce.hop("ship-order", .faulted, state: .compensating, reason: "no carrier")
        undoneOnce.hop("charge-card", kind: .compensate, state: .compensating)
        try store.record(
            reference.events + afterReserve.events + afterShip.events + retrying.events + undoing.events
                + undoneOnce.events)

        let stuck = try store.stuck(olderThan: 600, now: Self.now)
        let waits = Dictionary(uniqueKeysWithValues: stuck.slips.map { ($0.slipID, $0.waitingOn) })
        #expect(waits["after-reserve"]??.queue == "charge-card.execute?")
        #expect(waits["after-reserve"]??.certain == false)
        #expect(waits["after-ship"]??.step == nil)
        #expect(waits["after-ship"]??.note?.contains("does not record itineraries") == true)
        #expect(waits["retrying"]??.queue == "charge-card.execute")
        #expect(waits["retrying"]??.note == "attempt 3")
        #expect(waits["undoing"]??.queue == "charge-card.compensate?")
        #expect(waits["undone-once"]??.queue == "reserve-stock.compensate?")
        #expect(try store.show(slipID: "retrying").slip.waitingOn?.queue == "charge-card.execute")
        #expect(try store.show(slipID: "reference").slip.waitingOn == nil, "a finished slip waits on nothing")
    }
}
