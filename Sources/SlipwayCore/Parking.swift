import Foundation

/// Why a message was parked in the dead-letter queue: a machine-readable code, in the `x-slipway-reason-code` header,
/// the parked event's outcome and the audit trail. Operators filter and alert on these: they never change.
public struct ParkCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// The body is not JSON, or not a slip's shape.
    public static let malformed = ParkCode(rawValue: "malformed")
    /// The slip's `formatVersion` is missing, unknown or newer than this build reads.
    public static let unsupportedVersion = ParkCode(rawValue: "unsupported-version")
    /// The slip decodes but breaks a rule of the format (a bad id, an empty itinerary while running...).
    public static let invalid = ParkCode(rawValue: "invalid")
    /// The message is larger than the configured limit.
    public static let tooLarge = ParkCode(rawValue: "too-large")
    /// Signing is on and the message is unsigned, signed with an unknown key, or not what was signed.
    public static let signature = ParkCode(rawValue: "signature")
    /// The slip is not for this processor: the head of its itinerary (or of its compensations) is another step.
    public static let misrouted = ParkCode(rawValue: "misrouted")
    /// The hop's message kept coming back without the hop ever finishing: the processor died running it, again and
    /// again.
    public static let poison = ParkCode(rawValue: "poison")
    /// A compensation failed on its last attempt: the walk back stopped, the slip waits for an operator.
    public static let compensationFailed = ParkCode(rawValue: "compensation-failed")
}

/// Headers of a parked message in the dead-letter queue.
public enum ParkedHeaders {
    /// Names one parked message, for `slip dlq show|replay|drop`.
    public static let parkedID = "x-slipway-parked-id"
    public static let reasonCode = "x-slipway-reason-code"
    public static let reason = "x-slipway-reason"
    public static let originalQueue = "x-slipway-original-queue"
    public static let processor = "x-slipway-processor"
    public static let parkedAt = "x-slipway-parked-at"
    public static let slipID = "x-slipway-slip-id"
}

/// Names a running program in logs, slip logs, events and parked messages: `host:pid`.
public enum InstanceName {
    public static func current() -> String {
        "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }
}
