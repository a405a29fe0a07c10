import Foundation
import Slipway
import Synchronization

/// The run's own record of how slips ended: a durable queue `<prefix>.chaos-ends` bound to every terminal event.
/// A terminal event carries the slip's whole log (every hop: sequence, kind, attempt, outcome), which the checks hold
/// against the audit trail. The queue is durable and declared before the first slip is sent, so broker restarts lose
/// nothing of it; a redelivered event simply replaces the same one.
final class EndWatcher: Sendable {
    private let ends = Mutex<[String: SlipEvent]>([:])
    private let stream: DeliveryStream
    private let pump = Mutex<Task<Void, Never>?>(nil)

    static func queue(_ topology: Topology) -> String { "\(topology.prefix).chaos-ends" }

    private init(stream: DeliveryStream) {
        self.stream = stream
    }

    static func start(transport: any MessageTransport, topology: Topology) async throws -> EndWatcher {
        try await transport.declareTopicExchange(topology.eventsExchange)
        try await transport.declareQueue(queue(topology))
        try await transport.bindQueue(queue(topology), exchange: topology.eventsExchange, bindingKey: "terminal.#")
        let watcher = EndWatcher(stream: try await transport.consume(queue: queue(topology), prefetch: 500))
        watcher.pump.withLock { $0 = Task { await watcher.read() } }
        return watcher
    }

    private func read() async {
        let decoder = SlipCodec.makeDecoder()
        do {
            for try await delivery in stream {
                let body = Data(delivery.body)
                if (try? SlipCodec.checkNesting(body)) != nil,
                    let event = try? decoder.decode(SlipEvent.self, from: body), event.kind == .terminal
                {
                    ends.withLock { $0[event.slipID] = event }
                }
                await delivery.ack()
            }
        } catch {}
    }

    var count: Int { ends.withLock { $0.count } }

    var all: [String: SlipEvent] { ends.withLock { $0 } }

    /// Stops consuming; what was received stays.
    func stop() async {
        stream.stop()
        await pump.withLock { $0 }?.value
    }
}
