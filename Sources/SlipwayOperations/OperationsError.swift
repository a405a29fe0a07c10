/// Why an operation on the dead-letter queue or the broker's users failed: a code to match and a message to print,
/// which reads as a sentence after "slip: ".
public struct OperationsError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }

        /// No parked message has the id asked for, nor one that starts with it.
        public static let unknownParkedID = Code("unknown-parked-id")
        /// The id names several parked messages: the start of several parked ids, or an old message id used twice.
        public static let ambiguousParkedID = Code("ambiguous-parked-id")
        /// A broker URL that is not an AMQP URL, for the URL files.
        public static let invalidBrokerURL = Code("invalid-broker-url")
        /// A password file that is empty or cannot be written.
        public static let passwordFile = Code("password-file")
        /// rabbitmqctl is missing, failed, or said something unexpected; or the vhost does not exist.
        public static let rabbitmqctl = Code("rabbitmqctl")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
