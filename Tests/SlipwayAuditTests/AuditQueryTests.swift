import Foundation
import GRDB
import SlipwayCore
import Testing

@testable import SlipwayAudit
@testable import SlipwayAuditGenerator  // SlipSimulation.logNormal, for a duration distribution

@Suite struct QueryTests {
    static let now = Date(timeIntervalSince1970: 1_790_000_000)

    @Test func stuckFindsAnOldSlipThatIsNotFinished() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        let hourAgo = Self.now.addingTimeInterval(-3_600)
        var stuck = Saga("stuck-1", at: hourAgo)
        stuck.hop("reserve-stock")
        var compensating = Saga("stuck-2", at: hourAgo.addingTimeInterval(60))
        compensating.hop("reserve-stock")
        compensating.hop("charge-card", .faulted, state: .compensating, reason: "declined")
        var recent = Saga("recent", at: Self.now.addingTimeInterval(-60))
        recent.hop("reserve-stock")
        let finished = Saga.completed("finished", at: hourAgo)
        let parkedFinal = Saga.declined("declined", at: hourAgo)
        try store.record(stuck.events + compensating.events + recent.events + finished.events + parkedFinal.events)

        let result = try store.stuck(olderThan: 600, now: Self.now)
        #expect(result.slips.map(\.slipID) == ["stuck-1", "stuck-2"])
        #expect(result.total == 2)
        #expect(result.cutoff == Self.now.addingTimeInterval(-600))
        #expect(result.slips[1].state == .compensating)
        #expect(try store.stuck(olderThan: 30, now: Self.now).slips.map(\.slipID) == ["stuck-1", "stuck-2", "recent"])
        #expect(try store.stuck(olderThan: 7_200, now: Self.now).total == 0)
        let limited = try store.stuck(olderThan: 30, now: Self.now, limit: 1)
        #expect(limited.slips.map(\.slipID) == ["stuck-1"])
        #expect(limited.total == 3)
    }

    @Test func failuresListFaultsAndParkedMessagesWithReasons() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        let start = Self.now.addingTimeInterval(-1_800)
        let declined = Saga.declined("declined", at: start)  // a retried attempt (not a failure), then a fault
        var undoFailed = Saga("undo-failed", at: start.addingTimeInterval(60))
        undoFailed.hop("reserve-stock")
        undoFailed.hop("charge-card", .faulted, state: .compensating, reason: "declined")
        undoFailed.hop("reserve-stock", .failed, kind: .compensate, state: .compensationFailed, attempt: 5, reason: "stock service down")
        undoFailed.terminal(.compensationFailed, fault: Fault(step: "charge-card", sequence: 1, reason: "declined", attempts: 1))
        var misrouted = Saga("misrouted", at: start.addingTimeInterval(120))
        misrouted.parked("ship-order", code: "misrouted", reason: "the next hop is execute reserve-stock")
        let unreadable = SlipEvent(
            id: "unknown.parked.x", slipID: "unknown", template: "unknown", kind: .parked, step: "charge-card",
            sequence: 0, attempt: 1, outcome: "malformed", state: .running, processor: "h:1",
            at: start.addingTimeInterval(180), reason: "the body is not valid JSON")
        let old = Saga.declined("old", at: Self.now.addingTimeInterval(-86_400))
        try store.record(declined.events + undoFailed.events + misrouted.events + [unreadable] + old.events)

        let list = try store.failures(since: Self.now.addingTimeInterval(-3_600), until: Self.now)
        #expect(list.total == 5)
        #expect(list.failures.map { "\($0.slipID) \($0.kind) \($0.step) \($0.outcome): \($0.reason ?? "")" } == [
            "unknown parked charge-card malformed: the body is not valid JSON",
            "misrouted parked ship-order misrouted: the next hop is execute reserve-stock",
            "undo-failed compensate reserve-stock failed: stock service down",
            "undo-failed execute charge-card faulted: declined",
            "declined execute charge-card faulted: card declined",
        ])
        #expect(list.failures[2].attempt == 5)
        #expect(try store.failures(since: Self.now.addingTimeInterval(-2 * 86_400)).total == 6)
        let limited = try store.failures(since: Self.now.addingTimeInterval(-3_600), limit: 2)
        #expect(limited.failures.count == 2)
        #expect(limited.total == 5)
        let window = try store.failures(
            since: start.addingTimeInterval(100), until: start.addingTimeInterval(150))
        #expect(window.failures.map(\.slipID) == ["misrouted"])
        #expect(auditError { _ = try store.failures(since: Self.now, until: start) }?.code == .invalidArgument)
    }

    /// Six slips: two templates, several states, an hour apart (s0 oldest).
    func listFixture() throws -> (TemporaryDirectory, AuditStore) {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        func at(_ hour: Int) -> Date { Self.now.addingTimeInterval(Double(hour - 6) * 3_600) }
        var events: [SlipEvent] = []
        events += Saga.completed("s0", at: at(0)).events
        events += Saga.declined("s1", at: at(1)).events
        events += Saga.completed("s2", template: "signup", steps: ["create-account", "send-welcome"], at: at(2)).events
        var running = Saga("s3", template: "signup", at: at(3))
        running.hop("create-account")
        events += running.events
        events += Saga.completed("s4", at: at(4)).events
        var faulted = Saga("s5", at: at(5))
        faulted.hop("reserve-stock", .faulted, state: .faulted, reason: "sold out")
        faulted.terminal(.faulted, fault: Fault(step: "reserve-stock", sequence: 0, reason: "sold out", attempts: 1))
        events += faulted.events
        try store.record(events.shuffled())
        return (directory, store)
    }

    @Test func listIsNewestFirstAndFilters() throws {
        let (directory, store) = try listFixture()
        _ = directory
        func ids(_ filter: AuditSlipFilter) throws -> [String] { try store.list(filter).slips.map(\.slipID) }
        #expect(try ids(AuditSlipFilter()) == ["s5", "s4", "s3", "s2", "s1", "s0"])
        #expect(try ids(AuditSlipFilter(state: .completed)) == ["s4", "s2", "s0"])
        #expect(try ids(AuditSlipFilter(state: .running)) == ["s3"])
        #expect(try ids(AuditSlipFilter(state: .terminated)) == [])
        #expect(try ids(AuditSlipFilter(template: "signup")) == ["s3", "s2"])
        #expect(try ids(AuditSlipFilter(state: .completed, template: "order")) == ["s4", "s0"])
        // --step: the last step, or the step the slip faulted at.
        #expect(try ids(AuditSlipFilter(step: "ship-order")) == ["s4", "s0"])
        #expect(try ids(AuditSlipFilter(step: "charge-card")) == ["s1"])
        #expect(try ids(AuditSlipFilter(step: "reserve-stock")) == ["s5", "s1"])
        #expect(try ids(AuditSlipFilter(state: .compensated, step: "reserve-stock")) == ["s1"])
        #expect(try ids(AuditSlipFilter(template: "signup", step: "create-account")) == ["s3"])
        // --since / --until bound the newest event, inclusive.
        let s2Last = try store.show(slipID: "s2").slip.lastAt
        #expect(try ids(AuditSlipFilter(since: s2Last)) == ["s5", "s4", "s3", "s2"])
        #expect(try ids(AuditSlipFilter(until: s2Last)) == ["s2", "s1", "s0"])
        #expect(try ids(AuditSlipFilter(since: s2Last, until: s2Last)) == ["s2"])
        #expect(try ids(AuditSlipFilter(state: .completed, since: s2Last)) == ["s4", "s2"])
        #expect(try ids(AuditSlipFilter(template: "order", until: s2Last)) == ["s1", "s0"])
        // --limit, and whether more would match.
        let limited = try store.list(AuditSlipFilter(limit: 2))
        #expect(limited.slips.map(\.slipID) == ["s5", "s4"])
        #expect(limited.more)
        #expect(try !store.list(AuditSlipFilter(limit: 6)).more)
        #expect(auditError { _ = try store.list(AuditSlipFilter(limit: 0)) }?.code == .invalidArgument)
        #expect(auditError { _ = try store.list(AuditSlipFilter(since: s2Last, until: s2Last.addingTimeInterval(-1))) }?
            .code == .invalidArgument)
    }

    @Test func listRowsCarryWhereTheSlipIs() throws {
        let (directory, store) = try listFixture()
        _ = directory
        let s3 = try #require(try store.list(AuditSlipFilter(state: .running)).slips.first)
        #expect(s3.template == "signup")
        #expect(!s3.terminal)
        #expect(s3.lastKind == "execute")
        #expect(s3.lastStep == "create-account")
        #expect(s3.lastOutcome == "completed")
        #expect(s3.hops == 1)
        let s1 = try #require(try store.list(AuditSlipFilter(state: .compensated)).slips.first)
        #expect(s1.faultStep == "charge-card")
        #expect(s1.faultReason == "card declined")
    }

    @Test func statsCountHopsOutcomesAndStates() throws {
        let (directory, store) = try listFixture()
        _ = directory
        let stats = try store.stats()
        #expect(stats.slips == 6)
        // Events: s0 4, s1 5, s2 3, s3 1, s4 4, s5 2; hops: the same without the 5 terminal events.
        #expect(stats.events == 19)
        #expect(stats.hops == 14)
        let charge = try #require(stats.steps.first { $0.step == "charge-card" && $0.kind == "execute" })
        #expect(charge.hops == 4)  // s0, s4, and s1's two attempts
        #expect(charge.completed == 2)
        #expect(charge.retries == 1)
        #expect(charge.failures == 1)
        #expect(charge.maxMicros == 5_000_000)
        #expect(stats.steps.contains { $0.step == "reserve-stock" && $0.kind == "compensate" && $0.hops == 1 })
        #expect(stats.templates.map(\.template) == ["order", "signup"])
        #expect(stats.templates[0].states == ["completed": 2, "compensated": 1, "faulted": 1])
        #expect(stats.templates[1].states == ["completed": 1, "running": 1])
        #expect(stats.templates[0].slips == 4)
        #expect(stats.firstAt != nil && stats.lastAt != nil)
    }

    @Test(arguments: [0, 1, 2])
    func percentilesAreWithinTheStatedPrecision(distribution: Int) throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        var rng = SplitMix64(seed: UInt64(distribution + 7))
        let durations: [Int64] = (0..<20_000).map { index in
            switch distribution {
            case 0: Int64(index % 10_000 + 1)  // uniform 1 µs ... 10 ms
            case 1: SlipSimulation.logNormal(median: 180_000, sigma: 0.6, &rng)  // log-normal around 180 ms
            default: index % 10 == 0 ? Int64.random(in: 2_000_000...9_000_000, using: &rng) : Int64.random(in: 900...1_100, using: &rng)  // two modes
            }
        }
        var events: [SlipEvent] = []
        for (index, micros) in durations.enumerated() {
            events.append(SlipEvent(
                slipID: "slip-\(index)", template: "t", kind: .execute, step: "work", sequence: 0, attempt: 1,
                outcome: "completed", state: .completed, processor: "h:1", startedAt: Self.now, durationMicros: micros,
                at: Self.now))
        }
        try store.record(events)
        let stats = try store.stats()
        let work = try #require(stats.steps.first { $0.step == "work" })
        let sorted = durations.sorted()
        func exact(_ p: Double) -> Double { Double(sorted[Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1]) }
        for (p, reported) in [(50.0, work.p50Micros), (95, work.p95Micros), (99, work.p99Micros)] {
            let value = try #require(reported)
            let error = abs(value - exact(p)) / exact(p)
            #expect(error <= stats.percentilePrecision + 1e-9, "p\(p): \(value) against \(exact(p))")
        }
        #expect(work.minMicros == sorted.first)
        #expect(work.maxMicros == sorted.last)
        #expect(abs(work.meanMicros! - Double(durations.reduce(0, +)) / Double(durations.count)) < 1e-6)
        #expect(abs(stats.percentilePrecision - 0.0219) < 0.0001)
    }
}

@Suite struct HistogramTests {
    @Test func bucketsAreSixteenPerDoubling() {
        #expect(DurationBuckets.bucket(micros: 0) == 0)
        #expect(DurationBuckets.bucket(micros: 1) == 1)
        #expect(DurationBuckets.bucket(micros: 2) == 17)
        #expect(DurationBuckets.bucket(micros: 1_024) == 161)
        for micros: Int64 in [1, 3, 7, 100, 999, 1_000, 123_456, 5_000_000, 3_600_000_000] {
            let bucket = DurationBuckets.bucket(micros: micros)
            #expect(DurationBuckets.lowerBound(bucket) <= Double(micros))
            #expect(Double(micros) < DurationBuckets.upperBound(bucket))
            let middle = DurationBuckets.representative(bucket)
            #expect(abs(middle - Double(micros)) / Double(micros) <= DurationBuckets.relativePrecision + 1e-12)
        }
    }

    @Test func percentileIsNearestRankClampedToTheExtremes() throws {
        let low = DurationBuckets.bucket(micros: 100)
        let high = DurationBuckets.bucket(micros: 10_000)
        let buckets: [(bucket: Int, count: Int64)] = [(low, 99), (high, 1)]
        for p in [1.0, 50, 99] {
            let value = try #require(DurationBuckets.percentile(p, buckets: buckets))
            #expect(value == DurationBuckets.representative(low))
        }
        #expect(DurationBuckets.percentile(99.5, buckets: buckets) == DurationBuckets.representative(high))
        // The bucket's middle lies above the largest value recorded: the maximum is reported.
        #expect(DurationBuckets.representative(low) > 100)
        #expect(DurationBuckets.percentile(50, buckets: [(low, 5)], minimum: 100, maximum: 100) == 100)
        #expect(DurationBuckets.percentile(50, buckets: [(0, 5)]) == 0)
        #expect(DurationBuckets.percentile(50, buckets: []) == nil)
    }
}

@Suite struct TimeParsingTests {
    @Test(arguments: [
        ("90s", 90.0), ("10m", 600), ("1h", 3_600), ("2d", 172_800), ("1w", 604_800), ("500ms", 0.5),
        ("1.5h", 5_400), ("1h30m", 5_400), ("0s", 0), (" 5m ", 300), ("2D", 172_800),
    ])
    func durations(text: String, seconds: Double) throws {
        #expect(try AuditTime.parseDuration(text) == seconds)
    }

    @Test(arguments: ["", "10", "m", "-5m", "5 m", "5mm", "1h-", "ten minutes", "1y", "1e3s", "5m10", "99999999999d"])
    func malformedDurations(text: String) {
        let error = auditError { _ = try AuditTime.parseDuration(text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("\n") == false)
    }

    @Test func instants() throws {
        let now = Date(timeIntervalSince1970: 1_790_000_000)
        #expect(try AuditTime.parseInstant("1h", now: now) == now.addingTimeInterval(-3_600))
        #expect(try AuditTime.parseInstant("2026-11-22T05:34:20Z", now: now)
            == Date(timeIntervalSince1970: 1_795_325_660))
        #expect(try AuditTime.parseInstant("2026-11-22T05:34:20.125Z", now: now)
            == Date(timeIntervalSince1970: 1_795_325_660.125))
        #expect(try AuditTime.parseInstant("2026-11-22T07:34:20+02:00", now: now)
            == Date(timeIntervalSince1970: 1_795_325_660))
        #expect(try AuditTime.parseInstant("2026-11-22", now: now) == Date(timeIntervalSince1970: 1_795_305_600))
        for bad in ["2026-13-45T00:00:00Z", "2026-11-22T05:34:20", "yesterday", "2026-11-22 05:34"] {
            #expect(auditError { _ = try AuditTime.parseInstant(bad, now: now) }?.code == .invalidArgument, "\(bad)")
        }
    }

    @Test func formatting() {
        #expect(AuditTime.formatDuration(micros: 850) == "850µs")
        #expect(AuditTime.formatDuration(micros: 12_345) == "12.3ms")
        #expect(AuditTime.formatDuration(micros: 8_000) == "8ms")
        #expect(AuditTime.formatDuration(micros: 1_240_000) == "1.24s")
        #expect(AuditTime.formatDuration(seconds: 600) == "10m")
        #expect(AuditTime.formatDuration(seconds: 125) == "2m05s")
        #expect(AuditTime.formatDuration(seconds: 3 * 3_600 + 12 * 60) == "3h12m")
        #expect(AuditTime.formatDuration(seconds: 2 * 86_400 + 4 * 3_600) == "2d04h")
    }
}

@Suite struct GeneratorTests {
    @Test func theSameSeedGivesTheSameRealisticDatabase() throws {
        let directory = try TemporaryDirectory()
        let end = Date(timeIntervalSince1970: 1_790_000_000)
        var summaries: [AuditStats] = []
        for name in ["a.sqlite", "b.sqlite"] {
            let store = try AuditStore(path: directory.path(name))
            let summary = try AuditGenerator.generate(
                into: store, options: AuditGenerator.Options(hops: 20_000, seed: 3, end: end, days: 2, batchSize: 5_000))
            #expect(summary.hops >= 20_000)
            let stats = try store.stats()
            #expect(stats.hops == summary.hops)
            #expect(stats.events == summary.events)
            #expect(try store.count("hop") == summary.events)
            summaries.append(stats)
        }
        #expect(summaries[0] == summaries[1])
        let stats = summaries[0]
        #expect(stats.templates.count == 3)
        #expect(Set(stats.steps.filter { $0.kind == "execute" }.map(\.step)).count == 12)
        let states = stats.templates.reduce(into: [String: Int]()) { total, template in
            total.merge(template.states, uniquingKeysWith: +)
        }
        #expect(states["completed", default: 0] > stats.slips * 8 / 10)
        #expect(states["compensated", default: 0] > 0)
        #expect(states["faulted", default: 0] > 0)
        #expect(states["running", default: 0] > 0)
        #expect(stats.steps.contains { $0.retries > 0 })
        #expect(stats.lastAt! <= end)
        #expect(stats.firstAt! >= end.addingTimeInterval(-2 * 86_400))
    }
}

@Suite struct ListPlanTests {
    /// Whatever index `list` walks (or none, when the counts say nothing matches), it returns what a plain scan of the
    /// table returns.
    @Test func everyPlanReturnsWhatAPlainScanReturns() throws {
        let directory = try TemporaryDirectory()
        let store = try AuditStore(path: directory.path("audit.sqlite"))
        let end = Date(timeIntervalSince1970: 1_790_000_000)
        _ = try AuditGenerator.generate(
            into: store, options: AuditGenerator.Options(hops: 30_000, seed: 11, end: end, days: 1, batchSize: 4_000))
        let states: [SlipState?] = [nil, .completed, .compensated, .running, .faulted, .terminated]
        let templates: [String?] = [nil, "order-fulfillment", "account-signup", "no-such-template"]
        let steps: [String?] = [nil, "charge-card", "notify-customer", "reserve-stock", "send-welcome", "no-such-step"]
        let windows: [(Date?, Date?)] = [(nil, nil), (end.addingTimeInterval(-6 * 3_600), nil),
                                         (end.addingTimeInterval(-20 * 3_600), end.addingTimeInterval(-10 * 3_600))]
        let all = try ListedSlip.all(store)
        var plans = Set<String>()
        for state in states {
            for template in templates {
                for step in steps {
                    for (since, until) in windows {
                        for limit in [5, 100_000] {
                            let filter = AuditSlipFilter(
                                state: state, template: template, step: step, since: since, until: until, limit: limit)
                            let listed = try store.list(filter)
                            let expected = plainScan(all, filter)
                            let label = "\(filter)"
                            #expect(listed.slips.map(\.lastAt) == Array(expected.prefix(limit).map(\.lastAt)), "\(label)")
                            #expect(listed.more == (expected.count > limit), "\(label)")
                            if limit > expected.count {
                                #expect(Set(listed.slips.map(\.slipID)) == Set(expected.map(\.slipID)), "\(label)")
                            }
                        }
                        plans.insert(try planName(store, AuditSlipFilter(state: state, template: template, step: step)))
                    }
                }
            }
        }
        #expect(plans == ["empty", "slip_recent", "slip_state", "slip_template", "steps"])
    }

    struct ListedSlip {
        var id: String
        var template: String
        var state: String
        var lastStep: String
        var faultStep: String?
        var lastAt: Int64

        static func all(_ store: AuditStore) throws -> [ListedSlip] {
            try store.pool.read { db in
                try Row.fetchAll(db, sql: "SELECT slip_id, template, state, last_step, fault_step, last_at FROM slip")
                    .map { row in
                        ListedSlip(
                            id: row[0], template: row[1], state: row[2], lastStep: row[3], faultStep: row[4],
                            lastAt: row[5])
                    }
            }
        }
    }

    /// The filter applied to every slip, without SQL.
    func plainScan(_ slips: [ListedSlip], _ filter: AuditSlipFilter) -> [(slipID: String, lastAt: Date)] {
        func matches(_ slip: ListedSlip) -> Bool {
            if let state = filter.state, slip.state != state.rawValue { return false }
            if let template = filter.template, slip.template != template { return false }
            if let step = filter.step, slip.lastStep != step, slip.faultStep != step { return false }
            if let since = filter.since, slip.lastAt < AuditTime.milliseconds(since) { return false }
            if let until = filter.until, slip.lastAt > AuditTime.milliseconds(until) { return false }
            return true
        }
        return slips.filter(matches).sorted { $0.lastAt > $1.lastAt }
            .map { (slipID: $0.id, lastAt: AuditTime.date(milliseconds: $0.lastAt)) }
    }

    func planName(_ store: AuditStore, _ filter: AuditSlipFilter) throws -> String {
        switch try store.pool.read({ db in try AuditStore.plan(filter, limit: 50, db: db) }) {
        case .empty: "empty"
        case .index(let index): index
        case .steps: "steps"
        }
    }
}
