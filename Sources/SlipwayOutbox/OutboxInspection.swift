import Foundation
import GRDB

/// A slip in the outbox, as `slip outbox list` shows it.
public struct OutboxEntry: Sendable, Hashable, Codable {
    public var slipID: String
    public var template: String
    public var createdAt: Date
    public var attempts: Int
    public var lastError: String?
    public var nextAttemptAt: Date
    /// Nil while pending.
    public var sentAt: Date?

    public init(
        slipID: String, template: String, createdAt: Date, attempts: Int, lastError: String?, nextAttemptAt: Date,
        sentAt: Date?
    ) {
        self.slipID = slipID
        self.template = template
        self.createdAt = createdAt
        self.attempts = attempts
        self.lastError = lastError
        self.nextAttemptAt = nextAttemptAt
        self.sentAt = sentAt
    }
}

/// What operators do to an outbox from outside the app (`slip outbox list|retry`): read what waits and why, and make
/// pending slips due now. The app's relay picks the change up at its next poll.
public struct OutboxInspector: Sendable {
    let database: any DatabaseWriter

    /// Opens the app's database file, which must exist and hold the outbox's table (nothing is created).
    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw OutboxError("no database at \(path)") }
        let database = try DatabaseQueue(path: path)
        let exists = try database.read { db in try db.tableExists(OutboxSchema.table) }
        guard exists else { throw OutboxError("\(path) has no \(OutboxSchema.table) table: no outbox was used with it") }
        self.database = database
    }

    /// Pending slips (and sent ones, with `includingSent`), oldest first.
    public func entries(includingSent: Bool = false) throws -> [OutboxEntry] {
        try database.read { db in try OutboxRows.entries(db, includingSent: includingSent) }
    }

    /// Makes pending slips due now: `slipID`'s, or all of them when nil. Returns the slip ids changed; a slip id that
    /// is not pending (unknown, or sent) changes nothing.
    @discardableResult
    public func retry(slipID: String? = nil, now: Date = Date()) throws -> [String] {
        try database.write { db in try OutboxRows.retry(db, slipID: slipID, now: now) }
    }
}

extension OutboxInspector: OutboxInspecting {}

/// The outbox cannot be used as asked (a file or table missing).
public struct OutboxError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
