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
