import Foundation
import ServiceLifecycle
import Slipway
import SlipwayCore
import Testing

/// `runProcessor` as an application calls it: beside services of its own, in one process, without exiting it.
@Suite("runProcessor beside an application's services")
struct RunProcessorTests {
    struct Echo: StepProcessor {
        let step: String
        func execute(_ hop: ExecuteHop) async throws -> ExecuteOutcome { .completed(variables: ["echoed": true]) }
    }

    /// The application's own service: sends a slip through the processor it runs beside, then fails on purpose.
    struct Caller: Service {
        let step: String
        let prefix: String
        let ended: Ended

        struct Stop: Error, Equatable {}

        func run() async throws {
            let transport = try Broker.transport()
            defer { Task { await transport.shutdown() } }
            let sender = SlipSender(transport: transport, topology: Topology(prefix: prefix))
            let slip = Slip(template: "echo", itinerary: [ItineraryStep(step: step)])
            ended.event = try await sender.sendAndWait(slip, timeout: .seconds(60))
            throw Stop()
        }
    }

    final class Ended: @unchecked Sendable {
        // Written by the service before it throws, read after runProcessor has returned: no overlap.
        var event: SlipEvent?
    }

    @Test("a service runs beside the processor; when it fails, both stop and runProcessor throws its error instead of exiting")
    func servicesBeside() async throws {
        let prefix = "rp-\(UUID().uuidString.prefix(8).lowercased())"
        let state = FileManager.default.temporaryDirectory.appendingPathComponent(prefix).path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let ended = Ended()
        await #expect(throws: Caller.Stop.self) {
            try await runProcessor(
                Echo(step: "echo"), services: [Caller(step: "echo", prefix: prefix, ended: ended)],
                arguments: ["--amqp-url", try Broker.url, "--queue-prefix", prefix, "--state-dir", state])
        }
        #expect(ended.event?.state == .completed, "the slip went through the processor run beside the service")
        #expect(ended.event?.log?.last?.step == "echo")
    }

    @Test("a bad option is thrown, named, with the usage; the process goes on")
    func badOption() async throws {
        let error = await #expect(throws: ProcessorError.self) {
            try await runProcessor(Echo(step: "echo"), arguments: ["--prefetch", "none"])
        }
        #expect(error?.message.contains("--prefetch") == true)
        #expect(error?.message.contains("--amqp-url") == true, "the usage follows the error")
    }
}
