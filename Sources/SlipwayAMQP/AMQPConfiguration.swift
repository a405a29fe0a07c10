import Foundation
import SlipwayTransport

/// Where and how to reach RabbitMQ. Filled from an AMQP URL: `amqp://user:pass@host:port/vhost`, or
/// `amqps://user:pass@host:port/vhost?cacertfile=...` for TLS (see `TLS` and docs/security.md).
public struct AMQPConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var virtualHost: String
    /// TLS settings for an `amqps://` URL; nil for plain `amqp://`.
    public var tls: TLS?
    /// Seconds between heartbeats; a broker that stays silent for two of them counts as gone.
    public var heartbeatSeconds: Int
    public var connectTimeout: Duration
    /// Backoff between reconnection attempts: doubles from `initial` up to `max`.
    public var reconnectBackoff: (initial: Duration, max: Duration)
    /// How long a publish keeps retrying through a lost connection before it gives up.
    public var publishDeadline: Duration

    public static let defaultURL = "amqp://guest:guest@127.0.0.1:5672/"

    /// Parses `url`. For `amqps://` URLs, `environment` supplies the TLS files the URL does not name
    /// (`SLIPWAY_AMQP_CA_FILE`, `SLIPWAY_AMQP_CERT_FILE`, `SLIPWAY_AMQP_KEY_FILE`).
    public init(
        url: String = AMQPConfiguration.defaultURL,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        let uri: AMQPURI
        do {
            uri = try AMQPURI(url)
        } catch .notAMQP {
            throw TransportError(
                "'\(Self.redacted(url))' is not an AMQP URL (amqp://user:pass@host:port/vhost, or amqps:// for TLS)")
        } catch .malformed(let reason) {
            throw TransportError("'\(Self.redacted(url))' is not a valid AMQP URL: \(reason)")
        }
        let isTLS = uri.scheme == "amqps"
        host = uri.host.isEmpty ? "127.0.0.1" : uri.host
        port = uri.port ?? (isTLS ? 5671 : 5672)
        user = uri.user ?? "guest"
        password = uri.password ?? "guest"
        // AMQP URI spec: an empty path means the default vhost "/"; "/%2F" names "/" explicitly.
        virtualHost = uri.virtualHost.flatMap { $0.isEmpty ? nil : $0 } ?? "/"
        heartbeatSeconds = 30
        connectTimeout = .seconds(5)
        reconnectBackoff = (.milliseconds(100), .seconds(5))
        publishDeadline = .seconds(60)

        let query = try URLQuery(uri.query, url: Self.redacted(url))
        if let heartbeat = try query.take("heartbeat", as: "a whole number of seconds", { UInt16($0) }) {
            heartbeatSeconds = Int(heartbeat)
        }
        let positive = { (text: String) in Int(text).flatMap { $0 > 0 ? $0 : nil } }
        if let timeout = try query.take("connection_timeout", as: "a positive number of milliseconds", positive) {
            connectTimeout = .milliseconds(timeout)
        }
        // How long a publish may wait for its confirm (through reconnects) before the caller is told it failed; time
        // the broker spends blocking publishers (a resource alarm) does not count.
        if let timeout = try query.take("publish_timeout", as: "a positive number of milliseconds", positive) {
            publishDeadline = .milliseconds(timeout)
        }
        tls = isTLS ? try TLS(query: query, environment: environment) : nil
        try query.finish(isTLS: isTLS)
    }

    /// The URL from the environment (`SLIPWAY_AMQP_URL` or the file `SLIPWAY_AMQP_URL_FILE` names), or `override`
    /// if given, or the default.
    public static func fromEnvironment(
        override: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> AMQPConfiguration {
        try AMQPConfiguration(url: override ?? url(fromEnvironment: environment) ?? defaultURL, environment: environment)
    }

    /// For logs and errors: the URL without its password and its query; `amqps` for TLS.
    public var redactedURL: String {
        let pathCharacters = CharacterSet.urlPathAllowed.subtracting(["/"])
        let vhost = virtualHost == "/" ? "" : virtualHost.addingPercentEncoding(withAllowedCharacters: pathCharacters) ?? ""
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host  // an IPv6 address
        return "\(tls == nil ? "amqp" : "amqps")://\(user):***@\(host):\(port)/\(vhost)"
    }

    /// Any string that might be an AMQP URL, with whatever could be a password masked: a parseable URL loses its
    /// password; in anything else, all before the last "@" (user and password) is masked.
    public static func redacted(_ url: String) -> String {
        if let uri = try? AMQPURI(url) {
            guard let password = uri.passwordRange else { return url }
            return url.replacingCharacters(in: password, with: "***")
        }
        guard let at = url.lastIndex(of: "@") else { return url }
        let start = url.range(of: "://").map(\.upperBound) ?? url.startIndex
        guard start <= at else { return url }
        return String(url[..<start]) + "***" + String(url[at...])
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.redactedURL == rhs.redactedURL && lhs.password == rhs.password && lhs.tls == rhs.tls
    }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(redactedURL)
        hasher.combine(tls)
    }
}

/// An AMQP URL's query parameters (the RabbitMQ URI convention), taken one by one; what is left over is a mistake, and
/// an error: a misspelt `verify` or `cacertfile` must not quietly weaken TLS.
final class URLQuery {
    private var items: [String: String] = [:]
    private let url: String

    init(_ query: [(name: String, value: String)], url: String) throws {
        self.url = url
        for (name, value) in query {
            guard items[name] == nil else {
                throw TransportError("'\(url)': query parameter '\(name)' appears twice")
            }
            guard !value.isEmpty else {
                throw TransportError("'\(url)': query parameter '\(name)' needs a value")
            }
            items[name] = value
        }
    }

    func take(_ name: String) -> String? { items.removeValue(forKey: name) }

    func take<T>(_ name: String, as expected: String, _ parse: (String) -> T?) throws -> T? {
        guard let text = take(name) else { return nil }
        guard let value = parse(text) else {
            throw TransportError("'\(url)': \(name) must be \(expected), got '\(text)'")
        }
        return value
    }

    static let tlsNames = ["cacertfile", "certfile", "keyfile", "verify", "server_name_indication"]
    static let commonNames = ["heartbeat", "connection_timeout", "publish_timeout"]

    func finish(isTLS: Bool) throws {
        guard let name = items.keys.sorted().first else { return }
        if !isTLS && Self.tlsNames.contains(name) {
            throw TransportError("'\(url)': \(name) is a TLS setting; TLS needs an amqps:// URL")
        }
        let known = (Self.commonNames + (isTLS ? Self.tlsNames : [])).joined(separator: ", ")
        throw TransportError("'\(url)': unknown query parameter '\(name)' (known: \(known))")
    }
}
