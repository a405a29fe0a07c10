import Configuration
@testable import Slipway
import Testing

@Suite("The AMQP client's node order and TLS files, read through the processor's settings")
struct AMQPSettingsTests {
    @Test("from the environment, as every setting of the table")
    func fromEnvironment() throws {
        let options = try ProcessorOptions(
            arguments: [],
            environment: [
                "SLIPWAY_AMQP_NODE_ORDER": "Listed", "SLIPWAY_AMQP_CA_FILE": "/ca.pem",
                "SLIPWAY_AMQP_CERT_FILE": "/cert.pem", "SLIPWAY_AMQP_KEY_FILE": "/key.pem",
            ])
        #expect(options.amqpNodeOrder == .listed)
        #expect(options.amqpTLSFiles == .init(caFile: "/ca.pem", certFile: "/cert.pem", keyFile: "/key.pem"))
        let none = try ProcessorOptions(arguments: [], environment: [:])
        #expect(none.amqpNodeOrder == .shuffled && none.amqpTLSFiles == .init())
    }

    @Test("from any other provider too, and a bad node order names the setting")
    func fromAProvider() throws {
        let reader = ConfigReader(provider: InMemoryProvider(values: ["amqp.nodeOrder": "listed", "amqp.caFile": "/ca.pem"]))
        let options = try ProcessorOptions(reader: reader)
        #expect(options.amqpNodeOrder == .listed && options.amqpTLSFiles.caFile == "/ca.pem")
        let error = #expect(throws: (any Error).self) {
            try ProcessorOptions(arguments: [], environment: ["SLIPWAY_AMQP_NODE_ORDER": "nearest"])
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("SLIPWAY_AMQP_NODE_ORDER must be shuffled or listed"))
    }
}
