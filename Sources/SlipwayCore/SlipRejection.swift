/// Why a message cannot be processed as a slip. Every rejection carries a machine-readable code and a human reason;
/// a processor parks the message in the dead-letter queue with both.
public struct SlipRejection: Error, Sendable, Hashable, CustomStringConvertible {
    /// The codes are park codes: a rejected message is parked with its code.
    public typealias Code = ParkCode

    public var code: Code
    public var reason: String

    /// Reasons are cut at 1,000 characters: a parser's message can quote the whole (hostile) input.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason.count > 1_000 ? String(reason.prefix(1_000)) + "…" : reason
    }

    public var description: String { "\(code): \(reason)" }
}
