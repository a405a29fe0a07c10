import Foundation

/// The run's figures and verdicts: printed as a table, and written as JSON with `--json`.
struct ChaosReport: Sendable, Codable {
    var seed: UInt64
    var slips: Int
    var queuePrefix: String
    var seconds: Double
    /// Slips by the state they ended in (from the audit trail, else the terminal events).
    var ends: [String: Int]
    var checks: [CheckResult]
    var kills: [String: Int]
    var brokerRestarts: [BrokerControl.Restart]
    /// Hops run from a redelivered message that had no hop record yet (the processors' `redelivery` tables): what
    /// the kills and broker restarts left unfinished.
    var redeliveredHops: Int
    /// The most times one hop came back unfinished (poison at 5).
    var mostRedeliveries: Int
    /// Times the external systems were asked again for an effect they had applied (the processor died before it
    /// recorded the hop): each absorbed by the idempotency key, as `doubled` shows.
    var effectsRequestedAgain: Int
    /// The same per step; an inbox step's counts its effects applied again in one database, 0 by construction.
    var effectsRequestedAgainByStep: [String: Int]? = nil
    /// The steps that write their effect in the hop's transaction (`Checks.inboxSteps`).
    var inboxSteps: [String]? = nil
    /// Batches of slips sent again because the broker did not confirm them in time.
    var resentBatches: Int
    /// Slips whose first hop message the driver sent twice on purpose.
    var duplicatesSent: Int
    /// Hop records the checks read (one per hop), and where from: "PostgreSQL (URL)" or "N SQLite files".
    var hopRecordsRead: Int? = nil
    var hopRecordSource: String? = nil
    /// What went in through the example order API (its outbox), in words.
    var producer: String? = nil
    var stateDirectory: String
    var logDirectory: String
    var passed: Bool

    func print() {
        let out = FileHandle.standardOutput
        func line(_ text: String = "") { out.write(Data((text + "\n").utf8)) }
        let endText = ends.sorted { $0.value > $1.value }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        line()
        line("chaos: \(slips) slips (seed \(seed)) in \(String(format: "%.0f", seconds)) s: \(endText)")
        line("  " + "check".padded(16) + "found".padded(8, left: true) + "expected".padded(10, left: true))
        for check in checks {
            let verdict = check.passed ? "ok" : "FAILED"
            line(
                "  " + check.name.padded(16) + String(check.found).padded(8, left: true)
                    + check.expected.padded(10, left: true) + "  " + verdict.padded(7) + check.meaning)
            for example in check.examples where !check.passed {
                line("      \(example)")
            }
        }
        let killText = kills.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        line("  kills by process: \(killText.isEmpty ? "none" : killText)")
        let restartText = brokerRestarts.map { String(format: "%.1f s", $0.seconds) }.joined(separator: ", ")
        line("  broker restarts took: \(restartText.isEmpty ? "-" : restartText)")
        line(
            "  hops run from a redelivered message: \(redeliveredHops) (the most for one hop: \(mostRedeliveries); "
                + "parked as poison at 5)")
        line("  effects requested again (a kill before the hop's record, or a hop run twice): \(effectsRequestedAgain)")
        for (step, count) in (effectsRequestedAgainByStep ?? [:]).sorted(by: { $0.key < $1.key }) {
            let how =
                inboxSteps?.contains(step) == true
                ? "inbox: applied in the hop's transaction" : "each applied once, by its idempotency key"
            line("    \(step): \(count) (\(how))")
        }
        if let producer { line("  \(producer)") }
        if resentBatches > 0 { line("  batches of slips sent again (not confirmed in time): \(resentBatches)") }
        if duplicatesSent > 0 { line("  slips whose first hop message was sent twice on purpose: \(duplicatesSent)") }
        if let hopRecordsRead, let hopRecordSource {
            line("  hop records read: \(hopRecordsRead), from \(hopRecordSource)")
        }
        line("  state: \(stateDirectory)   logs: \(logDirectory)")
        let failed = checks.filter { !$0.passed }.map(\.name)
        line(
            passed
                ? "chaos: PASSED (\(checks.count) checks)"
                : "chaos: FAILED (\(failed.joined(separator: ", ")); see the logs in \(logDirectory))")
    }

    func write(json path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}

extension String {
    /// Padded with spaces to `width` (on the left for numbers), for the report's columns.
    func padded(_ width: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - count))
        return left ? fill + self : self + fill
    }
}
