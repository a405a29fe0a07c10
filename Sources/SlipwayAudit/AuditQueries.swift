import Foundation
import GRDB
import SlipwayCore

extension AuditStore {
    static let slipColumns = "slip_id, \(SlipRow.columns)"

    func reading<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.read(body)
        } catch {
            throw Self.auditError(error, path: path)
        }
    }

    static func slip(_ row: Row) -> AuditSlip {
        let state = SlipState(rawValue: row["state"]) ?? .running
        return AuditSlip(
            slipID: row["slip_id"], template: row["template"], state: state, terminal: state.isTerminal,
            firstAt: AuditTime.date(milliseconds: row["first_at"]), lastAt: AuditTime.date(milliseconds: row["last_at"]),
            createdAt: (row["created_at"] as Int64?).map(AuditTime.date(milliseconds:)),
            lastSequence: row["last_sequence"], lastAttempt: row["last_attempt"], lastKind: row["last_kind"],
            lastStep: row["last_step"], lastOutcome: row["last_outcome"], lastReason: row["last_reason"],
            hops: row["hops"], events: row["events"], faultStep: row["fault_step"], faultReason: row["fault_reason"])
    }

    static func validLimit(_ limit: Int) throws -> Int {
        guard limit >= 1 else { throw AuditError.invalid("the limit must be at least 1, got \(limit)") }
        return limit
    }

    /// The slip and its events in hop order. Accepts a unique prefix of the id (at least 4 characters).
    /// Throws `unknownSlip` for an id with no slip row.
    public func show(slipID: String) throws -> AuditTimeline {
        try reading { db in
            var slipRow = try Row.fetchOne(
                db, sql: "SELECT \(Self.slipColumns) FROM slip WHERE slip_id = ?", arguments: [slipID])
            if slipRow == nil, slipID.count >= 4 {
                let candidates = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT \(Self.slipColumns) FROM slip
                        WHERE slip_id >= ? AND slip_id < ? ORDER BY slip_id LIMIT 2
                        """,
                    arguments: [slipID, slipID + "\u{10FFFF}"])
                if candidates.count > 1 {
                    throw AuditError.invalid("'\(slipID)' is the start of several slip ids: give more of it")
                }
                slipRow = candidates.first
            }
            guard let slipRow else {
                throw AuditError(.unknownSlip, "no slip '\(slipID)' in the audit trail at \(path)")
            }
            var slip = Self.slip(slipRow)
            var guesses: [String: String?] = [:]
            slip.waitingOn = try Self.waitingOn(slip, db: db, guesses: &guesses)
            let hops = try Row.fetchAll(
                db,
                sql: """
                    SELECT event_id, sequence, attempt, kind, step, outcome, state, processor, started_at, duration_us,
                           at, reason
                    FROM hop WHERE slip_id = ? ORDER BY sequence, attempt, kind_rank
                    """,
                arguments: [slip.slipID]
            ).map { row in
                AuditHop(
                    eventID: row["event_id"], sequence: row["sequence"], attempt: row["attempt"], kind: row["kind"],
                    step: row["step"], outcome: row["outcome"], state: SlipState(rawValue: row["state"]) ?? .running,
                    processor: row["processor"],
                    startedAt: (row["started_at"] as Int64?).map(AuditTime.date(milliseconds:)),
                    durationMicros: row["duration_us"], at: AuditTime.date(milliseconds: row["at"]),
                    reason: row["reason"])
            }
            return AuditTimeline(slip: slip, hops: hops)
        }
    }

    /// Slips matching the filter, newest first.
    ///
    /// The `slip_facet` counts say how many slips match the filter's values (state, template, step) and how many
    /// entries each index would walk to find them: no match costs nothing, and the walk goes through the index with
    /// the fewest entries to read for `limit` rows. Every index holds the filter columns, so entries that do not match
    /// are skipped without reading the table.
    public func list(_ filter: AuditSlipFilter = AuditSlipFilter()) throws -> AuditSlipList {
        let limit = try Self.validLimit(filter.limit)
        if let since = filter.since, let until = filter.until, since > until {
            throw AuditError.invalid("--since is after --until")
        }
        var (conditions, arguments) = Self.valueConditions(filter)
        if let since = filter.since {
            conditions.append("last_at >= ?")
            arguments.append(AuditTime.milliseconds(since))
        }
        if let until = filter.until {
            conditions.append("last_at <= ?")
            arguments.append(AuditTime.milliseconds(until))
        }
        func select(index: String, extra: String? = nil, extraArgument: String? = nil) -> (String, StatementArguments) {
            let all = (extra.map { [$0] } ?? []) + conditions
            let whereClause = all.isEmpty ? "" : "WHERE " + all.joined(separator: " AND ")
            let sql = """
                SELECT \(Self.slipColumns) FROM slip INDEXED BY \(index) \(whereClause)
                ORDER BY last_at DESC LIMIT \(limit + 1)
                """
            return (sql, StatementArguments((extraArgument.map { [$0] } ?? []) + arguments))
        }
        return try reading { db in
            let plan = try Self.plan(filter, limit: limit, db: db)
            var rows: [Row]
            switch plan {
            case .empty:
                rows = []
            case .index(let index):
                let (sql, statementArguments) = select(index: index)
                rows = try Row.fetchAll(db, sql: sql, arguments: statementArguments)
            case .steps(let step):
                // Two ordered walks (slips last at the step, slips faulted at it), merged newest first.
                let (lastSQL, lastArguments) = select(index: "slip_last_step", extra: "last_step = ?", extraArgument: step)
                let (faultSQL, faultArguments) = select(
                    index: "slip_fault_step", extra: "fault_step = ?", extraArgument: step)
                var seen = Set<String>()
                rows = (try Row.fetchAll(db, sql: lastSQL, arguments: lastArguments)
                    + Row.fetchAll(db, sql: faultSQL, arguments: faultArguments))
                    .sorted { ($0["last_at"] as Int64) > ($1["last_at"] as Int64) }
                    .filter { seen.insert($0["slip_id"]).inserted }
            }
            return AuditSlipList(slips: rows.prefix(limit).map(Self.slip), more: rows.count > limit)
        }
    }

    /// The filter's conditions on state, template and step, which the slip table and the facet table share.
    static func valueConditions(_ filter: AuditSlipFilter) -> ([String], [(any DatabaseValueConvertible)?]) {
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let state = filter.state {
            conditions.append("state = ?")
            arguments.append(state.rawValue)
        }
        if let template = filter.template {
            conditions.append("template = ?")
            arguments.append(template)
        }
        if let step = filter.step {
            conditions.append("(last_step = ? OR fault_step = ?)")
            arguments += [step, step]
        }
        return (conditions, arguments)
    }

    enum ListPlan: Equatable {
        case empty
        case index(String)
        case steps(String)
    }

    /// Picks the walk with the fewest index entries to read: an index's entries for the filter's value, scaled by the
    /// share of them that match (a walk stops after `limit + 1` matches).
    static func plan(_ filter: AuditSlipFilter, limit: Int, db: Database) throws -> ListPlan {
        guard filter.state != nil || filter.template != nil || filter.step != nil else { return .index("slip_recent") }
        let (valueConditions, valueArguments) = valueConditions(filter)
        let matching = valueConditions.joined(separator: " AND ")
        let row = try Row.fetchOne(
            db,
            sql: """
                SELECT total(slips), total(CASE WHEN \(matching) THEN slips END),
                       total(CASE WHEN state = ? THEN slips END), total(CASE WHEN template = ? THEN slips END),
                       total(CASE WHEN last_step = ? THEN slips END) + total(CASE WHEN fault_step = ? THEN slips END)
                FROM slip_facet
                """,
            arguments: StatementArguments(
                valueArguments + [filter.state?.rawValue, filter.template, filter.step, filter.step]))
        guard let row else { return .empty }
        let total: Double = row[0]
        let matches: Double = row[1]
        guard matches > 0 else { return .empty }
        let share = min(1, Double(limit + 1) / matches)
        var candidates: [(cost: Double, plan: ListPlan)] = []
        if filter.state != nil { candidates.append((row[2] as Double * share, .index("slip_state"))) }
        if filter.template != nil { candidates.append((row[3] as Double * share, .index("slip_template"))) }
        if let step = filter.step { candidates.append((row[4] as Double * share, .steps(step))) }
        candidates.append((total * share, .index("slip_recent")))
        return candidates.min { $0.cost < $1.cost }!.plan
    }

    /// Per step and kind: hops, outcomes and duration percentiles; per template: slips by state. Reads only the
    /// aggregate tables, whatever the number of hops.
    public func stats() throws -> AuditStats {
        try reading { db in
            var buckets: [StepKey: [(bucket: Int, count: Int64)]] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT step, kind, bucket, hops FROM step_duration ORDER BY step, kind, bucket")
            {
                buckets[StepKey(step: row[0], kind: row[1]), default: []].append((row[2], row[3]))
            }
            let kindOrder = ["execute": 0, "compensate": 1, "parked": 2]
            let steps = try Row.fetchAll(db, sql: "SELECT * FROM step_stats").map { row -> AuditStepStats in
                let key = StepKey(step: row["step"], kind: row["kind"])
                let parked = key.kind == SlipEvent.Kind.parked.rawValue
                let timed: Int = row["timed"]
                let total: Int64 = row["total_us"]
                let minimum: Int64? = row["min_us"]
                let maximum: Int64? = row["max_us"]
                func percentile(_ p: Double) -> Double? {
                    DurationBuckets.percentile(
                        p, buckets: buckets[key] ?? [], minimum: minimum.map(Double.init), maximum: maximum.map(Double.init))
                }
                let hops: Int = row["hops"]
                let faulted: Int = row["faulted"]
                let failed: Int = row["failed"]
                let retried: Int = row["retried"]
                return AuditStepStats(
                    step: key.step, kind: key.kind, hops: hops, completed: row["completed"], faulted: faulted,
                    retried: retried, failed: failed, failures: parked ? hops : faulted + failed, retries: retried,
                    meanMicros: timed > 0 ? Double(total) / Double(timed) : nil, minMicros: minimum,
                    p50Micros: percentile(50), p95Micros: percentile(95), p99Micros: percentile(99), maxMicros: maximum)
            }.sorted { ($0.step, kindOrder[$0.kind] ?? 9) < ($1.step, kindOrder[$1.kind] ?? 9) }

            var templates: [String: AuditTemplateStats] = [:]
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT template, state, sum(slips) FROM slip_facet GROUP BY template, state HAVING sum(slips) != 0
                    """)
            {
                let template: String = row[0]
                let count: Int = row[2]
                templates[template, default: AuditTemplateStats(template: template, slips: 0, states: [:])].slips += count
                templates[template]!.states[row[1]] = count
            }
            var totals: [String: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, value FROM audit_total") { totals[row[0]] = row[1] }
            let templateList = templates.values.sorted { $0.template < $1.template }
            return AuditStats(
                slips: templateList.reduce(0) { $0 + $1.slips }, events: Int(totals["events"] ?? 0),
                hops: Int(totals["hops"] ?? 0), firstAt: totals["first_at"].map(AuditTime.date(milliseconds:)),
                lastAt: totals["last_at"].map(AuditTime.date(milliseconds:)),
                percentilePrecision: DurationBuckets.relativePrecision, steps: steps, templates: templateList)
        }
    }

    /// Slips not in a terminal state (`running`, `compensating`) whose newest event is older than `olderThan`
    /// seconds before `now`, oldest first, each with the queue it waits on.
    public func stuck(olderThan: TimeInterval, now: Date = Date(), limit: Int = 100) throws -> AuditStuckList {
        let limit = try Self.validLimit(limit)
        guard olderThan >= 0 else { throw AuditError.invalid("--older-than must not be negative") }
        let cutoff = now.addingTimeInterval(-olderThan)
        let cutoffMillis = AuditTime.milliseconds(cutoff)
        let active = SlipState.allCases.filter { !$0.isTerminal }.map(\.rawValue)
        return try reading { db in
            // One ordered walk per state, merged: `state IN (...)` would sort every match before the limit applies.
            var total = 0
            var rows: [Row] = []
            for state in active {
                total += try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM slip INDEXED BY slip_state WHERE state = ? AND last_at < ?",
                    arguments: [state, cutoffMillis]) ?? 0
                rows += try Row.fetchAll(
                    db,
                    sql: """
                        SELECT \(Self.slipColumns) FROM slip INDEXED BY slip_state WHERE state = ? AND last_at < ?
                        ORDER BY last_at LIMIT \(limit)
                        """,
                    arguments: [state, cutoffMillis])
            }
            var guesses: [String: String?] = [:]
            let slips = try rows.sorted { ($0["last_at"] as Int64) < ($1["last_at"] as Int64) }.prefix(limit).map { row in
                var slip = Self.slip(row)
                slip.waitingOn = try Self.waitingOn(slip, db: db, guesses: &guesses)
                return slip
            }
            return AuditStuckList(olderThanSeconds: olderThan, cutoff: cutoff, total: total, slips: slips)
        }
    }

    /// Faults (an execute that faulted, a compensation that failed) and parked messages between `since` and `until`
    /// (inclusive), newest first.
    public func failures(since: Date, until: Date? = nil, limit: Int = 100) throws -> AuditFailureList {
        let limit = try Self.validLimit(limit)
        if let until, since > until { throw AuditError.invalid("--since is after --until") }
        var condition = "failure = 1 AND at >= ?"
        var arguments: [(any DatabaseValueConvertible)?] = [AuditTime.milliseconds(since)]
        if let until {
            condition += " AND at <= ?"
            arguments.append(AuditTime.milliseconds(until))
        }
        return try reading { db in
            let total = try Int.fetchOne(
                db, sql: "SELECT count(*) FROM hop INDEXED BY hop_failures WHERE \(condition)",
                arguments: StatementArguments(arguments)) ?? 0
            let failures = try Row.fetchAll(
                db,
                sql: """
                    SELECT at, slip_id, template, step, kind, sequence, attempt, outcome, processor, reason
                    FROM hop INDEXED BY hop_failures WHERE \(condition) ORDER BY at DESC LIMIT \(limit)
                    """,
                arguments: StatementArguments(arguments)
            ).map { row in
                AuditFailure(
                    at: AuditTime.date(milliseconds: row["at"]), slipID: row["slip_id"], template: row["template"],
                    step: row["step"], kind: row["kind"], sequence: row["sequence"], attempt: row["attempt"],
                    outcome: row["outcome"], processor: row["processor"], reason: row["reason"])
            }
            return AuditFailureList(since: since, until: until, total: total, failures: failures)
        }
    }
}
