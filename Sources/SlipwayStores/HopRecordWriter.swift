import Foundation
import GRDB
import Synchronization
import SlipwayCore
import SlipwayTransport

/// Group commit for the hop record: saves from concurrent hops, and the forwarded marks of finished ones, are written
/// together in one transaction with prepared statements. A batch is whatever came while the previous one was being
/// committed, so an idle processor commits at once and a busy one commits many hops per transaction.
final class HopRecordWriter: Sendable {
    private struct PendingSave {
        var record: HopRecord
        var outgoing: Data
        var continuation: CheckedContinuation<HopRecord, any Error>
    }

    private struct State {
        var saves: [PendingSave] = []
        var forwarded: [(slipID: String, sequence: Int)] = []
        var flushing = false
    }

    private let pool: DatabasePool
    private let state = Mutex(State())
    /// Where a batch is committed: the processor's loop, if it has one, so that it goes after the hops already due
    /// there have added their saves.
    private let taskExecutor: (any TaskExecutor)?

    init(pool: DatabasePool, taskExecutor: (any TaskExecutor)?) {
        self.pool = pool
        self.taskExecutor = taskExecutor
    }

    /// Returns once the record is committed: the new one, or the one already there for the same hop.
    func save(_ record: HopRecord) async throws -> HopRecord {
        let outgoing = OutgoingMessageBlob.encode(record.outgoing)
        return try await withCheckedThrowingContinuation { continuation in
            enqueue { $0.saves.append(PendingSave(record: record, outgoing: outgoing, continuation: continuation)) }
        }
    }

    /// Queued, not awaited: it is written with the next batch.
    func markForwarded(slipID: String, sequence: Int) {
        enqueue { $0.forwarded.append((slipID, sequence)) }
    }

    private func enqueue(_ change: (inout State) -> Void) {
        let startFlushing = state.withLock { state in
            change(&state)
            defer { state.flushing = true }
            return !state.flushing
        }
        if startFlushing { Task(executorPreference: taskExecutor) { await self.flush() } }
    }

    private func flush() async {
        while true {
            let (saves, forwarded) = state.withLock { state in
                defer {
                    state.saves.removeAll(keepingCapacity: true)
                    state.forwarded.removeAll(keepingCapacity: true)
                }
                if state.saves.isEmpty && state.forwarded.isEmpty { state.flushing = false }
                return (state.saves, state.forwarded)
            }
            if saves.isEmpty && forwarded.isEmpty { return }
            do {
                // Synchronous, on this task's thread: one commit (no fsync in WAL with synchronous=NORMAL) for the whole
                // batch, without the two thread switches of an asynchronous write.
                let results = try writeNow(saves, forwarded)
                for (save, result) in zip(saves, results) { save.continuation.resume(returning: result) }
            } catch {
                // The saves fail (their hops go back to the queue); lost marks only mean a second forward later.
                for save in saves { save.continuation.resume(throwing: error) }
            }
        }
    }

    private func writeNow(_ saves: [PendingSave], _ forwarded: [(slipID: String, sequence: Int)]) throws -> [HopRecord] {
        try pool.write { db in try Self.write(saves, forwarded, db) }
    }

    private static func write(
        _ saves: [PendingSave], _ forwarded: [(slipID: String, sequence: Int)], _ db: Database
    ) throws -> [HopRecord] {
        let insert = try db.cachedStatement(
            sql: """
                INSERT INTO hop_record (slip_id, sequence, step, kind, outcome, outgoing, forwarded, recorded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (slip_id, sequence) DO NOTHING
                """)
        var results: [HopRecord] = []
        results.reserveCapacity(saves.count)
        for save in saves {
            let record = save.record
            try insert.execute(arguments: [
                record.slipID, record.sequence, record.step, record.kind.rawValue, record.outcome, save.outgoing,
                record.forwarded, record.recordedAt.timeIntervalSince1970,
            ])
            if db.changesCount == 1 {
                results.append(record)
            } else {
                let existing = try Row.fetchOne(
                    db, sql: "SELECT * FROM hop_record WHERE slip_id = ? AND sequence = ?",
                    arguments: [record.slipID, record.sequence])
                results.append(try existing.map(SQLiteHopRecordStore.decode) ?? record)
            }
        }
        let mark = try db.cachedStatement(sql: "UPDATE hop_record SET forwarded = 1 WHERE slip_id = ? AND sequence = ?")
        for hop in forwarded { try mark.execute(arguments: [hop.slipID, hop.sequence]) }
        return results
    }
}

/// The stored form of a hop's outgoing messages: a compact binary layout (bodies as raw bytes, where JSON would
/// spell every byte as a number). Records written by earlier versions, in JSON, are still read.
public enum OutgoingMessageBlob {
    private static let magic: [UInt8] = Array("SWO1".utf8)

    public static func encode(_ messages: [OutgoingMessage]) -> Data {
        var out = Data(magic)
        func int(_ value: Int) { withUnsafeBytes(of: UInt32(value).littleEndian) { out.append(contentsOf: $0) } }
        func bytes(_ value: some Collection<UInt8>) {
            int(value.count)
            out.append(contentsOf: value)
        }
        func string(_ value: String?) {
            guard let value else { return int(Int(UInt32.max)) }
            bytes(Array(value.utf8))
        }
        int(messages.count)
        for message in messages {
            string(message.exchange)
            string(message.routingKey)
            bytes(message.body)
            int(message.headers.count)
            for (key, value) in message.headers.sorted(by: { $0.key < $1.key }) {
                string(key)
                string(value)
            }
            string(message.messageID)
            string(message.correlationID)
            string(message.contentType)
            out.append(message.persistent ? 1 : 0)
        }
        return out
    }

    public static func decode(_ data: Data) throws -> [OutgoingMessage] {
        guard data.starts(with: magic) else { return try JSONDecoder().decode([OutgoingMessage].self, from: data) }
        var reader = Reader(data: [UInt8](data.dropFirst(magic.count)))
        let count = try reader.int()
        var messages: [OutgoingMessage] = []
        for _ in 0..<count {
            let exchange = try reader.string() ?? ""
            let routingKey = try reader.string() ?? ""
            let body = try reader.bytes()
            var headers: [String: String] = [:]
            for _ in 0..<(try reader.int()) {
                let key = try reader.string() ?? ""
                headers[key] = try reader.string() ?? ""
            }
            messages.append(
                OutgoingMessage(
                    exchange: exchange, routingKey: routingKey, body: body, headers: headers,
                    messageID: try reader.string(), correlationID: try reader.string(), contentType: try reader.string(),
                    persistent: try reader.byte() == 1))
        }
        return messages
    }

    private struct Reader {
        let data: [UInt8]
        var offset = 0

        mutating func byte() throws -> UInt8 {
            guard offset < data.count else { throw DatabaseError(message: "truncated hop record") }
            defer { offset += 1 }
            return data[offset]
        }

        mutating func int() throws -> Int {
            var value: UInt32 = 0
            for shift in 0..<4 { value |= UInt32(try byte()) << (8 * shift) }
            return Int(value)
        }

        mutating func bytes() throws -> [UInt8] {
            let count = try int()
            guard count <= data.count - offset else { throw DatabaseError(message: "truncated hop record") }
            defer { offset += count }
            return Array(data[offset..<offset + count])
        }

        mutating func string() throws -> String? {
            let count = try int()
            if count == Int(UInt32.max) { return nil }
            offset -= 4
            return String(decoding: try bytes(), as: UTF8.self)
        }
    }
}
