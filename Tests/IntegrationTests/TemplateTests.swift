import Foundation
import Slipway
import Testing

/// What a template (YAML) says reaches the processors: retry policies, timeouts, and each value's JSON type.
/// Templates are sent with `slip send`, to `probe-step` processes (see Processors/probe-step).
@Suite("Templates over RabbitMQ")
struct TemplateIntegrationTests {
    /// Writes `yaml` into the fleet's directory and returns its path.
    static func template(_ yaml: String, in fleet: SagaFleet, name: String = "probe.yaml") throws -> String {
        let path = fleet.directory.appendingPathComponent(name).path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The one JSON line `slip send --json --wait` prints for a slip.
    static func line(_ output: String) throws -> [String: Any] {
        let text = try #require(output.split(separator: "\n").last.map(String.init), "no output")
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
    }

    static func hops(_ line: [String: Any]) -> [(step: String, kind: String, outcome: String, attempt: Int, reason: String)] {
        ((line["hops"] as? [[String: Any]]) ?? []).map {
            (
                $0["step"] as? String ?? "", $0["kind"] as? String ?? "", $0["outcome"] as? String ?? "",
                $0["attempt"] as? Int ?? 0, $0["reason"] as? String ?? ""
            )
        }
    }

    @Test("a template's retry policy applies: with maxAttempts 5, a step that throws 3 times completes on attempt 4")
    func templateRetryPolicy() async throws {
        let fleet = try SagaFleet(name: "tmpl-retry")
        for step in ["a", "b"] { try fleet.startProbe(step) }
        defer { fleet.stopAll() }
        let path = try Self.template(
            """
            template: probe
            itinerary:
              - step: a
                arguments: {}
              - step: b
                arguments: { throwTimes: 3 }
                retry: { maxAttempts: 5 }
            """, in: fleet)

        let sent = try await fleet.slip(["send", path, "--wait", "--json", "--timeout", "60"])

        let line = try Self.line(sent.output)
        #expect(sent.status == 0, "\(sent.output) \(sent.errors)")
        #expect(line["state"] as? String == "completed", "\(line)")
        #expect(Self.hops(line).filter { $0.step == "b" }.map(\.attempt) == [1, 2, 3, 4])
    }

    @Test("template values reach the wire with their JSON type: numbers, booleans and null, quoted text as text")
    func templateValuesOnTheWire() async throws {
        let fleet = try SagaFleet(name: "tmpl-types")  // no processor: the test reads the step's queue itself
        let path = try Self.template(
            """
            template: typed
            variables:
              quantity: 1
            itinerary:
              - step: typed-step
                arguments:
                  quantity: "${quantity}"
                  flag: true
                  price: 2.5
                  nothing: null
                  code: "007"
                  given: "${n}"
                  label: "n=${n}"
            """, in: fleet)
        let transport = try Broker.transport(url: fleet.amqpURL)
        defer { Task { await transport.shutdown() } }

        let sent = try await fleet.slip(["send", path, "--var", "n=2"])
        try #require(sent.status == 0, "\(sent.errors)")

        let deliveries = try await transport.consume(queue: fleet.topology.executeQueue(step: "typed-step"), prefetch: 1)
        defer { deliveries.stop() }
        var received: [UInt8]?
        for try await delivery in deliveries {
            received = delivery.body
            await delivery.ack()
            break
        }
        let body = try #require(received)
        let text = String(decoding: body, as: UTF8.self)
        let wire = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        let step = try #require((wire["itinerary"] as? [[String: Any]])?.first)
        let arguments = try #require(step["arguments"] as? [String: Any])
        #expect(text.contains(#""quantity":1"#) && text.contains(#""flag":true"#) && text.contains(#""price":2.5"#), "\(text)")
        #expect(text.contains(#""nothing":null"#) && text.contains(#""code":"007""#) && text.contains(#""given":2"#), "\(text)")
        #expect(arguments["label"] as? String == "n=2")
        let read = try SlipCodec().decode(body)
        #expect(read.itinerary[0].arguments["quantity"] == .int(1))
        #expect(read.itinerary[0].arguments["flag"] == .bool(true))
        #expect(read.itinerary[0].arguments["code"] == .string("007"))
        #expect(read.variables["quantity"] == .int(1))
    }

    @Test("an undo that hangs past the step's compensateTimeoutMs is retried, then ends compensation-failed, timed out")
    func compensateTimeoutFromTheTemplate() async throws {
        let fleet = try SagaFleet(name: "tmpl-undo")
        for step in ["a", "b"] { try fleet.startProbe(step) }
        defer { fleet.stopAll() }
        let path = try Self.template(
            """
            template: probe
            variables:
              undoSleepMs:a: 600000
            itinerary:
              - step: a
                arguments: {}
                compensateTimeoutMs: 300
              - step: b
                arguments: { fault: "no stock" }
            """, in: fleet)

        let sent = try await fleet.slip(["send", path, "--wait", "--json", "--timeout", "90"])

        let line = try Self.line(sent.output)
        #expect(line["state"] as? String == "compensation-failed", "\(sent.output) \(sent.errors)")
        let undo = Self.hops(line).filter { $0.step == "a" && $0.kind == "compensate" }
        #expect(undo.map(\.outcome) == ["retried", "retried", "retried", "retried", "failed"])
        #expect(undo.allSatisfy { $0.reason.contains("timed out: the compensation did not finish within its timeout of 300 ms") })
    }

    @Test("a processor's --compensate-timeout-ms default ends an undo that hangs, when the slip gives it no timeout")
    func compensateTimeoutDefault() async throws {
        let fleet = try SagaFleet(name: "undo-default", environment: ["a": ["SLIPWAY_COMPENSATE_TIMEOUT_MS": "250"]])
        for step in ["a", "b"] { try fleet.startProbe(step) }
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let slip = Slip(
            template: "probe",
            itinerary: [ItineraryStep(step: "a"), ItineraryStep(step: "b", arguments: ["fault": "no stock"])],
            variables: ["undoSleepMs": 600_000])

        let event = try #require(try await producer.run([slip], timeout: .seconds(90))[slip.id])

        #expect(event.state == .compensationFailed)
        let last = try #require(event.log?.last)
        #expect(last.kind == .compensate && last.outcome == .failed)
        #expect(last.reason?.contains("compensation gave up after 5 attempts: timed out") == true, "\(last.reason ?? "-")")
        #expect(last.reason?.contains("250 ms") == true)
    }
}
