import Foundation
import GRDB
import Slipway

/// `probe-step --keyed-ledger PATH`: the probe as a step that calls an "external system" with the hop's idempotency
/// key, the other way to an effect applied once (docs/exactly-once.md). Each execute and undo writes a row keyed by
/// `hop.idempotencyKey` to a SQLite file of its own (the external system's: WAL, `synchronous = NORMAL`, as the hop
/// record), in a transaction of its own; a second write of the same key changes nothing. The benchmark compares it
/// with `--inbox`, which writes the same row in the hop record's transaction instead.
struct KeyedLedgerProbe: StepProcessor {
    let step: String
    let ledger: DatabaseQueue

    init(step: String, path: String) throws {
        self.step = step
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        ledger = try DatabaseQueue(path: path, configuration: configuration)
        try ledger.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS effect (key TEXT PRIMARY KEY, kind TEXT NOT NULL)")
        }
    }

    func execute(_ hop: ExecuteHop) async throws -> ExecuteOutcome {
        try record(hop.idempotencyKey, kind: "execute")
        // The plain probe's variable and undo data: the same slip, so that the benchmark compares the write alone.
        return .completed(
            variables: ["\(step)At": .string(SlipCodec.formatTimestamp(Date()))], compensation: ["step": .string(step)])
    }

    func compensate(_ hop: CompensateHop) async throws {
        try record(hop.idempotencyKey, kind: "undo")
    }

    /// The external system's write: synchronous, as a call into a library of that system would be.
    private func record(_ key: String, kind: String) throws {
        try ledger.write { db in
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO effect (key, kind) VALUES (?, ?)").execute(arguments: [key, kind])
        }
    }
}
