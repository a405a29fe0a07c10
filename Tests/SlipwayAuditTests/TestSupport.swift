import Foundation
import SlipwayCore
import Testing

@testable import SlipwayAudit

/// A fresh directory for one test's database files, removed afterwards.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-audit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// An instant to the millisecond, as events carry them on the wire and the store keeps them.
func wholeMilliseconds(_ date: Date) -> Date {
    Date(timeIntervalSince1970: Double(Int64((date.timeIntervalSince1970 * 1_000).rounded())) / 1_000)
}

/// Builds the events a slip's processors publish, hop by hop, with times that advance (whole milliseconds).
struct Saga {
    let slipID: String
    let template: String
    let createdAt: Date
    var now: Date
    var sequence = 0
    var events: [SlipEvent] = []
    var lastStep = ""
    var lastAttempt = 1

    init(_ slipID: String, template: String = "order", at start: Date = Date(timeIntervalSince1970: 1_790_000_000)) {
        self.slipID = slipID
        self.template = template
        self.createdAt = wholeMilliseconds(start)
        self.now = wholeMilliseconds(start)
    }

    /// A hop: `retried` keeps the sequence, anything else advances it.
    mutating func hop(
        _ step: String, _ outcome: HopOutcome = .completed, kind: SlipEvent.Kind = .execute, state: SlipState = .running,
        attempt: Int = 1, micros: Int64 = 10_000, reason: String? = nil
    ) {
        let started = wholeMilliseconds(now.addingTimeInterval(0.001))
        now = wholeMilliseconds(started.addingTimeInterval(Double(micros) / 1_000_000 + 0.001))
        events.append(SlipEvent(
            slipID: slipID, template: template, kind: kind, step: step, sequence: sequence, attempt: attempt,
            outcome: outcome.rawValue, state: state, processor: "host-\(step):42", startedAt: started,
            durationMicros: micros, at: now, reason: reason))
        lastStep = step
        lastAttempt = attempt
        if outcome != .retried { sequence += 1 }
    }

    mutating func terminal(_ state: SlipState, fault: Fault? = nil) {
        now = wholeMilliseconds(now.addingTimeInterval(0.001))
        events.append(SlipEvent(
            slipID: slipID, template: template, kind: .terminal, step: lastStep, sequence: max(sequence - 1, 0),
            attempt: lastAttempt, outcome: state.rawValue, state: state, processor: "host-\(lastStep):42", at: now,
            reason: fault?.reason, fault: fault, createdAt: createdAt))
    }

    mutating func parked(_ step: String, code: String, reason: String, state: SlipState = .running) {
        now = wholeMilliseconds(now.addingTimeInterval(0.001))
        events.append(SlipEvent(
            slipID: slipID, template: template, kind: .parked, step: step, sequence: sequence, attempt: 1,
            outcome: code, state: state, processor: "host-\(step):42", at: now, reason: reason))
    }

    /// reserve → charge (declined) → undo reserve: compensated.
    static func declined(_ slipID: String, at start: Date = Date(timeIntervalSince1970: 1_790_000_000)) -> Saga {
        var saga = Saga(slipID, at: start)
        saga.hop("reserve-stock", micros: 8_000)
        saga.hop("charge-card", .retried, attempt: 1, micros: 5_000_000, reason: "connection reset by peer")
        saga.hop("charge-card", .faulted, state: .compensating, attempt: 2, micros: 120_000, reason: "card declined")
        saga.hop("reserve-stock", kind: .compensate, state: .compensated, micros: 4_000)
        saga.terminal(.compensated, fault: Fault(step: "charge-card", sequence: 1, reason: "card declined", attempts: 2))
        return saga
    }

    /// Every step completes.
    static func completed(
        _ slipID: String, template: String = "order", steps: [String] = ["reserve-stock", "charge-card", "ship-order"],
        at start: Date = Date(timeIntervalSince1970: 1_790_000_000)
    ) -> Saga {
        var saga = Saga(slipID, template: template, at: start)
        for (index, step) in steps.enumerated() {
            saga.hop(step, state: index == steps.count - 1 ? .completed : .running)
        }
        saga.terminal(.completed)
        return saga
    }
}

extension AuditStore {
    /// Rows in a table, for tests.
    func count(_ table: String) throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0 }
    }
}

/// The error `body` throws, as an `AuditError`.
func auditError(_ body: () throws -> Void) -> AuditError? {
    do {
        try body()
        return nil
    } catch {
        return error as? AuditError
    }
}
