import Foundation
import GRDB
import Slipway
import SlipwayOutbox
import Testing

/// The outbox across a crash: `outbox-producer`, a separate process, commits orders and their slips (rolling some
/// back), and is SIGKILLed by its relay's failpoint before the first publish. Started again, it relays; probe-step
/// processors run the slips. Every committed order has exactly one completed slip, a rolled-back one none. On both
/// stores: a SQLite file, and PostgreSQL (with `SLIPWAY_POSTGRES_TESTS=1`), where the producer runs two relays on the
/// table.
@Suite("the producer outbox killed between its commit and the publish", .serialized)
struct OutboxTests {
    static let orders = 24
    static let rollbackEvery = 4
    static let stores = ["sqlite"] + (ProcessInfo.processInfo.environment["SLIPWAY_POSTGRES_TESTS"] == "1" ? ["postgres"] : [])

    /// The app's database: the producer's and `slip outbox`'s options for it, and how the test reads it.
    struct AppDatabase {
        var options: [String]
        var read: @Sendable () async throws -> (orders: [String], pending: [String], sent: [String])

        static func sqlite(_ path: String) -> AppDatabase {
            AppDatabase(options: ["--db", path]) {
                let orders = try await DatabaseQueue(path: path).read { db in
                    try String.fetchAll(db, sql: "SELECT 'slip-' || id FROM orders ORDER BY rowid")
                }
                let entries = try OutboxInspector(path: path).entries(includingSent: true)
                return (
                    orders, entries.filter { $0.sentAt == nil }.map(\.slipID),
                    entries.filter { $0.sentAt != nil }.map(\.slipID)
                )
            }
        }

        /// A database of its own on the tests' PostgreSQL, read through psql.
        static func postgres() async throws -> AppDatabase {
            try await PostgresStoreIntegrationTests.started.value
            let name = "outbox_kill_\(UUID().uuidString.prefix(8).lowercased())"
            _ = try await InboxKillTests.psql("CREATE DATABASE \(name)")
            let url = "postgres://slipway:slipway@127.0.0.1:\(PostgresStoreIntegrationTests.port)/\(name)"
            return AppDatabase(options: ["--postgres", url, "--relays", "2"]) {
                let orders = try await InboxKillTests.psql(
                    "SELECT 'slip-' || id FROM orders ORDER BY substr(id, 7)::int", url: url).map { $0[0] }
                let rows = try await InboxKillTests.psql(
                    "SELECT slip_id, sent_at IS NOT NULL FROM slipway_outbox ORDER BY position", url: url)
                return (orders, rows.filter { $0[1] == "f" }.map { $0[0] }, rows.filter { $0[1] == "t" }.map { $0[0] })
            }
        }
    }

    /// Waits for the process started as `name` to end by itself; its exit status.
    static func waitForEnd(_ fleet: SagaFleet, _ name: String) async throws -> Int32? {
        for _ in 0..<1200 where fleet.isRunning(name) { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!fleet.isRunning(name), "\(name) did not end")
        return await fleet.stop(name)
    }

    @Test(
        "every committed order has exactly one completed slip, a rolled-back order none, nothing stays pending",
        arguments: stores)
    func killedBeforePublish(store: String) async throws {
        let fleet = try SagaFleet(
            name: "outbox-\(store)", environment: ["producer-killed": ["SLIPWAY_FAILPOINT": "outbox-before-publish"]])
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let all = (1...Self.orders).map { "slip-order-\($0)" }
        let committed = (1...Self.orders).filter { $0 % Self.rollbackEvery != 0 }.map { "slip-order-\($0)" }
        // Following every slip id, the rolled-back ones too: none of them may ever end.
        let follower = try await SlipEventFollower.terminalEvents(
            of: all, transport: producer.transport, topology: producer.topology)
        defer { follower.stop() }
        let database =
            store == "postgres"
            ? try await AppDatabase.postgres() : .sqlite(fleet.directory.appendingPathComponent("app.sqlite").path)
        let arguments =
            database.options + [
                "--orders", "\(Self.orders)", "--rollback-every", "\(Self.rollbackEvery)", "--steps", "a,b",
            ]

        try fleet.start("producer-killed", executable: "outbox-producer", arguments: arguments)
        #expect(try await Self.waitForEnd(fleet, "producer-killed") == 128 + SIGKILL)
        #expect(fleet.log("producer-killed").contains("SLIPWAY_FAILPOINT=outbox-before-publish reached"))
        // What the crash left: the committed orders and their slips, all pending; nothing for the rolled-back ones.
        var state = try await database.read()
        #expect(state.orders == committed)
        #expect(state.pending == committed)
        #expect(state.sent.isEmpty)

        try fleet.start("producer", executable: "outbox-producer", arguments: arguments)
        #expect(try await Self.waitForEnd(fleet, "producer") == 0)
        state = try await database.read()
        #expect(state.orders == committed)
        #expect(state.pending.isEmpty)
        #expect(state.sent == committed)

        try fleet.startProbe("a")
        try fleet.startProbe("b")
        let events = try await producer.collect(follower, count: committed.count, timeout: .seconds(120))
        #expect(Set(events.keys) == Set(committed))
        #expect(events.values.allSatisfy { $0.state == .completed })
        // No second end for a slip, and none for a rolled-back order (the steps have had time to run them all).
        let extra = await follower.next(timeout: .seconds(3))
        #expect(extra == nil, "unexpected event \(String(describing: extra))")
        // `slip outbox list` agrees: nothing pending; --all shows them sent.
        let location = Array(database.options.prefix(2))
        let list = try await fleet.slip(["outbox", "list"] + location)
        #expect(list.status == 0, "\(list.errors)")
        #expect(!list.output.contains("slip-order-"))
        let listAll = try await fleet.slip(["outbox", "list", "--all"] + location)
        #expect(listAll.output.components(separatedBy: "\n").filter { $0.contains("\tsent ") }.count == committed.count)
    }
}
