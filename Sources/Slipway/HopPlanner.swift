import Foundation
import SlipwayCore
import SlipwayStores
import SlipwayTransport

/// Decides what a hop does, from the slip, what its handler came to, the policies, the time and a random number: every
/// rule of a hop, and no I/O. `ProcessorRuntime` claims the hop, runs the handler and carries the plan out.
///
/// Each decision is one function, in the order a delivery meets them: `admit` (is the slip for this queue?),
/// `poison` (has it killed its processor too often?), `deadlinePassed`, `plan` (after the handler), and `replay` (a
/// recorded hop whose forward was never confirmed).
struct HopPlanner: Sendable {
    let step: String
    let topology: Topology
    let messages: MessageFactory
    /// How an execute is retried, unless the slip's itinerary gives the step a policy of its own.
    let retry: RetryPolicy
    let compensationRetry: RetryPolicy
    let poisonRedeliveries: Int
    /// A fresh unique id, for a parked message and its event (UUIDs; fixed in tests).
    let newID: @Sendable () -> String

    init(
        step: String, configuration: ProcessorConfiguration, codec: SlipCodec,
        newID: @escaping @Sendable () -> String = { UUID().uuidString.lowercased() }
    ) {
        self.step = step
        self.topology = configuration.topology
        self.messages = MessageFactory(
            topology: configuration.topology, codec: codec, instance: configuration.instance,
            signing: configuration.signing)
        self.retry = configuration.retry
        self.compensationRetry = configuration.compensationRetry
        self.poisonRedeliveries = configuration.poisonRedeliveries
        self.newID = newID
    }

    private var instance: String { messages.instance }

    // MARK: Before the handler

    /// What arrived on a step's queue, as far as the planner needs it.
    struct Arrival: Sendable {
        var kind: HopKind
        var body: [UInt8]
        var headers: [String: String]

        /// The message's signature headers, kept on a parked copy so that a replay of the same bytes verifies.
        var signature: [String: String] {
            headers.filter { $0.key == SigningKeys.keyIDHeader || $0.key == SigningKeys.signatureHeader }
        }
    }

    enum Admission: Sendable {
        /// The slip's next hop is this queue's: run it (a replayed compensation-failed slip resumes its walk back).
        case run(Slip)
        case park(HopPlan)
    }

    /// A decoded, verified slip is run only by the queue its next hop names.
    func admit(_ slip: Slip, _ arrival: Arrival, at now: Date) throws -> Admission {
        var slip = slip
        if arrival.kind == .compensate && slip.state == .compensationFailed {
            slip.resumeCompensation()  // A parked walk-back, replayed from the dead-letter queue.
        }
        let queue = topology.queue(for: arrival.kind, step: step)
        guard let next = slip.nextHop, next.kind == arrival.kind, next.step == step else {
            let wanted =
                slip.nextHop.map { "\($0.kind) of step '\($0.step)'" } ?? "nothing (the slip is \(slip.state.rawValue))"
            return .park(
                try park(
                    arrival, slip: slip, code: .misrouted,
                    reason: "received on '\(queue)' but the slip's next hop is \(wanted)", at: now))
        }
        if arrival.kind == .compensate, let address = slip.compensations.last?.address, address != queue {
            return .park(
                try park(
                    arrival, slip: slip, code: .misrouted,
                    reason: "the compensation record's address '\(address)' is not this queue '\(queue)'", at: now))
        }
        return .run(slip)
    }

    /// A body that is not a slip this processor may run (unreadable, invalid, too large, unsigned...). Most often it
    /// is still a slip someone waits for: the park names it when `peek` could read its id. Unverified, so a label
    /// only: the hop record is never touched.
    func refuse(_ arrival: Arrival, _ rejection: SlipRejection, peek: SlipPeek?, at now: Date) throws -> HopPlan {
        try park(arrival, slip: nil, peek: peek, code: rejection.code, reason: rejection.reason, at: now)
    }

    /// A hop whose message came back `redeliveries` times unfinished is killing its processor: parked rather than
    /// run again. Nil: run it.
    func poison(_ slip: Slip, _ arrival: Arrival, redeliveries: Int, at now: Date) throws -> HopPlan? {
        guard redeliveries >= poisonRedeliveries else { return nil }
        return try park(
            arrival, slip: slip, code: .poison,
            reason: "delivered \(redeliveries + 1) times without the hop ever finishing (the processor died running it?)",
            at: now)
    }

    /// An execute whose slip's deadline passed before it started faults without running: the slip compensates.
    func deadlinePassed(_ slip: Slip, kind: HopKind, at now: Date) throws -> HopPlan? {
        guard kind == .execute, let deadline = slip.deadline, deadline < now else { return nil }
        let reason = "the slip's deadline \(SlipCodec.formatTimestamp(deadline)) passed before '\(step)' started"
        var next = slip
        next.faultStep(reason: reason, entry: entry(slip, kind, .faulted, reason: reason, timing: .notRun(at: now)))
        var plan = try finished(next, .faulted, at: now)
        plan.notice = .init(
            level: .info, message: "deadline passed: the slip compensates", metadata: ["slip.deadline": "\(deadline)"])
        return plan
    }

    /// How long the handler may run: the itinerary's (or, for an undo, the compensation record's) limit, else the
    /// processor's.
    func timeout(_ slip: Slip, kind: HopKind, configuration: ProcessorConfiguration) -> Duration? {
        switch kind {
        case .execute:
            slip.itinerary[0].timeoutMs.map { .milliseconds($0) } ?? configuration.timeout
        case .compensate:
            // The record carries the step's compensateTimeoutMs: the itinerary entry is gone by now.
            slip.compensations[slip.compensations.count - 1].timeoutMs.map { .milliseconds($0) }
                ?? configuration.compensateTimeout
        }
    }

    // MARK: After the handler

    /// The hop after its handler: done (completed, faulted, terminated, compensated, failed) or tried again.
    /// `random`: in 0..<1, the retry delay's jitter.
    func plan(_ slip: Slip, kind: HopKind, result: HandlerResult, timing: HopTiming, at now: Date, random: Double)
        throws -> HopPlan
    {
        do {
            return try finished(slip, kind: kind, result: result, timing: timing, at: now, random: random)
        } catch {
            // The result cannot be sent (the slip it makes is over the size limit...): it counts as a failed attempt.
            return try threw(slip, kind: kind, error: "\(error)", timing: timing, at: now, random: random)
        }
    }

    private func finished(
        _ slip: Slip, kind: HopKind, result: HandlerResult, timing: HopTiming, at now: Date, random: Double
    ) throws -> HopPlan {
        var next = slip
        switch (kind, result) {
        case (.execute, .executed(.completed(let variables, let compensation, let revision, let continueAfter))):
            if let revision { next.revise(revision) }  // Changes what follows the head, which completes now.
            let waitMs = continueAfter.map { Int(($0 / .milliseconds(1)).rounded(.up)) } ?? 0
            let note = [revision?.summary, waitMs > 0 ? "the next step waits \(waitMs) ms" : nil]
                .compactMap { $0 }.joined(separator: "; ")
            next.completeStep(
                compensationData: compensation, compensateAddress: topology.compensateQueue(step: step),
                variableUpdates: variables,
                entry: entry(slip, kind, .completed, reason: note.isEmpty ? nil : note, timing: timing))
            return try finished(next, .completed, delayMs: waitMs, at: now)
        case (.execute, .executed(.faulted(let reason))):
            next.faultStep(reason: reason, entry: entry(slip, kind, .faulted, reason: reason, timing: timing))
            var plan = try finished(next, .faulted, at: now)
            plan.notice = .init(level: .info, message: "step faulted", metadata: ["fault.reason": "\(reason)"])
            return plan
        case (.execute, .executed(.terminated(let reason))):
            next.terminateStep(entry: entry(slip, kind, .terminated, reason: reason, timing: timing))
            var plan = try finished(next, .terminated, at: now)
            plan.notice = .init(level: .info, message: "the step ended the slip", metadata: ["slip.reason": "\(reason)"])
            return plan
        case (.compensate, .compensated):
            next.completeCompensation(entry: entry(slip, kind, .completed, timing: timing))
            return try finished(next, .compensated, at: now)
        case (_, .threw(let error)):
            return try threw(slip, kind: kind, error: error, timing: timing, at: now, random: random)
        case (.execute, .compensated), (.compensate, .executed):
            preconditionFailure("the runtime ran the \(kind) hop's other handler")
        }
    }

    /// A handler that threw: tried again while the policy allows, else the step faults (an execute) or the walk back
    /// stops, parked as compensation-failed (an undo).
    private func threw(_ slip: Slip, kind: HopKind, error: String, timing: HopTiming, at now: Date, random: Double)
        throws -> HopPlan
    {
        var next = slip
        let policy = kind == .execute ? (slip.itinerary[0].retry ?? retry) : compensationRetry
        if slip.attempt < policy.maxAttempts {
            next.retryHop(entry: entry(slip, kind, .retried, reason: error, timing: timing))
            let delayMs = policy.delayMs(afterAttempt: slip.attempt, random: random)
            let queue = messages.delayed(topology.queue(for: kind, step: step), delayMs: delayMs)
            return HopPlan(
                disposition: .retry(delayMs: delayMs), hopEvent: try messages.hopEvent(next, at: now),
                messages: [try messages.slipMessage(next, to: queue.name)], queues: [queue],
                notice: .init(
                    level: .warning, message: "attempt failed; trying again",
                    metadata: ["hop.attempt": "\(slip.attempt)", "hop.retry_queue": "\(queue.name)"]))
        }
        switch kind {
        case .execute:
            let gaveUp = "gave up after \(slip.attempt) attempts: \(error)"
            next.faultStep(reason: gaveUp, entry: entry(slip, kind, .faulted, reason: gaveUp, timing: timing))
            var plan = try finished(next, .faulted, at: now)
            plan.notice = .init(level: .warning, message: "step failed on its last attempt", metadata: ["error": "\(error)"])
            return plan
        case .compensate:
            let gaveUp = "compensation gave up after \(slip.attempt) attempts: \(error)"
            next.failCompensation(reason: gaveUp, entry: entry(slip, kind, .failed, reason: gaveUp, timing: timing))
            var plan = try finished(next, .failed, at: now)
            plan.notice = .init(
                level: .error, message: "compensation failed on its last attempt: slip parked",
                metadata: ["error": "\(error)"])
            return plan
        }
    }

    // MARK: From the record

    /// A recorded hop whose forward the broker never confirmed: the recorded messages, sent again as they are.
    ///
    /// A record keeps only the messages, so the queues to declare are read back from their names: a delay queue's
    /// name says its wait and target (`Topology.delayQueue`) for this reason.
    func replay(_ record: HopRecord) -> HopPlan {
        let queues = record.outgoing.filter { $0.exchange.isEmpty }.map { message in
            guard let delay = topology.parseDelayQueue(message.routingKey) else {
                return QueueDeclaration(message.routingKey)
            }
            return QueueDeclaration(message.routingKey, arguments: .delay(delay.delayMs, thenTo: delay.queue))
        }
        return HopPlan(
            disposition: .record(record.outcome), hopEvent: nil, messages: record.outgoing, queues: queues,
            notice: nil)
    }

    // MARK: Parts

    /// A finished hop: its event, and the slip to where it goes next.
    private func finished(_ next: Slip, _ outcome: HopRecordOutcome, delayMs: Int = 0, at now: Date) throws -> HopPlan {
        let (messages, queues) = try self.messages.destination(
            next, lastStep: step, delayMs: delayMs, parkedID: newID, at: now)
        return HopPlan(
            disposition: .record(outcome), hopEvent: try self.messages.hopEvent(next, at: now), messages: messages,
            queues: queues, notice: nil)
    }

    /// To the dead-letter queue with its reason, and an event for the audit trail; never dropped.
    private func park(_ arrival: Arrival, slip: Slip?, peek: SlipPeek? = nil, code: ParkCode, reason: String, at now: Date)
        throws -> HopPlan
    {
        let slipID = slip?.id ?? peek?.slipID
        let parked = messages.park(
            body: arrival.body, code: code, reason: reason, queue: topology.queue(for: arrival.kind, step: step),
            slipID: slipID, parkedID: newID(), at: now, signature: arrival.signature)
        let event = try messages.parkedEvent(slip: slip, peek: peek, step: step, code: code, reason: reason, eventID: newID(), at: now)
        return HopPlan(
            disposition: .park(code, reason: reason), hopEvent: nil, messages: [parked, event],
            queues: [QueueDeclaration(topology.deadLetterQueue)],
            notice: .init(
                level: .warning, message: "message parked in the dead-letter queue",
                metadata: ["park.code": "\(code)", "park.reason": "\(reason)", "slip.id": "\(slipID ?? "-")"]))
    }

    /// The slip's log entry for this hop.
    private func entry(_ slip: Slip, _ kind: HopKind, _ outcome: HopOutcome, reason: String? = nil, timing: HopTiming)
        -> LogEntry
    {
        LogEntry(
            sequence: slip.sequence, step: step, kind: kind, outcome: outcome, attempt: slip.attempt,
            startedAt: timing.startedAt, durationMicros: timing.durationMicros, processor: instance, reason: reason)
    }
}
