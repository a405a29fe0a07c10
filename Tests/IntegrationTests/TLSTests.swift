import Foundation
import Logging
import Slipway
import Testing

/// amqps:// against a private RabbitMQ with a TLS listener and a certificate from a CA made for the test.
@Suite("TLS (amqps://)")
struct TLSTests {
    static func probeSlip() -> Slip { Slip(template: "probe", itinerary: [ItineraryStep(step: "a")]) }

    @Test("a slip sent over amqps:// goes through a processor connected over amqps://, before and after a broker restart")
    func slipOverTLS() async throws {
        let pki = try await TestPKI.make()
        let broker = try await PrivateBroker.startWithTLS(portOffset: 10, pki: pki)
        defer { broker.stop() }
        let tlsPort = try #require(broker.tls?.port)
        let fleet = try SagaFleet(name: "tls", amqpURL: "amqps://guest:guest@127.0.0.1:\(tlsPort)/?cacertfile=\(pki.caFile)")
        try fleet.startProbe("a")
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)

        let first = Self.probeSlip()
        #expect(try await producer.run([first])[first.id]?.state == .completed)
        let connections = try await broker.connectionsOverTLS()
        // The processor's publisher and its two consumers, the producer's publisher and its follower.
        #expect(connections.count >= 4 && connections.allSatisfy { $0 }, "TLS per connection: \(connections)")

        // Every connection drops; the processor and the producer reconnect, over TLS again.
        try await broker.restart()
        let second = Self.probeSlip()
        #expect(try await producer.run([second], timeout: .seconds(90))[second.id]?.state == .completed)
        #expect(fleet.isRunning("a"))
        #expect(try await broker.connectionsOverTLS().allSatisfy { $0 })
        await producer.transport.shutdown()
    }

    @Test("amqps:// refuses a broker it cannot verify, sends client certificates, says what went wrong without the password")
    func verification() async throws {
        let pki = try await TestPKI.make()
        let broker = try await PrivateBroker.startWithTLS(portOffset: 12, pki: pki, verifyClients: true)
        defer { broker.stop() }
        let tlsPort = try #require(broker.tls?.port)
        let secret = "s3cret-\(UUID().uuidString.prefix(8))"
        let address = "127.0.0.1:\(tlsPort)"
        // `slip send` as a user would run it, without the CA. Its publisher retries for a minute before it gives up, so
        // it runs beside the checks below.
        let fleet = try SagaFleet(name: "tls-cli", amqpURL: "amqps://guest:\(secret)@\(address)/")
        async let sending = fleet.slip(["send", Producer.templatePath, "--var", "orderId=T-1", "--wait", "--timeout", "10"])

        // No CA given: the system's store does not know the test CA.
        let unknownCA = try #require(await Self.connectionError("amqps://guest:\(secret)@\(address)/"))
        #expect("\(unknownCA)".contains("TLS handshake with \(address) failed: certificate verify failed"), "\(unknownCA)")
        #expect("\(unknownCA)".contains("self-signed certificate in certificate chain"), "\(unknownCA)")
        #expect("\(unknownCA)".contains("trusting the system's CA store"), "\(unknownCA)")
        #expect(!"\(unknownCA)".contains(secret))

        // The CA is known, but the certificate is not for the name asked for.
        let wrongName = try #require(
            await Self.connectionError(
                "amqps://guest:\(secret)@\(address)/?cacertfile=\(pki.caFile)&server_name_indication=broker.example.org"))
        #expect("\(wrongName)".contains("certificate verify failed"), "\(wrongName)")
        #expect("\(wrongName)".contains("not for 'broker.example.org'"), "\(wrongName)")
        #expect(!"\(wrongName)".contains(secret))

        // The right CA: by IP address and by DNS name (the certificate lists both).
        #expect(await Self.connectionError("amqps://guest:guest@\(address)/?cacertfile=\(pki.caFile)") == nil)
        #expect(await Self.connectionError("amqps://guest:guest@localhost:\(tlsPort)/?cacertfile=\(pki.caFile)") == nil)

        // A wrong password, over a verified connection: the login fails and the error shows the URL redacted.
        let refused = try #require(
            await Self.connectionError("amqps://guest:\(secret)@\(address)/?cacertfile=\(pki.caFile)"))
        #expect("\(refused)".contains("logging in to amqps://guest:***@\(address)/"), "\(refused)")
        #expect(!"\(refused)".contains(secret))

        // A client certificate: one from the broker's CA is taken, one from a CA it does not know is refused, and a
        // key that does not belong to the certificate is caught before anything is sent.
        let ca = "cacertfile=\(pki.caFile)"
        #expect(
            await Self.connectionError(
                "amqps://guest:guest@\(address)/?\(ca)&certfile=\(pki.clientCertFile)&keyfile=\(pki.clientKeyFile)") == nil)
        let stranger = try #require(
            await Self.connectionError(
                "amqps://guest:\(secret)@\(address)/?\(ca)&certfile=\(pki.strangerCertFile)&keyfile=\(pki.strangerKeyFile)"))
        #expect("\(stranger)".contains("the broker does not accept the client certificate"), "\(stranger)")
        #expect(!"\(stranger)".contains(secret))
        let mismatch = try #require(
            await Self.connectionError(
                "amqps://guest:guest@\(address)/?\(ca)&certfile=\(pki.clientCertFile)&keyfile=\(pki.serverKeyFile)"))
        #expect("\(mismatch)".contains("cannot use client certificate '\(pki.clientCertFile)'"), "\(mismatch)")

        // TLS spoken to the plain listener.
        let plain = try #require(await Self.connectionError("amqps://guest:guest@127.0.0.1:\(broker.port)/"))
        #expect("\(plain)".contains("is 127.0.0.1:\(broker.port) a TLS listener?"), "\(plain)")

        // Verification off, only when asked for, and said so in the log.
        let logs = CapturedLogs()
        #expect(await Self.connectionError("amqps://guest:guest@\(address)/?verify=verify_none", logs: logs) == nil)
        #expect(logs.all.contains { $0.hasPrefix("warning TLS without verification") }, "\(logs.all)")

        let sent = try await sending
        #expect(sent.status == 3)
        #expect(sent.errors.contains("certificate verify failed: self-signed certificate in certificate chain"), "\(sent.errors)")
        #expect(!(sent.output + sent.errors).contains(secret))
    }

    /// Connects as a consumer does (which fails at once, where a publisher would retry) and returns the error, if any.
    static func connectionError(_ url: String, logs: CapturedLogs = CapturedLogs()) async -> (any Error)? {
        let transport: AMQPTransport
        do {
            transport = AMQPTransport(configuration: try AMQPConfiguration(url: url), logger: logs.logger())
        } catch {
            return error
        }
        do {
            let stream = try await transport.consume(queue: "tls-check", prefetch: 1)
            stream.stop()
            await transport.shutdown()
            return nil
        } catch {
            await transport.shutdown()
            return error
        }
    }
}
