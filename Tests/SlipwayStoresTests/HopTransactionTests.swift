import Foundation
import GRDB
import SlipwayStores
import SlipwayTransport
import Testing

/// `transact`: an inbox step's writes and its hop record in one savepoint of the group commit.
@Suite("Hop transactions in SQLite")
struct HopTransactionTests {
    struct Refused: Error {}

    func store() throws -> (SQLiteHopRecordStore, String) {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("hop-transactions-\(UUID().uuidString)/hops.sqlite").path
        let store = try SQLiteHopRecordStore(path: path)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("ledger 1") { db in try db.execute(sql: "CREATE TABLE ledger (slip_id TEXT PRIMARY KEY)") }
        try store.migrate(migrator)
        return (store, path)
    }

    func record(_ slip: String) -> HopRecord {
        HopRecord(
            slipID: slip, sequence: 1, step: "ledger", kind: .execute, outcome: .completed,
            outgoing: [.toQueue("slipway.next.execute", body: Array(slip.utf8))], recordedAt: Date(timeIntervalSince1970: 1))
    }

    func ledger(_ path: String) throws -> [String] {
        try DatabaseQueue(path: path).read { db in try String.fetchAll(db, sql: "SELECT slip_id FROM ledger ORDER BY slip_id") }
    }

    @Test("the writes and the record commit together; a hop recorded already does not run its work again")
    func savesOnce() async throws {
        let (store, path) = try store()
        let write: @Sendable (Database) throws -> HopRecord? = { db in
            try db.execute(sql: "INSERT INTO ledger VALUES ('s1')")
            return self.record("s1")
        }
        guard case .saved(let saved) = try await store.transact(slipID: "s1", sequence: 1, write) else {
            Issue.record("not saved")
            return
        }
        // Run again, the insert would fail on its primary key: it is not run, and the first record comes back.
        guard case .found(let found) = try await store.transact(slipID: "s1", sequence: 1, write) else {
            Issue.record("not found")
            return
        }
        #expect(found.slipID == "s1" && found.outgoing == saved.outgoing)
        #expect(try ledger(path) == ["s1"])
        #expect(try await store.record(slipID: "s1", sequence: 1)?.outgoing == record("s1").outgoing)
    }

    @Test("no record to save rolls the writes back")
    func nilRollsBack() async throws {
        let (store, path) = try store()
        let result = try await store.transact(slipID: "s1", sequence: 1) { db in
            try db.execute(sql: "INSERT INTO ledger VALUES ('s1')")
            return nil
        }
        #expect(result == .notSaved)
        #expect(try ledger(path) == [])
        #expect(try await store.record(slipID: "s1", sequence: 1) == nil)
    }

    @Test("a failing hop in a batch fails alone: the others' writes and records commit")
    func failureIsPerHop() async throws {
        let (store, path) = try store()
        let results = await withTaskGroup(of: (String, Bool).self) { group in
            for index in 0..<40 {
                group.addTask {
                    let slip = "s\(String(format: "%02d", index))"
                    do {
                        _ = try await store.transact(slipID: slip, sequence: 1) { db in
                            try db.execute(sql: "INSERT INTO ledger VALUES (?)", arguments: [slip])
                            if index % 4 == 0 { throw Refused() }
                            return self.record(slip)
                        }
                        return (slip, true)
                    } catch {
                        return (slip, false)
                    }
                }
            }
            return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        let succeeded = results.filter(\.value).keys.sorted()
        #expect(succeeded.count == 30)
        #expect(try ledger(path) == succeeded)
        for (slip, ok) in results {
            #expect((try await store.record(slipID: slip, sequence: 1) != nil) == ok)
        }
    }
}
