import Foundation
import SlipwayTransport

/// Where and how to reach RabbitMQ. Filled from an AMQP URL: `amqp://user:pass@host:port/vhost`, or
/// `amqps://user:pass@host:port/vhost?cacertfile=...` for TLS (see `TLS` and docs/security.md); or, for a cluster, from
/// several URLs separated by commas, which differ only in host and port (see `nodes` and docs/deploy.md).
public struct AMQPConfiguration: Sendable, Hashable {
    /// A broker node's address.
    public struct Node: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// The nodes of the cluster, as listed (at least one). A connection goes to the first that answers, starting at
    /// the node `nodeOrder` says; when it is lost, the next connection starts at the node after it.
    public var nodes: [Node]
    /// Where connections start in `nodes`.
    public var nodeOrder = NodeOrder.shuffled
    /// The type of the durable queues this client declares (`--queue-type`, `SLIPWAY_QUEUE_TYPE`).
    public var queueType = QueueType.classic

    public enum NodeOrder: String, Sendable, Hashable {
        /// Each client starts at a node of its own, picked at random, so that instances spread over the cluster.
        case shuffled
        /// Every client starts at the first node listed (the nearest one, say) and moves on only when it fails.
        case listed

        /// `shuffled` or `listed`, any case; `source` names the setting in the error.
        public init(parsing text: String, from source: String) throws {
            guard let order = NodeOrder(rawValue: text.lowercased()) else {
                throw TransportError(.badConfiguration, "\(source) must be shuffled or listed, got '\(text)'")
            }
            self = order
        }

        /// `SLIPWAY_AMQP_NODE_ORDER`, or `shuffled` when it is unset.
        public init(environment: [String: String]) throws {
            guard let text = environment["SLIPWAY_AMQP_NODE_ORDER"], !text.isEmpty else {
                self = .shuffled
                return
            }
            try self.init(parsing: text, from: "SLIPWAY_AMQP_NODE_ORDER")
        }
    }

    /// The first node's host.
    public var host: String {
        get { nodes[0].host }
        set { nodes[0].host = newValue }
    }
    /// The first node's port.
    public var port: Int {
        get { nodes[0].port }
        set { nodes[0].port = newValue }
    }
    public var user: String
    public var password: String
    public var virtualHost: String
    /// TLS settings for an `amqps://` URL; nil for plain `amqp://`.
    public var tls: TLS?
    /// Seconds between heartbeats; a broker that stays silent for two of them counts as gone.
    public var heartbeatSeconds: Int
    /// How long opening the socket, and then the AMQP handshake, may each take.
    public var connectTimeout: Duration
    /// How long the broker may take to answer a request (opening a channel, a declare, a consume): past it the
    /// connection counts as lost, and is opened again.
    public var rpcTimeout: Duration
    /// Backoff between reconnection attempts: doubles from `initial` up to `max`.
    public var reconnectBackoff: (initial: Duration, max: Duration)
    /// How long a publish keeps retrying through a lost connection before it gives up.
    public var publishDeadline: Duration

    public static let defaultURL = "amqp://guest:guest@127.0.0.1:5672/"

    /// Parses `url`: one AMQP URL, or several separated by commas (a cluster's nodes) that differ only in host and
    /// port. `tlsFiles` are the TLS files an `amqps://` URL does not name. A processor reads both from its settings.
    public init(url: String, nodeOrder: NodeOrder, tlsFiles: TLSFiles) throws {
        let addresses = try Self.split(url)
        try self.init(single: addresses[0], tlsFiles: tlsFiles)
        for (index, address) in addresses.enumerated().dropFirst() {
            let other = try AMQPConfiguration(single: address, tlsFiles: tlsFiles)
            if let difference = settingsDifference(other) {
                throw TransportError(
                    .badConfiguration,
                    "'\(Self.redacted(address))': the URLs of a list must differ only in host and port, but address "
                        + "\(index + 1) has another \(difference) than the first")
            }
            nodes.append(contentsOf: other.nodes)
        }
        self.nodeOrder = nodeOrder
    }

    /// The same, with the node order and the TLS files from `environment` (`SLIPWAY_AMQP_NODE_ORDER`,
    /// `SLIPWAY_AMQP_CA_FILE`, `SLIPWAY_AMQP_CERT_FILE`, `SLIPWAY_AMQP_KEY_FILE`): for the tools that have no settings
    /// table (`slip`, the bench).
    public init(
        url: String = AMQPConfiguration.defaultURL,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        try self.init(
            url: url, nodeOrder: try NodeOrder(environment: environment), tlsFiles: TLSFiles(environment: environment))
    }

    /// A URL list split into its URLs: at each comma followed by `amqp://` or `amqps://` (a comma elsewhere, as in
    /// a password, belongs to its URL).
    public static func split(_ list: String) throws -> [String] {
        let addresses = pieces(list)
        if addresses.contains(where: \.isEmpty) {
            throw TransportError(.badConfiguration, "'\(redacted(list))': an empty address in the list (a comma too many?)")
        }
        return addresses
    }

    private static func pieces(_ list: String) -> [String] {
        var addresses: [String] = []
        for piece in list.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = piece.trimmingCharacters(in: .whitespaces)
            let lowered = trimmed.lowercased()
            if addresses.isEmpty || trimmed.isEmpty || lowered.hasPrefix("amqp://") || lowered.hasPrefix("amqps://") {
                addresses.append(trimmed)
            } else {
                addresses[addresses.count - 1] += "," + piece
            }
        }
        return addresses
    }

    /// What, other than the node, differs from `other`'s settings; nil if nothing does.
    private func settingsDifference(_ other: AMQPConfiguration) -> String? {
        if (tls == nil) != (other.tls == nil) { return "scheme" }
        if user != other.user { return "user" }
        if password != other.password { return "password" }
        if virtualHost != other.virtualHost { return "vhost" }
        if tls != other.tls { return "TLS setting" }
        if heartbeatSeconds != other.heartbeatSeconds || connectTimeout != other.connectTimeout || rpcTimeout != other.rpcTimeout
            || publishDeadline != other.publishDeadline
        {
            return "query"
        }
        return nil
    }

    /// One URL.
    private init(single url: String, tlsFiles: TLSFiles) throws {
        let uri: AMQPURI
        do {
            uri = try AMQPURI(url)
        } catch .notAMQP {
            throw TransportError(
                .badConfiguration,
                "'\(Self.redacted(url))' is not an AMQP URL (amqp://user:pass@host:port/vhost, or amqps:// for TLS)")
        } catch .malformed(let reason) {
            throw TransportError(.badConfiguration, "'\(Self.redacted(url))' is not a valid AMQP URL: \(reason)")
        }
        let isTLS = uri.scheme == "amqps"
        guard !uri.host.contains(",") else {
            throw TransportError(
                .badConfiguration,
                "'\(Self.redacted(url))': one URL names several hosts; list a cluster's nodes as whole URLs separated by "
                    + "commas (amqp://user:pass@host1:5672/vhost,amqp://user:pass@host2:5672/vhost)")
        }
        nodes = [Node(host: uri.host.isEmpty ? "127.0.0.1" : uri.host, port: uri.port ?? (isTLS ? 5671 : 5672))]
        user = uri.user ?? "guest"
        password = uri.password ?? "guest"
        // AMQP URI spec: an empty path means the default vhost "/"; "/%2F" names "/" explicitly.
        virtualHost = uri.virtualHost.flatMap { $0.isEmpty ? nil : $0 } ?? "/"
        heartbeatSeconds = 30
        connectTimeout = .seconds(5)
        rpcTimeout = .seconds(15)
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
        if let timeout = try query.take("rpc_timeout", as: "a positive number of milliseconds", positive) {
            rpcTimeout = .milliseconds(timeout)
        }
        // How long a publish may wait for its confirm (through reconnects) before the caller is told it failed; time
        // the broker spends blocking publishers (a resource alarm) does not count.
        if let timeout = try query.take("publish_timeout", as: "a positive number of milliseconds", positive) {
            publishDeadline = .milliseconds(timeout)
        }
        tls = isTLS ? try TLS(query: query, files: tlsFiles) : nil
        try query.finish(isTLS: isTLS)
    }

    /// The URL (or URL list) from the environment (`SLIPWAY_AMQP_URL`, `SLIPWAY_AMQP_URLS` or the file
    /// `SLIPWAY_AMQP_URL_FILE` or `SLIPWAY_AMQP_URLS_FILE` names), or `override` if given, or the default.
    public static func fromEnvironment(
        override: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> AMQPConfiguration {
        try AMQPConfiguration(url: override ?? url(fromEnvironment: environment) ?? defaultURL, environment: environment)
    }

    /// For logs and errors: the URL without its password and its query; `amqps` for TLS. A URL per node, separated
    /// by commas, for a cluster.
    public var redactedURL: String {
        nodes.map(redactedURL(of:)).joined(separator: ",")
    }

    /// One node's URL, without its password and its query.
    public func redactedURL(of node: Node) -> String {
        let pathCharacters = CharacterSet.urlPathAllowed.subtracting(["/"])
        let vhost = virtualHost == "/" ? "" : virtualHost.addingPercentEncoding(withAllowedCharacters: pathCharacters) ?? ""
        return "\(tls == nil ? "amqp" : "amqps")://\(user):***@\(node)/\(vhost)"
    }

    /// Any string that might be an AMQP URL or a list of them, with whatever could be a password masked: a parseable
    /// URL loses its password; in anything else, all before the last "@" (user and password) is masked.
    public static func redacted(_ url: String) -> String {
        if url.contains(",") {
            let addresses = pieces(url)
            if addresses.count > 1 { return addresses.map(redactedAddress).joined(separator: ",") }
        }
        return redactedAddress(url)
    }

    private static func redactedAddress(_ url: String) -> String {
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
            && lhs.nodeOrder == rhs.nodeOrder && lhs.queueType == rhs.queueType
    }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(redactedURL)
        hasher.combine(tls)
        hasher.combine(queueType)
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
                throw TransportError(.badConfiguration, "'\(url)': query parameter '\(name)' appears twice")
            }
            guard !value.isEmpty else {
                throw TransportError(.badConfiguration, "'\(url)': query parameter '\(name)' needs a value")
            }
            items[name] = value
        }
    }

    func take(_ name: String) -> String? { items.removeValue(forKey: name) }

    func take<T>(_ name: String, as expected: String, _ parse: (String) -> T?) throws -> T? {
        guard let text = take(name) else { return nil }
        guard let value = parse(text) else {
            throw TransportError(.badConfiguration, "'\(url)': \(name) must be \(expected), got '\(text)'")
        }
        return value
    }

    static let tlsNames = ["cacertfile", "certfile", "keyfile", "verify", "server_name_indication"]
    static let commonNames = ["heartbeat", "connection_timeout", "publish_timeout"]

    func finish(isTLS: Bool) throws {
        guard let name = items.keys.sorted().first else { return }
        if !isTLS && Self.tlsNames.contains(name) {
            throw TransportError(.badConfiguration, "'\(url)': \(name) is a TLS setting; TLS needs an amqps:// URL")
        }
        let known = (Self.commonNames + (isTLS ? Self.tlsNames : [])).joined(separator: ", ")
        throw TransportError(.badConfiguration, "'\(url)': unknown query parameter '\(name)' (known: \(known))")
    }
}
