import Foundation
@testable import SlipwayAMQP
import SlipwayTransport
import Testing

@Suite("What kind of failure a TransportError is")
struct TransportErrorCodeTests {
    @Test("a queue type other than classic or quorum is a bad configuration, for good")
    func queueTypeParsing() throws {
        let error = #expect(throws: TransportError.self) { try QueueType(parsing: "stream", from: "--queue-type") }
        #expect(error?.code == .badConfiguration)
        #expect(error?.isPermanent == true)
        #expect(try QueueType(parsing: "Quorum", from: "--queue-type") == .quorum)
    }

    @Test(
        "URLs that are not AMQP, or hold an unknown or repeated query parameter, are a bad configuration",
        arguments: [
            "http://guest:guest@localhost:5672/", "amqp://guest:guest@host1,host2:5672/",
            "amqp://guest:guest@localhost:5672/?colour=blue", "amqp://guest:guest@localhost:5672/?heartbeat=5&heartbeat=6",
            "amqp://guest:guest@localhost:5672/?cacertfile=/tmp/ca.pem",
        ])
    func badURLs(url: String) {
        let error = #expect(throws: TransportError.self) { try AMQPConfiguration(url: url, environment: [:]) }
        #expect(error?.code == .badConfiguration)
    }

    @Test("the node order and the TLS files come as values, or from the environment for the tools without settings")
    func nodeOrderAndTLSFiles() throws {
        let list = "amqps://u:p@h1:1/,amqps://u:p@h2:2/"
        // Any readable file: a TLS file is only checked to be readable until a connection uses it.
        let ca = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-ca-\(getpid()).pem").path
        try Data("not used".utf8).write(to: URL(fileURLWithPath: ca))
        defer { try? FileManager.default.removeItem(atPath: ca) }
        let given = try AMQPConfiguration(url: list, nodeOrder: .listed, tlsFiles: .init(caFile: ca))
        #expect(given.nodeOrder == .listed)
        #expect(given.tls?.caFile == ca)
        let fromEnvironment = try AMQPConfiguration(
            url: list, environment: ["SLIPWAY_AMQP_NODE_ORDER": "Listed", "SLIPWAY_AMQP_CA_FILE": ca])
        #expect(fromEnvironment == given)
        #expect(try AMQPConfiguration(url: list, environment: [:]).nodeOrder == .shuffled)
        let error = #expect(throws: TransportError.self) {
            try AMQPConfiguration(url: list, environment: ["SLIPWAY_AMQP_NODE_ORDER": "nearest"])
        }
        #expect(error?.code == .badConfiguration)
        #expect(error?.message.contains("SLIPWAY_AMQP_NODE_ORDER") == true)
        let unreadable = #expect(throws: TransportError.self) {
            try AMQPConfiguration(url: list, nodeOrder: .shuffled, tlsFiles: .init(caFile: "/nonexistent/ca.pem"))
        }
        #expect(unreadable?.message.contains("SLIPWAY_AMQP_CA_FILE") == true)
    }

    @Test("two broker URL variables set at once are a bad configuration")
    func twoURLVariables() {
        let error = #expect(throws: TransportError.self) {
            try AMQPConfiguration.url(fromEnvironment: ["SLIPWAY_AMQP_URL": "amqp://a", "SLIPWAY_AMQP_URLS": "amqp://b"])
        }
        #expect(error?.code == .badConfiguration)
    }

    @Test("RabbitMQ's 'inequivalent arg x-queue-type' becomes a queue type mismatch, for good, that says what to do")
    func queueTypeMismatch() {
        let refusal = TransportError(
            .refusedByBroker,
            "declaring queue 'q': the broker refused: 406 PRECONDITION_FAILED - inequivalent arg 'x-queue-type'",
            permanent: true)
        let error = AMQPConnection.queueTypeMismatch("q", declared: .quorum, error: refusal)
        #expect(error.code == .queueTypeMismatch)
        #expect(error.isPermanent)
        #expect(error.message.contains("exists as a classic queue"))
    }

    @Test("the description is the message alone, as logs and tests read it; a code describes itself in kebab case, as park codes do")
    func description() {
        let error = TransportError(.publishTimedOut, "no publisher confirm within 30 seconds")
        #expect("\(error)" == "no publisher confirm within 30 seconds")
        #expect("\(TransportError.Code.publishTimedOut)" == "publish-timed-out")
        #expect(TransportError.Code.publishTimedOut != .publishRejected)
    }

    @Test("no node answering is 'unreachable', for one node or a list")
    func unreachable() throws {
        // Port 1 on the loopback: refused at once, no broker needed.
        for url in ["amqp://guest:guest@127.0.0.1:1/", "amqp://guest:guest@127.0.0.1:1/,amqp://guest:guest@127.0.0.1:2/"] {
            let nodes = AMQPNodeRotation(try AMQPConfiguration(url: url, environment: [:]))
            let error = #expect(throws: TransportError.self) { try nodes.connect() }
            #expect(error?.code == .unreachable)
            #expect(error?.isPermanent == false)
        }
    }
}
