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
    private let codec: SlipCodec
    private let planner: HopPlanner
    private let claimer: HopClaimer
    private let declaredQueues = DeclaredQueues()
    private let hopEvents: HopEventBatcher?
    /// An inbox step's handler and its record in one transaction of the store; nil for a plain step.
    private let transactions: (any HopTransactions)?
    /// Set on graceful shutdown: deliveries already received but not started go back to the queue.
    private let stopping = Mutex(false)

    /// - Parameter transactions: how an inbox step's handler runs in its store's transaction; by default the SQLite
    ///   binding when the step is a `SQLiteInboxStep` and the store SQLite (a store's factory gives its own).
    public init(
        processor: any StepProcessor, transport: any MessageTransport, store: any HopRecordStore,
        transactions: (any HopTransactions)? = nil,
        configuration: ProcessorConfiguration = ProcessorConfiguration(), logger: Logger
    ) {
        self.processor = processor
        self.transport = transport
        self.store = store
        self.transactions = transactions ?? SQLiteHopTransactions.bind(processor, store)
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "slip.step"] = "\(processor.step)"
        self.logger = logger
        self.codec = SlipCodec(limits: configuration.limits)
        self.planner = HopPlanner(step: processor.step, configuration: configuration, codec: codec)
        self.claimer = HopClaimer(
            store: store, owner: configuration.instance, lease: configuration.claimLease, logger: logger)
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
            throw ProcessorError(.badStepName, "'\(step)' is not a valid step name (1 to 64 characters of A-Z a-z 0-9 _ -)")
        }
        if let transactions {
            try await transactions.prepare()
        } else if processor is any InboxStep {
            throw ProcessorError(
                .unknownStore,
                "step '\(step)' writes in its hop record's transaction, and has no handler for this store (\(type(of: store))): conform it to the store's inbox protocol (SQLiteInboxStep, PostgresInboxStep)")
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
        try await declare(QueueDeclaration(topology.deadLetterQueue))
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
                // Beside the hops, until they are done: claims renewed, and hop events' batches timed.
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await self.claimer.renewWhileRunning() }
                    if let hopEvents = self.hopEvents {
                        group.addTask { await cancelWhenGracefulShutdown { await hopEvents.run() } }
                    }
                    await withDiscardingTaskGroup { hops in
                        hops.addTask { await self.serve(execute, kind: .execute) }
                        hops.addTask { await self.serve(compensate, kind: .compensate) }
                    }
                    group.cancelAll()
                }
            }
        } onGracefulShutdown: {
            self.stopping.withLock { $0 = true }
            execute.stop()
            compensate.stop()
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
        let arrival = HopPlanner.Arrival(kind: kind, body: delivery.body, headers: delivery.headers)
        let decoded: Slip
        do {
            // Verified before anything reads the body: an unsigned or modified slip is never executed.
            try configuration.signing?.verify(delivery.body, headers: delivery.headers)
            decoded = try codec.decode(delivery.body)
        } catch {
            let plan = try planner.refuse(arrival, error, peek: SlipPeek.read(delivery.body), at: Date())
            return try await park(plan, delivery)
        }
        switch try planner.admit(decoded, arrival, at: Date()) {
        case .park(let plan):
            try await park(plan, delivery)
        case .run(let slip):
            let key = HopKey(slipID: slip.id, sequence: slip.sequence)
            try await claimer.exclusively(key) {
                try await runOnce(slip, key: key, arrival: arrival, delivery: delivery, slot: slot)
            }
        }
    }

    private func runOnce(
        _ slip: Slip, key: HopKey, arrival: HopPlanner.Arrival, delivery: Delivery, slot: HopSlots.Slot
    ) async throws {
        var logger = self.logger
        logger[metadataKey: "slip.id"] = "\(slip.id)"
        logger[metadataKey: "hop.seq"] = "\(slip.sequence)"

        if let record = try await claimer.claimOrRecord(key, logger: logger) {
            if record.forwarded {
                logger.info("duplicate of a hop already done and forwarded: dropped")
            } else {
                logger.info("hop already done but its forward was not confirmed: forwarding the recorded result")
                try await send(planner.replay(record))
                try await store.markForwarded(slipID: slip.id, sequence: slip.sequence)
            }
            return await delivery.ack()
        }

        if delivery.redelivered {
            let count = try await store.noteRedelivery(slipID: slip.id, sequence: slip.sequence, attempt: slip.attempt)
            if let plan = try planner.poison(slip, arrival, redeliveries: count, at: Date()) {
                try await park(plan, delivery)
                return await claimer.release(key)
            }
        }

        var plan: HopPlan
        /// The record committed with an inbox step's writes.
        var committed: HopRecord?
        if let deadlinePassed = try planner.deadlinePassed(slip, kind: arrival.kind, at: Date()) {
            plan = deadlinePassed
        } else if let transactions {
            (plan, committed) = try await runInTransaction(transactions, slip, kind: arrival.kind, logger: logger)
        } else {
            let (result, timing) = await runHandler(slip, kind: arrival.kind, logger: logger)
            plan = try planner.plan(
                slip, kind: arrival.kind, result: result, timing: timing, at: Date(), random: Double.random(in: 0..<1))
        }
        if let notice = plan.notice { logger.log(level: notice.level, notice.message, metadata: notice.metadata) }

        switch plan.disposition {
        case .retry, .park:
            try await send(plan)
            // Acknowledged first, then released: a crash between the two leaves the claim to expire, where the other
            // order could let the original delivery run again beside its retry.
            await delivery.ack()
            await claimer.release(key)
        case .record(let outcome):
            claimer.saving(key)
            let saved: HopRecord
            if let committed {
                saved = committed
            } else {
                saved = try await store.save(
                    HopRecord(
                        slipID: slip.id, sequence: slip.sequence, step: step, kind: arrival.kind, outcome: outcome,
                        outgoing: plan.outgoing))
            }
            Failpoint.reach(.afterCommit)
            // A hop recorded already keeps its first record: what that says is what goes out.
            try await send(saved.outgoing == plan.outgoing ? plan : planner.replay(saved)) { slot.release() }
            try await store.markForwarded(slipID: slip.id, sequence: slip.sequence)
            logger.debug("hop done", metadata: ["hop.outcome": "\(outcome)"])
            await delivery.ack()
        }
    }

    /// Runs the step's handler (execute or compensate) within its timeout, and says what it came to.
    private func runHandler(_ slip: Slip, kind: HopKind, logger: Logger) async -> (HandlerResult, HopTiming) {
        let startedAt = Date()
        let started = ContinuousClock.now
        let timeout = planner.timeout(slip, kind: kind, configuration: configuration)
        let processor = self.processor
        let result: HandlerResult
        do {
            switch call(slip, kind: kind, logger: logger) {
            case .execute(let hop):
                result = .executed(
                    try await withTimeout(timeout, on: transport.taskExecutor) { try await processor.execute(hop) })
            case .compensate(let hop):
                try await withTimeout(timeout, kind: .compensate, on: transport.taskExecutor) {
                    try await processor.compensate(hop)
                }
                result = .compensated
            }
        } catch {
            result = .threw("\(error)")
        }
        return (result, HopTiming(startedAt: startedAt, since: started))
    }

    /// An inbox step's hop: its handler, the plan made of its result and the record in one transaction of the store.
    /// Returns the plan and the record committed (nil when none was: a retry, a park).
    private func runInTransaction(
        _ transactions: any HopTransactions, _ slip: Slip, kind: HopKind, logger: Logger
    ) async throws -> (HopPlan, HopRecord?) {
        let planner = self.planner
        let step = self.step
        let decided = Mutex<HopPlan?>(nil)
        let timeout = planner.timeout(slip, kind: kind, configuration: configuration)
        let result = try await transactions.run(call(slip, kind: kind, logger: logger), timeout: timeout) {
            result, timing in
            let plan = try planner.plan(
                slip, kind: kind, result: result, timing: timing, at: Date(), random: Double.random(in: 0..<1))
            decided.withLock { $0 = plan }
            guard case .record(let outcome) = plan.disposition else { return nil }
            return HopRecord(
                slipID: slip.id, sequence: slip.sequence, step: step, kind: kind, outcome: outcome,
                outgoing: plan.outgoing)
        }
        switch result {
        case .found(let record):
            // Recorded by an earlier delivery while this one waited: its result goes out, the handler did not run.
            return (planner.replay(record), record)
        case .saved(let record):
            return (decided.withLock { $0 }!, record)
        case .notSaved:
            return (decided.withLock { $0 }!, nil)
        }
    }

    /// The handler's view of the hop.
    private func call(_ slip: Slip, kind: HopKind, logger: Logger) -> HandlerCall {
        switch kind {
        case .execute:
            let head = slip.itinerary[0]
            return .execute(
                ExecuteHop(
                    slipID: slip.id, template: slip.template, step: step, arguments: head.arguments,
                    variables: slip.variables, sequence: slip.sequence, attempt: slip.attempt,
                    idempotencyKey: "\(slip.id)/\(step)/\(slip.sequence)", logger: logger))
        case .compensate:
            let record = slip.compensations[slip.compensations.count - 1]
            return .compensate(
                CompensateHop(
                    slipID: slip.id, template: slip.template, step: step, data: record.data,
                    variables: slip.variables, completedSequence: record.sequence, sequence: slip.sequence,
                    attempt: slip.attempt, fault: slip.fault,
                    idempotencyKey: "\(slip.id)/\(step)/undo/\(record.sequence)", logger: logger))
        }
    }

    /// Bad input, not run: to the dead-letter queue with its reason, and an event for the audit trail; never dropped.
    private func park(_ plan: HopPlan, _ delivery: Delivery) async throws {
        if let notice = plan.notice {
            var metadata = notice.metadata
            metadata["amqp.message_id"] = "\(delivery.messageID ?? "-")"
            logger.log(level: notice.level, notice.message, metadata: metadata)
        }
        try await send(plan)
        await delivery.ack()
    }

    /// Publishes what the plan says with confirms, declaring first any queue this instance has not declared yet.
    /// The hop event goes through the batcher, alongside the rest: `forwarded` is called once the rest is confirmed,
    /// and the call returns once the event is too (a hop forwards its slip without waiting for its event's batch, and
    /// is acknowledged after).
    private func send(_ plan: HopPlan, forwarded: () -> Void = {}) async throws {
        for queue in plan.queues { try await declare(queue) }
        guard let hopEvents, let event = plan.hopEvent else {
            try await transport.publish(plan.outgoing)
            return forwarded()
        }
        async let eventConfirmed: Void = hopEvents.publish([event.body])
        do {
            if !plan.messages.isEmpty { try await transport.publish(plan.messages) }
        } catch {
            _ = try? await eventConfirmed  // not acknowledged either way: the message comes back
            throw error
        }
        forwarded()
        try await eventConfirmed
    }

    /// The name is remembered only once the broker has declared the queue: a hop that saw it merely "being declared"
    /// by another hop would publish before the queue exists, and the broker would drop its message.
    private func declare(_ queue: QueueDeclaration) async throws {
        guard await !declaredQueues.contains(queue.name) else { return }
        if let arguments = queue.arguments {
            try await transport.declareQueue(queue.name, arguments: arguments)
        } else {
            try await transport.declareQueue(queue.name)
        }
        await declaredQueues.insert(queue.name)
    }
}

actor DeclaredQueues {
    private var names: Set<String> = []
    func contains(_ name: String) -> Bool { names.contains(name) }
    func insert(_ name: String) { names.insert(name) }
}
