import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import SlipwayCore
import SlipwayStores
import SlipwayTransport

/// Runs a `StepProcessor`: consumes its step's execute and compensate queues, runs each hop once, records it, forwards
/// the slip, and acknowledges a delivery only after everything it produced is confirmed by the broker.
///
/// A long-running `Service`: on graceful shutdown it stops taking deliveries, finishes the hops in flight, and returns.
public final class ProcessorRuntime: Service, Sendable {
    let processor: any StepProcessor
    let transport: any MessageTransport
    let store: any HopRecordStore
    let configuration: ProcessorConfiguration
    let logger: Logger
    private let messages: MessageFactory
    private let codec: SlipCodec
    private let declaredQueues = DeclaredQueues()
    private let hopEvents: HopEventBatcher?
    private let inFlight = InFlightHops()
    /// The hops whose claim this instance holds, renewed while they run.
    private let claims = HeldClaims()
    /// Set on graceful shutdown: deliveries already received but not started go back to the queue.
    private let stopping = Mutex(false)

    public init(
        processor: any StepProcessor, transport: any MessageTransport, store: any HopRecordStore,
        configuration: ProcessorConfiguration = ProcessorConfiguration(), logger: Logger
    ) {
        self.processor = processor
        self.transport = transport
        self.store = store
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "slip.step"] = "\(processor.step)"
        self.logger = logger
        self.codec = SlipCodec(limits: configuration.limits)
        self.messages = MessageFactory(
            topology: configuration.topology, codec: codec, instance: configuration.instance,
            signing: configuration.signing)
        self.hopEvents =
            configuration.batchHopEvents
            ? HopEventBatcher(
                transport: transport, topology: configuration.topology, step: processor.step,
                maxEvents: configuration.prefetch / 2, linger: configuration.hopEventLinger) : nil
    }

    private var topology: Topology { configuration.topology }
    private var step: String { processor.step }

    public func run() async throws {
        guard Slip.isValidName(step) else {
            throw ProcessorError("'\(step)' is not a valid step name (1 to 64 characters of A-Z a-z 0-9 _ -)")
        }
        // The audit queue too, not only the exchange: events published before the audit sink's first start would
        // otherwise go to an exchange with no queue bound, and the broker would confirm and drop them. A user made by
        // an older `slip topology` may not declare it: the processor still serves, and says what it risks.
        do {
            if configuration.declaresAuditQueue {
                try await transport.declareAuditQueue(topology)
            } else {
                try await transport.declareTopicExchange(topology.eventsExchange)
            }
        } catch let error as TransportError where error.isPermanent {
            try await transport.declareTopicExchange(topology.eventsExchange)
            logger.warning(
                "cannot declare the audit queue: events sent before the audit sink's first start are lost (a RabbitMQ user made by an older `slip topology`? apply it again)",
                metadata: ["amqp.queue": "\(topology.auditQueue)", "error": "\(error)"])
        }
        try await declare(topology.deadLetterQueue)
        let execute = try await transport.consume(queue: topology.executeQueue(step: step), prefetch: configuration.prefetch)
        let compensate = try await transport.consume(
            queue: topology.compensateQueue(step: step), prefetch: configuration.prefetch)
        logger.info(
            "serving step",
            metadata: ["amqp.queues": "\(topology.executeQueue(step: step)), \(topology.compensateQueue(step: step))"])
        await withGracefulShutdownHandler {
            // On the transport's loop when it has one: a hop then runs on the thread that reads its delivery and
            // sends its forward and ack, and never waits for a thread switch.
            await withTaskExecutorPreference(transport.taskExecutor) {
                let renewing = Task { await self.renewClaims() }
                await withDiscardingTaskGroup { group in
                    group.addTask { await self.serve(execute, kind: .execute) }
                    group.addTask { await self.serve(compensate, kind: .compensate) }
                }
                renewing.cancel()
            }
        } onGracefulShutdown: {
            self.stopping.withLock { $0 = true }
            execute.stop()
            compensate.stop()
            self.hopEvents?.drain()
        }
        logger.info("stopped: every hop in flight finished")
    }

    /// Runs up to `concurrency` hops of one queue at a time until the stream ends, and waits for the last to finish.
    private func serve(_ deliveries: DeliveryStream, kind: HopKind) async {
        let slots = HopSlots(configuration.concurrency)
        await withDiscardingTaskGroup { group in
            do {
                for try await delivery in deliveries {
                    let slot = await slots.acquire()
                    // While the broker blocks publishing (a resource alarm), a hop could not forward its slip: none
                    // starts. The hops in flight wait for their forwards; the transport logs the block and its end.
                    await transport.waitWhilePublishingBlocked()
                    if stopping.withLock({ $0 }) {
                        slot.release()
                        await delivery.release()  // Not started: another instance (or this one, restarted) takes it.
                        continue
                    }
                    group.addTask { await self.handle(delivery, kind: kind, slot: slot) }
                }
            } catch {
                logger.error("delivery stream failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One delivery, start to ack. A failure of the store or the broker leaves the message to be delivered again.
    /// The slot is given back once the slip is forwarded (or at the end, whichever comes first).
    func handle(_ delivery: Delivery, kind: HopKind, slot: HopSlots.Slot) async {
        defer { slot.release() }
        do {
            try await process(delivery, kind: kind, slot: slot)
        } catch {
            logger.error(
                "hop not finished; the message goes back to the queue",
                metadata: ["error": "\(error)", "amqp.message_id": "\(delivery.messageID ?? "-")"])
            try? await Task.sleep(for: .seconds(1))
            await delivery.release()
        }
    }

    private func process(_ delivery: Delivery, kind: HopKind, slot: HopSlots.Slot) async throws {
        let queue = topology.queue(for: kind, step: step)
        var slip: Slip
        do {
            // Verified before anything reads the body: an unsigned or modified slip is never executed.
            try configuration.signing?.verify(delivery.body, headers: delivery.headers)
            slip = try codec.decode(delivery.body)
        } catch {
            // Not a slip this processor may run, but most often still a slip someone waits for: the park names it
            // when its id can be read. Unverified, so a label only; the hop record is never touched.
            return try await park(
                delivery, slip: nil, peek: SlipPeek.read(delivery.body), queue: queue, code: error.code.rawValue,
                reason: error.reason)
        }
        if kind == .compensate && slip.state == .compensationFailed {
            slip.resumeCompensation()  // A parked walk-back, replayed from the dead-letter queue.
        }
        guard let next = slip.nextHop, next.kind == kind, next.step == step else {
            let wanted = slip.nextHop.map { "\($0.kind) of step '\($0.step)'" } ?? "nothing (the slip is \(slip.state.rawValue))"
            return try await park(
                delivery, slip: slip, queue: queue, code: SlipRejection.Code.misrouted.rawValue,
                reason: "received on '\(queue)' but the slip's next hop is \(wanted)")
        }
        if kind == .compensate, let address = slip.compensations.last?.address, address != queue {
            return try await park(
                delivery, slip: slip, queue: queue, code: SlipRejection.Code.misrouted.rawValue,
                reason: "the compensation record's address '\(address)' is not this queue '\(queue)'")
        }

        // Two deliveries of one hop in this process wait for each other here, without touching the store; the store's
        // claim (in `runOnce`) does the same across processes and hosts.
        let key = HopKey(slipID: slip.id, sequence: slip.sequence)
        await inFlight.claim(key)
        do {
            try await runOnce(slip, kind: kind, delivery: delivery, slot: slot)
        } catch {
            // Nothing recorded: the next delivery of the hop may run it at once. (After a save the claim is gone, and
            // this changes nothing.)
            claims.end(key)
            try? await store.releaseClaim(slipID: slip.id, sequence: slip.sequence, owner: configuration.instance)
            await inFlight.release(key)
            throw error
        }
        await inFlight.release(key)
    }

    /// Claims the hop in the store, waiting while another instance holds it. Returns the hop's record when it has one
    /// (nothing to run), nil when this instance holds the claim and runs the hop.
    private func claimOrRecord(_ slip: Slip, logger: Logger) async throws -> HopRecord? {
        let lease = configuration.claimLease
        let owner = configuration.instance
        var pause = Duration.milliseconds(10)
        let maxPause = min(Duration.seconds(1), lease / 4)
        var waited = false
        while true {
            switch try await store.claim(slipID: slip.id, sequence: slip.sequence, owner: owner, lease: lease) {
            case .claimed:
                if waited { logger.info("took the hop over from an instance whose claim ran out (did it die?)") }
                claims.begin(HopKey(slipID: slip.id, sequence: slip.sequence))
                return nil
            case .recorded(let record):
                guard waited, !record.forwarded else { return record }
                return try await awaitForward(record, pause: pause, lease: lease)
            case .held(let holder, let until):
                if !waited {
                    logger.info(
                        "another instance is running this hop: waiting for it",
                        metadata: ["hop.claimed_by": "\(holder)", "hop.claimed_until": "\(until)"])
                }
                waited = true
                try await Task.sleep(for: pause)
                pause = min(pause * 2, maxPause)
            }
        }
    }

    /// The instance we waited for recorded the hop and is forwarding its result: give it the time to, rather than
    /// sending a second copy. If it dies before, the result is forwarded from here.
    private func awaitForward(_ record: HopRecord, pause: Duration, lease: Duration) async throws -> HopRecord {
        var pause = pause
        let deadline = ContinuousClock.now.advanced(by: lease)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .seconds(1))
            guard let now = try await store.record(slipID: record.slipID, sequence: record.sequence) else { break }
            if now.forwarded { return now }
        }
        return record
    }

    /// Renews the claims of the hops this instance runs, every third of a lease, until cancelled.
    private func renewClaims() async {
        let lease = configuration.claimLease
        while !Task.isCancelled {
            do { try await Task.sleep(for: lease / 3) } catch { return }
            for key in claims.current {
                do {
                    let held = try await store.renewClaim(
                        slipID: key.slipID, sequence: key.sequence, owner: configuration.instance, lease: lease)
                    if !held {
                        claims.end(key)
                        logger.warning(
                            "lost the claim of a hop still running (its lease ran out): another instance may run it too",
                            metadata: ["slip.id": "\(key.slipID)", "hop.seq": "\(key.sequence)"])
                    }
                } catch {
                    logger.warning("cannot renew a hop's claim", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    private func runOnce(_ slip: Slip, kind: HopKind, delivery: Delivery, slot: HopSlots.Slot) async throws {
        var logger = self.logger
        logger[metadataKey: "slip.id"] = "\(slip.id)"
        logger[metadataKey: "hop.seq"] = "\(slip.sequence)"

        if let record = try await claimOrRecord(slip, logger: logger) {
            if record.forwarded {
                logger.info("duplicate of a hop already done and forwarded: dropped")
            } else {
                logger.info("hop already done but its forward was not confirmed: forwarding the recorded result")
                try await publish(record.outgoing)
                try await store.markForwarded(slipID: slip.id, sequence: slip.sequence)
            }
            await delivery.ack()
            return
        }

        // A hop whose message keeps coming back unfinished is killing its processor: park it rather than loop.
        if delivery.redelivered {
            let count = try await store.noteRedelivery(slipID: slip.id, sequence: slip.sequence, attempt: slip.attempt)
            if count >= configuration.poisonRedeliveries {
                try await park(
                    delivery, slip: slip, queue: topology.queue(for: kind, step: step), code: "poison",
                    reason: "delivered \(count + 1) times without the hop ever finishing (the processor died running it?)")
                return await releaseClaim(slip)
            }
        }

        let decision = try await decide(slip, kind: kind, logger: logger)
        switch decision {
        case .retry(let outgoing):
            logger.warning(
                "attempt failed; trying again",
                metadata: ["hop.attempt": "\(slip.attempt)", "hop.retry_queue": "\(outgoing.first?.routingKey ?? "-")"])
            try await publish(outgoing)
            // Acknowledged first, then released: a crash between the two leaves the claim to expire, where the other
            // order could let the original delivery run again beside its retry.
            await delivery.ack()
            return await releaseClaim(slip)
        case .record(let outcome, let outgoing):
            claims.end(HopKey(slipID: slip.id, sequence: slip.sequence))  // The save ends the claim.
            let record = try await store.save(
                HopRecord(
                    slipID: slip.id, sequence: slip.sequence, step: step, kind: kind, outcome: outcome,
                    outgoing: outgoing))
            let hopEventsConfirmed = try await forward(record.outgoing)
            slot.release()
            try await hopEventsConfirmed()
            try await store.markForwarded(slipID: slip.id, sequence: slip.sequence)
            logger.debug("hop done", metadata: ["hop.outcome": "\(outcome)"])
        }
        await delivery.ack()
    }

    /// After the ack: a failure leaves the claim to expire, and only delays a retry that arrives before.
    private func releaseClaim(_ slip: Slip) async {
        claims.end(HopKey(slipID: slip.id, sequence: slip.sequence))
        do {
            try await store.releaseClaim(slipID: slip.id, sequence: slip.sequence, owner: configuration.instance)
        } catch {
            logger.warning(
                "cannot release a hop's claim: it expires after its lease", metadata: ["error": "\(error)"])
        }
    }

    /// Runs the handler and turns its outcome into the hop's result.
    private func decide(_ slip: Slip, kind: HopKind, logger: Logger) async throws -> HopDecision {
        let startedAt = Date()
        let clock = ContinuousClock()
        let started = clock.now
        func entry(_ outcome: HopOutcome, reason: String? = nil) -> LogEntry {
            let elapsed = started.duration(to: clock.now).components
            return LogEntry(
                sequence: slip.sequence, step: step, kind: kind, outcome: outcome, attempt: slip.attempt,
                startedAt: startedAt, durationMicros: elapsed.seconds * 1_000_000 + elapsed.attoseconds / 1_000_000_000_000,
                processor: configuration.instance, reason: reason)
        }
        var next = slip
        switch kind {
        case .execute:
            let step = slip.itinerary[0]
            let policy = step.retry ?? configuration.retry
            if let deadline = slip.deadline, deadline < Date() {
                let reason = "the slip's deadline \(SlipCodec.formatTimestamp(deadline)) passed before '\(self.step)' started"
                logger.info("deadline passed: the slip compensates", metadata: ["slip.deadline": "\(deadline)"])
                next.faultStep(reason: reason, entry: entry(.faulted, reason: reason))
                return .record(outcome: "faulted", outgoing: try messages.forward(next, lastStep: self.step))
            }
            let hop = ExecuteHop(
                slipID: slip.id, template: slip.template, step: self.step, arguments: step.arguments,
                variables: slip.variables, sequence: slip.sequence, attempt: slip.attempt,
                idempotencyKey: "\(slip.id)/\(self.step)/\(slip.sequence)", logger: logger)
            let timeout = step.timeoutMs.map { Duration.milliseconds($0) } ?? configuration.timeout
            do {
                let processor = self.processor
                switch try await withTimeout(timeout, on: transport.taskExecutor, { try await processor.execute(hop) }) {
                case .completed(let variables, let compensation, let revision, let continueAfter):
                    if let revision { next.revise(revision) }  // Changes what follows the head, which completes now.
                    let waitMs = continueAfter.map { Int(($0 / .milliseconds(1)).rounded(.up)) } ?? 0
                    let note = [revision?.summary, waitMs > 0 ? "the next step waits \(waitMs) ms" : nil]
                        .compactMap { $0 }.joined(separator: "; ")
                    next.completeStep(
                        compensationData: compensation, compensateAddress: topology.compensateQueue(step: self.step),
                        variableUpdates: variables, entry: entry(.completed, reason: note.isEmpty ? nil : note))
                    return .record(
                        outcome: "completed", outgoing: try messages.forward(next, lastStep: self.step, delayMs: waitMs))
                case .faulted(let reason):
                    logger.info("step faulted", metadata: ["fault.reason": "\(reason)"])
                    next.faultStep(reason: reason, entry: entry(.faulted, reason: reason))
                    return .record(outcome: "faulted", outgoing: try messages.forward(next, lastStep: self.step))
                case .terminated(let reason):
                    logger.info("the step ended the slip", metadata: ["slip.reason": "\(reason)"])
                    next.terminateStep(entry: entry(.terminated, reason: reason))
                    return .record(outcome: "terminated", outgoing: try messages.forward(next, lastStep: self.step))
                }
            } catch {
                let reason = "\(error)"
                if slip.attempt < policy.maxAttempts {
                    next.retryHop(entry: entry(.retried, reason: reason))
                    return try messages.retry(
                        next, queue: topology.executeQueue(step: self.step),
                        delayMs: policy.delayMs(afterAttempt: slip.attempt, random: Double.random(in: 0..<1)))
                }
                let gaveUp = "gave up after \(slip.attempt) attempts: \(reason)"
                logger.warning("step failed on its last attempt", metadata: ["error": "\(reason)"])
                next.faultStep(reason: gaveUp, entry: entry(.faulted, reason: gaveUp))
                return .record(outcome: "faulted", outgoing: try messages.forward(next, lastStep: self.step))
            }
        case .compensate:
            let policy = configuration.compensationRetry
            let record = slip.compensations[slip.compensations.count - 1]
            let hop = CompensateHop(
                slipID: slip.id, template: slip.template, step: step, data: record.data, variables: slip.variables,
                completedSequence: record.sequence, sequence: slip.sequence, attempt: slip.attempt, fault: slip.fault,
                idempotencyKey: "\(slip.id)/\(step)/undo/\(record.sequence)", logger: logger)
            // The record carries the step's compensateTimeoutMs: the itinerary entry is gone by now.
            let timeout = record.timeoutMs.map { Duration.milliseconds($0) } ?? configuration.compensateTimeout
            do {
                let processor = self.processor
                try await withTimeout(timeout, kind: .compensate, on: transport.taskExecutor) {
                    try await processor.compensate(hop)
                }
                next.completeCompensation(entry: entry(.completed))
                return .record(outcome: "compensated", outgoing: try messages.forward(next, lastStep: step))
            } catch {
                let reason = "\(error)"
                if slip.attempt < policy.maxAttempts {
                    next.retryHop(entry: entry(.retried, reason: reason))
                    return try messages.retry(
                        next, queue: topology.compensateQueue(step: step),
                        delayMs: policy.delayMs(afterAttempt: slip.attempt, random: Double.random(in: 0..<1)))
                }
                let gaveUp = "compensation gave up after \(slip.attempt) attempts: \(reason)"
                logger.error("compensation failed on its last attempt: slip parked", metadata: ["error": "\(reason)"])
                next.failCompensation(reason: gaveUp, entry: entry(.failed, reason: gaveUp))
                return .record(outcome: "failed", outgoing: try messages.forward(next, lastStep: step))
            }
        }
    }

    /// Bad input: to the dead-letter queue with its reason, and an event for the audit trail; never dropped.
    /// `peek`: for a body that is not a valid (or verified) slip, the id read from it, to name the park.
    private func park(
        _ delivery: Delivery, slip: Slip?, peek: SlipPeek? = nil, queue: String, code: String, reason: String
    ) async throws {
        let slipID = slip?.id ?? peek?.slipID
        logger.warning(
            "message parked in the dead-letter queue",
            metadata: [
                "park.code": "\(code)", "park.reason": "\(reason)", "slip.id": "\(slipID ?? "-")",
                "amqp.message_id": "\(delivery.messageID ?? "-")",
            ])
        let signature = delivery.headers.filter {
            $0.key == SigningKeys.keyIDHeader || $0.key == SigningKeys.signatureHeader
        }
        try await publish([
            try messages.park(
                body: delivery.body, code: code, reason: reason, queue: queue, slipID: slipID, signature: signature),
            try messages.parkedEvent(slip: slip, peek: peek, step: step, code: code, reason: reason),
        ])
        await delivery.ack()
    }

    /// Publishes with confirms, declaring any queue this instance has not yet declared (a message to a queue that does
    /// not exist would be confirmed and dropped). A delay queue is declared with the arguments its name says.
    /// Hop events go through the batcher, alongside the rest; returns once both are confirmed.
    private func publish(_ outgoing: [OutgoingMessage]) async throws {
        try await forward(outgoing)()
    }

    /// `publish`, returning once everything but the hop events is confirmed, with a wait for those: a hop forwards
    /// its slip without waiting for its events' batch, and is acknowledged after.
    private func forward(_ outgoing: [OutgoingMessage]) async throws -> @Sendable () async throws -> Void {
        for message in outgoing where message.exchange.isEmpty {
            if let delay = topology.parseDelayQueue(message.routingKey) {
                try await declare(message.routingKey, arguments: .delay(delay.delayMs, thenTo: delay.queue))
            } else {
                try await declare(message.routingKey)
            }
        }
        guard let hopEvents else {
            try await transport.publish(outgoing)
            return {}
        }
        let events = outgoing.filter(isHopEvent).map(\.body)
        let others = outgoing.filter { !isHopEvent($0) }
        let eventsConfirmed = Task(executorPreference: transport.taskExecutor) { try await hopEvents.publish(events) }
        do {
            if !others.isEmpty { try await transport.publish(others) }
        } catch {
            _ = await eventsConfirmed.result  // not acknowledged either way: the message comes back
            throw error
        }
        return { try await eventsConfirmed.value }
    }

    /// An execute or compensate event (not a terminal or parked one, which are routed by their slip).
    private func isHopEvent(_ message: OutgoingMessage) -> Bool {
        message.exchange == topology.eventsExchange
            && (message.routingKey.hasPrefix("execute.") || message.routingKey.hasPrefix("compensate."))
    }

    /// The name is remembered only once the broker has declared the queue: a hop that saw it merely "being declared"
    /// by another hop would publish before the queue exists, and the broker would drop its message.
    private func declare(_ queue: String, arguments: QueueArguments? = nil) async throws {
        guard await !declaredQueues.contains(queue) else { return }
        if let arguments {
            try await transport.declareQueue(queue, arguments: arguments)
        } else {
            try await transport.declareQueue(queue)
        }
        await declaredQueues.insert(queue)
    }
}

struct HopKey: Hashable, Sendable {
    var slipID: String
    var sequence: Int
}

/// Two deliveries of one hop never run at once in an instance: the second waits, then finds the first one's record.
actor InFlightHops {
    private var waiting: [HopKey: [CheckedContinuation<Void, Never>]] = [:]

    func claim(_ key: HopKey) async {
        while waiting[key] != nil {
            await withCheckedContinuation { continuation in waiting[key]!.append(continuation) }
        }
        waiting[key] = []
    }

    func release(_ key: HopKey) {
        let continuations = waiting.removeValue(forKey: key) ?? []
        for continuation in continuations { continuation.resume() }
    }
}

/// The claims this instance holds: a set under a lock, so that a hop pays no thread switch for it.
final class HeldClaims: Sendable {
    private let keys = Mutex<Set<HopKey>>([])

    func begin(_ key: HopKey) { _ = keys.withLock { $0.insert(key) } }
    func end(_ key: HopKey) { _ = keys.withLock { $0.remove(key) } }
    var current: [HopKey] { keys.withLock { Array($0) } }
}

actor DeclaredQueues {
    private var names: Set<String> = []
    func contains(_ name: String) -> Bool { names.contains(name) }
    func insert(_ name: String) { names.insert(name) }
}
