/// A message to publish. Bodies are bytes: the transport never looks inside.
public struct OutgoingMessage: Sendable, Hashable, Codable {
    /// Empty for the default exchange, where the routing key is the queue's name.
    public var exchange: String
    public var routingKey: String
    public var body: [UInt8]
    public var headers: [String: String]
    public var messageID: String?
    public var correlationID: String?
    public var contentType: String?
    /// Written to disk by the broker (AMQP delivery mode 2). Slips always are.
    public var persistent: Bool

    public init(
        exchange: String = "", routingKey: String, body: [UInt8], headers: [String: String] = [:],
        messageID: String? = nil, correlationID: String? = nil, contentType: String? = nil, persistent: Bool = true
    ) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.headers = headers
        self.messageID = messageID
        self.correlationID = correlationID
        self.contentType = contentType
        self.persistent = persistent
    }

    /// A message for a queue, through the default exchange.
    public static func toQueue(
        _ queue: String, body: [UInt8], headers: [String: String] = [:], messageID: String? = nil,
        correlationID: String? = nil, contentType: String? = nil
    ) -> OutgoingMessage {
        OutgoingMessage(
            exchange: "", routingKey: queue, body: body, headers: headers, messageID: messageID,
            correlationID: correlationID, contentType: contentType)
    }
}

/// A message received from a queue; it stays the consumer's until acknowledged (or until the connection drops, when the
/// broker delivers it again).
public struct Delivery: Sendable {
    public var body: [UInt8]
    public var headers: [String: String]
    public var messageID: String?
    public var correlationID: String?
    public var contentType: String?
    public var exchange: String
    public var routingKey: String
    /// The broker says it delivered this message before (to this or another consumer).
    public var redelivered: Bool
    /// Settles the delivery. A processor calls it only after everything the delivery produced is confirmed.
    public var acknowledger: any DeliveryAcknowledger
    /// Identifies the delivery to its acknowledger.
    public var tag: UInt64

    public init(
        body: [UInt8], headers: [String: String] = [:], messageID: String? = nil, correlationID: String? = nil,
        contentType: String? = nil, exchange: String = "", routingKey: String, redelivered: Bool = false,
        acknowledger: any DeliveryAcknowledger, tag: UInt64
    ) {
        self.body = body
        self.headers = headers
        self.messageID = messageID
        self.correlationID = correlationID
        self.contentType = contentType
        self.exchange = exchange
        self.routingKey = routingKey
        self.redelivered = redelivered
        self.acknowledger = acknowledger
        self.tag = tag
    }

    public func ack() async {
        await acknowledger.ack(tag)
    }

    /// Gives the message back to the queue (for a graceful stop before it was handled).
    public func release() async {
        await acknowledger.release(tag)
    }
}

/// Settles deliveries. Acks on a connection that has since dropped are ignored: the broker redelivers those messages,
/// and the idempotency record makes the redelivery harmless.
public protocol DeliveryAcknowledger: Sendable {
    func ack(_ tag: UInt64) async
    func release(_ tag: UInt64) async
}

/// The messaging a processor and a producer need. Implemented over RabbitMQ (`SlipwayAMQP`) and in memory
/// (`SlipwayTesting`).
public protocol MessageTransport: Sendable {
    /// Declares a durable queue (idempotent).
    func declareQueue(_ name: String) async throws
    /// Declares a durable queue with arguments, e.g. a delay queue (idempotent while the arguments are the same).
    func declareQueue(_ name: String, arguments: QueueArguments) async throws
    /// Declares a durable topic exchange (idempotent).
    func declareTopicExchange(_ name: String) async throws
    /// Binds a queue to an exchange with a binding pattern (`*` one word, `#` any number), idempotently.
    func bindQueue(_ queue: String, exchange: String, bindingKey: String) async throws
    /// Publishes the messages and returns once the broker has confirmed every one of them; throws if any was refused.
    func publish(_ messages: [OutgoingMessage]) async throws
    /// Deliveries from a durable queue, at most `prefetch` unacknowledged at once. The sequence ends when `stop`
    /// is called (a graceful shutdown) and survives connection losses by reconnecting.
    func consume(queue: String, prefetch: Int) async throws -> DeliveryStream
    /// A private, temporary queue bound to an exchange (for following events); it goes away with the subscription.
    func subscribe(exchange: String, bindingKeys: [String]) async throws -> DeliveryStream
    /// Closes every connection.
    func shutdown() async
    /// Where tasks that use this transport run best: the thread that reads and writes its connections, when it has
    /// one that also runs tasks. Nil: Swift's default pool.
    var taskExecutor: (any TaskExecutor)? { get }
    /// Returns once the broker takes this transport's publishes: at once, unless the broker has said it blocks them
    /// (RabbitMQ's `connection.blocked`, under a memory or disk alarm), then when it unblocks (or the transport shuts
    /// down). A processor waits here before it starts a hop, whose slip could not be forwarded meanwhile.
    func waitWhilePublishingBlocked() async
}

extension MessageTransport {
    public var taskExecutor: (any TaskExecutor)? { nil }
    public func waitWhilePublishingBlocked() async {}
}

/// RabbitMQ queue arguments the framework uses.
public struct QueueArguments: Sendable, Hashable {
    /// `x-message-ttl`: a message leaves the queue this long after it entered.
    public var messageTTLMs: Int?
    /// `x-dead-letter-exchange` / `x-dead-letter-routing-key`: where an expired message goes ("" is the default
    /// exchange, where the routing key is a queue's name).
    public var deadLetterExchange: String?
    public var deadLetterRoutingKey: String?
    /// `x-expires`: the queue itself is deleted after this long without use.
    public var expiresMs: Int?

    public init(
        messageTTLMs: Int? = nil, deadLetterExchange: String? = nil, deadLetterRoutingKey: String? = nil,
        expiresMs: Int? = nil
    ) {
        self.messageTTLMs = messageTTLMs
        self.deadLetterExchange = deadLetterExchange
        self.deadLetterRoutingKey = deadLetterRoutingKey
        self.expiresMs = expiresMs
    }

    /// A queue that holds each message for `delayMs`, then hands it to `queue` (through the default exchange).
    public static func delay(_ delayMs: Int, thenTo queue: String) -> QueueArguments {
        // The queue outlives its longest wait by an hour, so it never expires with messages still waiting.
        QueueArguments(messageTTLMs: delayMs, deadLetterExchange: "", deadLetterRoutingKey: queue, expiresMs: delayMs + 3_600_000)
    }
}

/// The kind of RabbitMQ queue a transport declares for its durable queues (step, compensate, delay, dead-letter, audit
/// and durable event queues). Private, temporary queues (following events) are always classic: a quorum queue cannot
/// be exclusive.
public enum QueueType: String, Sendable, Hashable, CaseIterable {
    /// One node's queue (the default): fine on a single broker; lost with its node in a cluster.
    case classic
    /// Replicated over the cluster's nodes (Raft): survives the loss of a minority of them. RabbitMQ 3.10 or later
    /// (message TTL and at-least-once dead-lettering, which delay queues need).
    case quorum

    /// `--queue-type` / `SLIPWAY_QUEUE_TYPE`: `classic` or `quorum`, any case.
    public init(parsing text: String, from source: String) throws {
        guard let type = QueueType(rawValue: text.lowercased()) else {
            throw TransportError(.badConfiguration, "\(source) must be classic or quorum, got '\(text)'", permanent: true)
        }
        self = type
    }

    /// `SLIPWAY_QUEUE_TYPE`, or classic when it is unset.
    public static func fromEnvironment(_ environment: [String: String]) throws -> QueueType {
        guard let text = environment["SLIPWAY_QUEUE_TYPE"], !text.isEmpty else { return .classic }
        return try QueueType(parsing: text, from: "SLIPWAY_QUEUE_TYPE")
    }
}

/// A stream of deliveries that can be stopped from outside: consumption stops, and the stream finishes.
public struct DeliveryStream: AsyncSequence, Sendable {
    public typealias Element = Delivery

    private let stream: AsyncThrowingStream<Delivery, any Error>
    private let onStop: @Sendable () -> Void

    public init(stream: AsyncThrowingStream<Delivery, any Error>, onStop: @escaping @Sendable () -> Void) {
        self.stream = stream
        self.onStop = onStop
    }

    /// Stops taking new deliveries; the sequence ends after what was already received.
    public func stop() { onStop() }

    public func makeAsyncIterator() -> AsyncThrowingStream<Delivery, any Error>.AsyncIterator {
        stream.makeAsyncIterator()
    }
}

/// A transport failure: what kind (`code`, for programs to match on), with the broker's or the library's words
/// (`message`, for people).
public struct TransportError: Error, Sendable, CustomStringConvertible {
    public var code: Code
    public var message: String
    /// Trying again cannot help (a certificate that does not verify, a CA file that cannot be read): callers that retry
    /// through outages give up at once and say why. Kept beside the code: the same kind of failure may be passing or
    /// not (a broker's refusal is for good when it is a permission, not when a queue is locked for a while).
    public var isPermanent: Bool

    public init(_ code: Code, _ message: String, permanent: Bool = false) {
        self.code = code
        self.message = message
        self.isPermanent = permanent
    }

    /// The message alone: logs and tests read it as it always was.
    public var description: String { message }

    /// What kind of failure a `TransportError` is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let description: String
        private init(_ description: String) { self.description = description }

        /// No node answered: refused, timed out, or not resolved.
        public static let unreachable = Code("unreachable")
        /// A connection failed during an operation (a socket error, no reply); the broker may be back soon.
        public static let connectionLost = Code("connection-lost")
        /// The broker refused the user name or password.
        public static let authenticationFailed = Code("authentication-failed")
        /// The TLS handshake failed, or its files (CA, client certificate) cannot be used.
        public static let tlsFailed = Code("tls-failed")
        /// The broker refused an operation (a permission, a queue declared with other arguments, a locked queue).
        public static let refusedByBroker = Code("refused-by-broker")
        /// A queue exists with another type than this client declares (classic or quorum).
        public static let queueTypeMismatch = Code("queue-type-mismatch")
        /// No publisher confirm came within the publish deadline.
        public static let publishTimedOut = Code("publish-timed-out")
        /// The broker refused a published message (basic.nack).
        public static let publishRejected = Code("publish-rejected")
        /// The broker closed the channel or the connection.
        public static let closedByBroker = Code("closed-by-broker")
        /// The transport, or its publisher or consumer, has been shut down or stopped.
        public static let shutDown = Code("shut-down")
        /// A URL, an option, an environment variable or a file it names is wrong.
        public static let badConfiguration = Code("bad-configuration")
        /// librabbitmq could not allocate what it needs.
        public static let libraryFailed = Code("library-failed")
    }
}
