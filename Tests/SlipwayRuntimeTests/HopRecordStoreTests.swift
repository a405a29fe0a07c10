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

    func record(_ slip: String, _ sequence: Int, body: [UInt8] = Array("{\"slip\":1}".utf8)) -> HopRecord {
        HopRecord(
            slipID: slip, sequence: sequence, step: "charge", kind: .execute, outcome: "completed",
            outgoing: [
                .toQueue("slipway.ship.execute", body: body, headers: ["x-a": "1", "x-b": "2"], messageID: "m1", correlationID: slip, contentType: "application/json"),
                OutgoingMessage(exchange: "slipway.events", routingKey: "execute.charge.\(slip)", body: [0, 255, 10], persistent: false),
            ])
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
                    VALUES (?, ?, ?, ?, ?, ?, 1, 0)
                    """,
                arguments: ["old", 2, "charge", "execute", "completed", try JSONEncoder().encode(legacy.outgoing)])
        }
        let read = try #require(try await store.record(slipID: "old", sequence: 2))
        #expect(read.outgoing == legacy.outgoing)
        #expect(read.forwarded)
    }
}
