import Foundation
import GRDB
import SlipwayStores
import SlipwayTransport
import Testing

@Suite("Hop record in SQLite")
struct HopRecordStoreTests {
    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("hop-records-\(UUID().uuidString)/hops.sqlite").path
    }

    func record(
        _ slip: String, _ sequence: Int, body: [UInt8] = Array("{\"slip\":1}".utf8), recordedAt: Date = Date()
    ) -> HopRecord {
        HopRecord(
            slipID: slip, sequence: sequence, step: "charge", kind: .execute, outcome: .completed,
            outgoing: [
                .toQueue("slipway.ship.execute", body: body, headers: ["x-a": "1", "x-b": "2"], messageID: "m1", correlationID: slip, contentType: "application/json"),
                OutgoingMessage(exchange: "slipway.events", routingKey: "execute.charge.\(slip)", body: [0, 255, 10], persistent: false),
            ], recordedAt: recordedAt)
    }

    @Test("concurrent saves are all committed and read back with their outgoing messages byte for byte")
    func concurrentSaves() async throws {
        let path = temporaryPath()
        let store = try SQLiteHopRecordStore(path: path)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<200 { group.addTask { try await store.save(self.record("s\(index)", 1)) } }
            try await group.waitForAll()
        }
        // A new store on the same file: what was read back comes from disk, not from memory.
        let reopened = try SQLiteHopRecordStore(path: path)
        for index in [0, 99, 199] {
            let saved = try #require(try await reopened.record(slipID: "s\(index)", sequence: 1))
            #expect(saved.outgoing == record("s\(index)", 1).outgoing)
            #expect(saved.forwarded == false)
        }
    }

    @Test("a second save of the same hop keeps and returns the first record")
    func firstRecordWins() async throws {
        let store = try SQLiteHopRecordStore(path: temporaryPath())
        let first = try await store.save(record("s", 3, body: Array("first".utf8)))
        let second = try await store.save(record("s", 3, body: Array("second".utf8)))
        #expect(second.outgoing == first.outgoing)
        #expect(try await store.record(slipID: "s", sequence: 3)?.outgoing.first?.body == Array("first".utf8))
    }

    @Test("a forwarded mark reaches the file with the next write")
    func forwardedMark() async throws {
        let path = temporaryPath()
        let store = try SQLiteHopRecordStore(path: path)
        try await store.save(record("s", 1))
        try await store.markForwarded(slipID: "s", sequence: 1)
        try await store.save(record("t", 1))  // a later batch: the mark was written with it or before it
        #expect(try await SQLiteHopRecordStore(path: path).record(slipID: "s", sequence: 1)?.forwarded == true)
    }

    @Test("records written by the earlier JSON layout are still read")
    func legacyLayout() async throws {
        let path = temporaryPath()
        let store = try SQLiteHopRecordStore(path: path)
        let legacy = record("old", 2)
        let pool = try DatabasePool(path: path)
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO hop_record (slip_id, sequence, step, kind, outcome, outgoing, forwarded, recorded_at)
                    VALUES (?, ?, ?, ?, ?, ?, 1, ?)
                    """,
                arguments: [
                    "old", 2, "charge", "execute", "completed", try JSONEncoder().encode(legacy.outgoing),
                    Date().timeIntervalSince1970,
                ])
        }
        let read = try #require(try await store.record(slipID: "old", sequence: 2))
        #expect(read.outgoing == legacy.outgoing)
        #expect(read.forwarded)
    }

    @Test("a file a newer build migrated is refused, by name of the migration this build does not know, and left as it was")
    func newerSchemaRefused() async throws {
        let path = temporaryPath()
        let store = try SQLiteHopRecordStore(path: path)
        try await store.save(record("kept", 1))
        let file = try DatabaseQueue(path: path)
        try await file.write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations VALUES ('v9: from the future')")
        }
        try file.close()

        #expect {
            _ = try SQLiteHopRecordStore(path: path)
        } throws: { error in
            (error as? SchemaTooNewError)?.unknownMigrations == ["v9: from the future"]
                && "\(error)".contains("newer Slipway")
        }
        let check = try DatabaseQueue(path: path)
        let rows = try await check.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM hop_record") }
        #expect(rows == 1)
    }

    @Test("a file of the earlier layout (WITHOUT ROWID) keeps its records, marks and age index when a store opens it")
    func upgradeToRowidTable() async throws {
        let path = temporaryPath()
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let old = try DatabaseQueue(path: path)
        let earlier = record("before-upgrade", 3)
        try await old.write { db in
            // The schema as migrations v1 to v3 left it, and GRDB's note that they ran.
            try db.execute(
                sql: """
                    CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                    INSERT INTO grdb_migrations VALUES ('v1: hop records'), ('v2: redeliveries'), ('v3: pruning by age');
                    CREATE TABLE hop_record (
                        slip_id TEXT NOT NULL, sequence INTEGER NOT NULL, step TEXT NOT NULL, kind TEXT NOT NULL,
                        outcome TEXT NOT NULL, outgoing BLOB NOT NULL, forwarded INTEGER NOT NULL DEFAULT 0,
                        recorded_at REAL NOT NULL, PRIMARY KEY (slip_id, sequence)
                    ) WITHOUT ROWID;
                    CREATE TABLE redelivery (
                        slip_id TEXT NOT NULL, sequence INTEGER NOT NULL, attempt INTEGER NOT NULL, count INTEGER NOT NULL,
                        noted_at REAL NOT NULL DEFAULT 0, PRIMARY KEY (slip_id, sequence, attempt)
                    ) WITHOUT ROWID;
                    CREATE INDEX hop_record_by_age ON hop_record (recorded_at);
                    """)
            try db.execute(
                sql: """
                    INSERT INTO hop_record (slip_id, sequence, step, kind, outcome, outgoing, forwarded, recorded_at)
                    VALUES ('before-upgrade', 3, 'charge', 'execute', 'completed', ?, 1, ?)
                    """,
                arguments: [try JSONEncoder().encode(earlier.outgoing), Date().addingTimeInterval(-3600).timeIntervalSince1970])
        }
        try old.close()

        let store = try SQLiteHopRecordStore(path: path)
        let kept = try #require(try await store.record(slipID: "before-upgrade", sequence: 3))
        #expect(kept.outgoing == earlier.outgoing)
        #expect(kept.forwarded)
        // The key still refuses a second record of the same hop, and new records go in beside the old.
        let again = try await store.save(record("before-upgrade", 3, body: [1, 2, 3]))
        #expect(again.outgoing == earlier.outgoing)
        try await store.save(record("after-upgrade", 1))
        #expect(try await store.record(slipID: "after-upgrade", sequence: 1) != nil)
        #expect(try store.prune(recordedBefore: Date().addingTimeInterval(-60)) == 1)
        #expect(try await store.record(slipID: "before-upgrade", sequence: 3) == nil)

        let check = try DatabaseQueue(path: path)
        let rowids = try await check.read { db in try Int.fetchOne(db, sql: "SELECT count(rowid) FROM hop_record") }
        #expect(rowids == 1)
        let indexes = try await check.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'hop_record'")
        }
        #expect(indexes.contains("hop_record_by_age"))
    }

    @Test("records older than the retention are pruned; newer ones, and the redeliveries counted since, stay")
    func pruning() async throws {
        let store = try SQLiteHopRecordStore(path: temporaryPath(), keepFor: nil)
        let week = TimeInterval(7 * 24 * 3600)
        for index in 0..<1_200 {  // more than one chunk of deletes
            try await store.save(record("old\(index)", 1, recordedAt: Date(timeIntervalSinceNow: -week - 3600)))
        }
        try await store.save(record("recent", 1, recordedAt: Date(timeIntervalSinceNow: -week + 3600)))
        #expect(try await store.noteRedelivery(slipID: "recent", sequence: 1, attempt: 1) == 1)

        #expect(try store.prune(recordedBefore: Date(timeIntervalSinceNow: -week)) == 1_200)
        #expect(try await store.record(slipID: "old0", sequence: 1) == nil)
        #expect(try await store.record(slipID: "old1199", sequence: 1) == nil)
        #expect(try await store.record(slipID: "recent", sequence: 1) != nil)
        #expect(try await store.noteRedelivery(slipID: "recent", sequence: 1, attempt: 1) == 2)
        #expect(try store.prune(recordedBefore: Date(timeIntervalSinceNow: -week)) == 0)
    }

    @Test("a running store prunes on its own, and its run ends when cancelled", .timeLimit(.minutes(1)))
    func prunesOnItsOwn() async throws {
        let store = try SQLiteHopRecordStore(path: temporaryPath(), keepFor: .seconds(3600), pruneEvery: .milliseconds(50))
        let maintenance = Task { await store.run() }
        try await store.save(record("stale", 1, recordedAt: Date(timeIntervalSinceNow: -7200)))
        try await store.save(record("fresh", 1))
        while try await store.record(slipID: "stale", sequence: 1) != nil {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try await store.record(slipID: "fresh", sequence: 1) != nil)
        maintenance.cancel()
        await maintenance.value
    }
}
