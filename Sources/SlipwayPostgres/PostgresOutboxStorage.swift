import Foundation
import Logging
import PostgresNIO
import SlipwayOutbox

/// The PostgreSQL outbox as the relay's storage, and as `slip outbox` reads it.
///
/// How relays share the table: a relay reads its batch with `SELECT ... FOR UPDATE SKIP LOCKED` in a transaction that
/// stays open while it publishes, and marks the batch (sent, or its failed attempts) in the same transaction. The row
/// locks are the claim: another relay's read skips locked rows instead of waiting for them, and takes the next due
/// slips; once the first commits, its rows are sent, and PostgreSQL re-checks `sent_at IS NULL` on the newest row
/// version before locking it, so they are not read again. A relay that dies mid-batch loses its connection, the
/// transaction rolls back, the locks go, and the batch is due for the next relay. Why locks rather than a lease
/// column: a lease can run out under a relay that is slow but alive, and another relay would then publish the same
/// slips; a lock lasts exactly as long as the relay's connection.
extension PostgresOutbox {
    public func relayDue(
        now: Date, limit: Int, _ publish: @escaping @Sendable ([PendingSlip]) async -> OutboxBatchOutcome
    ) async throws -> Int {
        let logger = self.logger
        return try await outboxDatabase("relaying the outbox") {
            try await client.withTransaction(logger: logger) { connection in
                let slips = try await Self.claimDue(connection, now: now, limit: limit, logger: logger)
                guard !slips.isEmpty else { return 0 }
                let outcome = await publish(slips)
                try await Self.store(connection, outcome, of: slips, logger: logger)
                if case .sent = outcome { return slips.count }
                return 0
            }
        }
    }

    /// The due slips, oldest first, locked until the transaction ends; rows another relay holds are skipped.
    static func claimDue(_ connection: PostgresConnection, now: Date, limit: Int, logger: Logger) async throws
        -> [PendingSlip]
    {
        let rows = try await connection.query(
            """
            SELECT slip_id, attempts, queue, body, headers, message_id, correlation_id, content_type
            FROM slipway_outbox WHERE sent_at IS NULL AND next_attempt_at <= \(now)
            ORDER BY position LIMIT \(limit) FOR UPDATE SKIP LOCKED
            """, logger: logger)
        var slips: [PendingSlip] = []
        for try await (slipID, attempts, queue, body, headers, messageID, correlationID, contentType) in rows.decode(
            (String, Int, String, Data, String, String?, String?, String?).self)
        {
            slips.append(
                PendingSlip(
                    slipID: slipID, attempts: attempts, queue: queue, body: [UInt8](body), headers: headers,
                    messageID: messageID, correlationID: correlationID, contentType: contentType))
        }
        return slips
    }

    static func store(
        _ connection: PostgresConnection, _ outcome: OutboxBatchOutcome, of slips: [PendingSlip], logger: Logger
    ) async throws {
        switch outcome {
        case .sent(let sentAt):
            try await connection.query(
                """
                UPDATE slipway_outbox SET sent_at = \(sentAt), last_error = NULL
                WHERE slip_id = ANY(\(slips.map(\.slipID))) AND sent_at IS NULL
                """, logger: logger)
        case .failed(let error, let retries):
            try await connection.query(
                """
                UPDATE slipway_outbox o SET attempts = r.attempts, last_error = \(error), next_attempt_at = r.next_at
                FROM unnest(\(retries.map(\.slipID))::TEXT[], \(retries.map(\.attempts))::INT8[],
                    \(retries.map(\.nextAttemptAt))::TIMESTAMPTZ[]) AS r (slip_id, attempts, next_at)
                WHERE o.slip_id = r.slip_id AND o.sent_at IS NULL
                """, logger: logger)
        }
    }

    /// A chunk per statement; rows another relay is deleting are skipped.
    public func pruneSent(before cutoff: Date) async throws -> Int {
        let logger = self.logger
        return try await outboxDatabase("pruning the outbox") {
            var total = 0
            while true {
                let deleted = try await client.query(
                    """
                    DELETE FROM slipway_outbox WHERE ctid IN (
                        SELECT ctid FROM slipway_outbox WHERE sent_at IS NOT NULL AND sent_at < \(cutoff)
                        LIMIT 1000 FOR UPDATE SKIP LOCKED)
                    RETURNING 1
                    """, logger: logger
                ).collect().count
                total += deleted
                if deleted < 1000 { return total }
            }
        }
    }

    public func entries(includingSent: Bool) async throws -> [OutboxEntry] {
        let logger = self.logger
        return try await outboxDatabase("reading the outbox") {
            let rows = try await client.query(
                """
                SELECT slip_id, template, created_at, attempts, last_error, next_attempt_at, sent_at
                FROM slipway_outbox WHERE \(includingSent) OR sent_at IS NULL ORDER BY position
                """, logger: logger)
            var entries: [OutboxEntry] = []
            for try await (slipID, template, createdAt, attempts, lastError, nextAttemptAt, sentAt) in rows.decode(
                (String, String, Date, Int, String?, Date, Date?).self)
            {
                entries.append(
                    OutboxEntry(
                        slipID: slipID, template: template, createdAt: createdAt, attempts: attempts,
                        lastError: lastError, nextAttemptAt: nextAttemptAt, sentAt: sentAt))
            }
            return entries
        }
    }

    /// A slip in a batch being published waits for that batch's end (its row is locked): then it is sent, and not
    /// changed; or it failed, and is made due now.
    public func retry(slipID: String?, now: Date) async throws -> [String] {
        let logger = self.logger
        return try await outboxDatabase("retrying outbox slips") {
            let rows = try await client.query(
                """
                WITH changed AS (
                    UPDATE slipway_outbox SET next_attempt_at = \(now)
                    WHERE sent_at IS NULL AND (\(slipID)::TEXT IS NULL OR slip_id = \(slipID))
                    RETURNING slip_id, position)
                SELECT slip_id FROM changed ORDER BY position
                """, logger: logger)
            var ids: [String] = []
            for try await id in rows.decode(String.self) { ids.append(id) }
            return ids
        }
    }

    /// For `slip outbox`: runs `body` with the outbox at `url` on a client of its own, running meanwhile. Refuses a
    /// database that has no outbox table (nothing is created). One connection first, to check the table: a wrong host
    /// or password fails at once rather than in the pool's retries.
    public static func withExisting<T: Sendable>(
        url: String, logger: Logger = Logger(label: "slipway.outbox", factory: { _ in SwiftLogNoOpLogHandler() }),
        _ body: (PostgresOutbox) async throws -> T
    ) async throws -> T {
        let parsed = try PostgresStoreURL(url)
        let client = try client(url: url, maximumConnections: 1, logger: logger)
        let outbox = PostgresOutbox(client: client, logger: logger)
        let exists = try await outbox.outboxDatabase("reading the outbox at \(parsed.redacted)") {
            let connection = try await PostgresConnection.connect(
                configuration: try parsed.connectionConfiguration(), id: 1, logger: logger)
            do {
                let exists = try await PostgresOutboxSchema.exists(connection, logger: logger)
                try? await connection.close()
                return exists
            } catch {
                try? await connection.close()
                throw error
            }
        }
        guard exists else {
            throw OutboxError("\(parsed.redacted) has no \(PostgresOutboxSchema.table) table: no outbox was used with it")
        }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(outbox)
        }
    }
}
