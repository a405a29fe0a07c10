import ArgumentParser
import Foundation
import Slipway
import SlipwayAudit
import SlipwayAuditGenerator

/// `slip audit ...`: questions about the audit trail the sink writes (`slip audit-sink`).
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Query the audit trail: where a slip is, what failed, which step is slow, which slips are stuck.",
        discussion: """
            The commands read the SQLite database that `slip audit-sink` writes, read-only, while it writes. \
            Durations: 90s, 10m, 1h, 2d (also ms, w, and sums like 1h30m). Instants (--since, --until): a duration \
            ago, or an RFC 3339 timestamp such as 2026-11-22T05:34:20Z. Errors: one line, exit code 2. \
            See docs/audit.md.

            Examples:
              slip audit show 9f42cf22-5c1e-4a7e-9b1f-0d3c2e1f4a5b
              slip audit list --state compensated --since 12h
              slip audit stats
              slip audit stuck --older-than 10m
              slip audit failures --since 1h --json
            """,
        subcommands: [
            AuditShowCommand.self, AuditListCommand.self, AuditStatsCommand.self, AuditStuckCommand.self,
            AuditFailuresCommand.self, AuditGenerateCommand.self, AuditBenchCommand.self,
        ])
}

/// `--db` and `--json`, shared by every audit command.
struct AuditDatabaseOptions: ParsableArguments {
    @Option(name: .customLong("db"), help: "The audit database (default: $SLIPWAY_AUDIT_DB, else .slipway/audit.sqlite).")
    var db: String?

    @Flag(help: "Print JSON.")
    var json = false

    var path: String { AuditStore.defaultPath(explicit: db) }

    func open() throws -> AuditStore { try AuditStore.openForReading(path: path) }
}

struct AuditShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "A slip's timeline in hop order, and its final or current state.")

    @Argument(help: "The slip id (or a unique start of it, at least 4 characters).")
    var slipID: String?

    @OptionGroup var options: AuditDatabaseOptions

    func run() async throws {
        try AuditCLI.run {
            guard let slipID, !slipID.isEmpty else {
                throw AuditError(.invalidArgument, "show needs a slip id: slip audit show <slip-id>")
            }
            let timeline = try options.open().show(slipID: slipID)
            if options.json {
                printJSON(timeline)
            } else {
                print(Self.render(timeline, now: Date()))
            }
        }
    }

    static func render(_ timeline: AuditTimeline, now: Date) -> String {
        let slip = timeline.slip
        let parked = slip.lastKind == SlipEvent.Kind.parked.rawValue
        let reason = slip.lastReason.map { ": " + AuditCLI.oneLine($0) } ?? ""
        // A parked slip goes no further until its message is replayed: that is its state, whatever it was before.
        let state =
            parked
            ? "parked (\(slip.lastOutcome))\(reason); the slip was \(slip.state.rawValue)"
            : slip.state.rawValue + (slip.terminal ? " (final)" : " (not final)")
        var header: [(String, String)] = [
            ("slip", slip.slipID),
            ("template", slip.template),
            ("state", state),
        ]
        if !slip.terminal {
            let ago = AuditTime.formatDuration(seconds: max(0, now.timeIntervalSince(slip.lastAt)))
            header.append((
                "at",
                parked
                    ? "parked by \(slip.lastStep), sequence \(slip.lastSequence), \(ago) ago (see slip dlq list)"
                    : "\(slip.lastKind) \(slip.lastStep), sequence \(slip.lastSequence), attempt \(slip.lastAttempt): "
                        + "\(slip.lastOutcome)\(reason), \(ago) ago"))
        }
        if let waiting = slip.waitingOn, !parked {
            header.append(("waits on", waiting.queue + (waiting.note.map { " (\($0))" } ?? "")))
        }
        if slip.faultStep != nil { header.append(("fault", AuditCLI.fault(slip))) }
        if let createdAt = slip.createdAt { header.append(("created", AuditTime.formatTimestamp(createdAt))) }
        // The same span for a finished slip and a running one: its first recorded event to its last.
        let span = AuditTime.formatDuration(seconds: slip.lastAt.timeIntervalSince(slip.firstAt))
        header.append(("events", "\(AuditTime.formatTimestamp(slip.firstAt)) to \(AuditTime.formatTimestamp(slip.lastAt)) (\(span))"))
        header.append(("hops", "\(slip.hops) (\(slip.events) events)"))
        let width = header.map(\.0.count).max() ?? 0
        let lines = header.map { $0.0 + String(repeating: " ", count: width - $0.0.count) + "  " + $0.1 }

        var table = TextTable(
            headers: ["SEQ", "STEP", "KIND", "OUTCOME", "ATTEMPT", "PROCESSOR", "START", "DURATION", "REASON"],
            rightAligned: [0, 4, 7])
        for hop in timeline.hops {
            table.rows.append([
                String(hop.sequence), hop.step, hop.kind, hop.outcome, String(hop.attempt), hop.processor,
                AuditTime.formatTimestamp(hop.startedAt ?? hop.at),
                AuditCLI.duration(micros: hop.durationMicros.map(Double.init)),
                hop.reason.map { AuditCLI.oneLine($0) } ?? "",
            ])
        }
        return (lines + ["", table.render()]).joined(separator: "\n")
    }
}

struct AuditListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Slips, newest first (by their newest event), filtered.")

    @Option(help: "Only slips in this state: running, compensating, completed, compensated, faulted, compensation-failed, terminated.")
    var state: String?

    @Option(help: "Only slips of this template.")
    var template: String?

    @Option(help: "Only slips whose last step, or the step they faulted at, is this one.")
    var step: String?

    @Option(parsing: .unconditional, help: "Only slips with their newest event at or after this instant (a duration ago, or a timestamp).")
    var since: String?

    @Option(parsing: .unconditional, help: "Only slips with their newest event at or before this instant (a duration ago, or a timestamp).")
    var until: String?

    @Option(parsing: .unconditional, help: "At most this many slips (default 50).")
    var limit: String?

    @OptionGroup var options: AuditDatabaseOptions

    func run() async throws {
        try AuditCLI.run {
            let now = Date()
            let filter = AuditSlipFilter(
                state: try AuditCLI.state(state), template: try AuditCLI.name(template, option: "--template"),
                step: try AuditCLI.name(step, option: "--step"),
                since: try AuditCLI.instant(since, option: "--since", now: now),
                until: try AuditCLI.instant(until, option: "--until", now: now),
                limit: try AuditCLI.limit(limit, default: AuditSlipFilter.defaultLimit))
            let list = try options.open().list(filter)
            if options.json {
                printJSON(list)
                return
            }
            guard !list.slips.isEmpty else {
                print("no slip matches")
                return
            }
            var table = TextTable(
                headers: ["SLIP", "TEMPLATE", "STATE", "LAST STEP", "HOPS", "LAST EVENT", "FAULT"], rightAligned: [4])
            for slip in list.slips {
                table.rows.append([
                    slip.slipID, slip.template, slip.state.rawValue, slip.lastStep, String(slip.hops),
                    AuditTime.formatTimestamp(slip.lastAt), AuditCLI.fault(slip),
                ])
            }
            print(table.render())
            if list.more {
                print("(\(list.slips.count) shown, more match: raise --limit or narrow the filters)")
            }
        }
    }
}

struct AuditStatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Per step: hops, failures, retries and duration percentiles; per template: slips by state.")

    @OptionGroup var options: AuditDatabaseOptions

    func run() async throws {
        try AuditCLI.run {
            let stats = try options.open().stats()
            if options.json {
                printJSON(stats)
            } else {
                print(Self.render(stats))
            }
        }
    }

    static func render(_ stats: AuditStats) -> String {
        var lines: [String] = []
        let range = stats.firstAt.map { " from \(AuditTime.formatTimestamp($0)) to \(AuditCLI.time(stats.lastAt))" } ?? ""
        lines.append(
            "\(AuditCLI.count(stats.hops)) hops, \(AuditCLI.count(stats.events)) events, "
                + "\(AuditCLI.count(stats.slips)) slips\(range)")
        lines.append("")
        var steps = TextTable(
            headers: ["STEP", "KIND", "HOPS", "FAILURES", "RETRIES", "MEAN", "P50", "P95", "P99", "MAX"],
            rightAligned: Set(2...9))
        for step in stats.steps {
            steps.rows.append([
                step.step, step.kind, AuditCLI.count(step.hops), AuditCLI.count(step.failures),
                step.kind == "parked" ? "-" : AuditCLI.count(step.retries),
                AuditCLI.duration(micros: step.meanMicros), AuditCLI.duration(micros: step.p50Micros),
                AuditCLI.duration(micros: step.p95Micros), AuditCLI.duration(micros: step.p99Micros),
                AuditCLI.duration(micros: step.maxMicros.map(Double.init)),
            ])
        }
        lines.append(steps.rendered(empty: "no hops recorded"))
        let precision = String(format: "%.1f", stats.percentilePrecision * 100)
        lines.append("(failures: faulted + failed, or parked messages; percentiles within \(precision)% of the exact value)")
        lines.append("")
        let states = SlipState.allCases.map(\.rawValue)
        var templates = TextTable(headers: ["TEMPLATE", "SLIPS"] + states.map { $0.uppercased() }, rightAligned: Set(1...(states.count + 1)))
        for template in stats.templates {
            templates.rows.append(
                [template.template, AuditCLI.count(template.slips)]
                    + states.map { AuditCLI.count(template.states[$0] ?? 0) })
        }
        lines.append(templates.rendered(empty: "no slips recorded"))
        return lines.joined(separator: "\n")
    }
}

struct AuditStuckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stuck",
        abstract: "Slips not in a terminal state whose newest event is older than a duration, oldest first.")

    @Option(name: .customLong("older-than"), parsing: .unconditional, help: "How long without an event makes a slip stuck (default 10m).")
    var olderThan = "10m"

    @Option(parsing: .unconditional, help: "At most this many slips (default 100).")
    var limit: String?

    @OptionGroup var options: AuditDatabaseOptions

    func run() async throws {
        try AuditCLI.run {
            let age = try AuditCLI.duration(olderThan, option: "--older-than")
            let limit = try AuditCLI.limit(limit, default: 100)
            let now = Date()
            let stuck = try options.open().stuck(olderThan: age, now: now, limit: limit)
            if options.json {
                printJSON(stuck)
                return
            }
            let window = AuditTime.formatDuration(seconds: age)
            guard stuck.total > 0 else {
                print("no stuck slip: every slip not in a terminal state had an event in the last \(window)")
                return
            }
            print("\(AuditCLI.count(stuck.total)) slips not in a terminal state, with no event for \(window) "
                + "(since \(AuditTime.formatTimestamp(stuck.cutoff)))")
            print("")
            var table = TextTable(
                headers: ["SLIP", "TEMPLATE", "STATE", "LAST EVENT", "AGE", "WAITS ON", "LAST", "REASON"],
                rightAligned: [4])
            for slip in stuck.slips {
                table.rows.append([
                    slip.slipID, slip.template, slip.state.rawValue, AuditTime.formatTimestamp(slip.lastAt),
                    AuditTime.formatDuration(seconds: max(0, now.timeIntervalSince(slip.lastAt))),
                    slip.waitingOn?.queue ?? "-", "\(slip.lastKind) \(slip.lastStep) \(slip.lastOutcome)",
                    slip.lastReason.map { AuditCLI.oneLine($0) } ?? "",
                ])
            }
            print(table.render())
            print("(WAITS ON: the queue without its prefix; '?' marks a guess: the audit trail does not record "
                + "itineraries, so the next step is the one that followed in another slip of the template)")
            if stuck.total > stuck.slips.count { print("(\(stuck.slips.count) oldest shown: raise --limit for more)") }
        }
    }
}

struct AuditFailuresCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failures",
        abstract: "Faults (execute faulted, compensation failed) and parked messages, with their reasons, newest first.")

    @Option(parsing: .unconditional, help: "From this instant: a duration ago, or a timestamp (default 24h).")
    var since = "24h"

    @Option(parsing: .unconditional, help: "Up to this instant (default: now).")
    var until: String?

    @Option(parsing: .unconditional, help: "At most this many (default 100).")
    var limit: String?

    @OptionGroup var options: AuditDatabaseOptions

    func run() async throws {
        try AuditCLI.run {
            let now = Date()
            let from = try AuditCLI.instant(since, option: "--since", now: now)!
            let to = try AuditCLI.instant(until, option: "--until", now: now)
            let limit = try AuditCLI.limit(limit, default: 100)
            let list = try options.open().failures(since: from, until: to, limit: limit)
            if options.json {
                printJSON(list)
                return
            }
            let window = "since \(AuditTime.formatTimestamp(from))" + (to.map { " until \(AuditTime.formatTimestamp($0))" } ?? "")
            guard list.total > 0 else {
                print("no faults and no parked messages \(window)")
                return
            }
            print("\(AuditCLI.count(list.total)) faults and parked messages \(window)")
            print("")
            var table = TextTable(
                headers: ["AT", "SLIP", "TEMPLATE", "STEP", "KIND", "OUTCOME", "ATTEMPT", "REASON"], rightAligned: [6])
            for failure in list.failures {
                table.rows.append([
                    AuditTime.formatTimestamp(failure.at), failure.slipID, failure.template, failure.step, failure.kind,
                    failure.outcome, String(failure.attempt), failure.reason.map { AuditCLI.oneLine($0) } ?? "",
                ])
            }
            print(table.render())
            if list.total > list.failures.count { print("(\(list.failures.count) newest shown: raise --limit for more)") }
        }
    }
}

struct AuditGenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write a synthetic audit database, to try and measure the queries at scale.",
        discussion: """
            Three templates of 4 and 5 steps, mostly completed slips, some compensated, faulted, in flight or \
            stuck, retries, parked messages, spread over --days up to now. Written through the same path as the \
            sink, in batches of 20,000 events. Refuses a file that exists.
            """)

    @Option(help: "Execute and compensate hops to write (default 1000000).")
    var hops = "1000000"

    @Option(help: "Seed: the same seed gives the same slips (default 1).")
    var seed = "1"

    @Option(help: "Days the slips are spread over, up to now (default 7).")
    var days = "7"

    @OptionGroup var options: AuditDatabaseOptions

    func run() async throws {
        try AuditCLI.run {
            guard let hops = Int(hops.replacingOccurrences(of: "_", with: "")), hops >= 1 else {
                throw AuditError(.invalidArgument, "--hops takes a whole number of at least 1, got '\(self.hops)'")
            }
            guard let seed = UInt64(seed) else {
                throw AuditError(.invalidArgument, "--seed takes a whole number, got '\(self.seed)'")
            }
            guard let days = Double(days), days > 0, days <= 3_650 else {
                throw AuditError(.invalidArgument, "--days takes a number of days above 0, got '\(self.days)'")
            }
            let path = options.path
            guard !FileManager.default.fileExists(atPath: path) else {
                throw AuditError(
                    .invalidArgument, "\(path) exists: generate writes a new database, remove it or pass another --db")
            }
            let store = try AuditStore(path: path)
            let json = options.json
            let summary = try AuditGenerator.generate(
                into: store, options: AuditGenerator.Options(hops: hops, seed: seed, days: days)
            ) { done, target in
                if !json { FileHandle.standardError.write(Data("  \(AuditCLI.count(done)) of \(AuditCLI.count(target)) hops\n".utf8)) }
            }
            if json {
                printJSON(summary)
            } else {
                print(
                    "wrote \(AuditCLI.count(summary.hops)) hops (\(AuditCLI.count(summary.events)) events, "
                        + "\(AuditCLI.count(summary.slips)) slips) to \(summary.path) in "
                        + String(format: "%.1f s (%.0f events/s)", summary.seconds, Double(summary.events) / summary.seconds))
            }
        }
    }
}

extension TextTable {
    func rendered(empty: String) -> String { rows.isEmpty ? empty : render() }
}
