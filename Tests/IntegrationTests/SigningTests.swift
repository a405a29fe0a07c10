import ExampleLedger
import Foundation
import Slipway
import Testing

@Suite("Signed slips over RabbitMQ")
struct SigningIntegrationTests {
    static let keys = "prod-2=a-secret-of-at-least-16-bytes,prod-1=the-previous-secret-16+"

    @Test("with SLIPWAY_SIGNING_KEYS set, `slip send` signs and the saga completes; an unsigned slip is parked, never run")
    func signedSagaAndUnsignedSlip() async throws {
        let environment = ["SLIPWAY_SIGNING_KEYS": Self.keys]
        let fleet = try SagaFleet(
            name: "signed", environment: Dictionary(uniqueKeysWithValues: (SagaFleet.steps + ["slip"]).map { ($0, environment) }))
        try fleet.startAll()
        defer { fleet.stopAll() }

        let sent = try await fleet.slip([
            "send", Producer.templatePath, "--var", "orderId=S-1", "--wait", "--json", "--timeout", "60",
        ])
        #expect(sent.status == 0, "\(sent.errors)")
        #expect(sent.output.contains(#""state":"completed""#))

        // A producer without the keys: its slip is parked with the reason code "signature" and charges nothing.
        let producer = try Producer(fleet: fleet)
        let unsigned = try producer.order(["orderId": "S-2"])
        try await producer.sender.send(unsigned)
        let parked = try await producer.parked(count: 1)
        try #require(parked.count == 1)
        #expect(parked[0].headers[ParkedHeaders.reasonCode] == "signature")
        #expect(try await fleet.ledger.calls(slipID: unsigned.id).isEmpty, "an unsigned slip must never run")
    }
}
