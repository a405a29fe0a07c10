import ArgumentParser
import Slipway
import SlipwayOperations

/// The parked id, or --all, for replay and drop.
struct ParkedSelection: ParsableArguments {
    @Argument(help: "The parked id (see `slip dlq list`), or a unique start of it (at least 4 characters).")
    var parkedID: String?

    @Flag(help: "Every parked message.")
    var all = false

    func validate() throws {
        guard (parkedID != nil) != all else { throw ValidationError("give a parked id or --all, not both or neither") }
    }
}

/// The dead-letter scan as the commands use it: errors printed as one line, with the command's exit status.
extension DeadLetterScan {
    /// Connects and starts consuming; a broker that cannot be reached is reported and exits 3.
    static func open(_ broker: BrokerOptions, limit: Int?) async throws -> DeadLetterScan {
        let transport = try broker.makeTransport(logLevel: .error)
        let queue = broker.topology.deadLetterQueue
        do {
            return try await DeadLetterScan.open(transport, queue: queue, limit: limit)
        } catch {
            await transport.shutdown()
            printError("cannot read '\(queue)': \(error)")
            throw ExitCodes.unavailable
        }
    }

    /// The one delivery `id` names (see `single`); otherwise everything is given back, the error printed, and exit 2.
    func singleOrExit(_ id: String, in deliveries: [Delivery]) async throws -> Delivery {
        do {
            return try single(id, in: deliveries)
        } catch {
            await finish(ack: [])
            printError("\(error)")
            throw ExitCodes.badInput
        }
    }
}
