/// One setting of a processor: where it comes from and what it means. `ProcessorSetting.all` is the one list of them:
/// `--help` prints it, docs/configuration.md shows it as a table (scripts/check-docs.py checks that the two agree),
/// and the readers (`ProcessorOptions`, `SigningKeys`, `SlipLimits`) look the settings up by their keys.
struct ProcessorSetting: Sendable {
    /// How a secret's file (named by `<environment>_FILE`) holds it.
    enum SecretFile: Sendable {
        /// One line, the value.
        case oneLine
        /// An item per line (or one line, the items separated by commas): the items, joined with commas.
        case linePerItem
    }

    /// The key the readers look it up by.
    var key: String
    /// The command-line option, if the setting has one.
    var flag: String?
    /// What the value is, for the usage: `N`, `URL`.
    var valueName: String
    /// The environment variable, if the setting has one.
    var environment: String?
    /// Whether the value is a secret that may also be given as a file, named by `<environment>_FILE`.
    var secretFile: SecretFile?
    /// The value without the setting, as the docs say it; empty for none.
    var defaultValue: String
    var help: String
    /// The key of the setting this one is another name for: at most one of their variables may be set.
    var sameAs: String?

    /// The variable that names a file holding the value, for a secret.
    var fileEnvironment: String? { secretFile == nil ? nil : environment.map { $0 + "_FILE" } }

    /// How an error names the setting: `--prefetch (SLIPWAY_PREFETCH)`.
    var name: String { [flag, environment.map { flag == nil ? $0 : "(\($0))" }].compactMap(\.self).joined(separator: " ") }
}

extension ProcessorSetting {
    static let amqpURL = ProcessorSetting(
        key: "amqp.url", flag: "--amqp-url", valueName: "URL[,URL...]", environment: "SLIPWAY_AMQP_URL",
        secretFile: .oneLine, defaultValue: "amqp://guest:guest@127.0.0.1:5672/",
        help: "the RabbitMQ to use (amqps://...?cacertfile=PATH for TLS); a cluster: its nodes' URLs, comma-separated")
    static let amqpURLs = ProcessorSetting(
        key: "amqp.urls", valueName: "URL,URL...", environment: "SLIPWAY_AMQP_URLS", secretFile: .linePerItem,
        defaultValue: "", help: "the same, under a name that says list (its file: a URL per line); set one of the two",
        sameAs: "amqp.url")
    // The next four reach AMQPConfiguration as values (`slip`, which has no table, has it read them from its environment).
    static let amqpNodeOrder = ProcessorSetting(
        key: "amqp.nodeOrder", valueName: "shuffled|listed", environment: "SLIPWAY_AMQP_NODE_ORDER",
        defaultValue: "shuffled", help: "where in a cluster's list connecting starts: a node picked at random, or the first")
    static let amqpCAFile = ProcessorSetting(
        key: "amqp.caFile", valueName: "PATH", environment: "SLIPWAY_AMQP_CA_FILE", defaultValue: "the system's CAs",
        help: "the CAs (PEM) to trust for amqps, unless the URL names a cacertfile")
    static let amqpCertFile = ProcessorSetting(
        key: "amqp.certFile", valueName: "PATH", environment: "SLIPWAY_AMQP_CERT_FILE", defaultValue: "",
        help: "a client certificate (PEM) for amqps, unless the URL names a certfile; needs a key file")
    static let amqpKeyFile = ProcessorSetting(
        key: "amqp.keyFile", valueName: "PATH", environment: "SLIPWAY_AMQP_KEY_FILE", defaultValue: "",
        help: "the client certificate's private key (PEM), unless the URL names a keyfile")
    static let queueType = ProcessorSetting(
        key: "queue.type", flag: "--queue-type", valueName: "classic|quorum", environment: "SLIPWAY_QUEUE_TYPE",
        defaultValue: "classic",
        help: "quorum for a cluster (replicated queues, RabbitMQ 3.10+); the same in every processor and slip command")
    static let queuePrefix = ProcessorSetting(
        key: "queue.prefix", flag: "--queue-prefix", valueName: "P", environment: "SLIPWAY_QUEUE_PREFIX",
        defaultValue: "slipway", help: "the prefix of queue and exchange names, for deployments sharing a virtual host")
    static let stateDirectory = ProcessorSetting(
        key: "state.directory", flag: "--state-dir", valueName: "DIR", environment: "SLIPWAY_STATE_DIR",
        defaultValue: ".slipway/state", help: "where the hop record (SQLite) lives")
    static let storeURL = ProcessorSetting(
        key: "store.url", flag: "--store", valueName: "URL", environment: "SLIPWAY_STORE_URL", secretFile: .oneLine,
        defaultValue: "the SQLite file in the state directory",
        help: "the hop record elsewhere: postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=...], shared by the step's "
            + "instances (SlipwayPostgres); sqlite:PATH")
    static let hopRecordDays = ProcessorSetting(
        key: "hopRecord.days", flag: "--hop-record-days", valueName: "N", environment: "SLIPWAY_HOP_RECORD_DAYS",
        defaultValue: "7", help: "days a hop is remembered against redeliveries, then pruned; 0 keeps every record")
    static let prefetch = ProcessorSetting(
        key: "prefetch", flag: "--prefetch", valueName: "N", environment: "SLIPWAY_PREFETCH", defaultValue: "32",
        help: "unacknowledged deliveries per queue")
    static let concurrency = ProcessorSetting(
        key: "concurrency", flag: "--concurrency", valueName: "N", environment: "SLIPWAY_CONCURRENCY", defaultValue: "8",
        help: "hops run at once per queue")
    static let maxAttempts = ProcessorSetting(
        key: "maxAttempts", flag: "--max-attempts", valueName: "N", defaultValue: "3", help: "tries of a throwing execute before the step faults")
    static let timeout = ProcessorSetting(
        key: "timeout.ms", flag: "--timeout-ms", valueName: "N", environment: "SLIPWAY_TIMEOUT_MS",
        defaultValue: "no limit",
        help: "how long an execute may run before it counts as a failed attempt, unless the slip's itinerary says")
    static let compensateTimeout = ProcessorSetting(
        key: "compensateTimeout.ms", flag: "--compensate-timeout-ms", valueName: "N",
        environment: "SLIPWAY_COMPENSATE_TIMEOUT_MS", defaultValue: "no limit",
        help: "the same for a compensation (retried, then compensation-failed)")
    static let io = ProcessorSetting(
        key: "io", flag: "--io", valueName: "loop|threads", environment: "SLIPWAY_IO", defaultValue: "loop",
        help: "one thread for the connections and the hops, or a thread per connection (steps that block their thread)")
    static let logLevel = ProcessorSetting(
        key: "log.level", flag: "--log-level", valueName: "LEVEL", environment: "SLIPWAY_LOG_LEVEL", defaultValue: "info",
        help: "trace, debug, info, notice, warning, error or critical")
    static let auditQueue = ProcessorSetting(
        key: "audit.queue", valueName: "on|off", environment: "SLIPWAY_AUDIT_QUEUE", defaultValue: "on",
        help: "off: do not declare <prefix>.audit (a deployment that keeps no audit trail: the queue would only grow)")
    static let batchHopEvents = ProcessorSetting(
        key: "hopEvents.batch", valueName: "on|off", environment: "SLIPWAY_BATCH_HOP_EVENTS", defaultValue: "on",
        help: "off: one message per hop event, routed by its slip")
    static let hopEventLinger = ProcessorSetting(
        key: "hopEvents.linger.ms", valueName: "N", environment: "SLIPWAY_HOP_EVENT_LINGER_MS", defaultValue: "20",
        help: "how long a batch of hop events waits for more")
    static let claimLease = ProcessorSetting(
        key: "claim.lease.ms", valueName: "N", environment: "SLIPWAY_CLAIM_LEASE_MS", defaultValue: "30000",
        help: "how long a hop's claim outlives an instance that died running it (renewed while the hop runs)")
    static let signingKeys = ProcessorSetting(
        key: "signing.keys", valueName: "ID=SECRET,...", environment: "SLIPWAY_SIGNING_KEYS", secretFile: .linePerItem,
        defaultValue: "off", help: "keys to sign and verify slips with; the first signs (docs/slip-format.md#signatures)")
    static let maxMessageBytes = ProcessorSetting(
        key: "limits.messageBytes", valueName: "N", environment: "SLIPWAY_MAX_MESSAGE_BYTES", defaultValue: "1048576",
        help: "the largest message accepted or sent (docs/security.md)")
    static let maxItinerarySteps = ProcessorSetting(
        key: "limits.itinerarySteps", valueName: "N", environment: "SLIPWAY_MAX_ITINERARY_STEPS", defaultValue: "1000",
        help: "the longest itinerary")
    static let maxVariablesBytes = ProcessorSetting(
        key: "limits.variablesBytes", valueName: "N", environment: "SLIPWAY_MAX_VARIABLES_BYTES", defaultValue: "262144",
        help: "the largest shared variables, as JSON text")

    /// Every setting, in the order `--help` and the docs list them.
    static let all: [ProcessorSetting] = [
        amqpURL, amqpURLs, amqpNodeOrder, amqpCAFile, amqpCertFile, amqpKeyFile, queueType, queuePrefix, stateDirectory,
        storeURL, hopRecordDays, prefetch, concurrency, maxAttempts, timeout, compensateTimeout, io, logLevel, auditQueue,
        batchHopEvents, hopEventLinger, claimLease, signingKeys, maxMessageBytes, maxItinerarySteps, maxVariablesBytes,
    ]
}
