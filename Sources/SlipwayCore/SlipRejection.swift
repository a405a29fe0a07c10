/// Why a message cannot be processed as a slip. Every rejection carries a machine-readable code and a human reason;
/// a processor parks the message in the dead-letter queue with both.
public struct SlipRejection: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The body is not JSON, or not a slip's shape.
        public static let malformed = Code(rawValue: "malformed")
        /// The slip's `formatVersion` is missing, unknown or newer than this build reads.
        public static let unsupportedVersion = Code(rawValue: "unsupported-version")
        /// The slip decodes but breaks a rule of the format (a bad id, an empty itinerary while running...).
        public static let invalid = Code(rawValue: "invalid")
        /// The message is larger than the configured limit.
        public static let tooLarge = Code(rawValue: "too-large")
        /// Signing is on and the message is unsigned, signed with an unknown key, or not what was signed.
        public static let signature = Code(rawValue: "signature")
        /// The slip is not for this processor: the head of its itinerary (or of its compensations) is another step.
        public static let misrouted = Code(rawValue: "misrouted")
    }

    public var code: Code
    public var reason: String

    /// Reasons are cut at 1,000 characters: a parser's message can quote the whole (hostile) input.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason.count > 1_000 ? String(reason.prefix(1_000)) + "…" : reason
    }

    public var description: String { "\(code): \(reason)" }
}
