import Foundation
import Slipway
import SlipwayTesting
import Testing

@Suite("Signed slips")
struct SigningTests {
    static let keys = try! SigningKeys(parsing: "k2=the-new-secret-0123456789,k1=the-old-secret-0123456789")

    @Test("a signature made with any configured key verifies; the first key signs")
    func rotation() throws {
        let body = Array(#"{"formatVersion":1}"#.utf8)
        let headers = Self.keys.signatureHeaders(for: body)
        #expect(headers[SigningKeys.keyIDHeader] == "k2")
        try Self.keys.verify(body, headers: headers)
        // A processor not yet told about k2 cannot verify it; one with both verifies what the old key signed.
        let oldOnly = try SigningKeys(parsing: "k1=the-old-secret-0123456789")
        #expect(throws: SlipRejection.self) { try oldOnly.verify(body, headers: headers) }
        try Self.keys.verify(body, headers: oldOnly.signatureHeaders(for: body))
    }

    @Test("an unsigned message, an unknown key and a modified body are each refused with the code 'signature'")
    func refusals() throws {
        let body = Array(#"{"formatVersion":1}"#.utf8)
        let signed = Self.keys.signatureHeaders(for: body)
        var unknownKey = signed
        unknownKey[SigningKeys.keyIDHeader] = "k9"
        let cases: [(String, [UInt8], [String: String])] = [
            ("unsigned", body, [:]), ("modified", body + [0x20], signed), ("unknown key", body, unknownKey),
        ]
        for (name, bytes, headers) in cases {
            do {
                try Self.keys.verify(bytes, headers: headers)
                Issue.record("\(name) was accepted")
            } catch {
                #expect(error.code == .signature && !error.reason.isEmpty, "\(name)")
            }
        }
    }

    @Test("bad key settings are refused with a reason that never repeats the secret")
    func badKeys() {
        for text in ["", "nokey", "k1=qz9x", "k.1=long-enough-secret-123", "k1=long-enough-secret-123,k1=long-enough-secret-456", "k1=base64:***"] {
            do {
                _ = try SigningKeys(parsing: text)
                Issue.record("'\(text)' was accepted")
            } catch {
                #expect(!"\(error)".contains("secret-123") && !"\(error)".contains("qz9x"), "\(error)")
            }
        }
        #expect(throws: Never.self) { try SigningKeys(parsing: "k1=base64:\(Data(repeating: 7, count: 32).base64EncodedString())") }
    }

    @Test("with signing on, a signed slip completes, and unsigned or modified slips are parked and never run")
    func runtimeVerifies() async throws {
        try await withSaga(configure: { $0.signing = Self.keys }) { saga in
            let sender = SlipSender(transport: saga.producer(), topology: saga.topology, signing: Self.keys)
            let signed = saga.slip()
            #expect(try await sender.sendAndWait(signed, timeout: patience).state == .completed)

            let unsigned = saga.slip()
            try await SlipSender(transport: saga.producer(), topology: saga.topology).send(unsigned)
            var modified = saga.slip()
            let queue = saga.topology.executeQueue(step: "a")
            let original = try SlipCodec().encode(modified)
            modified.variables["orderId"] = "order-2"  // Same headers, other bytes: as if tampered with on the way.
            try await saga.producer().publish([
                .toQueue(queue, body: try SlipCodec().encode(modified), headers: Self.keys.signatureHeaders(for: original))
            ])

            #expect(await saga.broker.waitForDepth(saga.topology.deadLetterQueue, atLeast: 2, timeout: patience))
            let parked = await saga.broker.messages(in: saga.topology.deadLetterQueue)
            #expect(parked.map { $0.headers[ParkedHeaders.reasonCode] } == ["signature", "signature"])
            #expect(await saga.effects.effects(of: unsigned.id).isEmpty)
            #expect(await saga.effects.effects(of: modified.id).isEmpty)
        }
    }
}

@Suite("Limits")
struct LimitTests {
    @Test("a slip over a limit is refused on send with the reason, and parked as too-large on receive")
    func limitsOnSendAndReceive() async throws {
        try await withSaga(configure: { $0.limits = SlipLimits(maxVariablesBytes: 1_000) }) { saga in
            var big = saga.slip()
            big.variables["note"] = .string(String(repeating: "x", count: 5_000))
            let strict = SlipSender(transport: saga.producer(), topology: saga.topology, limits: SlipLimits(maxVariablesBytes: 1_000))
            do {
                try await strict.send(big)
                Issue.record("the sender sent a slip over its limit")
            } catch let rejection as SlipRejection {
                #expect(rejection.code == .tooLarge && rejection.reason.contains("variables"))
            }
            // A producer with looser limits sends it anyway: the processor parks it and runs nothing.
            try await saga.sender().send(big)
            #expect(await saga.broker.waitForDepth(saga.topology.deadLetterQueue, atLeast: 1, timeout: patience))
            #expect(await saga.broker.messages(in: saga.topology.deadLetterQueue).first?.headers[ParkedHeaders.reasonCode] == "too-large")
            #expect(await saga.effects.effects(of: big.id).isEmpty)
        }
    }
}
