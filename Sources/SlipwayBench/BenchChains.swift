import Foundation
import Logging
import Slipway
import SlipwayAMQP
import SlipwayProcesses

/// What the benchmark needs to run a chain of K hops: where its executables are, and how processes are tuned.
struct BenchSetup: Sendable {
    var amqpURL: String
    var binDirectory: String
    var stateDirectory: String
    var prefetch: Int
    var concurrency: Int
    var auditSink: Bool
    /// The framework's chains to measure, each after the other against the same broker.
    var variants: [BenchVariant]
}

/// One configuration of the framework's chain: where its processors keep the hop record, and the type of the queues
/// it declares.
struct BenchVariant: Sendable, Hashable {
    enum Store: Sendable, Hashable {
        /// A SQLite file per processor in the run's state directory.
        case sqlite
        /// The same, with the probes as inbox steps (`probe-step --inbox`): each hop also writes a row of the step's
        /// own in its record's transaction.
        case sqliteInbox
        /// The same as `sqlite`, the probes writing that row to an "external" SQLite ledger of their own with the
        /// hop's idempotency key (`probe-step --keyed-ledger`), in a transaction of their own: the inbox's yardstick.
        case sqliteKeyed
        /// The record every processor shares in one PostgreSQL database.
        case postgres(url: String)
    }

    var store: Store
    var queueType: QueueType

    /// `sqlite` or `postgres`, as the report names it.
    var storeName: String {
        switch store {
        case .sqlite: "sqlite"
        case .sqliteInbox: "sqlite-inbox"
        case .sqliteKeyed: "sqlite-keyed"
        case .postgres: "postgres"
        }
    }

    var label: String { "\(storeName) store, \(queueType.rawValue) queues" }

    /// What the probes are given beside their step: how they write their effect, if they write one.
    func probeArguments(stateDirectory: String) -> [String] {
        switch store {
        case .sqliteInbox: ["--inbox"]
        case .sqliteKeyed: ["--keyed-ledger", "\(stateDirectory)/ledger.sqlite"]
        case .sqlite, .postgres: []
        }
    }

    /// `sqlite`, or a `postgres://` / `postgresql://` URL.
    init(store text: String, queueType: QueueType) throws {
        let lowered = text.lowercased()
        if lowered == "sqlite" {
            store = .sqlite
        } else if lowered == "sqlite-inbox" {
            store = .sqliteInbox
        } else if lowered == "sqlite-keyed" {
            store = .sqliteKeyed
        } else if lowered.hasPrefix("postgres://") || lowered.hasPrefix("postgresql://") {
            store = .postgres(url: text)
        } else {
            throw BenchError("--store takes sqlite, sqlite-inbox, sqlite-keyed or a postgres:// URL, got '\(text.prefix { $0 != ":" })...'")
        }
        self.queueType = queueType
    }

    /// The store for the log: a PostgreSQL URL without its user and password.
    var storeDescription: String {
        switch store {
        case .sqlite: return "SQLite files in the state directory"
        case .sqliteInbox: return "SQLite files in the state directory, probes writing a row each hop through the inbox"
        case .sqliteKeyed: return "SQLite files in the state directory, probes writing a row each hop to a ledger of their own with the hop's key"
        case .postgres(let url):
            let components = URLComponents(string: url)
            let host = components?.host ?? "?"
            let port = components?.port.map { ":\($0)" } ?? ""
            return "PostgreSQL at \(host)\(port)\(components?.path ?? "")"
        }
    }
}

/// The benchmark's own connections: warnings and errors only, so that which node of a cluster each connects to does
/// not interleave with the table.
func benchTransport(_ configuration: AMQPConfiguration) -> AMQPTransport {
    var logger = Logger(label: "slipway.amqp")
    logger.logLevel = .warning
    return AMQPTransport(configuration: configuration, logger: logger)
}

/// One chain of K hops under test, the framework's or the bare forwarders'. Messages go in with `inject`; what comes
/// out of the last hop goes to the book `arrivals` holds at that moment.
protocol BenchChain: Sendable {
    var label: String { get }
    var hops: Int { get }
    /// The hop record's store (`sqlite`, `postgres`); nil for the bare forwarders, which keep none.
    var store: String? { get }
    /// The type of the chain's queues.
    var queueType: QueueType { get }
    var arrivals: ArrivalRouter { get }
    /// The processes that do the chain's hops (not the audit sink), for their CPU and memory.
    var workers: [ChildProcess] { get }
    /// The audit sink, when one runs.
    var sink: ChildProcess? { get }
    func inject(_ ids: [String]) async throws
    func stop() async
}

/// K probe-step processors (`s1` ... `sK`), each its own process with its own hop record (a SQLite file), or all with
/// one record in PostgreSQL, and the audit sink: the framework as a real deployment runs it. Ends are the slips'
/// terminal events. Every chain has queues of its own (a fresh prefix) and new slip ids, so in a shared PostgreSQL
/// record its rows never meet an earlier chain's.
final class SlipChain: BenchChain {
    let label: String
    let hops: Int
    let store: String?
    let queueType: QueueType
    let arrivals = ArrivalRouter()
    let workers: [ChildProcess]
    let sink: ChildProcess?
    private let sender: SlipSender
    private let follower: SlipEventFollower
    private let transport: AMQPTransport
    private let steps: [String]
    private let listener: Task<Void, Never>

    init(hops: Int, setup: BenchSetup, variant: BenchVariant) async throws {
        self.hops = hops
        label = "slipway chain-\(hops)"
        store = variant.storeName
        queueType = variant.queueType
        let prefix = "bench\(hops)-\(UUID().uuidString.prefix(8).lowercased())"
        let topology = Topology(prefix: prefix)
        var amqp = try AMQPConfiguration(url: setup.amqpURL)
        amqp.queueType = variant.queueType
        transport = benchTransport(amqp)
        steps = (1...hops).map { "s\($0)" }
        // Declared before any process starts, so nothing sent early is dropped: the steps' queues, and the audit
        // queue with its binding (what the sink declares too).
        try await transport.declareTopicExchange(topology.eventsExchange)
        for step in steps { try await transport.declareQueue(topology.executeQueue(step: step)) }
        if setup.auditSink { try await transport.declareAuditQueue(topology) }
        follower = try await SlipEventFollower.terminalEvents(of: [], transport: transport, topology: topology)
        // With signing keys in the environment, the benchmark signs what it sends and the processors sign and verify.
        sender = SlipSender(transport: transport, topology: topology, signing: try SigningKeys.fromEnvironment())

        let directory = "\(setup.stateDirectory)/\(prefix)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var environment = [
            "SLIPWAY_AMQP_URL": setup.amqpURL, "SLIPWAY_QUEUE_PREFIX": prefix, "SLIPWAY_LOG_LEVEL": "warning",
            "SLIPWAY_PREFETCH": String(setup.prefetch), "SLIPWAY_CONCURRENCY": String(setup.concurrency),
            "SLIPWAY_QUEUE_TYPE": variant.queueType.rawValue,
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
        ]
        if case .postgres(let url) = variant.store { environment["SLIPWAY_STORE_URL"] = url }
        // What the benchmark is run with goes to its processors: signing keys, hop event batching on or off, the
        // processors' threads.
        for (name, value) in ProcessInfo.processInfo.environment
        where name.hasPrefix("SLIPWAY_SIGNING_KEYS") || name == "SLIPWAY_BATCH_HOP_EVENTS" || name == "SLIPWAY_HOP_EVENT_LINGER_MS"
            || name == "SLIPWAY_IO" || name == "MALLOC_ARENA_MAX"
        {
            environment[name] = value
        }
        // Without the sink, no audit queue either (processors declare it by default): the events then go to an
        // exchange with no queue bound, as they would in a deployment that keeps no audit trail.
        if !setup.auditSink { environment["SLIPWAY_AUDIT_QUEUE"] = "off" }
        var workers: [ChildProcess] = []
        for step in steps {
            var stepEnvironment = environment
            stepEnvironment["SLIPWAY_STATE_DIR"] = "\(directory)/\(step)"
            workers.append(
                try ChildProcess.spawn(
                    "\(setup.binDirectory)/probe-step",
                    arguments: ["--step", step] + variant.probeArguments(stateDirectory: "\(directory)/\(step)"),
                    environment: stepEnvironment,
                    output: .truncate("\(directory)/\(step).log")))
        }
        self.workers = workers
        sink =
            setup.auditSink
            ? try ChildProcess.spawn(
                "\(setup.binDirectory)/slip",
                arguments: ["audit-sink", "--db", "\(directory)/audit.sqlite", "--log-level", "warning"],
                environment: environment, output: .truncate("\(directory)/audit-sink.log"))
            : nil

        let follower = self.follower
        let arrivals = self.arrivals
        listener = Task {
            while !Task.isCancelled {
                guard let event = await follower.next(timeout: .seconds(1)) else { continue }
                arrivals.arrive(event.slipID, ok: event.state == .completed)
            }
        }
    }

    func slip(_ id: String) -> Slip {
        Slip(id: id, template: "bench-chain-\(hops)", itinerary: steps.map { ItineraryStep(step: $0) })
    }

    func inject(_ ids: [String]) async throws {
        try await sender.send(ids.map(slip))
    }

    func stop() async {
        listener.cancel()
        follower.stop()
        let processes = workers + [sink].compactMap { $0 }
        for process in processes { await process.stop(grace: .seconds(15)) }
        await transport.shutdown()
    }
}

/// K bare forwarders over the same AMQP layer: queue 1 to queue 2 ... to a done queue the benchmark consumes. The
/// message is the bytes of the slip the framework would send, so both chains move the same sizes. Its queues are
/// classic whatever --queue-type says (bench-forwarder declares classic queues), also on a cluster.
final class ForwarderChain: BenchChain {
    let label: String
    let hops: Int
    let store: String? = nil
    let queueType = QueueType.classic
    let arrivals = ArrivalRouter()
    let workers: [ChildProcess]
    let sink: ChildProcess? = nil
    private let transport: AMQPTransport
    private let firstQueue: String
    private let body: [UInt8]
    private let done: DeliveryStream
    private let listener: Task<Void, Never>

    init(hops: Int, setup: BenchSetup) async throws {
        self.hops = hops
        label = "bare forwarder chain-\(hops)"
        let prefix = "benchfwd\(hops)-\(UUID().uuidString.prefix(8).lowercased())"
        let queues = (1...hops).map { "\(prefix).\($0)" } + ["\(prefix).done"]
        transport = benchTransport(try AMQPConfiguration(url: setup.amqpURL))
        for queue in queues { try await transport.declareQueue(queue) }
        firstQueue = queues[0]
        body = try SlipCodec().encode(
            Slip(template: "bench-chain-\(hops)", itinerary: (1...hops).map { ItineraryStep(step: "s\($0)") }))

        let directory = "\(setup.stateDirectory)/\(prefix)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let environment = [
            "SLIPWAY_AMQP_URL": setup.amqpURL,
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
        ]
        workers = try (0..<hops).map { index in
            try ChildProcess.spawn(
                "\(setup.binDirectory)/bench-forwarder",
                arguments: [
                    "--in", queues[index], "--out", queues[index + 1], "--prefetch", String(setup.prefetch),
                    "--concurrency", String(setup.concurrency),
                ],
                environment: environment, output: .truncate("\(directory)/forwarder-\(index + 1).log"))
        }

        done = try await transport.consume(queue: queues[hops], prefetch: 1_000)
        let done = self.done
        let arrivals = self.arrivals
        listener = Task {
            do {
                for try await delivery in done {
                    arrivals.arrive(delivery.messageID ?? "", ok: true)
                    await delivery.ack()
                }
            } catch {}
        }
    }

    func inject(_ ids: [String]) async throws {
        try await transport.publish(ids.map { .toQueue(firstQueue, body: body, messageID: $0) })
    }

    func stop() async {
        done.stop()
        listener.cancel()
        let processes = workers
        for process in processes { await process.stop(grace: .seconds(15)) }
        await transport.shutdown()
    }
}
