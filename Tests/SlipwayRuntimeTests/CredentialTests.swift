import InMemoryLogging
import Foundation
import Logging
@testable import Slipway
import Testing

/// Where the broker URL and its password come from, and that no error or log line ever shows the password.
@Suite("AMQP credentials and URL options")
struct CredentialTests {
    static let secret = "pw-\(UUID().uuidString.prefix(8))"

    static func error(_ url: String, environment: [String: String] = [:]) -> String? {
        do {
            _ = try AMQPConfiguration(url: url, environment: environment)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test("errors about a bad URL never show its password, even when the URL cannot be parsed")
    func badURLErrorsAreRedacted() throws {
        let urls = [
            "http://guest:\(Self.secret)@127.0.0.1/",
            "amqp://guest:\(Self.secret)@127.0.0.1:notaport/",
            "amqp://guest:\(Self.secret)@[::1/",
            "guest:\(Self.secret)@127.0.0.1:5672/",
            "amqps://guest:\(Self.secret)@127.0.0.1/?verifi=verify_none",
            "amqp://guest:\(Self.secret)@127.0.0.1/?cacertfile=/etc/hostname",
            "amqps://guest:\(Self.secret)@127.0.0.1/?cacertfile=/no/such/ca.pem",
            "amqps://guest:\(Self.secret)@127.0.0.1/?verify=maybe",
        ]
        for url in urls {
            let message = try #require(Self.error(url), "\(url) was accepted")
            #expect(!message.contains(Self.secret), "\(message)")
        }
    }

    @Test("a misspelt or misplaced TLS option is an error, not a quietly weaker connection")
    func unknownOptionsAreErrors() throws {
        let typo = try #require(Self.error("amqps://u:p@h/?verifi=verify_none"))
        #expect(typo.contains("unknown query parameter 'verifi'"), "\(typo)")
        let plain = try #require(Self.error("amqp://u:p@h/?cacertfile=/etc/hostname"))
        #expect(plain.contains("TLS needs an amqps:// URL"), "\(plain)")
        let missing = try #require(Self.error("amqps://u:p@h/?cacertfile=/no/such/ca.pem"))
        #expect(missing.contains("cacertfile: cannot read '/no/such/ca.pem'"), "\(missing)")
        let halfKey = try #require(Self.error("amqps://u:p@h/?certfile=/etc/hostname"))
        #expect(halfKey.contains("needs both certfile and keyfile"), "\(halfKey)")
    }

    @Test("amqps:// checks the broker by default, on port 5671, and says amqps when redacted")
    func tlsDefaults() throws {
        let configuration = try AMQPConfiguration(url: "amqps://app:\(Self.secret)@rabbit.example.org/orders", environment: [:])
        #expect(configuration.port == 5671)
        #expect(configuration.tls == AMQPConfiguration.TLS(verifyPeer: true))
        #expect(configuration.redactedURL == "amqps://app:***@rabbit.example.org:5671/orders")
        #expect(try AMQPConfiguration(url: "amqp://u:p@h/", environment: [:]).tls == nil)

        let options = try AMQPConfiguration(
            url: "amqps://u:p@h:5700/?verify=verify_none&server_name_indication=rabbit.internal&heartbeat=10",
            environment: ["SLIPWAY_AMQP_CA_FILE": "/etc/hostname"])
        #expect(options.tls == AMQPConfiguration.TLS(caFile: "/etc/hostname", verifyPeer: false, serverName: "rabbit.internal"))
        #expect(options.heartbeatSeconds == 10)
        // The URL's own file wins over the environment's.
        let both = try AMQPConfiguration(
            url: "amqps://u:p@h/?cacertfile=/etc/passwd", environment: ["SLIPWAY_AMQP_CA_FILE": "/etc/hostname"])
        #expect(both.tls?.caFile == "/etc/passwd")
    }

    @Test("a URL's parts are read as RabbitMQ's URI spec says, percent-decoded")
    func urlParts() throws {
        func parts(_ url: String) throws -> String {
            let c = try AMQPConfiguration(url: url, environment: [:])
            return "\(c.user)|\(c.password)|\(c.host)|\(c.port)|\(c.virtualHost)"
        }
        #expect(try parts("amqp://") == "guest|guest|127.0.0.1|5672|/")
        #expect(try parts("amqp://h") == "guest|guest|h|5672|/")
        #expect(try parts("AMQP://app@h:5700") == "app|guest|h|5700|/")
        #expect(try parts("amqp://app:@h/") == "app||h|5672|/")
        #expect(try parts("amqp://a%40b:p%3Aw%2Fd%25@h/%2F") == "a@b|p:w/d%|h|5672|/")
        #expect(try parts("amqp://u:p@h/orders%2Feu") == "u|p|h|5672|orders/eu")
        #expect(try parts("amqp://u:p@[::1]:5800/v") == "u|p|::1|5800|v")
        #expect(try parts("amqp://u:p@[fe80::1]/") == "u|p|fe80::1|5672|/")
        #expect(try AMQPConfiguration(url: "amqp://u:p@[::1]:5800/v", environment: [:]).redactedURL == "amqp://u:***@[::1]:5800/v")
        #expect(try parts("amqps://u:p@h?heartbeat=5") == "u|p|h|5671|/")
        #expect(try AMQPConfiguration(url: "amqp://h/?heartbeat=7&", environment: [:]).heartbeatSeconds == 7)
        // No librabbitmq request may wait without end: 15 s unless the URL says otherwise.
        #expect(try AMQPConfiguration(url: "amqp://h/", environment: [:]).rpcTimeout == .seconds(15))
        #expect(try AMQPConfiguration(url: "amqp://h/?rpc_timeout=2500", environment: [:]).rpcTimeout == .milliseconds(2500))

        for (url, reason) in [
            ("amqp://u:p@h:0/", "port must be a number from 1 to 65535"),
            ("amqp://u:p@h:65536/", "port must be a number from 1 to 65535"),
            ("amqp://u:p@h:5672x/", "port must be a number from 1 to 65535"),
            ("amqp://u:p@[::1/", "needs its closing ']'"),
            ("amqp://u:p@[::1]x/", "only ':port' may follow"),
            ("amqp://u:p%zz@h/", "bad percent-encoding in the password"),
            ("amqp://u:p@h/my vhost", "must be percent-encoded"),
            ("amqp://h/?heartbeat", "query parameter 'heartbeat' needs a value"),
            ("amqp://h/?heartbeat=1&heartbeat=2", "query parameter 'heartbeat' appears twice"),
            ("amqp://h/?rpc_timeout=0", "a positive number of milliseconds"),
            ("http://h/", "is not an AMQP URL"),
        ] {
            let message = try #require(Self.error(url), "\(url) was accepted")
            #expect(message.contains(reason), "\(url): \(message)")
        }
        #expect(AMQPConfiguration.redacted("amqp://u:\(Self.secret)@h:1/v?heartbeat=5") == "amqp://u:***@h:1/v?heartbeat=5")
        #expect(AMQPConfiguration.redacted("amqp://u@h/") == "amqp://u@h/")
        #expect(AMQPConfiguration.redacted("amqp://u:\(Self.secret)@h:x/") == "amqp://***@h:x/")
    }

    @Test("the URL comes from SLIPWAY_AMQP_URL or from the file SLIPWAY_AMQP_URL_FILE names, never both")
    func urlSources() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-url-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        let url = "amqps://app:\(Self.secret)@rabbit.example.org/"
        try "\(url)\n".write(to: file, atomically: true, encoding: .utf8)

        #expect(try AMQPConfiguration.url(fromEnvironment: ["SLIPWAY_AMQP_URL_FILE": file.path]) == url)
        #expect(try AMQPConfiguration.url(fromEnvironment: ["SLIPWAY_AMQP_URL": url]) == url)
        #expect(try AMQPConfiguration.url(fromEnvironment: [:]) == nil)
        let options = try ProcessorOptions(arguments: [], environment: ["SLIPWAY_AMQP_URL_FILE": file.path])
        #expect(options.amqpURL == url)
        let fromFile = try AMQPConfiguration.fromEnvironment(environment: ["SLIPWAY_AMQP_URL_FILE": file.path])
        #expect(fromFile.password == Self.secret)

        #expect(throws: (any Error).self) {
            try AMQPConfiguration.url(fromEnvironment: ["SLIPWAY_AMQP_URL": url, "SLIPWAY_AMQP_URL_FILE": file.path])
        }
        #expect(throws: (any Error).self) {
            try ProcessorOptions(arguments: [], environment: ["SLIPWAY_AMQP_URL": url, "SLIPWAY_AMQP_URL_FILE": file.path])
        }
        try "amqp://a:b@h/\namqp://c:d@h/\n".write(to: file, atomically: true, encoding: .utf8)
        do {
            _ = try AMQPConfiguration.url(fromEnvironment: ["SLIPWAY_AMQP_URL_FILE": file.path])
            Issue.record("a file of two lines was accepted")
        } catch {
            #expect("\(error)".contains("must hold one line"))
            #expect(!"\(error)".contains("a:b"), "the file's contents are secret: \(error)")
        }
    }

    @Test("a publisher that cannot reach the broker logs and fails without the password, over amqp and amqps")
    func connectionFailuresAreRedacted() async throws {
        for scheme in ["amqp", "amqps"] {
            // Port 1 on loopback: nothing listens there, so every attempt is refused.
            var configuration = try AMQPConfiguration(url: "\(scheme)://guest:\(Self.secret)@127.0.0.1:1/", environment: [:])
            configuration.publishDeadline = .milliseconds(500)
            let logs = Logs()
            let transport = AMQPTransport(configuration: configuration, logger: logs.logger())
            let message = OutgoingMessage(exchange: "", routingKey: "nowhere", body: Array("x".utf8))
            do {
                try await transport.publish([message])
                Issue.record("\(scheme): a publish to a closed port succeeded")
            } catch {
                #expect("\(error)".contains("cannot reach RabbitMQ at 127.0.0.1:1"), "\(error)")
                #expect(!"\(error)".contains(Self.secret))
            }
            await transport.shutdown()
            #expect(!logs.all.isEmpty, "\(scheme): the failed attempts are logged")
            for line in logs.all { #expect(!line.contains(Self.secret), "\(line)") }
        }
    }
}

/// A cluster's nodes as a list of URLs: how the list is read, and that no password of any of them shows.
@Suite("AMQP URL lists (a cluster's nodes)")
struct URLListTests {
    static let secret = CredentialTests.secret

    @Test("a comma-separated list of URLs names a cluster's nodes, in order, with one user, password and vhost")
    func listOfURLs() throws {
        let list = "amqp://app:\(Self.secret)@10.0.0.1:5672/orders, amqp://app:\(Self.secret)@10.0.0.2/orders,"
            + "AMQP://app:\(Self.secret)@[::1]:5673/orders"
        let configuration = try AMQPConfiguration(url: list, environment: [:])
        #expect(configuration.nodes.map(\.description) == ["10.0.0.1:5672", "10.0.0.2:5672", "[::1]:5673"])
        #expect(configuration.host == "10.0.0.1" && configuration.port == 5672)
        #expect(configuration.password == Self.secret && configuration.virtualHost == "orders")
        #expect(configuration.nodeOrder == .shuffled)
        #expect(
            configuration.redactedURL
                == "amqp://app:***@10.0.0.1:5672/orders,amqp://app:***@10.0.0.2:5672/orders,amqp://app:***@[::1]:5673/orders")
        // A comma that does not start another URL belongs to its URL (RabbitMQ allows one in a password).
        let comma = try AMQPConfiguration(url: "amqp://u:a,b@h1:1/,amqp://u:a,b@h2:2/", environment: [:])
        #expect(comma.password == "a,b" && comma.nodes.map(\.description) == ["h1:1", "h2:2"])
        #expect(AMQPConfiguration.redacted("amqp://u:a,b@h1:1/,amqp://u:a,b@h2:2/") == "amqp://u:***@h1:1/,amqp://u:***@h2:2/")
        let listed = try AMQPConfiguration(url: list, environment: ["SLIPWAY_AMQP_NODE_ORDER": "listed"])
        #expect(listed.nodeOrder == .listed)
    }

    @Test("a list whose URLs differ in more than host and port, an empty address, or one URL with several hosts is refused, without a password")
    func badLists() throws {
        let cases = [
            ("amqp://app:\(Self.secret)@h1/,amqp://app:other-\(Self.secret)@h2/", "address 2 has another password"),
            ("amqp://app:\(Self.secret)@h1/a,amqp://app:\(Self.secret)@h2/b", "another vhost"),
            ("amqp://app:\(Self.secret)@h1/,amqps://app:\(Self.secret)@h2/", "another scheme"),
            ("amqp://app:\(Self.secret)@h1/,amqp://app:\(Self.secret)@h2/?heartbeat=5", "another query"),
            ("amqp://app:\(Self.secret)@h1/,", "an empty address"),
            ("amqp://app:\(Self.secret)@h1:5672,h2:5673/", "one URL names several hosts"),
            ("amqp://app:\(Self.secret)@h1/,amqp://app:\(Self.secret)@h2:x/", "port"),
            ("amqp://app:\(Self.secret)@h1/,amqp://app:\(Self.secret)@h2/?verifi=1", "unknown query parameter"),
        ]
        for (list, reason) in cases {
            let message = try #require(CredentialTests.error(list), "\(list) was accepted")
            #expect(message.contains(reason), "\(message)")
            #expect(!message.contains(Self.secret), "\(message)")
        }
        #expect(CredentialTests.error("amqp://u:p@h/", environment: ["SLIPWAY_AMQP_NODE_ORDER": "nearest"]) != nil)
    }

    @Test("the list comes from --amqp-url, SLIPWAY_AMQP_URL(S) or a file (a URL per line in SLIPWAY_AMQP_URLS_FILE), one source at a time")
    func listSources() throws {
        let list = "amqp://u:\(Self.secret)@h1/,amqp://u:\(Self.secret)@h2/"
        #expect(try AMQPConfiguration.url(fromEnvironment: ["SLIPWAY_AMQP_URLS": list]) == list)
        #expect(try AMQPConfiguration.url(fromEnvironment: ["SLIPWAY_AMQP_URL": list]) == list)
        #expect(try ProcessorOptions(arguments: ["--amqp-url", list], environment: [:]).amqpURL == list)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-urls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        try "amqp://u:\(Self.secret)@h1/\namqp://u:\(Self.secret)@h2/\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(try AMQPConfiguration.url(fromEnvironment: ["SLIPWAY_AMQP_URLS_FILE": file.path]) == list)
        try "\(list)\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(try AMQPConfiguration.url(fromEnvironment: ["SLIPWAY_AMQP_URL_FILE": file.path]) == list)
        do {
            _ = try AMQPConfiguration.url(fromEnvironment: ["SLIPWAY_AMQP_URLS": list, "SLIPWAY_AMQP_URL": list])
            Issue.record("two sources were accepted")
        } catch {
            #expect("\(error)".contains("both SLIPWAY_AMQP_URL and SLIPWAY_AMQP_URLS are set"), "\(error)")
            #expect(!"\(error)".contains(Self.secret))
        }
    }

    @Test("a transport with no node reachable fails naming every node, never a password")
    func noNodeAnswers() async throws {
        // Ports 1 and 2 on loopback: nothing listens there.
        var configuration = try AMQPConfiguration(
            url: "amqp://guest:\(Self.secret)@127.0.0.1:1/,amqp://guest:\(Self.secret)@127.0.0.1:2/", environment: [:])
        configuration.publishDeadline = .milliseconds(500)
        let logs = Logs()
        let transport = AMQPTransport(configuration: configuration, logger: logs.logger())
        do {
            try await transport.publish([OutgoingMessage(exchange: "", routingKey: "nowhere", body: Array("x".utf8))])
            Issue.record("a publish with no node up succeeded")
        } catch {
            #expect("\(error)".contains("no node of the cluster answered"), "\(error)")
            #expect("\(error)".contains("127.0.0.1:1") && "\(error)".contains("127.0.0.1:2"), "\(error)")
            #expect(!"\(error)".contains(Self.secret))
        }
        await transport.shutdown()
        for line in logs.all { #expect(!line.contains(Self.secret), "\(line)") }
    }

    @Test("--queue-type and SLIPWAY_QUEUE_TYPE choose classic or quorum queues; classic by default; anything else is an error")
    func queueTypeOptions() throws {
        #expect(try ProcessorOptions(arguments: [], environment: [:]).queueType == nil)
        #expect(ProcessorConfiguration().queueType == .classic)
        #expect(try ProcessorOptions(arguments: [], environment: ["SLIPWAY_QUEUE_TYPE": "Quorum"]).queueType == .quorum)
        let flag = try ProcessorOptions(arguments: ["--queue-type", "classic"], environment: ["SLIPWAY_QUEUE_TYPE": "quorum"])
        #expect(flag.queueType == .classic)
        var configuration = ProcessorConfiguration()
        try ProcessorOptions(arguments: ["--queue-type", "quorum"], environment: [:]).apply(to: &configuration)
        #expect(configuration.queueType == .quorum)
        #expect(throws: (any Error).self) { try ProcessorOptions(arguments: ["--queue-type", "stream"], environment: [:]) }
        #expect(try QueueType.fromEnvironment([:]) == .classic)
    }
}

/// Keeps every log line (message and metadata).
final class Logs: Sendable {
    private let handler = InMemoryLogHandler()
    var all: [String] { handler.entries.map { "\($0.level) \($0.message) \($0.metadata)" } }

    func logger() -> Logger {
        var handler = self.handler
        handler.logLevel = .trace
        return Logger(label: "test.logs") { _ in handler }
    }
}
