import Foundation
import Logging
import SlipwayAMQP
import SlipwayTransport

/// The benchmark's baseline: `bench-forwarder --in QUEUE --out QUEUE` moves every message of one durable queue to
/// another over the same AMQP layer as the processors, with the same delivery guarantees (persistent messages,
/// publisher confirms, an ack only once the forward is confirmed, the same prefetch and concurrency) and none of the
/// slip logic: no decoding, no hop record, no events. `slipway-bench` chains K of them and compares.
struct ForwarderOptions {
    static let usage = "usage: bench-forwarder --in QUEUE --out QUEUE [--amqp-url URL] [--prefetch N] [--concurrency N]"

    /// `--help` or `-h`: the caller prints the usage and exits successfully.
    struct HelpRequested: Error {}

    var input = ""
    var output = ""
    var amqpURL = ProcessInfo.processInfo.environment["SLIPWAY_AMQP_URL"] ?? AMQPConfiguration.defaultURL
    var prefetch = 32
    var concurrency = 8

    init(_ arguments: [String]) throws {
        var remaining = arguments[...]
        while let flag = remaining.popFirst() {
            if flag == "--help" || flag == "-h" { throw HelpRequested() }
            guard let value = remaining.popFirst() else { throw TransportError(.badConfiguration, "\(flag) needs a value") }
            switch flag {
            case "--in": input = value
            case "--out": output = value
            case "--amqp-url": amqpURL = value
            case "--prefetch": prefetch = try Self.positive(value, flag)
            case "--concurrency": concurrency = try Self.positive(value, flag)
            default: throw TransportError(.badConfiguration, "unknown option '\(flag)'")
            }
        }
        guard !input.isEmpty, !output.isEmpty else {
            throw TransportError(.badConfiguration, Self.usage)
        }
    }

    static func positive(_ text: String, _ flag: String) throws -> Int {
        guard let value = Int(text), value > 0 else { throw TransportError(.badConfiguration, "\(flag) must be a positive whole number") }
        return value
    }
}

/// Forwards deliveries until SIGTERM or SIGINT, up to `concurrency` at once, as the processor runtime does.
func forward(_ options: ForwarderOptions, transport: AMQPTransport) async throws {
    try await transport.declareQueue(options.input)
    try await transport.declareQueue(options.output)
    let deliveries = try await transport.consume(queue: options.input, prefetch: options.prefetch)
    let stopSignals = [SIGTERM, SIGINT].map { signal in
        Foundation.signal(signal, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signal)
        source.setEventHandler { deliveries.stop() }
        source.resume()
        return source
    }
    defer { stopSignals.forEach { $0.cancel() } }
    await withTaskGroup(of: Void.self) { group in
        var running = 0
        do {
            for try await delivery in deliveries {
                if running >= options.concurrency {
                    await group.next()
                    running -= 1
                }
                group.addTask {
                    do {
                        try await transport.publish([
                            .toQueue(
                                options.output, body: delivery.body, headers: delivery.headers,
                                messageID: delivery.messageID, correlationID: delivery.correlationID,
                                contentType: delivery.contentType)
                        ])
                        await delivery.ack()
                    } catch {
                        await delivery.release()
                    }
                }
                running += 1
            }
        } catch {
            FileHandle.standardError.write(Data("bench-forwarder: deliveries failed: \(error)\n".utf8))
        }
        await group.waitForAll()
    }
}

do {
    let options = try ForwarderOptions(Array(CommandLine.arguments.dropFirst()))
    var logger = Logger(label: "bench-forwarder")
    logger.logLevel = .warning
    let transport = AMQPTransport(configuration: try AMQPConfiguration(url: options.amqpURL), logger: logger)
    try await forward(options, transport: transport)
    await transport.shutdown()
} catch is ForwarderOptions.HelpRequested {
    print(ForwarderOptions.usage)
} catch {
    FileHandle.standardError.write(Data("bench-forwarder: \(error)\n".utf8))
    exit(1)
}
