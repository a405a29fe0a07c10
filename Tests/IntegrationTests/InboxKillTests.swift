import Foundation
import GRDB
import Slipway
import SlipwayProcesses
import Testing

/// An inbox step (`probe-step --inbox`) as a process, SIGKILLed at the two points that matter: after its handler
/// wrote, before the commit; and after the commit, before the forward. Counting its rows afterwards: every effect
/// exactly once.
@Suite("inbox steps killed around their commit", .serialized)
struct InboxKillTests {
    /// Probes a and c plain (c when `startC`), b an inbox step; b's start is the test's.
    static func fleet(_ name: String, startC: Bool = true) throws -> (SagaFleet, Producer) {
        let fleet = try SagaFleet(
            name: name,
            environment: [
                "b-before-commit": ["SLIPWAY_FAILPOINT": "before-commit"],
                "b-after-commit": ["SLIPWAY_FAILPOINT": "after-commit"],
            ])
        try fleet.startProbe("a")
        if startC { try fleet.startProbe("c") }
        return (fleet, try Producer(fleet: fleet))
    }

    static func startInbox(_ fleet: SagaFleet, as name: String) throws {
        try fleet.start(name, executable: "probe-step", arguments: ["--step", "b", "--inbox"])
    }

    /// Rows of b's effects for `slipID`, by kind, read from its hop record's file.
    static func effects(_ fleet: SagaFleet, _ slipID: String) throws -> [String: Int] {
        let path = fleet.directory.appendingPathComponent("state/b.hops.sqlite").path
        return try DatabaseQueue(path: path).read { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT kind, count(*) AS n FROM probe_effect WHERE slip_id = ? GROUP BY kind",
                arguments: [slipID])
            return Dictionary(uniqueKeysWithValues: rows.map { ($0["kind"] as String, $0["n"] as Int) })
        }
    }

    /// Whether b's hop record holds its execute hop of `slipID`.
    static func recorded(_ fleet: SagaFleet, _ slipID: String) throws -> Bool {
        let path = fleet.directory.appendingPathComponent("state/b.hops.sqlite").path
        return try DatabaseQueue(path: path).read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM hop_record WHERE slip_id = ?", arguments: [slipID]) == 1
        }
    }

    /// Waits for the process started as `name` to be gone (it killed itself at its failpoint).
    static func waitForDeath(_ fleet: SagaFleet, _ name: String) async throws {
        for _ in 0..<600 where fleet.isRunning(name) { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!fleet.isRunning(name), "\(name) did not reach its failpoint")
        _ = await fleet.stop(name)
    }

    @Test(
        "killed after writing and before the commit, or after the commit and before the forward, the step's effect is there once",
        arguments: ["before-commit", "after-commit"])
    func killedAroundTheCommit(point: String) async throws {
        let (fleet, producer) = try Self.fleet("inbox-\(point)")
        defer { fleet.stopAll() }
        let slip = Slip(template: "probe", itinerary: ["a", "b", "c"].map { ItineraryStep(step: $0) })
        let follower = try await producer.follow([slip])
        try Self.startInbox(fleet, as: "b-\(point)")
        try await producer.sender.send(slip)
        try await Self.waitForDeath(fleet, "b-\(point)")
        #expect(fleet.log("b-\(point)").contains("SLIPWAY_FAILPOINT=\(point) reached"))
        // What the crash left: nothing before the commit; the effect and its record after it.
        #expect(try Self.effects(fleet, slip.id) == (point == "before-commit" ? [:] : ["execute": 1]))
        #expect(try Self.recorded(fleet, slip.id) == (point == "after-commit"))

        // Started again without the failpoint: the message comes back, and the hop runs (before-commit: nothing was
        // kept) or is forwarded from its record (after-commit: the handler does not run again).
        try Self.startInbox(fleet, as: "b")
        let events = try await producer.collect(follower, count: 1, timeout: .seconds(60))
        #expect(events[slip.id]?.state == .completed)
        #expect(try Self.effects(fleet, slip.id) == ["execute": 1])
    }

    @Test("a fault after the inbox step undoes it once, in the undo hop's transaction, across a kill after its commit")
    func undoKilledAfterCommit() async throws {
        let (fleet, producer) = try Self.fleet("inbox-undo", startC: false)
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
        for _ in 0..<600 where (try? Self.effects(fleet, slip.id))?["execute"] != 1 {
            try await Task.sleep(for: .milliseconds(50))
        }
        _ = await fleet.stop("b")
        try Self.startInbox(fleet, as: "b-after-commit")
        try fleet.startProbe("c")
        try await Self.waitForDeath(fleet, "b-after-commit")
        try Self.startInbox(fleet, as: "b")
        let events = try await producer.collect(follower, count: 1, timeout: .seconds(60))
        #expect(events[slip.id]?.state == .compensated)
        #expect(try Self.effects(fleet, slip.id) == ["execute": 1, "undo": 1])
    }
}
