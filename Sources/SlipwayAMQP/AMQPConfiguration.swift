import Foundation
import SlipwayTransport

/// Where and how to reach RabbitMQ. Filled from an AMQP URL: `amqp://user:pass@host:port/vhost`.
public struct AMQPConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var virtualHost: String
    /// Seconds between heartbeats; a broker that stays silent for two of them counts as gone.
    public var heartbeatSeconds: Int
    public var connectTimeout: Duration
    /// Backoff between reconnection attempts: doubles from `initial` up to `max`.
    public var reconnectBackoff: (initial: Duration, max: Duration)
    /// How long a publish keeps retrying through a lost connection before it gives up.
    public var publishDeadline: Duration

    public static let defaultURL = "amqp://guest:guest@127.0.0.1:5672/"

    public init(url: String = AMQPConfiguration.defaultURL) throws {
        guard let components = URLComponents(string: url), components.scheme == "amqp" else {
            throw TransportError("'\(Self.redacted(url))' is not an AMQP URL (amqp://user:pass@host:port/vhost)")
        }
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        port = components.port ?? 5672
        user = components.user?.removingPercentEncoding ?? "guest"
        password = components.password?.removingPercentEncoding ?? "guest"
        let path = components.percentEncodedPath
        // AMQP URI spec: an empty path means the default vhost "/"; "/%2F" names "/" explicitly.
        virtualHost = path.isEmpty || path == "/" ? "/" : String(path.dropFirst()).removingPercentEncoding ?? "/"
        heartbeatSeconds = 30
        connectTimeout = .seconds(5)
        reconnectBackoff = (.milliseconds(100), .seconds(5))
        publishDeadline = .seconds(60)
    }

    /// The URL from `SLIPWAY_AMQP_URL`, or the default.
    public static func fromEnvironment(override: String? = nil) throws -> AMQPConfiguration {
        try AMQPConfiguration(url: override ?? ProcessInfo.processInfo.environment["SLIPWAY_AMQP_URL"] ?? defaultURL)
    }

    /// For logs and errors: the URL without its password.
    public var redactedURL: String { "amqp://\(user):***@\(host):\(port)/\(virtualHost == "/" ? "" : virtualHost)" }

    static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? "(unparseable URL)"
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.redactedURL == rhs.redactedURL && lhs.password == rhs.password }
    public func hash(into hasher: inout Hasher) { hasher.combine(redactedURL) }
}
