import Foundation
import SlipwayCore

/// How a processor runs. The defaults suit most steps; executables fill it from flags and the environment.
public struct ProcessorConfiguration: Sendable {
    public var topology = Topology()
    /// Unacknowledged deliveries the broker may hand this instance at once, per queue.
    public var prefetch = 32
    /// Hops this instance runs at the same time, per queue.
    public var concurrency = 8
    /// Tries of an execute hop whose handler throws before the step counts as faulted.
    public var maxAttempts = 3
    /// Tries of a compensation whose handler throws before the slip is parked as compensation-failed.
    public var compensationMaxAttempts = 5
    public var limits = SlipLimits()
    /// Names this instance in logs, slip logs and events.
    public var instance = ProcessorConfiguration.defaultInstanceName()

    public init() {}

    /// `host:pid`.
    public static func defaultInstanceName() -> String {
        "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }
}
