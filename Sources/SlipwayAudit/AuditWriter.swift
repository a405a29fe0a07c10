import Foundation
import GRDB
import SlipwayCore

/// The write path: one transaction per batch.
enum AuditWriter {
    static let insertSQL = """
        INSERT INTO hop (event_id, slip_id, template, kind, kind_rank, step, sequence, attempt, outcome, state,
                         processor, started_at, duration_us, at, reason, failure)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (event_id) DO NOTHING
        """

    static func isFailure(_ event: SlipEvent) -> Bool {
        switch event.kind {
        case .parked: true
        case .execute: event.outcome == HopOutcome.faulted.rawValue
        case .compensate: event.outcome == HopOutcome.failed.rawValue || event.outcome == HopOutcome.faulted.rawValue
        case .terminal: false
        }
    }

    static func write(_ events: [SlipEvent], to db: Database) throws -> Int {
        let insert = try db.cachedStatement(sql: insertSQL)
        var aggregates = BatchAggregates()
        var bySlip: [String: [Int]] = [:]
        var inserted = 0
        for (index, event) in events.enumerated() {
            try insert.execute(arguments: [
                event.id, event.slipID, event.template, event.kind.rawValue, KindRank.of(event.kind), event.step,
                event.sequence, event.attempt, event.outcome, event.state.rawValue, event.processor,
                event.startedAt.map(AuditTime.milliseconds), event.durationMicros, AuditTime.milliseconds(event.at),
                event.reason, isFailure(event) ? 1 : 0,
            ])
            guard db.changesCount > 0 else { continue }
            inserted += 1
            aggregates.add(event)
            if event.slipID != AuditStore.unknownSlipID { bySlip[event.slipID, default: []].append(index) }
        }
        for (slipID, indexes) in bySlip {
            try updateSlip(slipID, with: indexes.map { events[$0] }, db: db, aggregates: &aggregates)
        }
        try aggregates.flush(db)
        return inserted
    }

    static func updateSlip(_ slipID: String, with events: [SlipEvent], db: Database, aggregates: inout BatchAggregates)
        throws
    {
        let select = try db.cachedStatement(sql: "SELECT \(SlipRow.columns) FROM slip WHERE slip_id = ?")
        let existing = try Row.fetchOne(select, arguments: [slipID]).map(SlipRow.init(row:))
        var row = existing
        for event in events {
            if row == nil { row = SlipRow(event) } else { row!.apply(event) }
        }
        guard let row else { return }
        if let existing {
            if existing.facet != row.facet {
                aggregates.facets[existing.facet, default: 0] -= 1
                aggregates.facets[row.facet, default: 0] += 1
            }
        } else {
            aggregates.facets[row.facet, default: 0] += 1
        }
        let upsert = try db.cachedStatement(sql: """
            INSERT INTO slip (slip_id, \(SlipRow.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (slip_id) DO UPDATE SET
                template = excluded.template, state = excluded.state, first_at = excluded.first_at,
                last_at = excluded.last_at, created_at = excluded.created_at, last_sequence = excluded.last_sequence,
                last_attempt = excluded.last_attempt, last_rank = excluded.last_rank, last_kind = excluded.last_kind,
                last_step = excluded.last_step, last_outcome = excluded.last_outcome,
                last_reason = excluded.last_reason, hops = excluded.hops, events = excluded.events,
                fault_step = excluded.fault_step, fault_reason = excluded.fault_reason
            """)
        try upsert.execute(arguments: [
            slipID, row.template, row.state, row.firstAt, row.lastAt, row.createdAt, row.lastSequence,
            row.lastAttempt, row.lastRank, row.lastKind, row.lastStep, row.lastOutcome, row.lastReason, row.hops,
            row.events, row.faultStep, row.faultReason,
        ])
    }
}

/// The slip table's row, folded from events.
struct SlipRow: Equatable {
    static let columns = """
        template, state, first_at, last_at, created_at, last_sequence, last_attempt, last_rank, last_kind, last_step, \
        last_outcome, last_reason, hops, events, fault_step, fault_reason
        """

    var template: String
    var state: String
    var firstAt: Int64
    var lastAt: Int64
    var createdAt: Int64?
    var lastSequence: Int
    var lastAttempt: Int
    var lastRank: Int
    var lastKind: String
    var lastStep: String
    var lastOutcome: String
    var lastReason: String?
    var hops: Int
    var events: Int
    var faultStep: String?
    var faultReason: String?

    init(row: Row) {
        template = row[0]
        state = row[1]
        firstAt = row[2]
        lastAt = row[3]
        createdAt = row[4]
        lastSequence = row[5]
        lastAttempt = row[6]
        lastRank = row[7]
        lastKind = row[8]
        lastStep = row[9]
        lastOutcome = row[10]
        lastReason = row[11]
        hops = row[12]
        events = row[13]
        faultStep = row[14]
        faultReason = row[15]
    }

    init(_ event: SlipEvent) {
        let at = AuditTime.milliseconds(event.at)
        template = event.template
        state = event.state.rawValue
        firstAt = at
        lastAt = at
        createdAt = nil
        lastSequence = event.sequence
        lastAttempt = event.attempt
        lastRank = KindRank.of(event.kind)
        lastKind = event.kind.rawValue
        lastStep = event.step
        lastOutcome = event.outcome
        lastReason = event.reason
        hops = 0
        events = 0
        faultStep = nil
        faultReason = nil
        count(event)
    }

    var facet: Facet { Facet(template: template, state: state, lastStep: lastStep, faultStep: faultStep ?? "") }

    static func isHop(_ kind: SlipEvent.Kind) -> Bool { kind == .execute || kind == .compensate }

    /// Counts an event that was not recorded before; it becomes the current state if it is at least as new as the
    /// event the row has it from (sequence, then attempt, then kind rank), with two exceptions for parks, whose
    /// sequence may come from a body that was never verified: a park never reopens a slip that ended, and an end
    /// always replaces a park. A park keeps the state the row had (the parked event's own is a guess when the body
    /// was not a valid slip).
    mutating func apply(_ event: SlipEvent) {
        let at = AuditTime.milliseconds(event.at)
        firstAt = min(firstAt, at)
        lastAt = max(lastAt, at)
        if template == AuditStore.unknownSlipID, event.template != AuditStore.unknownSlipID { template = event.template }
        let rank = KindRank.of(event.kind)
        let ended = SlipState(rawValue: state)?.isTerminal ?? false
        let isNewer: Bool =
            switch event.kind {
            case .parked: !ended && (event.sequence, event.attempt, rank) >= (lastSequence, lastAttempt, lastRank)
            case .terminal where lastKind == SlipEvent.Kind.parked.rawValue: true
            default: (event.sequence, event.attempt, rank) >= (lastSequence, lastAttempt, lastRank)
            }
        if isNewer {
            if event.kind != .parked { state = event.state.rawValue }
            lastSequence = event.sequence
            lastAttempt = event.attempt
            lastRank = rank
            lastKind = event.kind.rawValue
            lastStep = event.step
            lastOutcome = event.outcome
            lastReason = event.reason
        }
        count(event)
    }

    private mutating func count(_ event: SlipEvent) {
        events += 1
        if Self.isHop(event.kind) { hops += 1 }
        if let createdAt = event.createdAt { self.createdAt = AuditTime.milliseconds(createdAt) }
        if let fault = event.fault {
            // A terminal event's fault is the slip's own: it wins over what a hop said.
            faultStep = fault.step
            faultReason = fault.reason
        } else if faultStep == nil, event.kind == .execute, event.outcome == HopOutcome.faulted.rawValue {
            faultStep = event.step
            faultReason = event.reason
        }
    }
}

struct StepKey: Hashable {
    var step: String
    var kind: String
}

struct StepDelta {
    var hops = 0
    var completed = 0
    var faulted = 0
    var retried = 0
    var failed = 0
    var timed = 0
    var totalMicros: Int64 = 0
    var minMicros: Int64?
    var maxMicros: Int64?
}

struct BucketKey: Hashable {
    var step: String
    var kind: String
    var bucket: Int
}

/// The values `list` filters on, for the `slip_facet` counts.
struct Facet: Hashable {
    var template: String
    var state: String
    var lastStep: String
    var faultStep: String
}

/// What a batch adds to the aggregate tables, summed in memory and written once at the end of the transaction.
struct BatchAggregates {
    var steps: [StepKey: StepDelta] = [:]
    var buckets: [BucketKey: Int] = [:]
    var facets: [Facet: Int] = [:]
    var events = 0
    var hops = 0
    var firstAt: Int64?
    var lastAt: Int64?

    mutating func add(_ event: SlipEvent) {
        events += 1
        let at = AuditTime.milliseconds(event.at)
        firstAt = min(firstAt ?? at, at)
        lastAt = max(lastAt ?? at, at)
        guard event.kind != .terminal else { return }
        let key = StepKey(step: event.step, kind: event.kind.rawValue)
        var delta = steps[key] ?? StepDelta()
        delta.hops += 1
        if event.kind != .parked {
            hops += 1
            switch HopOutcome(rawValue: event.outcome) {
            case .completed: delta.completed += 1
            case .faulted: delta.faulted += 1
            case .retried: delta.retried += 1
            case .failed: delta.failed += 1
            case .terminated, nil: break  // Ended on purpose: neither a success nor a failure of the step.
            }
            if let micros = event.durationMicros {
                delta.timed += 1
                delta.totalMicros += micros
                delta.minMicros = min(delta.minMicros ?? micros, micros)
                delta.maxMicros = max(delta.maxMicros ?? micros, micros)
                buckets[BucketKey(step: event.step, kind: key.kind, bucket: DurationBuckets.bucket(micros: micros)), default: 0] += 1
            }
        }
        steps[key] = delta
    }

    func flush(_ db: Database) throws {
        let step = try db.cachedStatement(sql: """
            INSERT INTO step_stats (step, kind, hops, completed, faulted, retried, failed, timed, total_us, min_us, max_us)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (step, kind) DO UPDATE SET
                hops = hops + excluded.hops, completed = completed + excluded.completed,
                faulted = faulted + excluded.faulted, retried = retried + excluded.retried,
                failed = failed + excluded.failed, timed = timed + excluded.timed,
                total_us = total_us + excluded.total_us,
                min_us = min(coalesce(min_us, excluded.min_us), coalesce(excluded.min_us, min_us)),
                max_us = max(coalesce(max_us, excluded.max_us), coalesce(excluded.max_us, max_us))
            """)
        for (key, delta) in steps {
            try step.execute(arguments: [
                key.step, key.kind, delta.hops, delta.completed, delta.faulted, delta.retried, delta.failed, delta.timed,
                delta.totalMicros, delta.minMicros, delta.maxMicros,
            ])
        }
        let bucket = try db.cachedStatement(sql: """
            INSERT INTO step_duration (step, kind, bucket, hops) VALUES (?, ?, ?, ?)
            ON CONFLICT (step, kind, bucket) DO UPDATE SET hops = hops + excluded.hops
            """)
        for (key, count) in buckets {
            try bucket.execute(arguments: [key.step, key.kind, key.bucket, count])
        }
        let facet = try db.cachedStatement(sql: """
            INSERT INTO slip_facet (template, state, last_step, fault_step, slips) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (template, state, last_step, fault_step) DO UPDATE SET slips = slips + excluded.slips
            """)
        for (key, count) in facets where count != 0 {
            try facet.execute(arguments: [key.template, key.state, key.lastStep, key.faultStep, count])
        }
        guard events > 0 else { return }
        let total = try db.cachedStatement(sql: """
            INSERT INTO audit_total (name, value) VALUES (?, ?)
            ON CONFLICT (name) DO UPDATE SET value = CASE name
                WHEN 'first_at' THEN min(value, excluded.value)
                WHEN 'last_at' THEN max(value, excluded.value)
                ELSE value + excluded.value END
            """)
        try total.execute(arguments: ["events", events])
        try total.execute(arguments: ["hops", hops])
        if let firstAt { try total.execute(arguments: ["first_at", firstAt]) }
        if let lastAt { try total.execute(arguments: ["last_at", lastAt]) }
    }
}
