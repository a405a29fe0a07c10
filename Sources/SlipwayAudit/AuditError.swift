import Foundation

/// Why an audit operation was refused: a code to branch on and a one-line message for an operator.
public struct AuditError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable, Codable {
        /// No file at the path (queries only: the sink creates it).
        case missingDatabase = "missing-database"
        /// The file exists but is not an audit database (another SQLite file, or not SQLite at all).
        case foreignDatabase = "foreign-database"
        /// The audit schema was written by a newer Slipway than this one.
        case newerDatabase = "newer-database"
        /// The audit schema is older than this build's; opening it for writing (the sink) migrates it.
        case outdatedDatabase = "outdated-database"
        /// `show` of a slip id the audit trail has no event for.
        case unknownSlip = "unknown-slip"
        /// A malformed filter, duration or timestamp, or an out-of-range limit.
        case invalidArgument = "invalid-argument"
        /// A store opened for reading was asked to write.
        case readOnly = "read-only"
        /// SQLite refused (a corrupt file, a full disk, a lock held for longer than the busy timeout...).
        case databaseError = "database-error"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    static func invalid(_ message: String) -> AuditError { AuditError(.invalidArgument, message) }
}
