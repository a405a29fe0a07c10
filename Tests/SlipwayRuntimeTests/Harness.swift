import Foundation
import Logging
import Slipway
import SlipwayStores
import SlipwayTesting
import SlipwayTransport

/// Generous: a terminal event normally arrives in milliseconds; the bound only keeps a broken test from hanging.
let patience: Duration = .seconds(10)

/// Quiet unless `SLIPWAY_TEST_LOG` names a level (e.g. `debug`).
func testLogger(_ label: String) -> Logger {
    if let name = ProcessInfo.processInfo.environment["SLIPWAY_TEST_LOG"], let level = Logger.Level(rawValue: name) {
        var logger = Logger(label: label, factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = level
        return logger
    }
    return Logger(label: label, factory: { _ in SwiftLogNoOpLogHandler() })
}

// MARK: - What the test processors did

/// One thing a test processor did, in the order it happened.
enum Effect: Hashable, Sendable, CustomStringConvertible {
    case executed(String, attempt: Int)
    case faulted(String)
    case threw(String, attempt: Int)
    case compensated(String)
    case undoFailed(String, attempt: Int)

    var description: String {
        switch self {
        case .executed(let step, let attempt): "executed \(step) (attempt \(attempt))"
        case .faulted(let step): "faulted \(step)"
        case .threw(let step, let attempt): "threw in \(step) (attempt \(attempt))"
        case .compensated(let step): "compensated \(step)"
        case .undoFailed(let step, let attempt): "undo of \(step) failed (attempt \(attempt))"
        }
    }
}

/// The shared "external world" the test processors act on.
actor EffectsLog {
    private var entries: [(slipID: String, effect: Effect)] = []
    private var seen: [String: [String: [String: JSONValue]]] = [:]

    func append(_ effect: Effect, slipID: String) {
        entries.append((slipID, effect))
    }

    /// What a step saw of the variables when it executed (its last attempt).
    func noteVariables(_ variables: [String: JSONValue], step: String, slipID: String) {
        seen[slipID, default: [:]][step] = variables
    }

    func effects(of slipID: String) -> [Effect] {
        entries.filter { $0.slipID == slipID }.map(\.effect)
    }

    func variablesSeen(by step: String, slipID: String) -> [String: JSONValue]? {
        seen[slipID]?[step]
    }
}

/// Switches a test flips to break or fix the outside world (e.g. the system an undo talks to).
actor Switches {
    private var brokenUndos: Set<String> = []
    func breakUndo(of step: String) { brokenUndos.insert(step) }
    func fixUndo(of step: String) { brokenUndos.remove(step) }
    func isUndoBroken(_ step: String) -> Bool { brokenUndos.contains(step) }
}

struct InjectedFailure: Error, CustomStringConvertible {
    var description: String
}

/// A step of the test saga. Its slip arguments tell it how to misbehave:
/// - `fault: true`: a business fault (no retry);
/// - `throwTimes: n`: throws on attempts 1 to n, then succeeds;
/// - `throwAlways: true`: always throws;
/// - `sleepMs: n` (on attempts up to `sleepTimes`, else always): sleeps first, cancellably (for timeouts);
/// - `terminate: "why"`: ends the slip; `removeSteps: [...]`, `insertNext: [...]`: revises the itinerary.
///
/// On success it appends its name to the `trail` variable and sets `<step>Result`; it returns compensation data when
/// `hasUndo`. Its undo throws while the switchboard says the undo of this step is broken.
struct TestStep: StepProcessor {
    let step: String
    let hasUndo: Bool
    let effects: EffectsLog
    let switches: Switches

    func execute(_ hop: ExecuteHop) async throws -> ExecuteOutcome {
        if let times = hop.arguments["throwTimes"]?.intValue, hop.attempt <= times {
            await effects.append(.threw(step, attempt: hop.attempt), slipID: hop.slipID)
            throw InjectedFailure(description: "\(step) told to throw on attempt \(hop.attempt)")
        }
        if hop.arguments["throwAlways"]?.boolValue == true {
            await effects.append(.threw(step, attempt: hop.attempt), slipID: hop.slipID)
            throw InjectedFailure(description: "\(step) told to always throw")
        }
        if hop.arguments["fault"]?.boolValue == true {
            await effects.append(.faulted(step), slipID: hop.slipID)
            return .faulted(reason: "\(step) told to fault")
        }
        if let sleep = hop.arguments["sleepMs"]?.intValue, hop.attempt <= (hop.arguments["sleepTimes"]?.intValue ?? .max) {
            try await Task.sleep(for: .milliseconds(sleep))  // Cancellable: a timeout ends it.
        }
        if let reason = hop.arguments["terminate"]?.stringValue {
            await effects.append(.executed(step, attempt: hop.attempt), slipID: hop.slipID)
            return .terminated(reason: reason)
        }
        await effects.noteVariables(hop.variables, step: step, slipID: hop.slipID)
        await effects.append(.executed(step, attempt: hop.attempt), slipID: hop.slipID)
        var trail: [JSONValue] = []
        if case .array(let items)? = hop.variables["trail"] { trail = items }
        trail.append(.string(step))
        var revision: ItineraryRevision?
        if case .array(let names)? = hop.arguments["removeSteps"] { revision = .remove(names.compactMap(\.stringValue)) }
        if case .array(let names)? = hop.arguments["insertNext"] {
            revision = .insertNext(names.compactMap(\.stringValue).map { ItineraryStep(step: $0) })
        }
        return .completed(
            variables: ["trail": .array(trail), "\(step)Result": .string("done-\(step)")],
            compensation: hasUndo ? ["undo": .string(step), "key": .string(hop.idempotencyKey)] : nil,
            revise: revision)
    }

    func compensate(_ hop: CompensateHop) async throws {
        guard hasUndo else { throw InjectedFailure(description: "\(step) has no undo") }
        if await switches.isUndoBroken(step) {
            await effects.append(.undoFailed(step, attempt: hop.attempt), slipID: hop.slipID)
            throw InjectedFailure(description: "the undo of \(step) is broken")
        }
        await effects.append(.compensated(step), slipID: hop.slipID)
    }
}

// MARK: - Running processors

/// A broker, and the processors of the test saga over it, each its own "process" (its own transport and store).
///
/// Steps a, b and c leave compensation data; d does not.
final class Saga: Sendable {
    static let steps = ["a", "b", "c", "d"]
    static let stepsWithUndo: Set<String> = ["a", "b", "c"]

    let broker = InMemoryBroker()
    let effects = EffectsLog()
    let switches = Switches()
    let topology = Topology()
    let configuration: ProcessorConfiguration
    private let processors = ProcessorList()

    init(configure: (inout ProcessorConfiguration) -> Void = { _ in }) {
        var configuration = ProcessorConfiguration()
        configuration.prefetch = 8
        configuration.concurrency = 4
        // Short waits between tries: the tests of backoff itself give their slips policies of their own.
        configuration.retry = RetryPolicy(maxAttempts: 3, initialDelayMs: 10, multiplier: 2, maxDelayMs: 100, jitter: 0)
        configuration.compensationRetry = RetryPolicy(maxAttempts: 3, initialDelayMs: 10, multiplier: 2, maxDelayMs: 100, jitter: 0)
        configure(&configuration)
        self.configuration = configuration
    }

    /// Starts one processor per step, except those in `skipping`.
    func startAll(skipping: Set<String> = []) async {
        for step in Self.steps where !skipping.contains(step) { _ = await start(step) }
    }

    /// Starts a processor for `step`: a new process with a new connection, and the given store (a new one if nil).
    ///
    /// `wrap` lets a test put its own transport between the runtime and its connection.
    @discardableResult
    func start(
        _ step: String, store: (any HopRecordStore)? = nil, instance: String? = nil,
        wrap: (InMemoryTransport) -> any MessageTransport = { $0 }
    ) async -> RunningProcessor {
        var configuration = self.configuration
        configuration.instance = instance ?? "test-\(step)"
        let running = RunningProcessor(
            TestStep(step: step, hasUndo: Self.stepsWithUndo.contains(step), effects: effects, switches: switches),
            broker: broker, store: store ?? InMemoryHopRecordStore(), configuration: configuration,
            logger: testLogger("slipway.test.\(step)"), wrap: wrap)
        await processors.add(running)
        return running
    }

    /// A producer's connection.
    func producer() -> InMemoryTransport { InMemoryTransport(broker: broker) }

    func sender() -> SlipSender { SlipSender(transport: producer(), topology: topology) }

    /// A slip through the given steps; `arguments` are per step.
    func slip(_ steps: [String] = Saga.steps, arguments: [String: [String: JSONValue]] = [:]) -> Slip {
        Slip(
            template: "test-saga",
            itinerary: steps.map { ItineraryStep(step: $0, arguments: arguments[$0] ?? [:]) },
            variables: ["orderId": "order-1"])
    }

    func stopAll() async throws {
        for processor in await processors.all { try await processor.stop() }
    }

    private actor ProcessorList {
        var all: [RunningProcessor] = []
        func add(_ processor: RunningProcessor) { all.append(processor) }
    }
}

/// Runs `body` with a started saga and stops every processor afterwards, also when `body` throws.
func withSaga(
    configure: (inout ProcessorConfiguration) -> Void = { _ in }, skipping: Set<String> = [],
    _ body: (Saga) async throws -> Void
) async throws {
    let saga = Saga(configure: configure)
    await saga.startAll(skipping: skipping)
    do {
        try await body(saga)
    } catch {
        try? await saga.stopAll()
        throw error
    }
    try await saga.stopAll()
    let violations = await saga.broker.protocolViolations
    if !violations.isEmpty { throw InjectedFailure(description: "broker protocol violations: \(violations)") }
}

// MARK: - Crashing at a chosen point

/// Where `CrashingStore` kills its processor's connection.
enum CrashPoint: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The hop record is committed; nothing is published yet.
    case afterSave
    /// The hop's messages are published and confirmed, the record marked forwarded; the input is not acked yet.
    case afterMarkForwarded

    var description: String { rawValue }
}

/// A hop record store that, the first time it records a hop of `step`, lets the write reach the real store and then
/// kills the connection of the process using it, as if the process had been killed right after that line.
actor CrashingStore: HopRecordStore {
    let inner: InMemoryHopRecordStore
    let point: CrashPoint
    private var transport: InMemoryTransport?
    private var crashed = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(inner: InMemoryHopRecordStore, point: CrashPoint) {
        self.inner = inner
        self.point = point
    }

    func attach(_ transport: InMemoryTransport) { self.transport = transport }

    func record(slipID: String, sequence: Int) async throws -> HopRecord? {
        await inner.record(slipID: slipID, sequence: sequence)
    }

    @discardableResult
    func save(_ record: HopRecord) async throws -> HopRecord {
        let saved = await inner.save(record)
        if point == .afterSave { await crash() }
        return saved
    }

    func markForwarded(slipID: String, sequence: Int) async throws {
        await inner.markForwarded(slipID: slipID, sequence: sequence)
        if point == .afterMarkForwarded { await crash() }
    }

    func noteRedelivery(slipID: String, sequence: Int, attempt: Int) async throws -> Int {
        await inner.noteRedelivery(slipID: slipID, sequence: sequence, attempt: attempt)
    }

    func claim(slipID: String, sequence: Int, owner: String, lease: Duration) async throws -> HopClaimResult {
        await inner.claim(slipID: slipID, sequence: sequence, owner: owner, lease: lease)
    }

    func renewClaim(slipID: String, sequence: Int, owner: String, lease: Duration) async throws -> Bool {
        await inner.renewClaim(slipID: slipID, sequence: sequence, owner: owner, lease: lease)
    }

    func releaseClaim(slipID: String, sequence: Int, owner: String) async throws {
        await inner.releaseClaim(slipID: slipID, sequence: sequence, owner: owner)
    }

    private func crash() async {
        guard !crashed, let transport else { return }
        crashed = true
        await transport.crash()
        for waiter in waiters { waiter.resume() }
        waiters = []
    }

    /// Returns once the crash happened; false if it did not within `patience`.
    func waitForCrash() async -> Bool {
        if !crashed {
            let timeout = Task {
                try await Task.sleep(for: patience)
                self.giveUpWaiting()
            }
            await withCheckedContinuation { waiters.append($0) }
            timeout.cancel()
        }
        return crashed
    }

    private func giveUpWaiting() {
        for waiter in waiters { waiter.resume() }
        waiters = []
    }
}

// MARK: - Holding a declaration back

/// A transport that holds back the declaration of one queue until either a second declaration of it arrives or a
/// message for it has been published (and so reached the broker before the queue exists).
final class DeclarationGateTransport: MessageTransport {
    let inner: InMemoryTransport
    let gate: Gate

    init(_ inner: InMemoryTransport, queue: String) {
        self.inner = inner
        self.gate = Gate(queue: queue)
    }

    actor Gate {
        let queue: String
        private var declarations = 0
        private var open = false
        private var waiters: [CheckedContinuation<Void, Never>] = []
        /// Messages for the queue that were published while its declaration was held back.
        private(set) var publishedEarly = 0

        init(queue: String) { self.queue = queue }

        func declaring(_ name: String) async {
            guard name == queue, !open else { return }
            declarations += 1
            if declarations >= 2 { return openGate() }
            await withCheckedContinuation { waiters.append($0) }
        }

        func published(_ messages: [OutgoingMessage]) {
            guard !open else { return }
            let early = messages.count { $0.exchange.isEmpty && $0.routingKey == queue }
            guard early > 0 else { return }
            publishedEarly += early
            openGate()
        }

        private func openGate() {
            open = true
            for waiter in waiters { waiter.resume() }
            waiters = []
        }
    }

    func declareQueue(_ name: String) async throws {
        await gate.declaring(name)
        try await inner.declareQueue(name)
    }

    func declareQueue(_ name: String, arguments: QueueArguments) async throws {
        try await inner.declareQueue(name, arguments: arguments)
    }

    func declareTopicExchange(_ name: String) async throws { try await inner.declareTopicExchange(name) }

    func bindQueue(_ queue: String, exchange: String, bindingKey: String) async throws {
        try await inner.bindQueue(queue, exchange: exchange, bindingKey: bindingKey)
    }

    func publish(_ messages: [OutgoingMessage]) async throws {
        try await inner.publish(messages)
        await gate.published(messages)
    }

    func consume(queue: String, prefetch: Int) async throws -> DeliveryStream {
        try await inner.consume(queue: queue, prefetch: prefetch)
    }

    func subscribe(exchange: String, bindingKeys: [String]) async throws -> DeliveryStream {
        try await inner.subscribe(exchange: exchange, bindingKeys: bindingKeys)
    }

    func shutdown() async { await inner.shutdown() }
}

// MARK: - Helpers

extension SlipEventFollower {
    /// The next event, or a failure that says what did not come.
    func expectNext(_ what: String) async throws -> SlipEvent {
        guard let event = await next(timeout: patience) else {
            throw InjectedFailure(description: "no \(what) within \(patience)")
        }
        return event
    }
}

func decodeSlip(_ body: [UInt8]) throws -> Slip {
    try SlipCodec().decode(body)
}
