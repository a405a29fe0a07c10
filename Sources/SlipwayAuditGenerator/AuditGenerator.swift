import Foundation
import SlipwayAudit
import SlipwayCore

/// Writes a realistic synthetic audit trail through `AuditStore.record`, for measuring queries at scale
/// (`slip audit generate`).
///
/// Three templates of 4 and 5 steps, each step with its own log-normal duration, transient failures (retried up to 3
/// attempts), business faults and compensations (newest first), a few compensations that fail for good, parked
/// messages (misrouted slips, and bodies that were not slips), stuck slips (a hop that never came), and slips still in
/// flight at the end. Slips start evenly over `days` up to `end`. The same seed gives the same database.
public enum AuditGenerator {
    public struct Options: Sendable {
        /// Execute and compensate hops to write (every attempt counts); terminal and parked events come on top.
        public var hops: Int
        public var seed: UInt64
        public var end: Date
        public var days: Double
        public var batchSize: Int

        public init(hops: Int = 1_000_000, seed: UInt64 = 1, end: Date = Date(), days: Double = 7, batchSize: Int = 20_000) {
            self.hops = hops
            self.seed = seed
            self.end = end
            self.days = days
            self.batchSize = batchSize
        }
    }

    public struct Summary: Sendable, Hashable, Codable {
        public var path: String
        public var hops: Int
        public var events: Int
        public var slips: Int
        public var batches: Int
        public var seconds: Double
    }

    struct StepModel {
        var name: String
        var medianMicros: Double
        var sigma: Double
        var retryRate: Double
        var faultRate: Double
        var faultReason: String
        var undo: Bool
    }

    struct TemplateModel {
        var name: String
        var weight: Double
        var steps: [StepModel]
    }

    static let notify = StepModel(
        name: "notify-customer", medianMicros: 45_000, sigma: 0.8, retryRate: 0.02, faultRate: 0.004,
        faultReason: "cannot notify 'nobody': not an email address", undo: false)

    static let templates: [TemplateModel] = [
        TemplateModel(name: "order-fulfillment", weight: 0.55, steps: [
            StepModel(name: "reserve-stock", medianMicros: 8_000, sigma: 0.5, retryRate: 0.01, faultRate: 0.015,
                      faultReason: "not enough stock of 'sold-out': 0 available, 1 ordered", undo: true),
            StepModel(name: "charge-card", medianMicros: 180_000, sigma: 0.6, retryRate: 0.03, faultRate: 0.03,
                      faultReason: "card declined by the issuer", undo: true),
            StepModel(name: "ship-order", medianMicros: 350_000, sigma: 0.7, retryRate: 0.02, faultRate: 0.01,
                      faultReason: "cannot ship to country 'AQ'", undo: true),
            notify,
        ]),
        TemplateModel(name: "account-signup", weight: 0.25, steps: [
            StepModel(name: "create-account", medianMicros: 25_000, sigma: 0.5, retryRate: 0.01, faultRate: 0.02,
                      faultReason: "email address already registered", undo: true),
            StepModel(name: "provision-storage", medianMicros: 900_000, sigma: 0.5, retryRate: 0.04, faultRate: 0.005,
                      faultReason: "quota service refused: region eu-west full", undo: true),
            StepModel(name: "assign-plan", medianMicros: 12_000, sigma: 0.4, retryRate: 0.005, faultRate: 0.003,
                      faultReason: "plan 'legacy-2019' is retired", undo: true),
            StepModel(name: "send-welcome", medianMicros: 60_000, sigma: 0.8, retryRate: 0.02, faultRate: 0.002,
                      faultReason: "mail provider rejected the template", undo: false),
            StepModel(name: "index-search", medianMicros: 20_000, sigma: 0.6, retryRate: 0.01, faultRate: 0.001,
                      faultReason: "search cluster refused the document: mapping conflict", undo: false),
        ]),
        TemplateModel(name: "refund-request", weight: 0.20, steps: [
            StepModel(name: "validate-refund", medianMicros: 5_000, sigma: 0.4, retryRate: 0.002, faultRate: 0.05,
                      faultReason: "the refund window closed 30 days after delivery", undo: false),
            StepModel(name: "refund-card", medianMicros: 220_000, sigma: 0.6, retryRate: 0.03, faultRate: 0.02,
                      faultReason: "the charge was already refunded", undo: true),
            StepModel(name: "restock", medianMicros: 10_000, sigma: 0.5, retryRate: 0.01, faultRate: 0.005,
                      faultReason: "warehouse 'WH-3' does not stock this sku", undo: true),
            notify,
        ]),
    ]

    static let transientReasons = [
        "connection reset by peer", "HTTP 503 Service Unavailable from upstream",
        "timed out after 5 s waiting for a response", "database is locked",
    ]

    public static func generate(
        into store: AuditStore, options: Options, progress: ((_ hops: Int, _ target: Int) -> Void)? = nil
    ) throws -> Summary {
        let started = ContinuousClock.now
        var rng = SplitMix64(seed: options.seed)
        var processors: [String: [String]] = [:]
        for template in templates {
            for step in template.steps where processors[step.name] == nil {
                processors[step.name] = (0..<3).map { _ in
                    "node-\(Int.random(in: 1...6, using: &rng)).prod:\(Int.random(in: 1_000...65_000, using: &rng))"
                }
            }
        }
        let endMicros = Int64(options.end.timeIntervalSince1970 * 1_000_000)
        let windowMicros = Int64(options.days * 86_400 * 1_000_000)
        // Slips start over the window minus its last 30 s, so that every slip has its first hop before `end`.
        let startSpan = Double(max(windowMicros - 30_000_000, 1))
        let windowStart = endMicros - windowMicros

        var batch: [SlipEvent] = []
        batch.reserveCapacity(options.batchSize + 64)
        var hops = 0
        var events = 0
        var slips = 0
        var batches = 0
        var reported = 0
        while hops < options.hops {
            let start = windowStart + Int64(Double(hops) / Double(options.hops) * startSpan)
                + Int64.random(in: 0...2_000_000, using: &rng)
            var simulation = SlipSimulation(
                id: randomUUID(&rng), template: pickTemplate(&rng), startMicros: start, endMicros: endMicros,
                processors: processors)
            simulation.run(&rng)
            hops += simulation.hops
            events += simulation.events.count
            slips += 1
            batch += simulation.events
            if Double.random(in: 0..<1, using: &rng) < 0.0005 {
                batch.append(unreadableParked(at: start, &rng, processors: processors))
                events += 1
            }
            if batch.count >= options.batchSize {
                try store.record(batch)
                batches += 1
                batch.removeAll(keepingCapacity: true)
                if let progress, hops - reported >= 100_000 {
                    reported = hops
                    progress(hops, options.hops)
                }
            }
        }
        if !batch.isEmpty {
            try store.record(batch)
            batches += 1
        }
        try store.optimize()
        let elapsed = started.duration(to: .now)
        return Summary(
            path: store.path, hops: hops, events: events, slips: slips, batches: batches,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    static func pickTemplate(_ rng: inout SplitMix64) -> TemplateModel {
        var draw = Double.random(in: 0..<1, using: &rng)
        for template in templates {
            draw -= template.weight
            if draw < 0 { return template }
        }
        return templates[0]
    }

    static func randomUUID(_ rng: inout SplitMix64) -> String {
        let high = rng.next()
        let low = rng.next()
        let hex = String(format: "%016llx%016llx", high, low)
        let characters = Array(hex)
        func part(_ range: Range<Int>) -> String { String(characters[range]) }
        return "\(part(0..<8))-\(part(8..<12))-4\(part(13..<16))-a\(part(17..<20))-\(part(20..<32))"
    }

    /// A parked body that was not a readable slip: no slip id, an event id of its own.
    static func unreadableParked(at micros: Int64, _ rng: inout SplitMix64, processors: [String: [String]]) -> SlipEvent {
        let step = templates[Int.random(in: 0..<templates.count, using: &rng)].steps[0].name
        let (code, reason) = Bool.random(using: &rng)
            ? ("malformed", "the body is not valid JSON: unexpected character 'x' at offset 0")
            : ("unsupported-version", "format version 2 is not supported (this build reads version 1)")
        return SlipEvent(
            id: "unknown.parked.\(randomUUID(&rng))", slipID: AuditStore.unknownSlipID,
            template: AuditStore.unknownSlipID, kind: .parked, step: step, sequence: 0, attempt: 1, outcome: code,
            state: .running, processor: processors[step]![0], at: date(micros: micros + 3_000), reason: reason)
    }

    static func date(micros: Int64) -> Date {
        // Whole milliseconds, as events carry them on the wire.
        Date(timeIntervalSince1970: Double((micros + 500) / 1_000) / 1_000)
    }
}

/// One slip's life, as the events its processors would publish.
struct SlipSimulation {
    let id: String
    let template: AuditGenerator.TemplateModel
    let startMicros: Int64
    let endMicros: Int64
    let processors: [String: [String]]

    var events: [SlipEvent] = []
    var hops = 0
    var now: Int64 = 0
    var sequence = 0
    var state = SlipState.running
    var fault: Fault?
    var undo: [AuditGenerator.StepModel] = []
    var lastStep = ""
    var lastAttempt = 1
    var lastProcessor = ""
    /// Stop after this many hop events (a hop that never came: a stuck slip), if set.
    var cutAfter: Int?
    var stopped = false

    init(id: String, template: AuditGenerator.TemplateModel, startMicros: Int64, endMicros: Int64,
         processors: [String: [String]]) {
        self.id = id
        self.template = template
        self.startMicros = startMicros
        self.endMicros = endMicros
        self.processors = processors
    }

    mutating func run(_ rng: inout SplitMix64) {
        now = startMicros
        let draw = Double.random(in: 0..<1, using: &rng)
        if draw < 0.0008 {
            cutAfter = Int.random(in: 1...3, using: &rng)  // stuck: the next hop's message was lost
        } else if endMicros - startMicros < 120_000_000, draw < 0.3 {
            cutAfter = Int.random(in: 1...3, using: &rng)  // still in flight at the end of the window
        }
        let parkAt = Double.random(in: 0..<1, using: &rng) < 0.0005 ? Int.random(in: 1...3, using: &rng) : nil

        for (index, step) in template.steps.enumerated() {
            if let parkAt, parkAt == index {
                park(step, &rng)
                return
            }
            guard execute(step, isLast: index == template.steps.count - 1, &rng), !stopped else { break }
        }
        if stopped { return }
        if state == .compensating {
            while let step = undo.popLast() {
                compensate(step, &rng)
                if stopped || state == .compensationFailed { break }
            }
        }
        if stopped || !state.isTerminal { return }
        let at = now + 1_000
        guard at <= endMicros else { return }
        events.append(SlipEvent(
            slipID: id, template: template.name, kind: .terminal, step: lastStep, sequence: max(sequence - 1, 0),
            attempt: lastAttempt, outcome: state.rawValue, state: state, processor: lastProcessor,
            at: AuditGenerator.date(micros: at), reason: fault?.reason, fault: fault,
            createdAt: AuditGenerator.date(micros: startMicros)))
    }

    /// Queue latency before a hop: a few milliseconds, now and then a backlog of seconds.
    mutating func wait(_ rng: inout SplitMix64) {
        if Double.random(in: 0..<1, using: &rng) < 0.01 {
            now += Int64.random(in: 1_000_000...30_000_000, using: &rng)
        } else {
            now += Int64.random(in: 500...15_000, using: &rng)
        }
    }

    static func logNormal(median: Double, sigma: Double, _ rng: inout SplitMix64) -> Int64 {
        // Box-Muller.
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &rng)
        let u2 = Double.random(in: 0..<1, using: &rng)
        let normal = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        return max(1, Int64(median * exp(sigma * normal)))
    }

    /// Emits a hop event unless the slip is cut there or it would be after the end of the window.
    mutating func emit(
        _ kind: SlipEvent.Kind, _ step: AuditGenerator.StepModel, attempt: Int, outcome: HopOutcome, state: SlipState,
        startedAt: Int64, duration: Int64, reason: String?, _ rng: inout SplitMix64
    ) {
        let at = startedAt + duration + Int64.random(in: 200...2_000, using: &rng)
        if let cutAfter, hops >= cutAfter { stopped = true; return }
        if at > endMicros { stopped = true; return }
        let instances = processors[step.name]!
        let processor = instances[Int.random(in: 0..<instances.count, using: &rng)]
        events.append(SlipEvent(
            slipID: id, template: template.name, kind: kind, step: step.name, sequence: sequence, attempt: attempt,
            outcome: outcome.rawValue, state: state, processor: processor,
            startedAt: AuditGenerator.date(micros: startedAt), durationMicros: duration,
            at: AuditGenerator.date(micros: at), reason: reason))
        hops += 1
        now = at
        lastStep = step.name
        lastAttempt = attempt
        lastProcessor = processor
    }

    /// Runs a step forward; false when it faulted (or the slip stopped).
    mutating func execute(_ step: AuditGenerator.StepModel, isLast: Bool, _ rng: inout SplitMix64) -> Bool {
        var attempt = 1
        while true {
            wait(&rng)
            let started = now
            let duration = Self.logNormal(median: step.medianMicros, sigma: step.sigma, &rng)
            let draw = Double.random(in: 0..<1, using: &rng)
            if draw < step.retryRate {
                let reason = AuditGenerator.transientReasons[
                    Int.random(in: 0..<AuditGenerator.transientReasons.count, using: &rng)]
                if attempt < 3 {
                    emit(.execute, step, attempt: attempt, outcome: .retried, state: state, startedAt: started,
                         duration: duration, reason: reason, &rng)
                    if stopped { return false }
                    attempt += 1
                    continue
                }
                return faulted(step, attempt: attempt, reason: "gave up after 3 attempts: \(reason)", started, duration, &rng)
            }
            if draw < step.retryRate + step.faultRate {
                return faulted(step, attempt: attempt, reason: step.faultReason, started, duration, &rng)
            }
            let after: SlipState = isLast ? .completed : .running
            emit(.execute, step, attempt: attempt, outcome: .completed, state: after, startedAt: started,
                 duration: duration, reason: nil, &rng)
            if stopped { return false }
            state = after
            sequence += 1
            if step.undo { undo.append(step) }
            return true
        }
    }

    mutating func faulted(
        _ step: AuditGenerator.StepModel, attempt: Int, reason: String, _ started: Int64, _ duration: Int64,
        _ rng: inout SplitMix64
    ) -> Bool {
        let after: SlipState = undo.isEmpty ? .faulted : .compensating
        emit(.execute, step, attempt: attempt, outcome: .faulted, state: after, startedAt: started, duration: duration,
             reason: reason, &rng)
        if stopped { return false }
        fault = Fault(step: step.name, sequence: sequence, reason: reason, attempts: attempt)
        state = after
        sequence += 1
        return false
    }

    mutating func compensate(_ step: AuditGenerator.StepModel, _ rng: inout SplitMix64) {
        let failsForGood = Double.random(in: 0..<1, using: &rng) < 0.002
        var attempt = 1
        while true {
            wait(&rng)
            let started = now
            let duration = Self.logNormal(median: step.medianMicros * 0.7, sigma: step.sigma, &rng)
            let transient = Double.random(in: 0..<1, using: &rng) < 0.02
            if failsForGood || transient {
                let reason = failsForGood
                    ? "undo of \(step.name) refused: the upstream record is locked"
                    : AuditGenerator.transientReasons[
                        Int.random(in: 0..<AuditGenerator.transientReasons.count, using: &rng)]
                if attempt < 5 {
                    emit(.compensate, step, attempt: attempt, outcome: .retried, state: state, startedAt: started,
                         duration: duration, reason: reason, &rng)
                    if stopped { return }
                    attempt += 1
                    continue
                }
                emit(.compensate, step, attempt: attempt, outcome: .failed, state: .compensationFailed,
                     startedAt: started, duration: duration, reason: reason, &rng)
                if stopped { return }
                state = .compensationFailed
                sequence += 1
                return
            }
            let after: SlipState = undo.isEmpty ? .compensated : .compensating
            emit(.compensate, step, attempt: attempt, outcome: .completed, state: after, startedAt: started,
                 duration: duration, reason: nil, &rng)
            if stopped { return }
            state = after
            sequence += 1
            return
        }
    }

    /// The next hop's message reaches the wrong queue and is parked there (misrouted): the slip stays where it is.
    mutating func park(_ next: AuditGenerator.StepModel, _ rng: inout SplitMix64) {
        wait(&rng)
        let at = now + 500
        guard at <= endMicros else { return }
        let others = template.steps.filter { $0.name != next.name }
        let wrong = others[Int.random(in: 0..<others.count, using: &rng)]
        events.append(SlipEvent(
            slipID: id, template: template.name, kind: .parked, step: wrong.name, sequence: sequence, attempt: 1,
            outcome: "misrouted", state: state, processor: processors[wrong.name]![0],
            at: AuditGenerator.date(micros: at),
            reason: "the slip's next hop is execute \(next.name), not execute \(wrong.name)"))
        stopped = true
    }
}
