import ArgumentParser
import Foundation
import SlipwayOutbox
import SlipwayPostgres

/// `slip outbox list|retry`: what a producer's outbox (SlipwayOutbox, or SlipwayPostgres's `PostgresOutbox`) holds in
/// the app's database, and why.
struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Show the slips a producer's outbox has not published yet, and make them due now.",
        discussion: """
            The outbox is the table slipway_outbox in the app's own database, SQLite (--db PATH) or PostgreSQL \
            (--postgres URL); its relays publish pending slips and retry failed ones with a backoff \
            (docs/exactly-once.md).

            Exit status: 0 done; 2 bad usage, no such database or outbox, or (retry --slip) no such pending slip; \
            3 PostgreSQL unreachable or failing.
            """,
        subcommands: [List.self, Retry.self])

    struct DatabaseOption: ParsableArguments {
        @Option(help: "The app's SQLite database holding the outbox.")
        var db: String?

        @Option(
            help: ArgumentHelp(
                "The app's PostgreSQL database holding the outbox, written as a processor's --store.",
                valueName: "postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=...]"))
        var postgres: String?

        func validate() throws {
            guard (db == nil) != (postgres == nil) else { throw ValidationError("give either --db PATH or --postgres URL") }
        }

        /// Runs `body` on the outbox; a missing database or table exits 2.
        func withInspector<T: Sendable>(_ body: (any OutboxInspecting) async throws -> T) async throws -> T {
            do {
                if let postgres {
                    return try await PostgresOutbox.withExisting(url: postgres) { try await body($0) }
                }
                return try await body(try OutboxInspector(path: db ?? ""))
            } catch let error as OutboxError {
                printError("\(error)")
                throw ExitCodes.badInput
            } catch let error as PostgresStoreError {
                printError("\(error)")
                throw error.code.hasPrefix("bad-") ? ExitCodes.badInput : ExitCodes.unavailable
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List pending slips, oldest first: id, template, age, attempts, next attempt, last error.")

        @OptionGroup var database: DatabaseOption

        @Flag(help: "Include the slips already sent (kept for the relay's retention, 1 day by default).")
        var all = false

        @Flag(help: "Print JSON (one object per slip).")
        var json = false

        func run() async throws {
            let all = self.all
            let entries = try await database.withInspector { try await $0.entries(includingSent: all) }
            if json {
                for entry in entries { printJSON(entry) }
                return
            }
            let now = Date()
            print("SLIP\tTEMPLATE\tAGE\tATTEMPTS\tSTATE\tLAST ERROR")
            for entry in entries {
                let state =
                    entry.sentAt.map { "sent \(age($0, now)) ago" }
                    ?? (entry.nextAttemptAt > now ? "next in \(age(now, entry.nextAttemptAt))" : "due")
                print(
                    "\(entry.slipID)\t\(entry.template)\t\(age(entry.createdAt, now))\t\(entry.attempts)\t\(state)\t"
                        + (entry.lastError ?? "-"))
            }
        }

        /// From `start` to `end`, in the largest unit that fits: 12s, 5m, 3h, 2d.
        private func age(_ start: Date, _ end: Date) -> String {
            let seconds = max(0, Int(end.timeIntervalSince(start)))
            switch seconds {
            case ..<120: return "\(seconds)s"
            case ..<7200: return "\(seconds / 60)m"
            case ..<172_800: return "\(seconds / 3600)h"
            default: return "\(seconds / 86_400)d"
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make pending slips due now (after a backoff the relay would wait out): one, or all.")

        @OptionGroup var database: DatabaseOption

        @Option(help: "The pending slip to retry.")
        var slip: String?

        @Flag(name: .customLong("all-pending"), help: "Retry every pending slip.")
        var allPending = false

        func validate() throws {
            guard (slip == nil) != !allPending else { throw ValidationError("give either --slip ID or --all-pending") }
        }

        func run() async throws {
            let slip = self.slip
            let retried = try await database.withInspector { try await $0.retry(slipID: slip, now: Date()) }
            if let slip, retried.isEmpty {
                printError("no pending slip \(slip) in the outbox")
                throw ExitCodes.badInput
            }
            print("\(retried.count) slip(s) due now; the relay publishes them at its next poll")
        }
    }
}
