import Foundation
import Logging

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
