import Foundation
import Slipway
import Testing

/// What a test of the example saga under faults checks at the end: the ledger and the warehouse, the truth of what each
/// step did.
extension SagaFleet {
    /// The slips whose customer has been notified: finished, as far as the ledger knows (their terminal events may
    /// have been published while no listener of the test's existed).
    func finished(_ slips: [Slip]) async throws -> [Slip] {
        var done: [Slip] = []
        for slip in slips where try await ledger.effects(slipID: slip.id).notifications > 0 { done.append(slip) }
        return done
    }

    /// Waits up to `timeout` for every slip to finish, then expects each to have run every step exactly once: one
    /// effect of each kind, and one call of each step's handler (no process died, so a redelivery or a publish sent
    /// again must have been answered from the hop record, never run again).
    func expectEverySlipRanEachStepOnce(_ slips: [Slip], timeout: Duration) async throws {
        var unfinished = slips
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while !unfinished.isEmpty && ContinuousClock.now < deadline {
            let done = Set(try await finished(unfinished).map(\.id))
            unfinished.removeAll { done.contains($0.id) }
            if !unfinished.isEmpty { try await Task.sleep(for: .milliseconds(500)) }
        }
        #expect(unfinished.isEmpty, "\(unfinished.count) slips never finished (lost)")
        for slip in slips {
            let effects = try await ledger.effects(slipID: slip.id)
            #expect(effects.charges == 1 && effects.shipments == 1, "\(effects)")
            #expect(effects.notifications == 1, "notified \(effects.notifications) times")
            #expect(try await ledger.calls(slipID: slip.id) == ["charge", "ship", "notify"])
            // reserve-stock, an inbox step, has no calls to count: its reservation, in its own file, is.
            #expect(try await reservations(slipID: slip.id) == .held)
        }
    }
}
