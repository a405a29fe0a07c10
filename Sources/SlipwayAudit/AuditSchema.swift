import Foundation
import GRDB

/// The audit database's schema, as GRDB migrations. Every migration is applied by a store opened for writing (the
/// sink); readers refuse a schema older or newer than theirs instead of migrating it.
enum AuditSchema {
    /// The marker table: an audit database has it, a foreign SQLite file does not.
    static let markerTable = "slipway_audit"
    static let format = "1"

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: hops, slips, aggregates") { db in
            try db.execute(sql: """
                CREATE TABLE slipway_audit (
                    key TEXT PRIMARY KEY NOT NULL,
                    value TEXT NOT NULL
                ) WITHOUT ROWID;
                INSERT INTO slipway_audit (key, value) VALUES ('format', '\(format)');

                -- One row per event: execute and compensate hops (every attempt), parked messages, terminal events.
                -- Times are milliseconds since 1970 (UTC); durations microseconds.
                CREATE TABLE hop (
                    id INTEGER PRIMARY KEY,
                    event_id TEXT NOT NULL UNIQUE,
                    slip_id TEXT NOT NULL,
                    template TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    kind_rank INTEGER NOT NULL,
                    step TEXT NOT NULL,
                    sequence INTEGER NOT NULL,
                    attempt INTEGER NOT NULL,
                    outcome TEXT NOT NULL,
                    state TEXT NOT NULL,
                    processor TEXT NOT NULL,
                    started_at INTEGER,
                    duration_us INTEGER,
                    at INTEGER NOT NULL,
                    reason TEXT,
                    failure INTEGER NOT NULL
                );
                CREATE INDEX hop_timeline ON hop (slip_id, sequence, attempt, kind_rank);
                CREATE INDEX hop_failures ON hop (at) WHERE failure = 1;

                -- One row per slip: its current (or final) state, from its newest event.
                CREATE TABLE slip (
                    slip_id TEXT PRIMARY KEY NOT NULL,
                    template TEXT NOT NULL,
                    state TEXT NOT NULL,
                    first_at INTEGER NOT NULL,
                    last_at INTEGER NOT NULL,
                    created_at INTEGER,
                    last_sequence INTEGER NOT NULL,
                    last_attempt INTEGER NOT NULL,
                    last_rank INTEGER NOT NULL,
                    last_kind TEXT NOT NULL,
                    last_step TEXT NOT NULL,
                    last_outcome TEXT NOT NULL,
                    last_reason TEXT,
                    hops INTEGER NOT NULL,
                    events INTEGER NOT NULL,
                    fault_step TEXT,
                    fault_reason TEXT
                );
                -- Each index carries the other filter columns, so that a list scans index entries only and reads the
                -- table for the rows it prints.
                CREATE INDEX slip_recent ON slip (last_at, state, template, last_step, fault_step);
                CREATE INDEX slip_state ON slip (state, last_at, template, last_step, fault_step);
                CREATE INDEX slip_template ON slip (template, last_at, state, last_step, fault_step);
                CREATE INDEX slip_last_step ON slip (last_step, last_at, state, template, fault_step);
                CREATE INDEX slip_fault_step ON slip (fault_step, last_at, state, template, last_step)
                    WHERE fault_step IS NOT NULL;

                -- Aggregates kept in the transaction that records the events, for stats.
                CREATE TABLE step_stats (
                    step TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    hops INTEGER NOT NULL,
                    completed INTEGER NOT NULL,
                    faulted INTEGER NOT NULL,
                    retried INTEGER NOT NULL,
                    failed INTEGER NOT NULL,
                    timed INTEGER NOT NULL,
                    total_us INTEGER NOT NULL,
                    min_us INTEGER,
                    max_us INTEGER,
                    PRIMARY KEY (step, kind)
                ) WITHOUT ROWID;
                CREATE TABLE step_duration (
                    step TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    bucket INTEGER NOT NULL,
                    hops INTEGER NOT NULL,
                    PRIMARY KEY (step, kind, bucket)
                ) WITHOUT ROWID;
                -- How many slips have each combination of the values list filters on ('' for no fault step):
                -- the counts per template and state for stats, and what list uses to pick the index to walk.
                CREATE TABLE slip_facet (
                    template TEXT NOT NULL,
                    state TEXT NOT NULL,
                    last_step TEXT NOT NULL,
                    fault_step TEXT NOT NULL,
                    slips INTEGER NOT NULL,
                    PRIMARY KEY (template, state, last_step, fault_step)
                ) WITHOUT ROWID;
                CREATE TABLE audit_total (
                    name TEXT PRIMARY KEY NOT NULL,
                    value INTEGER NOT NULL
                ) WITHOUT ROWID;
                """)
        }
        return migrator
    }
}
