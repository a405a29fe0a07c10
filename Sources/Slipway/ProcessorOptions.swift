import Configuration
import Logging
import SlipwayCore

/// A processor's settings (`ProcessorSetting.all`), read.
struct ProcessorOptions {
    /// How a processor's connections and hops share threads.
    enum IO: String {
        /// One thread reads and writes every connection and runs the hops (`AMQPLoop`).
        case loop
        /// A thread per connection; hops on Swift's default pool. For steps that block their thread.
        case threads
    }

    var amqpURL = AMQPConfiguration.defaultURL
    var amqpNodeOrder = AMQPConfiguration.NodeOrder.shuffled
    var amqpTLSFiles = AMQPConfiguration.TLSFiles()
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

    /// `--help` or `-h` was given.
    var help = false
    /// Off (nil) unless `SLIPWAY_SIGNING_KEYS` is set.
    var signing: SigningKeys?
    var limits = SlipLimits()

    /// The options from `arguments` (without the program's name), the environment, and the secrets' files.
    init(arguments: [String], environment: [String: String]) throws {
        let commandLine = try CommandLineSettings(parsing: arguments)
        try self.init(reader: .processorSettings(commandLine: commandLine.values, environment: environment))
        help = commandLine.help
    }

    init(reader: ConfigReader) throws {
        func read<T>(_ setting: ProcessorSetting, _ parse: (String, String) throws -> T) throws -> T? {
            try reader.value(setting).map { try parse($0, setting.name) }
        }
        amqpURL = reader.value(.amqpURL) ?? reader.value(.amqpURLs) ?? amqpURL
        amqpNodeOrder =
            try read(.amqpNodeOrder) { try AMQPConfiguration.NodeOrder(parsing: $0, from: $1) } ?? amqpNodeOrder
        amqpTLSFiles = AMQPConfiguration.TLSFiles(
            caFile: reader.value(.amqpCAFile), certFile: reader.value(.amqpCertFile), keyFile: reader.value(.amqpKeyFile))
        stateDirectory = reader.value(.stateDirectory) ?? stateDirectory
        storeURL = reader.value(.storeURL)
        hopRecordDays = try read(.hopRecordDays, Self.days) ?? hopRecordDays
        prefetch = try read(.prefetch, Self.positive)
        concurrency = try read(.concurrency, Self.positive)
        maxAttempts = try read(.maxAttempts, Self.positive)
        timeoutMs = try read(.timeout, Self.timeout)
        compensateTimeoutMs = try read(.compensateTimeout, Self.timeout)
        logLevel = try read(.logLevel, Self.level) ?? logLevel
        queuePrefix = try read(.queuePrefix, Self.prefix)
        io = try read(.io, Self.io) ?? io
        queueType = try read(.queueType) { try QueueType(parsing: $0, from: $1) }
        batchHopEvents = try read(.batchHopEvents, Self.switchValue)
        declaresAuditQueue = try read(.auditQueue, Self.switchValue)
        hopEventLingerMs = try read(.hopEventLinger, Self.positive)
        claimLeaseMs = try read(.claimLease, Self.positive)
        do {
            signing = try SigningKeys(reading: reader)
            limits = try SlipLimits(reading: reader)
        } catch {
            throw ProcessorError(.badSetting, "\(error)")
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
        if let signing { configuration.signing = signing }
        configuration.limits = limits
    }

    var hopRecordRetention: Duration? {
        hopRecordDays == 0 ? nil : .seconds(hopRecordDays * 24 * 3600)
    }

    static func days(_ text: String, _ name: String) throws -> Int {
        guard let value = Int(text), (0...36_500).contains(value) else {
            throw ProcessorError(.badOption, "\(name) must be a whole number of days (0 keeps records for ever), got '\(text)'")
        }
        return value
    }

    /// `true`/`on`/`1`/`yes` or `false`/`off`/`0`/`no`.
    static func switchValue(_ text: String, _ name: String) throws -> Bool {
        switch text.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ProcessorError(.badOption, "\(name) must be on or off (true or false), got '\(text)'")
        }
    }

    static func prefix(_ text: String, _ name: String) throws -> String {
        guard Slip.isValidName(text) else {
            throw ProcessorError(.badOption, "\(name) must be 1 to 64 characters of A-Z a-z 0-9 _ -, got '\(text)'")
        }
        return text
    }

    static func positive(_ text: String, _ name: String) throws -> Int {
        guard let value = Int(text), value > 0 else { throw ProcessorError(.badOption, "\(name) must be a positive whole number, got '\(text)'") }
        return value
    }

    /// A default timeout: the range a slip's own timeouts may take.
    static func timeout(_ text: String, _ name: String) throws -> Int {
        guard let value = Int(text), Slip.timeoutRangeMs.contains(value) else {
            throw ProcessorError(.badOption, "\(name) must be a whole number of milliseconds, 1 to 86400000 (24 h), got '\(text)'")
        }
        return value
    }

    static func io(_ text: String, _ name: String) throws -> IO {
        guard let io = IO(rawValue: text.lowercased()) else {
            throw ProcessorError(.badOption, "\(name) must be loop or threads, got '\(text)'")
        }
        return io
    }

    static func level(_ text: String, _ name: String) throws -> Logger.Level {
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw ProcessorError(.badOption, "\(name) must be one of trace, debug, info, notice, warning, error, critical; got '\(text)'")
        }
        return level
    }
}
