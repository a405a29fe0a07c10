import ArgumentParser
import Foundation
import Slipway
import SlipwayAudit

/// `slip audit bench`: times each audit query inside one process, without the process start that dominates a single
/// command (docs/audit.md reports these figures).
struct AuditBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time each audit query in-process on a database (e.g. one from `slip audit generate`).")

    @Option(parsing: .unconditional, help: "Runs of each query (default 20).")
    var runs = "20"

    @OptionGroup var options: AuditDatabaseOptions

    struct Timing: Encodable {
        var query: String
        var runs: Int
        var rows: Int
        var firstMillis: Double
        var minMillis: Double
        var medianMillis: Double
        var maxMillis: Double
    }

    func run() async throws {
        try AuditCLI.run {
            guard let runs = Int(runs), runs >= 1 else {
                throw AuditError(.invalidArgument, "--runs takes a whole number of at least 1, got '\(self.runs)'")
            }
            let clock = ContinuousClock()
            func millis(_ duration: Duration) -> Double {
                Double(duration.components.seconds) * 1_000 + Double(duration.components.attoseconds) / 1e15
            }
            let openStart = clock.now
            let store = try options.open()
            let openMillis = millis(openStart.duration(to: clock.now))
            let now = Date()
            let newestCompensated = try store.list(AuditSlipFilter(state: .compensated, limit: 1)).slips.first?.slipID
            let anySlip = try store.list(AuditSlipFilter(limit: 1)).slips.first?.slipID
            guard let slipID = newestCompensated ?? anySlip else {
                throw AuditError(.invalidArgument, "\(store.path) has no slip to show")
            }
            let queries: [(String, () throws -> Int)] = [
                ("show \(slipID)", { try store.show(slipID: slipID).hops.count }),
                ("list", { try store.list().slips.count }),
                ("list --state compensated --since 2d", {
                    try store.list(AuditSlipFilter(state: .compensated, since: now.addingTimeInterval(-2 * 86_400))).slips.count
                }),
                ("list --state faulted --template refund-request --step validate-refund", {
                    try store.list(AuditSlipFilter(state: .faulted, template: "refund-request", step: "validate-refund")).slips.count
                }),
                ("list --step ship-order", { try store.list(AuditSlipFilter(step: "ship-order")).slips.count }),
                ("list --step no-such-step", { try store.list(AuditSlipFilter(step: "no-such-step")).slips.count }),
                ("list --state completed --template refund-request --step reserve-stock", {
                    try store.list(AuditSlipFilter(state: .completed, template: "refund-request", step: "reserve-stock")).slips.count
                }),
                ("list --since 7d --until 6d --limit 1000", {
                    try store.list(AuditSlipFilter(
                        since: now.addingTimeInterval(-7 * 86_400), until: now.addingTimeInterval(-6 * 86_400), limit: 1_000)
                    ).slips.count
                }),
                ("stats", { try store.stats().steps.count }),
                ("stuck --older-than 10m", { try store.stuck(olderThan: 600, now: now).slips.count }),
                ("stuck --older-than 0s", { try store.stuck(olderThan: 0, now: now).slips.count }),
                ("failures --since 1h", { try store.failures(since: now.addingTimeInterval(-3_600)).failures.count }),
                ("failures --since 30d", { try store.failures(since: now.addingTimeInterval(-30 * 86_400)).failures.count }),
            ]
            var timings = [Timing(
                query: "open (openForReading)", runs: 1, rows: 0, firstMillis: openMillis, minMillis: openMillis,
                medianMillis: openMillis, maxMillis: openMillis)]
            for (name, query) in queries {
                var samples: [Double] = []
                var rows = 0
                for _ in 0..<runs {
                    let start = clock.now
                    rows = try query()
                    samples.append(millis(start.duration(to: clock.now)))
                }
                let sorted = samples.sorted()
                timings.append(Timing(
                    query: name, runs: runs, rows: rows, firstMillis: samples[0], minMillis: sorted[0],
                    medianMillis: sorted[sorted.count / 2], maxMillis: sorted[sorted.count - 1]))
            }
            if options.json {
                printJSON(timings)
                return
            }
            let stats = try store.stats()
            print("\(store.path): \(AuditCLI.count(stats.hops)) hops, \(AuditCLI.count(stats.events)) events, "
                + "\(AuditCLI.count(stats.slips)) slips; \(runs) runs of each query, in milliseconds")
            print("")
            var table = TextTable(headers: ["QUERY", "ROWS", "FIRST", "MIN", "MEDIAN", "MAX"], rightAligned: Set(1...5))
            for timing in timings {
                table.rows.append([
                    timing.query, String(timing.rows), String(format: "%.2f", timing.firstMillis),
                    String(format: "%.2f", timing.minMillis), String(format: "%.2f", timing.medianMillis),
                    String(format: "%.2f", timing.maxMillis),
                ])
            }
            print(table.render())
        }
    }
}
