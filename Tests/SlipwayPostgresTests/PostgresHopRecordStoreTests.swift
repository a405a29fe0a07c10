import Foundation
import PostgresNIO
import SlipwayCore
import SlipwayPostgres
import SlipwayStores
import SlipwayTransport
import Testing

func hopRecord(
    _ slip: String, _ sequence: Int, step: String, body: [UInt8] = Array("{\"slip\":1}".utf8), recordedAt: Date = Date()
) -> HopRecord {
    HopRecord(
        slipID: slip, sequence: sequence, step: step, kind: .execute, outcome: .completed,
        outgoing: [
            .toQueue(
                "slipway.ship.execute", body: body, headers: ["x-a": "1", "x-b": "2"], messageID: "m1", correlationID: slip,
                contentType: "application/json"),
            OutgoingMessage(exchange: "slipway.events", routingKey: "execute.charge.\(slip)", body: [0, 255, 10], persistent: false),
        ], recordedAt: recordedAt)
}

/// A step name of the test's own: rows are keyed by step, so tests share the database without seeing each other.
func uniqueStep() -> String { "t-\(UUID().uuidString.prefix(12).lowercased())" }

@Suite("Hop record in PostgreSQL", .enabled(if: PostgresTestServer.enabled, "set SLIPWAY_POSTGRES_TESTS=1"))
struct PostgresHopRecordStoreTests {
    @Test("concurrent saves are all committed and read back by another store with their outgoing messages byte for byte")
    func concurrentSaves() async throws {
        let step = uniqueStep()
        try await withStore(step: step) { store in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<200 { group.addTask { try await store.save(hopRecord("s\(index)", 1, step: step)) } }
                try await group.waitForAll()
            }
        }
        try await withStore(step: step) { other in
            for index in [0, 99, 199] {
                let saved = try #require(try await other.record(slipID: "s\(index)", sequence: 1))
                #expect(saved.outgoing == hopRecord("s\(index)", 1, step: step).outgoing)
                #expect(saved.forwarded == false)
                #expect(saved.outcome == .completed && saved.kind == .execute && saved.step == step)
            }
            #expect(try await other.record(slipID: "s0", sequence: 2) == nil)
        }
    }

    @Test("the outgoing messages are stored in the same bytes as in the SQLite record")
    func sameBytesAsSQLite() async throws {
        let step = uniqueStep()
        let record = hopRecord("s", 1, step: step)
        try await withStore(step: step) { store in try await store.save(record) }
        let stored = try await PostgresTestServer.admin { client in
            var blob: [UInt8] = []
            for try await data in try await client.query(
                "SELECT outgoing FROM hop_record WHERE step = \(step) AND slip_id = 's'"
            ).decode(Data.self) { blob = [UInt8](data) }
            return blob
        }
        #expect(stored == [UInt8](OutgoingMessageBlob.encode(record.outgoing)))
    }

    @Test("a second save of the same hop, from either of two stores, keeps and returns the first record")
    func firstRecordWins() async throws {
        try await withTwoStores { first, second in
            let step = first.step
            let saved = try await first.save(hopRecord("s", 3, step: step, body: Array("first".utf8)))
            let again = try await second.save(hopRecord("s", 3, step: step, body: Array("second".utf8)))
            #expect(again.outgoing == saved.outgoing)
            #expect(try await second.record(slipID: "s", sequence: 3)?.outgoing.first?.body == Array("first".utf8))
            // Concurrent saves of one hop in one batch and across stores: all get the same record.
            let results = try await withThrowingTaskGroup(of: HopRecord.self) { group in
                for index in 0..<10 {
                    let store = index % 2 == 0 ? first : second
                    group.addTask { try await store.save(hopRecord("c", 1, step: step, body: Array("body \(index)".utf8))) }
                }
                return try await group.reduce(into: [HopRecord]()) { $0.append($1) }
            }
            #expect(Set(results.map { $0.outgoing.first!.body }).count == 1)
        }
    }

    @Test("a forwarded mark is written with the next batch, and another store reads it")
    func forwardedMark() async throws {
        try await withTwoStores { store, other in
            try await store.save(hopRecord("s", 1, step: store.step))
            try await store.markForwarded(slipID: "s", sequence: 1)
            await store.flush()
            #expect(try await other.record(slipID: "s", sequence: 1)?.forwarded == true)
        }
    }

    @Test("redeliveries are counted per attempt across stores")
    func redeliveryCount() async throws {
        let counts = try await withTwoStores { first, second in
            [
                try await first.noteRedelivery(slipID: "s", sequence: 1, attempt: 1),
                try await second.noteRedelivery(slipID: "s", sequence: 1, attempt: 1),
                try await first.noteRedelivery(slipID: "s", sequence: 1, attempt: 2),
                try await second.noteRedelivery(slipID: "s", sequence: 2, attempt: 1),
            ]
        }
        #expect(counts == [1, 2, 1, 1])
    }

    @Test("pruning deletes this step's records older than the cutoff and keeps the rest")
    func prune() async throws {
        let step = uniqueStep()
        let otherStep = uniqueStep()
        let old = Date().addingTimeInterval(-10 * 24 * 3600)
        try await withStore(step: step, keepFor: nil) { store in
            try await withStore(step: otherStep, keepFor: nil) { other in
                for index in 0..<1_200 { try await store.save(hopRecord("old\(index)", 1, step: step, recordedAt: old)) }
                try await store.save(hopRecord("new", 1, step: step))
                try await other.save(hopRecord("old", 1, step: otherStep, recordedAt: old))
                let pruned = try await store.prune(recordedBefore: Date().addingTimeInterval(-7 * 24 * 3600))
                #expect(pruned == 1_200)
                #expect(try await store.record(slipID: "old0", sequence: 1) == nil)
                #expect(try await store.record(slipID: "new", sequence: 1) != nil)
                #expect(try await other.record(slipID: "old", sequence: 1) != nil)
            }
        }
    }
}
