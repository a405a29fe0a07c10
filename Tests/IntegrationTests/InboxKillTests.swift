import Foundation
import GRDB
import Slipway
import SlipwayProcesses
import Testing

/// An inbox step (`probe-step --inbox`) as a process, SIGKILLed at the two points that matter: after its handler
/// wrote, before the commit; and after the commit, before the forward. Counting its rows afterwards: every effect
/// exactly once. On both stores: its SQLite file, and PostgreSQL (with `SLIPWAY_POSTGRES_TESTS=1`).
@Suite("inbox steps killed around their commit", .serialized)
struct InboxKillTests {
    static let stores = ["sqlite"] + (ProcessInfo.processInfo.environment["SLIPWAY_POSTGRES_TESTS"] == "1" ? ["postgres"] : [])

    /// Probes a and c plain (c when `startC`), b an inbox step on `store`; b's start is the test's.
    static func fleet(_ name: String, store: String, startC: Bool = true) async throws -> (SagaFleet, Producer) {
        var storeEnvironment: [String: String] = [:]
        if store == "postgres" {
            try await PostgresStoreIntegrationTests.started.value
            storeEnvironment["SLIPWAY_STORE_URL"] = PostgresStoreIntegrationTests.url
            // A claim of a killed process in PostgreSQL is taken over when its lease runs out (30 s by default).
            storeEnvironment["SLIPWAY_CLAIM_LEASE_MS"] = "3000"
        }
        let fleet = try SagaFleet(
            name: name,
            environment: [
                "b": storeEnvironment,
                "b-before-commit": storeEnvironment.merging(["SLIPWAY_FAILPOINT": "before-commit"]) { $1 },
                "b-after-commit": storeEnvironment.merging(["SLIPWAY_FAILPOINT": "after-commit"]) { $1 },
            ])
        try fleet.startProbe("a")
        if startC { try fleet.startProbe("c") }
        return (fleet, try Producer(fleet: fleet))
    }

    static func startInbox(_ fleet: SagaFleet, as name: String) throws {
        try fleet.start(name, executable: "probe-step", arguments: ["--step", "b", "--inbox"])
    }

    /// Rows of b's effects for `slipID`, by kind, read from its hop record's database.
    static func effects(_ fleet: SagaFleet, _ slipID: String, store: String) async throws -> [String: Int] {
        let sql = "SELECT kind, count(*) FROM probe_effect WHERE slip_id = '\(slipID)' GROUP BY kind"
        guard store == "postgres" else {
            let path = fleet.directory.appendingPathComponent("state/b.hops.sqlite").path
            return try await DatabaseQueue(path: path).read { db in
                Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: sql).map { ($0[0] as String, $0[1] as Int) })
            }
        }
        return try await psql(sql).reduce(into: [:]) { $0[$1[0]] = Int($1[1]) }
    }

    /// Whether b's hop record holds its hop `sequence` of `slipID`.
    static func recorded(_ fleet: SagaFleet, _ slipID: String, store: String) async throws -> Bool {
        let sql = "SELECT count(*) FROM hop_record WHERE slip_id = '\(slipID)'"
        guard store == "postgres" else {
            let path = fleet.directory.appendingPathComponent("state/b.hops.sqlite").path
            return try await DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: sql) == 1 }
        }
        return try await psql(sql + " AND step = 'b'") == [["1"]]
    }

    /// Rows of a query to the tests' PostgreSQL, through psql, as fields.
    static func psql(_ sql: String, url: String = PostgresStoreIntegrationTests.url) async throws -> [[String]] {
        let (status, output, errors) = try await runToEnd(
            "/usr/bin/psql", [url, "-tAc", sql], environment: ProcessInfo.processInfo.environment)
        guard status == 0 else { throw HarnessError("psql failed: \(errors)") }
        return output.split(separator: "\n").map { $0.split(separator: "|").map(String.init) }
    }

    /// Waits for the process started as `name` to be gone (it killed itself at its failpoint).
    static func waitForDeath(_ fleet: SagaFleet, _ name: String) async throws {
        var tries = 0
        while fleet.isRunning(name) && tries < 600 {
            tries += 1
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(!fleet.isRunning(name), "\(name) did not reach its failpoint")
        _ = await fleet.stop(name)
    }

    @Test(
        "killed after writing and before the commit, or after the commit and before the forward, the step's effect is there once",
        arguments: stores, ["before-commit", "after-commit"])
    func killedAroundTheCommit(store: String, point: String) async throws {
        let (fleet, producer) = try await Self.fleet("inbox-\(point)", store: store)
        defer { fleet.stopAll() }
        let slip = Slip(template: "probe", itinerary: ["a", "b", "c"].map { ItineraryStep(step: $0) })
        let follower = try await producer.follow([slip])
        try Self.startInbox(fleet, as: "b-\(point)")
        try await producer.sender.send(slip)
        try await Self.waitForDeath(fleet, "b-\(point)")
        #expect(fleet.log("b-\(point)").contains("SLIPWAY_FAILPOINT=\(point) reached"))
        // What the crash left: nothing before the commit; the effect and its record after it.
        #expect(try await Self.effects(fleet, slip.id, store: store) == (point == "before-commit" ? [:] : ["execute": 1]))
        #expect(try await Self.recorded(fleet, slip.id, store: store) == (point == "after-commit"))

        // Started again without the failpoint: the message comes back, and the hop runs (before-commit: nothing was
        // kept) or is forwarded from its record (after-commit: the handler does not run again).
        try Self.startInbox(fleet, as: "b")
        let events = try await producer.collect(follower, count: 1, timeout: .seconds(60))
        #expect(events[slip.id]?.state == .completed)
        #expect(try await Self.effects(fleet, slip.id, store: store) == ["execute": 1])
    }

    @Test(
        "a fault after the inbox step undoes it once, in the undo hop's transaction, across a kill after its commit",
        arguments: stores)
    func undoKilledAfterCommit(store: String) async throws {
        let (fleet, producer) = try await Self.fleet("inbox-undo", store: store, startC: false)
        defer { fleet.stopAll() }
        let slip = Slip(
            template: "probe",
            itinerary: [
                ItineraryStep(step: "a"), ItineraryStep(step: "b"),
                ItineraryStep(step: "c", arguments: ["fault": "no"]),
            ])
        let follower = try await producer.follow([slip])
        // b's execute commits and forwards to c, which is not running yet. Then b runs with the failpoint, and c
        // starts and faults: b's undo is killed after its commit.
        try Self.startInbox(fleet, as: "b")
        try await producer.sender.send(slip)
        var tries = 0
        while (try? await Self.effects(fleet, slip.id, store: store))?["execute"] != 1 && tries < 600 {
            tries += 1
            try await Task.sleep(for: .milliseconds(50))
        }
        _ = await fleet.stop("b")
        try Self.startInbox(fleet, as: "b-after-commit")
        try fleet.startProbe("c")
        try await Self.waitForDeath(fleet, "b-after-commit")
        try Self.startInbox(fleet, as: "b")
        let events = try await producer.collect(follower, count: 1, timeout: .seconds(60))
        #expect(events[slip.id]?.state == .compensated)
        #expect(try await Self.effects(fleet, slip.id, store: store) == ["execute": 1, "undo": 1])
    }
}
