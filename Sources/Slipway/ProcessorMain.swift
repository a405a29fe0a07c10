import Foundation
import Logging
import ServiceLifecycle
import SlipwayAMQP
import SlipwayCore
import SlipwayStores
import SlipwayTransport

/// The main of a processor executable: reads its options, bootstraps logging (`--log-level`), connects, and serves
/// the step until SIGTERM or SIGINT, then finishes the hops in flight and exits: 0 after a graceful stop, 2 for a
/// bad option, 1 when the processor stops on an error. `main.swift` is one line:
///
/// ```swift
/// await ProcessorMain.run(ChargeCard())
/// ```
///
/// An application that runs the processor beside services of its own (an HTTP endpoint, a metrics exporter), or
/// bootstraps logging its own way, calls `runProcessor(_:configuration:stores:services:arguments:)` instead.
///
/// Options (each also read from the environment):
/// - `--amqp-url URL` (`SLIPWAY_AMQP_URL`, or a file holding it: `SLIPWAY_AMQP_URL_FILE`; default
///   `amqp://guest:guest@127.0.0.1:5672/`; `amqps://` for TLS, see docs/security.md); for a cluster, its nodes' URLs
///   separated by commas (also as `SLIPWAY_AMQP_URLS`, `SLIPWAY_AMQP_URLS_FILE`; docs/deploy.md)
/// - `--queue-type classic|quorum` (`SLIPWAY_QUEUE_TYPE`, default classic): quorum for a cluster
/// - `--state-dir DIR` (`SLIPWAY_STATE_DIR`, default `.slipway/state`): where the hop record lives
/// - `--store URL` (`SLIPWAY_STORE_URL`, or a file holding it: `SLIPWAY_STORE_URL_FILE`): a hop record elsewhere than
///   the SQLite file in the state directory, opened by the first of `stores` that claims the URL's scheme (the
///   PostgreSQL record shared by several instances: `postgres://...` with SlipwayPostgres's factory; docs/deploy.md)
/// - `--hop-record-days N` (`SLIPWAY_HOP_RECORD_DAYS`, default 7; 0 keeps records for ever): how long a hop is
///   remembered against redeliveries
/// - `--prefetch N` (`SLIPWAY_PREFETCH`), `--concurrency N` (`SLIPWAY_CONCURRENCY`), `--max-attempts N`
/// - `--timeout-ms N` (`SLIPWAY_TIMEOUT_MS`), `--compensate-timeout-ms N` (`SLIPWAY_COMPENSATE_TIMEOUT_MS`): how long an
///   execute or a compensation may run, unless the slip's itinerary says (default: no limit)
/// - `--log-level LEVEL` (`SLIPWAY_LOG_LEVEL`, default `info`)
/// - `SLIPWAY_BATCH_HOP_EVENTS=false`: one message per hop event, routed by slip (default: batched)
/// - `SLIPWAY_HOP_EVENT_LINGER_MS`: how long a batch of hop events waits for more (default 20)
/// - `SLIPWAY_CLAIM_LEASE_MS`: how long a hop's claim lasts unless renewed (default 30000)
/// - `SLIPWAY_AUDIT_QUEUE=off`: do not declare the audit queue (a deployment that keeps no audit trail; default on)
/// - `--queue-prefix P` (`SLIPWAY_QUEUE_PREFIX`, default `slipway`): lets deployments share a virtual host
/// - `--io loop|threads` (`SLIPWAY_IO`, default `loop`): one thread for the connections and the hops, or a thread per
///   connection with the hops on Swift's default pool (for steps that block their thread)
public enum ProcessorMain {
    public static func run(
        _ processor: some StepProcessor, configuration: ProcessorConfiguration = ProcessorConfiguration(),
        stores: [HopRecordStoreFactory] = [.sqlite], services: [any Service] = [],
        arguments: [String] = Array(CommandLine.arguments.dropFirst())
    ) async -> Never {
        let options: ProcessorOptions
        do {
            options = try ProcessorOptions(arguments: arguments, environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(
                Data("\(processor.step): \(error)\n\n\(ProcessorOptions.usage(processor.step))\n".utf8))
            exit(2)
        }
        if options.help {
            print(ProcessorOptions.usage(processor.step))
            exit(0)
        }
        let level = options.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        do {
            try await runProcessor(processor, configuration: configuration, stores: stores, services: services, options: options)
            exit(0)
        } catch let error as ProcessorSetupError {
            FileHandle.standardError.write(Data("\(processor.step): \(error.message)\n".utf8))
            exit(2)
        } catch {
            Logger(label: "slipway.processor").critical("processor stopped", metadata: ["error": "\(error)"])
            exit(1)
        }
    }
}

/// Runs a processor and `services` (the application's own) in one `ServiceGroup` until SIGTERM or SIGINT; returns
/// once every hop in flight has finished and the services have stopped. Throws for a bad option (the message names
/// it) and when the processor or a service stops on an error. Neither bootstraps logging (`--log-level` is for
/// `ProcessorMain.run`) nor exits.
///
/// `arguments` and the environment give the options `ProcessorMain.run` lists; `--help` prints them and returns.
public func runProcessor(
    _ processor: some StepProcessor, configuration: ProcessorConfiguration = ProcessorConfiguration(),
    stores: [HopRecordStoreFactory] = [.sqlite], services: [any Service] = [],
    arguments: [String] = Array(CommandLine.arguments.dropFirst())
) async throws {
    let options: ProcessorOptions
    do {
        options = try ProcessorOptions(arguments: arguments, environment: ProcessInfo.processInfo.environment)
    } catch {
        throw ProcessorError("\(error)\n\n\(ProcessorOptions.usage(processor.step))")
    }
    if options.help {
        print(ProcessorOptions.usage(processor.step))
        return
    }
    try await runProcessor(processor, configuration: configuration, stores: stores, services: services, options: options)
}

/// A setting the processor cannot start with (signing keys, limits): exit 2, as for a bad option.
struct ProcessorSetupError: Error {
    var message: String
}

func runProcessor(
    _ processor: some StepProcessor, configuration: ProcessorConfiguration, stores: [HopRecordStoreFactory],
    services: [any Service], options: ProcessorOptions
) async throws {
    let logger = Logger(label: "slipway.processor")
    var configuration = configuration
    options.apply(to: &configuration)
    do {
        configuration.signing = try SigningKeys.fromEnvironment() ?? configuration.signing
        configuration.limits = try SlipLimits.fromEnvironment(ProcessInfo.processInfo.environment)
    } catch {
        throw ProcessorSetupError(message: "\(error)")
    }
    if let signing = configuration.signing {
        logger.info("slips are signed and verified", metadata: ["signing.keys": "\(signing.keys.map(\.id))"])
    } else {
        logger.notice("slip signing is off: unsigned slips are accepted (set SLIPWAY_SIGNING_KEYS to sign and verify)")
    }
    var amqp = try AMQPConfiguration(url: options.amqpURL)
    amqp.queueType = configuration.queueType
    let loop = options.io == .loop ? AMQPLoop(name: "slipway-loop", logger: logger) : nil
    let transport = AMQPTransport(configuration: amqp, logger: logger, loop: loop)
    let storeURL = options.storeURL ?? URL(fileURLWithPath: options.stateDirectory)
        .appendingPathComponent("\(processor.step).hops.sqlite").path
    let factory = try HopRecordStoreFactory.choose(for: options.storeURL, among: stores)
    let opened = try await factory.open(
        HopRecordStoreFactory.Request(
            url: storeURL, step: processor.step, keepFor: options.hopRecordRetention, taskExecutor: loop,
            logger: logger))
    logger.info(
        "starting",
        metadata: [
            "slip.step": "\(processor.step)", "amqp.url": "\(amqp.redactedURL)", "store": "\(opened.description)",
            "amqp.queue_type": "\(amqp.queueType.rawValue)",
            "processor.instance": "\(configuration.instance)", "processor.io": "\(options.io.rawValue)",
            "store.keep_days": "\(options.hopRecordDays == 0 ? "for ever" : "\(options.hopRecordDays)")",
        ])
    let runtime = ProcessorRuntime(
        processor: processor, transport: transport, store: opened.store, configuration: configuration, logger: logger)
    let group = ServiceGroup(
        configuration: .init(
            services: [runtime] + services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    do {
        try await group.run()
    } catch {
        await transport.shutdown()
        await opened.close()
        throw error
    }
    await transport.shutdown()
    await opened.close()
}

/// Opens a processor's hop record for the URL schemes it claims. A processor passes the factories it was built with to
/// `ProcessorMain.run` or `runProcessor(_:configuration:stores:services:arguments:)`: `.sqlite` (the default), and, from SlipwayPostgres, `.postgres`, so that only
/// the processors that want PostgreSQL link its client.
public struct HopRecordStoreFactory: Sendable {
    public struct Request: Sendable {
        /// The `--store` URL, or the SQLite file's path in the state directory when none was given.
        public var url: String
        public var step: String
        /// How long a record is kept; nil keeps every record.
        public var keepFor: Duration?
        /// The processor's loop, where a store may run its batches.
        public var taskExecutor: (any TaskExecutor)?
        public var logger: Logger

        public init(url: String, step: String, keepFor: Duration?, taskExecutor: (any TaskExecutor)?, logger: Logger) {
            self.url = url
            self.step = step
            self.keepFor = keepFor
            self.taskExecutor = taskExecutor
            self.logger = logger
        }
    }

    public struct Opened: Sendable {
        public var store: any HopRecordStore
        /// Where the record is, for logs: never a password.
        public var description: String
        /// Called once the processor has stopped.
        public var close: @Sendable () async -> Void

        public init(store: any HopRecordStore, description: String, close: @escaping @Sendable () async -> Void = {}) {
            self.store = store
            self.description = description
            self.close = close
        }
    }

    /// Lower-case URL schemes this factory opens (`postgres`, `postgresql`).
    public var schemes: [String]
    public var open: @Sendable (Request) async throws -> Opened

    public init(schemes: [String], open: @escaping @Sendable (Request) async throws -> Opened) {
        self.schemes = schemes.map { $0.lowercased() }
        self.open = open
    }

    /// The SQLite file: the default, in the state directory; `--store sqlite:PATH` names a file.
    public static let sqlite = HopRecordStoreFactory(schemes: ["sqlite"]) { request in
        var path = request.url
        if path.lowercased().hasPrefix("sqlite://") {
            path = String(path.dropFirst("sqlite://".count))
        } else if path.lowercased().hasPrefix("sqlite:") {
            path = String(path.dropFirst("sqlite:".count))
        }
        guard !path.isEmpty else { throw ProcessorError("--store sqlite:PATH names no file") }
        let store = try SQLiteHopRecordStore(path: path, keepFor: request.keepFor, taskExecutor: request.taskExecutor)
        return Opened(store: store, description: "sqlite:\(path)")
    }

    /// The factory for `url`: SQLite when there is none, else the first that claims its scheme.
    static func choose(for url: String?, among factories: [HopRecordStoreFactory]) throws -> HopRecordStoreFactory {
        guard let url else { return .sqlite }
        guard let colon = url.firstIndex(of: ":"), colon != url.startIndex else {
            throw ProcessorError("--store must be a URL such as postgres://HOST/DATABASE or sqlite:PATH")
        }
        let scheme = url[..<colon].lowercased()
        if let factory = factories.first(where: { $0.schemes.contains(scheme) }) { return factory }
        let known = Set(factories.flatMap(\.schemes)).sorted().joined(separator: ", ")
        // Only the scheme: the rest of the URL may hold a password.
        throw ProcessorError("--store: this processor has no '\(scheme)' store (it was built with: \(known))")
    }
}

/// The `--store` URL from the environment: `SLIPWAY_STORE_URL`, or the file `SLIPWAY_STORE_URL_FILE` names (a mounted
/// secret, trailing newline trimmed). Errors name the file, never what is in it.
func storeURLFromEnvironment(_ environment: [String: String]) throws -> String? {
    let url = environment["SLIPWAY_STORE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    let file = environment["SLIPWAY_STORE_URL_FILE"].flatMap { $0.isEmpty ? nil : $0 }
    if url != nil && file != nil {
        throw ProcessorError("both SLIPWAY_STORE_URL and SLIPWAY_STORE_URL_FILE are set: unset one")
    }
    guard let file else { return url }
    guard let data = FileManager.default.contents(atPath: file) else {
        throw ProcessorError("SLIPWAY_STORE_URL_FILE: cannot read '\(file)'")
    }
    var text = String(decoding: data, as: UTF8.self)
    while let last = text.last, last.isNewline || last == " " { text.removeLast() }
    guard !text.isEmpty, !text.contains(where: \.isNewline) else {
        throw ProcessorError("SLIPWAY_STORE_URL_FILE: '\(file)' must hold one line, the store URL")
    }
    return text
}

struct ProcessorOptions {
    /// How a processor's connections and hops share threads.
    enum IO: String {
        /// One thread reads and writes every connection and runs the hops (`AMQPLoop`).
        case loop
        /// A thread per connection; hops on Swift's default pool. For steps that block their thread.
        case threads
    }

    var amqpURL = AMQPConfiguration.defaultURL
    var stateDirectory = ".slipway/state"
    /// `--store`: nil for the SQLite file in the state directory.
    var storeURL: String?
    /// Days a hop's record is kept; 0 keeps every record.
    var hopRecordDays = 7
    var prefetch: Int?
    var concurrency: Int?
    var maxAttempts: Int?
    var timeoutMs: Int?
    var compensateTimeoutMs: Int?
    var logLevel = Logger.Level.info
    var queuePrefix: String?
    var batchHopEvents: Bool?
    var declaresAuditQueue: Bool?
    var hopEventLingerMs: Int?
    var io = IO.loop
    var queueType: QueueType?
    var claimLeaseMs: Int?
    var help = false

    init(arguments: [String], environment: [String: String]) throws {
        amqpURL = try AMQPConfiguration.url(fromEnvironment: environment) ?? amqpURL
        stateDirectory = environment["SLIPWAY_STATE_DIR"] ?? stateDirectory
        storeURL = try storeURLFromEnvironment(environment)
        hopRecordDays = try environment["SLIPWAY_HOP_RECORD_DAYS"].map { try Self.days($0, "SLIPWAY_HOP_RECORD_DAYS") }
            ?? hopRecordDays
        prefetch = try environment["SLIPWAY_PREFETCH"].map { try Self.positive($0, "SLIPWAY_PREFETCH") }
        concurrency = try environment["SLIPWAY_CONCURRENCY"].map { try Self.positive($0, "SLIPWAY_CONCURRENCY") }
        hopEventLingerMs = try environment["SLIPWAY_HOP_EVENT_LINGER_MS"].map {
            try Self.positive($0, "SLIPWAY_HOP_EVENT_LINGER_MS")
        }
        timeoutMs = try environment["SLIPWAY_TIMEOUT_MS"].map { try Self.timeout($0, "SLIPWAY_TIMEOUT_MS") }
        compensateTimeoutMs = try environment["SLIPWAY_COMPENSATE_TIMEOUT_MS"].map {
            try Self.timeout($0, "SLIPWAY_COMPENSATE_TIMEOUT_MS")
        }
        if let level = environment["SLIPWAY_LOG_LEVEL"] { logLevel = try Self.level(level) }
        if let io = environment["SLIPWAY_IO"] { self.io = try Self.io(io) }
        if let type = environment["SLIPWAY_QUEUE_TYPE"], !type.isEmpty {
            queueType = try QueueType(parsing: type, from: "SLIPWAY_QUEUE_TYPE")
        }
        queuePrefix = try environment["SLIPWAY_QUEUE_PREFIX"].map { try Self.prefix($0) }
        batchHopEvents = try environment["SLIPWAY_BATCH_HOP_EVENTS"].map { try Self.switchValue($0, "SLIPWAY_BATCH_HOP_EVENTS") }
        declaresAuditQueue = try environment["SLIPWAY_AUDIT_QUEUE"].map { try Self.switchValue($0, "SLIPWAY_AUDIT_QUEUE") }
        claimLeaseMs = try environment["SLIPWAY_CLAIM_LEASE_MS"].map { try Self.positive($0, "SLIPWAY_CLAIM_LEASE_MS") }
        var remaining = arguments[...]
        while let flag = remaining.popFirst() {
            if flag == "--help" || flag == "-h" {
                help = true
                continue
            }
            guard let value = remaining.popFirst() else { throw ProcessorError("\(flag) needs a value") }
            switch flag {
            case "--amqp-url": amqpURL = value
            case "--state-dir": stateDirectory = value
            case "--store": storeURL = value
            case "--hop-record-days": hopRecordDays = try Self.days(value, flag)
            case "--prefetch": prefetch = try Self.positive(value, flag)
            case "--concurrency": concurrency = try Self.positive(value, flag)
            case "--max-attempts": maxAttempts = try Self.positive(value, flag)
            case "--timeout-ms": timeoutMs = try Self.timeout(value, flag)
            case "--compensate-timeout-ms": compensateTimeoutMs = try Self.timeout(value, flag)
            case "--log-level": logLevel = try Self.level(value)
            case "--queue-prefix": queuePrefix = try Self.prefix(value)
            case "--io": io = try Self.io(value)
            case "--queue-type": queueType = try QueueType(parsing: value, from: flag)
            default: throw ProcessorError("unknown option '\(flag)'")
            }
        }
    }

    func apply(to configuration: inout ProcessorConfiguration) {
        if let prefetch { configuration.prefetch = prefetch }
        if let concurrency { configuration.concurrency = concurrency }
        if let maxAttempts { configuration.maxAttempts = maxAttempts }
        if let timeoutMs { configuration.timeout = .milliseconds(timeoutMs) }
        if let compensateTimeoutMs { configuration.compensateTimeout = .milliseconds(compensateTimeoutMs) }
        if let queuePrefix { configuration.topology = Topology(prefix: queuePrefix) }
        if let batchHopEvents { configuration.batchHopEvents = batchHopEvents }
        if let declaresAuditQueue { configuration.declaresAuditQueue = declaresAuditQueue }
        if let hopEventLingerMs { configuration.hopEventLinger = .milliseconds(hopEventLingerMs) }
        if let queueType { configuration.queueType = queueType }
        if let claimLeaseMs { configuration.claimLease = .milliseconds(claimLeaseMs) }
    }

    var hopRecordRetention: Duration? {
        hopRecordDays == 0 ? nil : .seconds(hopRecordDays * 24 * 3600)
    }

    static func days(_ text: String, _ name: String) throws -> Int {
        guard let value = Int(text), (0...36_500).contains(value) else {
            throw ProcessorError("\(name) must be a whole number of days (0 keeps records for ever), got '\(text)'")
        }
        return value
    }

    /// `true`/`on`/`1`/`yes` or `false`/`off`/`0`/`no`.
    static func switchValue(_ text: String, _ name: String) throws -> Bool {
        switch text.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ProcessorError("\(name) must be on or off (true or false), got '\(text)'")
        }
    }

    static func prefix(_ text: String) throws -> String {
        guard Slip.isValidName(text) else {
            throw ProcessorError("the queue prefix must be 1 to 64 characters of A-Z a-z 0-9 _ -, got '\(text)'")
        }
        return text
    }

    static func positive(_ text: String, _ name: String) throws -> Int {
        guard let value = Int(text), value > 0 else { throw ProcessorError("\(name) must be a positive whole number, got '\(text)'") }
        return value
    }

    /// A default timeout: the range a slip's own timeouts may take.
    static func timeout(_ text: String, _ name: String) throws -> Int {
        guard let value = Int(text), Slip.timeoutRangeMs.contains(value) else {
            throw ProcessorError("\(name) must be a whole number of milliseconds, 1 to 86400000 (24 h), got '\(text)'")
        }
        return value
    }

    static func io(_ text: String) throws -> IO {
        guard let io = IO(rawValue: text.lowercased()) else {
            throw ProcessorError("--io (SLIPWAY_IO) must be loop or threads, got '\(text)'")
        }
        return io
    }

    static func level(_ text: String) throws -> Logger.Level {
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw ProcessorError("log level must be one of trace, debug, info, notice, warning, error, critical; got '\(text)'")
        }
        return level
    }

    static func usage(_ step: String) -> String {
        """
        usage: \(step) [--amqp-url URL[,URL...]] [--queue-type classic|quorum] [--queue-prefix P] [--state-dir DIR]
                [--store URL]
                [--hop-record-days N] [--prefetch N] [--concurrency N] [--max-attempts N] [--timeout-ms N]
                [--compensate-timeout-ms N]
                [--io loop|threads] [--log-level LEVEL]

        Serves the '\(step)' step: consumes slipway.\(step).execute and slipway.\(step).compensate until SIGTERM.
          --amqp-url URL     RabbitMQ to use (env SLIPWAY_AMQP_URL, or SLIPWAY_AMQP_URL_FILE naming a file that
                             holds it; default \(AMQPConfiguration.defaultURL); amqps://...?cacertfile=PATH for TLS);
                             a cluster: its nodes' URLs separated by commas (also env SLIPWAY_AMQP_URLS,
                             SLIPWAY_AMQP_URLS_FILE; SLIPWAY_AMQP_NODE_ORDER=listed starts at the first, default shuffled)
          --queue-type T     classic (default: one broker) or quorum (a cluster: replicated queues, RabbitMQ 3.10+);
                             every processor and slip command of a deployment must use the same (env SLIPWAY_QUEUE_TYPE)
          --queue-prefix P   prefix of queue and exchange names (env SLIPWAY_QUEUE_PREFIX; default slipway)
          --state-dir DIR    where the hop record (SQLite) lives (env SLIPWAY_STATE_DIR; default .slipway/state)
          --store URL        the hop record elsewhere: postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=MODE&sslrootcert=PATH]
                             shared by every instance of the step, in processors built with it; sqlite:PATH a file
                             (env SLIPWAY_STORE_URL, or SLIPWAY_STORE_URL_FILE naming a file that holds it; default
                             the SQLite file in the state directory)
          --hop-record-days N  days a hop is remembered against redeliveries, then pruned; 0 keeps every record
                             (env SLIPWAY_HOP_RECORD_DAYS; default 7)
          --prefetch N       unacknowledged deliveries per queue (env SLIPWAY_PREFETCH; default 32)
          --concurrency N    hops run at once per queue (env SLIPWAY_CONCURRENCY; default 8)
          --max-attempts N   tries of a throwing execute before the step faults (default 3)
          --timeout-ms N     how long an execute may run before it counts as a failed attempt, unless the slip's
                             itinerary gives the step a timeoutMs (env SLIPWAY_TIMEOUT_MS; default no limit)
          --compensate-timeout-ms N  the same for a compensation, unless the step's itinerary entry gave it a
                             compensateTimeoutMs; retried, then compensation-failed
                             (env SLIPWAY_COMPENSATE_TIMEOUT_MS; default no limit)
          --io MODE          loop: one thread for the connections and the hops; threads: a thread per connection,
                             for steps that block their thread (env SLIPWAY_IO; default loop)
          --log-level LEVEL  trace, debug, info, notice, warning, error, critical (env SLIPWAY_LOG_LEVEL; default info)
        Environment only:
          SLIPWAY_AUDIT_QUEUE=off      do not declare <prefix>.audit (no audit trail kept: the queue would only grow)
          SLIPWAY_BATCH_HOP_EVENTS=off one message per hop event, routed by its slip (default: batched)
          SLIPWAY_HOP_EVENT_LINGER_MS  how long a batch of hop events waits for more (default 20)
          SLIPWAY_CLAIM_LEASE_MS       how long a hop's claim outlives an instance that died running it, before
                                       another instance takes the hop over (default 30000; renewed while it runs)
          SLIPWAY_SIGNING_KEYS         keys to verify and sign slips with (docs/slip-format.md#signatures)
          SLIPWAY_MAX_MESSAGE_BYTES, SLIPWAY_MAX_ITINERARY_STEPS, SLIPWAY_MAX_VARIABLES_BYTES  size limits
                                       (docs/security.md)
        """
    }
}
