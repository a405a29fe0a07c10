import Foundation
import GRDB
import SlipwayCore

/// Where a slip that has not ended waits (`AuditWaitingOn`), worked out from its newest event and, where that is not
/// enough, from its own hops or from other slips of its template.
extension AuditStore {
    /// How far back (in events) a guess of the next step looks for another slip of the template: the guess costs at
    /// most one walk of this many rows, whatever the size of the trail.
    static let nextStepGuessWindow: Int64 = 200_000

    static func waitingOn(_ slip: AuditSlip, db: Database, guesses: inout [String: String?]) throws -> AuditWaitingOn? {
        guard !slip.terminal else { return nil }
        let next = "attempt \(slip.lastAttempt + 1)"
        switch (slip.lastKind, slip.lastOutcome) {
        case (SlipEvent.Kind.parked.rawValue, let code):
            return AuditWaitingOn(
                kind: "dead-letters", step: slip.lastStep, certain: true,
                note: "parked (\(code)) by \(slip.lastStep): it goes on once replayed (slip dlq replay)")
        case (SlipEvent.Kind.execute.rawValue, HopOutcome.retried.rawValue):
            return AuditWaitingOn(kind: "execute", step: slip.lastStep, certain: true, note: next)
        case (SlipEvent.Kind.compensate.rawValue, HopOutcome.retried.rawValue):
            return AuditWaitingOn(kind: "compensate", step: slip.lastStep, certain: true, note: next)
        default:
            break
        }
        switch slip.state {
        case .running:
            let key = "\(slip.template)\u{0}\(slip.lastStep)"
            if guesses[key] == nil { guesses[key] = .some(try guessNextStep(after: slip.lastStep, slip: slip, db: db)) }
            if let step = guesses[key] ?? nil {
                return AuditWaitingOn(
                    kind: "execute", step: step, certain: false,
                    note: "a guess: \(step) followed \(slip.lastStep) in another \(slip.template) slip; "
                        + "the audit trail does not record itineraries")
            }
            return AuditWaitingOn(
                kind: "execute", step: nil, certain: false,
                note: "the step after \(slip.lastStep), which the audit trail cannot name: it does not record itineraries")
        case .compensating:
            let step = try nextUndo(slip, db: db)
            return AuditWaitingOn(
                kind: "compensate", step: step, certain: false,
                note: step.map { "the newest completed step not yet compensated: \($0), if it has an undo, else an earlier one" }
                    ?? "no completed step left to undo that the audit trail knows of")
        default:
            return nil
        }
    }

    /// The step that followed `step` (completed) in the newest other slip of the template that had one, among the
    /// last `nextStepGuessWindow` events.
    static func guessNextStep(after step: String, slip: AuditSlip, db: Database) throws -> String? {
        try String.fetchOne(
            db,
            sql: """
                SELECT n.step FROM hop AS h
                JOIN hop AS n INDEXED BY hop_timeline
                    ON n.slip_id = h.slip_id AND n.sequence = h.sequence + 1 AND n.kind = 'execute'
                WHERE h.id > (SELECT coalesce(max(id), 0) FROM hop) - ? AND h.template = ? AND h.step = ?
                    AND h.kind = 'execute' AND h.outcome = 'completed' AND h.slip_id != ?
                ORDER BY h.id DESC LIMIT 1
                """,
            arguments: [nextStepGuessWindow, slip.template, step, slip.slipID])
    }

    /// The newest completed execute of the slip whose undo has not completed (matched by step, newest first).
    static func nextUndo(_ slip: AuditSlip, db: Database) throws -> String? {
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT kind, step FROM hop INDEXED BY hop_timeline
                WHERE slip_id = ? AND outcome = 'completed' AND kind IN ('execute', 'compensate')
                ORDER BY sequence, attempt, kind_rank
                """,
            arguments: [slip.slipID])
        var done: [String] = []
        var undone: [String: Int] = [:]
        for row in rows {
            let kind: String = row[0]
            let step: String = row[1]
            if kind == SlipEvent.Kind.execute.rawValue { done.append(step) } else { undone[step, default: 0] += 1 }
        }
        for step in done.reversed() {
            if let count = undone[step], count > 0 {
                undone[step] = count - 1
            } else {
                return step
            }
        }
        return nil
    }
}
