import Foundation
import Logging
import NIOCore
import PostgresNIO
import SlipwayCore
import SlipwayStores
import SlipwayTransport
import Synchronization

/// Group commit for the PostgreSQL hop record: the saves of concurrent hops, and the forwarded marks of finished ones,
/// go to the database in one statement (arrays unnested into rows), so a busy processor pays one round trip and one
/// commit for many hops. A batch is whatever came while the batches before it were in flight (a few at once): an idle
/// processor writes at once.
///
/// The statement inserts the new records (a hop already recorded keeps its first record), deletes their claims and
/// marks the forwarded hops, atomically. Rows are sorted by key so that two processes writing overlapping batches lock
/// them in the same order.
final class PostgresRecordWriter: Sendable {
    private struct PendingSave {
        var record: HopRecord
        var continuation: CheckedContinuation<HopRecord, any Error>
    }

    private struct State {
        var saves: [PendingSave] = []
        var forwarded: [Key] = []
        /// Batches being written now.
        var flushers = 0
        var drained: [CheckedContinuation<Void, Never>] = []
    }

    struct Key: Hashable, Comparable {
        var slipID: String
        var sequence: Int
        static func < (a: Key, b: Key) -> Bool { (a.slipID, a.sequence) < (b.slipID, b.sequence) }
    }

    /// At most this many hops in one statement.
    static let batchLimit = 500
    /// At most this many batches in flight, each on a connection of its own: a commit waits for the disk, and
    /// PostgreSQL flushes the commits that wait together with one write (its group commit).
    static let batchesInFlight = 4

    private let client: PostgresClient
    private let step: String
    private let logger: Logger
    private let state = Mutex(State())

    init(client: PostgresClient, step: String, logger: Logger) {
        self.client = client
        self.step = step
        self.logger = logger
    }

    func save(_ record: HopRecord) async throws -> HopRecord {
        try await withCheckedThrowingContinuation { continuation in
            enqueue { $0.saves.append(PendingSave(record: record, continuation: continuation)) }
        }
    }

    func markForwarded(slipID: String, sequence: Int) {
        enqueue { $0.forwarded.append(Key(slipID: slipID, sequence: sequence)) }
    }

    /// Returns once nothing queued before the call is left unwritten.
    func drain() async {
        await withCheckedContinuation { continuation in
            let idle = state.withLock { state in
                if state.flushers == 0 { return true }
                state.drained.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    private func enqueue(_ change: (inout State) -> Void) {
        let startFlushing = state.withLock { state in
            change(&state)
            guard state.flushers < Self.batchesInFlight else { return false }
            state.flushers += 1
            return true
        }
        if startFlushing { Task { await self.flush() } }
    }

    private func flush() async {
        while true {
            let (saves, forwarded, drained) = state.withLock { state in
                let saves = Array(state.saves.prefix(Self.batchLimit))
                state.saves.removeFirst(saves.count)
                let forwarded = Array(state.forwarded.prefix(Self.batchLimit))
                state.forwarded.removeFirst(forwarded.count)
                var drained: [CheckedContinuation<Void, Never>] = []
                if saves.isEmpty && forwarded.isEmpty {
                    state.flushers -= 1
                    if state.flushers == 0 {
                        drained = state.drained
                        state.drained.removeAll()
                    }
                }
                return (saves, forwarded, drained)
            }
            if saves.isEmpty && forwarded.isEmpty {
                for continuation in drained { continuation.resume() }
                return
            }
            do {
                let results = try await write(saves.map(\.record), forwarded)
                for (save, result) in zip(saves, results) { save.continuation.resume(returning: result) }
            } catch {
                // The saves fail (their hops go back to the queue); lost marks only mean a second forward later.
                let failure = PostgresStoreError("database", "saving hop records in PostgreSQL failed: \(describe(error))")
                logger.warning("writing hop records failed", metadata: ["error": "\(failure.message)"])
                for save in saves { save.continuation.resume(throwing: failure) }
            }
        }
    }

    /// Writes a batch; returns, for each save in order, the record now stored (its own, or the first one saved).
    func write(_ records: [HopRecord], _ forwarded: [Key]) async throws -> [HopRecord] {
        // One row per hop, the first save of a hop in the batch (a second one gets whatever the first got).
        var unique: [Key: HopRecord] = [:]
        for record in records where unique[Key(slipID: record.slipID, sequence: record.sequence)] == nil {
            unique[Key(slipID: record.slipID, sequence: record.sequence)] = record
        }
        let rows = unique.sorted { $0.key < $1.key }.map(\.value)
        let marks = Array(Set(forwarded)).sorted()
        var attempt = 1
        while true {
            do {
                return try await writeOnce(records, rows, marks)
            } catch let error as PSQLError where attempt < 3 && error.serverInfo?[.sqlState] == "40P01" {
                // A deadlock with another process's batch (possible despite the ordering, across the statement's
                // parts): the database rolled this one back; write it again.
                attempt += 1
            }
        }
    }

    private func writeOnce(_ records: [HopRecord], _ rows: [HopRecord], _ marks: [Key]) async throws -> [HopRecord] {
        let slipIDs = rows.map(\.slipID)
        let sequences = rows.map(\.sequence)
        let kinds = rows.map(\.kind.rawValue)
        let outcomes = rows.map(\.outcome.rawValue)
        let outgoing = rows.map { ByteBuffer(bytes: OutgoingMessageBlob.encode($0.outgoing)) }
        let forwardedFlags = rows.map(\.forwarded)
        let recordedAt = rows.map(\.recordedAt.timeIntervalSince1970)
        let markIDs = marks.map(\.slipID)
        let markSequences = marks.map(\.sequence)
        let inserted = try await client.query(
            """
            WITH input AS (
                SELECT * FROM unnest(\(slipIDs)::TEXT[], \(sequences)::INT8[], \(kinds)::TEXT[], \(outcomes)::TEXT[],
                    \(outgoing)::BYTEA[], \(forwardedFlags)::BOOL[], \(recordedAt)::FLOAT8[])
                    AS t(slip_id, sequence, kind, outcome, outgoing, forwarded, recorded_at)
            ), inserted AS (
                INSERT INTO hop_record (step, slip_id, sequence, kind, outcome, outgoing, forwarded, recorded_at)
                SELECT \(step), slip_id, sequence, kind, outcome, outgoing, forwarded, recorded_at FROM input
                ON CONFLICT (step, slip_id, sequence) DO NOTHING
                RETURNING slip_id, sequence
            ), unclaimed AS (
                DELETE FROM hop_claim c USING input i
                WHERE c.step = \(step) AND c.slip_id = i.slip_id AND c.sequence = i.sequence
            ), marked AS (
                UPDATE hop_record h SET forwarded = TRUE
                FROM unnest(\(markIDs)::TEXT[], \(markSequences)::INT8[]) AS f(slip_id, sequence)
                WHERE h.step = \(step) AND h.slip_id = f.slip_id AND h.sequence = f.sequence AND NOT h.forwarded
            )
            SELECT slip_id, sequence FROM inserted
            """, logger: logger)
        var new = Set<Key>()
        for try await (slipID, sequence) in inserted.decode((String, Int).self) {
            new.insert(Key(slipID: slipID, sequence: sequence))
        }
        var stored: [Key: HopRecord] = [:]
        for row in rows {
            let key = Key(slipID: row.slipID, sequence: row.sequence)
            if new.contains(key) { stored[key] = row }
        }
        let conflicting = rows.filter { !new.contains(Key(slipID: $0.slipID, sequence: $0.sequence)) }
        if !conflicting.isEmpty {
            // Recorded before: a new statement sees the first record, committed by whoever saved it.
            let existing = try await client.query(
                """
                SELECT h.slip_id, h.sequence, h.kind, h.outcome, h.outgoing, h.forwarded, h.recorded_at
                FROM hop_record h
                JOIN unnest(\(conflicting.map(\.slipID))::TEXT[], \(conflicting.map(\.sequence))::INT8[])
                    AS k(slip_id, sequence) ON h.slip_id = k.slip_id AND h.sequence = k.sequence
                WHERE h.step = \(step)
                """, logger: logger)
            for try await row in existing {
                let (slipID, sequence, kind, outcome, blob, forwarded, recordedAt) = try row.decode(
                    (String, Int, String, String, Data, Bool, Double).self)
                stored[Key(slipID: slipID, sequence: sequence)] = HopRecord(
                    slipID: slipID, sequence: sequence, step: step, kind: HopKind(rawValue: kind) ?? .execute,
                    outcome: HopRecordOutcome(rawValue: outcome), outgoing: try OutgoingMessageBlob.decode(blob), forwarded: forwarded,
                    recordedAt: Date(timeIntervalSince1970: recordedAt))
            }
        }
        return records.map { stored[Key(slipID: $0.slipID, sequence: $0.sequence)] ?? $0 }
    }
}
