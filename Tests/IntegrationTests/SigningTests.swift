import ExampleLedger
import Foundation
import Slipway
import SlipwayAudit
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

    /// What this proves: a slip parked for its signature keeps its slip. `slip send --wait` without the keys ends at
    /// once with "parked" and exit status 4 (not a time-out); `slip dlq list`, `slip audit failures` and `slip audit
    /// show` name the slip, and `audit show` gives the park as its state. The processor never runs it.
    @Test("an unsigned slip sent with `slip send --wait` to a signed processor ends 'parked' under its own slip id")
    func unsignedSlipIsParkedUnderItsID() async throws {
        let fleet = try SagaFleet(name: "signed-park", environment: ["reserve-stock": ["SLIPWAY_SIGNING_KEYS": Self.keys]])
        try fleet.start("reserve-stock")
        try fleet.startSink()
        defer { fleet.stopAll() }
        try await Producer(fleet: fleet).bindAuditQueue()

        let sent = try await fleet.slip([
            "send", Producer.templatePath, "--var", "orderId=S-3", "--id", "unsigned-order-3", "--wait", "--timeout", "60",
        ])
        #expect(sent.status == 4, "exit status \(sent.status): \(sent.output) \(sent.errors)")
        #expect(sent.output.contains("unsigned-order-3 parked: signature: "), "\(sent.output)")

        let listed = try await fleet.slip(["dlq", "list", "--json"])
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(listed.output.utf8)) as? [[String: Any]])
        #expect(entries.count == 1)
        #expect(entries.first?["slipId"] as? String == "unsigned-order-3")
        #expect(entries.first?["reasonCode"] as? String == "signature")

        let timeline = try await AuditTests.recordedPark(fleet, "unsigned-order-3")
        #expect(timeline.slip.lastOutcome == "signature" && timeline.slip.template == "order-fulfillment")
        let shown = try await fleet.slip(["audit", "show", "unsigned-order-3"])
        #expect(shown.output.contains("parked (signature)"), "\(shown.output)")
        let failures = try await fleet.slip(["audit", "failures", "--json"])
        let list = try SlipCodec.makeDecoder().decode(AuditFailureList.self, from: Data(failures.output.utf8))
        #expect(list.failures.map(\.slipID) == ["unsigned-order-3"])
        #expect(try await fleet.ledger.calls(slipID: "unsigned-order-3").isEmpty, "an unsigned slip must never run")
    }
}
