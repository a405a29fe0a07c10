import Foundation
import SlipwayCore
import Testing

@testable import SlipwayAudit

@Suite struct RecordingTests {
    @Test func aSagaGivesItsTimelineAndState() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        let saga = Saga.declined("slip-1")
        #expect(try store.record(saga.events.shuffled()) == 5)

        let timeline = try store.show(slipID: "slip-1")
        #expect(timeline.hops.map { "\($0.sequence) \($0.kind) \($0.step) \($0.outcome) \($0.attempt)" } == [
            "0 execute reserve-stock completed 1",
            "1 execute charge-card retried 1",
            "1 execute charge-card faulted 2",
            "2 compensate reserve-stock completed 1",
            "2 terminal reserve-stock compensated 1",
        ])
        #expect(timeline.hops[1].reason == "connection reset by peer")
        #expect(timeline.hops[1].durationMicros == 5_000_000)
        #expect(timeline.hops[0].processor == "host-reserve-stock:42")
        #expect(timeline.hops[4].durationMicros == nil)

        let slip = timeline.slip
        #expect(slip.state == .compensated)
        #expect(slip.terminal)
        #expect(slip.template == "order")
        #expect(slip.hops == 4)
        #expect(slip.events == 5)
        #expect(slip.faultStep == "charge-card")
        #expect(slip.faultReason == "card declined")
        #expect(slip.lastKind == "terminal")
        #expect(slip.lastStep == "reserve-stock")
        #expect(slip.createdAt == saga.createdAt)
        #expect(slip.firstAt == saga.events[0].at)
        #expect(slip.lastAt == saga.events[4].at)
    }

    @Test func showAcceptsAUniquePrefixOfTheID() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        try store.record(Saga.completed("9f42cf22-aaaa").events + Saga.completed("9f42ee00-bbbb").events)
        #expect(try store.show(slipID: "9f42c").slip.slipID == "9f42cf22-aaaa")
        #expect(auditError { _ = try store.show(slipID: "9f42") }?.code == .invalidArgument)
        let unknown = auditError { _ = try store.show(slipID: "no-such-slip") }
        #expect(unknown?.code == .unknownSlip)
        #expect(unknown?.message.contains("no-such-slip") == true)
    }

    @Test func theSameBatchTwiceAddsNothing() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        let events = Saga.declined("slip-1").events + Saga.completed("slip-2").events
        #expect(try store.record(events) == events.count)
        let before = try store.stats()
        #expect(try store.record(events) == 0)
        #expect(try store.record(Array(events.prefix(3)) + Array(events.prefix(3))) == 0)
        #expect(try store.count("hop") == events.count)
        #expect(try store.count("slip") == 2)
        #expect(try store.stats() == before)
        #expect(try store.show(slipID: "slip-1").slip.hops == 4)
        #expect(try store.show(slipID: "slip-1").slip.events == 5)
    }

    @Test func aDuplicateWithinOneBatchCountsOnce() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        let events = Saga.completed("slip-1").events
        #expect(try store.record(events + events) == events.count)
        #expect(try store.show(slipID: "slip-1").slip.hops == 3)
        #expect(try store.stats().steps.first { $0.step == "charge-card" }?.hops == 1)
        #expect(try store.stats().templates.first?.states == ["completed": 1])
    }

    @Test func eventsOutOfOrderLeaveTheNewestState() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        // Terminal first, then the hops one by one, newest first, each in a batch of its own.
        let saga = Saga.completed("slip-1")
        for event in saga.events.reversed() { try store.record([event]) }
        var slip = try store.show(slipID: "slip-1").slip
        #expect(slip.state == .completed)
        #expect(slip.lastKind == "terminal")
        #expect(slip.lastStep == "ship-order")
        #expect(slip.hops == 3)

        // A running slip: sequence 2 arrives before 1, and attempt 2 of a hop before attempt 1.
        var running = Saga("slip-2")
        running.hop("reserve-stock")
        running.hop("charge-card")
        running.hop("ship-order", .retried, attempt: 1, reason: "timeout")
        running.hop("ship-order", .faulted, state: .compensating, attempt: 2, reason: "cannot ship")
        let e = running.events
        try store.record([e[3], e[0]])
        try store.record([e[2], e[1]])
        slip = try store.show(slipID: "slip-2").slip
        #expect(slip.state == .compensating)
        #expect(slip.lastStep == "ship-order")
        #expect(slip.lastAttempt == 2)
        #expect(slip.lastOutcome == "faulted")
        #expect(slip.faultStep == "ship-order")
        #expect(slip.hops == 4)
        #expect(try store.stats().templates.first?.states == ["completed": 1, "compensating": 1])
    }

    @Test func aParkedEventRanksBeforeTheHopItRefusedAndAfterTheOnesBefore() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        var saga = Saga("slip-1")
        saga.hop("reserve-stock")
        saga.parked("ship-order", code: "misrouted", reason: "the next hop is execute charge-card")
        try store.record(saga.events)
        var slip = try store.show(slipID: "slip-1").slip
        #expect(slip.lastKind == "parked")
        #expect(slip.state == .running)
        #expect(slip.hops == 1)
        // The parked body is replayed to the right queue: the hop it refused runs (same sequence) and is newer.
        saga.hop("charge-card", state: .completed)
        try store.record([saga.events.last!])
        slip = try store.show(slipID: "slip-1").slip
        #expect(slip.lastKind == "execute")
        #expect(slip.state == .completed)
        #expect(try store.show(slipID: "slip-1").hops.map(\.kind) == ["execute", "parked", "execute"])
    }

    @Test func anUnreadableParkedMessageGetsAHopRowButNoSlip() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        let parked = SlipEvent(
            id: "unknown.parked.1", slipID: "unknown", template: "unknown", kind: .parked, step: "charge-card",
            sequence: 0, attempt: 1, outcome: "malformed", state: .running, processor: "h:1",
            at: Date(timeIntervalSince1970: 1_790_000_000), reason: "the body is not valid JSON")
        #expect(try store.record([parked]) == 1)
        #expect(try store.count("slip") == 0)
        #expect(try store.count("hop") == 1)
        #expect(auditError { _ = try store.show(slipID: "unknown") }?.code == .unknownSlip)
        let stats = try store.stats()
        #expect(stats.events == 1)
        #expect(stats.hops == 0)
        #expect(stats.steps.map { "\($0.step) \($0.kind) \($0.hops) \($0.failures)" } == ["charge-card parked 1 1"])
    }

    @Test func theAsyncVariantRecordsToo() async throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        let events = Saga.declined("slip-1").events
        #expect(try await store.record(events) == 5)
        #expect(try await store.record(events) == 0)
        #expect(try store.show(slipID: "slip-1").slip.state == .compensated)
    }

    @Test func aReaderSeesWhatTheWriterCommitsLater() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("audit.sqlite")
        let writer = try AuditStore(path: path)
        let reader = try AuditStore.openForReading(path: path)
        #expect(reader.isReadOnly)
        #expect(try reader.list().slips.isEmpty)
        try writer.record(Saga.completed("slip-1").events)
        #expect(try reader.list().slips.map(\.slipID) == ["slip-1"])
        #expect(auditError { try reader.record(Saga.completed("slip-2").events) }?.code == .readOnly)
    }

    @Test func reopeningKeepsTheDataAndTheSchema() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("nested/dir/audit.sqlite")
        do {
            let store = try AuditStore(path: path)
            try store.record(Saga.completed("slip-1").events)
        }
        let again = try AuditStore(path: path)
        #expect(try again.record(Saga.completed("slip-1").events) == 0)
        #expect(try again.show(slipID: "slip-1").slip.state == .completed)
    }
}

@Suite struct OpeningTests {
    @Test func aMissingFileIsRefusedForReading() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("nothing.sqlite")
        let error = auditError { _ = try AuditStore.openForReading(path: path) }
        #expect(error?.code == .missingDatabase)
        #expect(error?.message == "no audit database at \(path): start `slip audit-sink` or pass --db")
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func aForeignSQLiteFileIsRefused() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("other.sqlite")
        // Another application's database: a table, no audit marker.
        let other = try AuditStore(path: directory.path("scratch.sqlite"))
        try other.pool.write { db in
            try db.execute(sql: "ATTACH DATABASE ? AS other", arguments: [path])
            try db.execute(sql: "CREATE TABLE other.customers (id INTEGER PRIMARY KEY, name TEXT)")
        }
        try other.pool.writeWithoutTransaction { db in try db.execute(sql: "DETACH DATABASE other") }
        let before = try Data(contentsOf: URL(fileURLWithPath: path))

        let reading = auditError { _ = try AuditStore.openForReading(path: path) }
        #expect(reading?.code == .foreignDatabase)
        #expect(reading?.message == "\(path) is not a Slipway audit database")
        let writing = auditError { _ = try AuditStore(path: path) }
        #expect(writing?.code == .foreignDatabase)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    @Test(arguments: ["not a database at all\n", ""])
    func aFileThatIsNotAnAuditDatabaseIsRefusedForReading(content: String) throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("file.sqlite")
        try Data(content.utf8).write(to: URL(fileURLWithPath: path))
        #expect(auditError { _ = try AuditStore.openForReading(path: path) }?.code == .foreignDatabase)
        if !content.isEmpty {
            #expect(auditError { _ = try AuditStore(path: path) }?.code == .foreignDatabase)
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(content.utf8))
        }
    }

    @Test func aDirectoryIsRefused() throws {
        let directory = try TemporaryDirectory()
        #expect(auditError { _ = try AuditStore.openForReading(path: directory.url.path) }?.code == .foreignDatabase)
    }

    @Test func theDefaultPathComesFromTheEnvironment() {
        #expect(AuditStore.defaultPath(explicit: "x.sqlite", environment: ["SLIPWAY_AUDIT_DB": "y"]) == "x.sqlite")
        #expect(AuditStore.defaultPath(environment: ["SLIPWAY_AUDIT_DB": "/var/audit.sqlite"]) == "/var/audit.sqlite")
        #expect(AuditStore.defaultPath(environment: [:]) == ".slipway/audit.sqlite")
    }

    @Test func severalWritersCanCreateTheSameFileAtOnce() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("audit.sqlite")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<4 {
                group.addTask {
                    let store = try AuditStore(path: path)
                    try store.record(Saga.completed("slip-\(index)").events)
                }
            }
            try await group.waitForAll()
        }
        #expect(try AuditStore.openForReading(path: path).list().slips.count == 4)
    }
}
