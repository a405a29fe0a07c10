import Foundation
import Logging
import NIOCore
import PostgresNIO
import SlipwayCore
import SlipwayStores
import SlipwayTransport

/// Group commit for the PostgreSQL hop record: the saves of concurrent hops, and the forwarded marks of finished ones,
/// go to the database in one statement (arrays unnested into rows), so a busy processor pays one round trip and one
/// commit for many hops. A batch is whatever came while the batches before it were in flight (a few at once): an idle
/// processor writes at once. The batches are written from the hops' own tasks (`PostgresGroupCommit`).
///
/// The statement inserts the new records (a hop already recorded keeps its first record), deletes their claims and
/// marks the forwarded hops, atomically. Rows are sorted by key so that two processes writing overlapping batches lock
/// them in the same order.
final class PostgresRecordWriter: Sendable {
    enum Item: Sendable {
        case save(HopRecord)
        case forwarded(Key)
    }

    struct Key: Hashable, Comparable, Sendable {
        var slipID: String
        var sequence: Int
        static func < (a: Key, b: Key) -> Bool { (a.slipID, a.sequence) < (b.slipID, b.sequence) }
    }

    /// At most this many hops in one statement.
    static let batchLimit = 500
    /// At most this many batches in flight (`PostgresGroupCommit`).
    static let batchesInFlight = 4

    /// A save's answer is the record stored; a mark's is nil.
    private let batches: PostgresGroupCommit<Item, HopRecord?>

    init(client: PostgresClient, step: String, logger: Logger) {
        batches = PostgresGroupCommit(batchLimit: Self.batchLimit, writersAtOnce: Self.batchesInFlight) { items in
            await Self.write(client, step, logger, items)
        }
    }

    func save(_ record: HopRecord) async throws -> HopRecord {
        guard let stored = try await batches.submit(.save(record)).get() else {
            preconditionFailure("a save answered as a mark")
        }
        return stored
    }

    /// Goes with the batch being written; written at once by the caller when none is.
    func markForwarded(slipID: String, sequence: Int) async throws {
        try await batches.post(.forwarded(Key(slipID: slipID, sequence: sequence)))
    }

    /// Returns once nothing queued before the call is left unwritten.
    func drain() async {
        await batches.drain()
    }

    /// Refuses later saves and marks with `error`; returns once what came before is written.
    func close(_ error: any Error) async {
        await batches.close(error)
    }

    /// A batch of saves and marks in one statement; a failure fails its saves.
    private static func write(
        _ client: PostgresClient, _ step: String, _ logger: Logger, _ items: [Item]
    ) async -> [Result<HopRecord?, any Error>] {
        var records: [HopRecord] = []
        var forwarded: [Key] = []
        for item in items {
            switch item {
            case .save(let record): records.append(record)
            case .forwarded(let key): forwarded.append(key)
            }
        }
        do {
            var stored = try await write(client, step, logger, records, forwarded).makeIterator()
            return items.map { item in
                guard case .save = item else { return .success(nil) }
                return .success(stored.next())
            }
        } catch {
            // The saves fail (their hops go back to the queue); lost marks only mean a second forward later.
            let failure = PostgresStoreError("database", "saving hop records in PostgreSQL failed: \(describe(error))")
            logger.warning("writing hop records failed", metadata: ["error": "\(failure.message)"])
            return items.map { _ in .failure(failure) }
        }
    }

    /// Writes a batch; returns, for each save in order, the record now stored (its own, or the first one saved).
    static func write(
        _ client: PostgresClient, _ step: String, _ logger: Logger, _ records: [HopRecord], _ forwarded: [Key]
    ) async throws -> [HopRecord] {
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
                return try await writeOnce(client, step, logger, records, rows, marks)
            } catch let error as PSQLError where attempt < 3 && error.serverInfo?[.sqlState] == "40P01" {
                // A deadlock with another process's batch (possible despite the ordering, across the statement's
                // parts): the database rolled this one back; write it again.
                attempt += 1
            }
        }
    }

    private static func writeOnce(
        _ client: PostgresClient, _ step: String, _ logger: Logger, _ records: [HopRecord], _ rows: [HopRecord],
        _ marks: [Key]
    ) async throws -> [HopRecord] {
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
