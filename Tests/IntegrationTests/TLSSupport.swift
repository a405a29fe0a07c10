import InMemoryLogging
import Foundation
import Logging
import Testing

/// A throwaway PKI made with the openssl CLI in a temporary folder: a CA, a server certificate it signed for
/// DNS:localhost and IP:127.0.0.1 and a client certificate it signed; and a client certificate from another CA.
struct TestPKI: Sendable {
    let directory: URL
    var caFile: String { path("ca.pem") }
    var serverCertFile: String { path("server.pem") }
    var serverKeyFile: String { path("server.key") }
    var clientCertFile: String { path("client.pem") }
    var clientKeyFile: String { path("client.key") }
    var strangerCertFile: String { path("stranger.pem") }
    var strangerKeyFile: String { path("stranger.key") }

    static func make() async throws -> TestPKI {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("slipway-tests/tls-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let pki = TestPKI(directory: directory)
        let extensions = """
            subjectAltName = DNS:localhost, IP:127.0.0.1
            basicConstraints = CA:FALSE
            keyUsage = digitalSignature, keyEncipherment
            extendedKeyUsage = serverAuth
            """
        try extensions.write(to: directory.appendingPathComponent("server.ext"), atomically: true, encoding: .utf8)
        try "extendedKeyUsage = clientAuth\n".write(
            to: directory.appendingPathComponent("client.ext"), atomically: true, encoding: .utf8)
        try await pki.makeCA("ca", name: "Slipway Test CA")
        try await pki.issue("server", subject: "/CN=localhost", by: "ca")
        try await pki.issue("client", subject: "/CN=slipway-processor", by: "ca")
        try await pki.makeCA("stranger-ca", name: "Some Other CA")
        try await pki.issue("stranger", subject: "/CN=slipway-processor", by: "stranger-ca", extensions: "client")
        return pki
    }

    private func makeCA(_ name: String, name commonName: String) async throws {
        try await openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=\(commonName)",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", path("\(name).key"), "-out", path("\(name).pem"))
    }

    /// `NAME.pem` and `NAME.key`, signed by the CA `ca`, with the extensions in `NAME.ext` (or `extensions.ext`).
    private func issue(_ name: String, subject: String, by ca: String, extensions: String? = nil) async throws {
        try await openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", path("\(name).key"),
            "-out", path("\(name).csr"))
        try await openssl(
            "x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(ca).pem"), "-CAkey", path("\(ca).key"),
            "-CAcreateserial", "-days", "2", "-extfile", path("\(extensions ?? name).ext"), "-out", path("\(name).pem"))
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func openssl(_ arguments: String...) async throws {
        let result = try await runToEnd("/usr/bin/openssl", Array(arguments), mergingErrors: true)
        guard result.status == 0 else {
            throw HarnessError("openssl \(arguments.prefix(2).joined(separator: " ")) failed: \(result.output)")
        }
    }
}

/// An amqps listener for a `PrivateBroker`: scripts/broker.sh adds it when given these files.
struct BrokerTLS: Sendable {
    let port: Int
    let pki: TestPKI
    /// Whether a client certificate, when one is sent, must come from the test CA.
    var verifyClients = false

    var brokerEnvironment: [String: String] {
        [
            "SLIPWAY_BROKER_TLS_PORT": String(port), "SLIPWAY_BROKER_TLS_CA": pki.caFile,
            "SLIPWAY_BROKER_TLS_CERT": pki.serverCertFile, "SLIPWAY_BROKER_TLS_KEY": pki.serverKeyFile,
            "SLIPWAY_BROKER_TLS_VERIFY_CLIENTS": verifyClients ? "1" : "0",
        ]
    }
}

extension PrivateBroker {
    /// A fresh node on `basePort + portOffset`, with TLS on the port after it.
    static func startWithTLS(portOffset: Int, pki: TestPKI, verifyClients: Bool = false) async throws -> PrivateBroker {
        try await start(
            port: basePort + portOffset,
            tls: BrokerTLS(port: basePort + portOffset + 1, pki: pki, verifyClients: verifyClients))
    }

    /// For each client connection the node has, whether it came over TLS (rabbitmqctl list_connections ssl).
    func connectionsOverTLS() async throws -> [Bool] {
        let result = try await runToEnd(
            "/usr/sbin/rabbitmqctl", ["-q", "-n", "slipway\(port)@localhost", "list_connections", "--no-table-headers", "ssl"],
            mergingErrors: true)
        guard result.status == 0 else { throw HarnessError("rabbitmqctl list_connections failed: \(result.output)") }
        return result.output.split(whereSeparator: \.isNewline).compactMap { ["true": true, "false": false][String($0)] }
    }
}

/// Keeps every log line (level, message and metadata) so a test can read what was logged.
final class CapturedLogs: Sendable {
    private let handler = InMemoryLogHandler()
    var all: [String] { handler.entries.map { "\($0.level) \($0.message) \($0.metadata)" } }

    func logger(label: String = "test.captured") -> Logger {
        var handler = self.handler
        handler.logLevel = .trace
        return Logger(label: label) { _ in handler }
    }
}
