import ArgumentParser
import Foundation
import Logging
import Slipway
import SlipwayAMQP

@main
struct SlipCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slip",
        abstract: "Send, check and follow Slipway routing slips.",
        subcommands: [
            Send.self, Validate.self, Audit.self, AuditSinkCommand.self, DeadLetters.self, TopologyCommand.self, OutboxCommand.self,
        ])
}

/// Options every command that talks to RabbitMQ shares.
struct BrokerOptions: ParsableArguments {
    @Option(
        name: .customLong("amqp-url"),
        help: """
            RabbitMQ URL, amqps:// for TLS; a cluster's nodes as URLs separated by commas (default: $SLIPWAY_AMQP_URL \
            or $SLIPWAY_AMQP_URLS, or the file $SLIPWAY_AMQP_URL_FILE or $SLIPWAY_AMQP_URLS_FILE names, \
            else amqp://guest:guest@127.0.0.1:5672/)
            """)
    var amqpURL: String?

    @Option(
        name: .customLong("queue-type"),
        help: """
            Type of the durable queues this command declares: classic or quorum, as the processors declare them \
            (default: $SLIPWAY_QUEUE_TYPE, else classic)
            """)
    var queueType: String?

    @Option(name: .customLong("queue-prefix"), help: "Prefix of queue and exchange names (default: $SLIPWAY_QUEUE_PREFIX, else slipway)")
    var queuePrefix: String?

    var topology: Topology {
        Topology(prefix: queuePrefix ?? ProcessInfo.processInfo.environment["SLIPWAY_QUEUE_PREFIX"] ?? "slipway")
    }

    func validate() throws {
        guard Slip.isValidName(topology.prefix) else {
            throw ValidationError("the queue prefix must be 1 to 64 characters of A-Z a-z 0-9 _ -")
        }
        do {
            _ = try resolvedQueueType()
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// `--queue-type`, else `SLIPWAY_QUEUE_TYPE`, else classic.
    func resolvedQueueType() throws -> QueueType {
        if let queueType { return try QueueType(parsing: queueType, from: "--queue-type") }
        return try QueueType.fromEnvironment(ProcessInfo.processInfo.environment)
    }

    func makeTransport(logLevel: Logger.Level = .warning) throws -> AMQPTransport {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        var configuration: AMQPConfiguration
        do {
            configuration = try AMQPConfiguration.fromEnvironment(override: amqpURL)
            configuration.queueType = try resolvedQueueType()
        } catch {
            throw ValidationError("\(error)")
        }
        var logger = Logger(label: "slip")
        logger.logLevel = logLevel
        return AMQPTransport(configuration: configuration, logger: logger)
    }
}

/// Exit codes: 0 all slips completed (or were sent, without --wait); 1 a slip ended otherwise; 2 bad usage or input;
/// 3 the broker could not be reached or a wait timed out; 4 (`send --wait`) a slip was parked (Send.swift).
enum ExitCodes {
    static let slipNotCompleted = ExitCode(1)
    static let badInput = ExitCode(2)
    static let unavailable = ExitCode(3)
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("slip: \(message)\n".utf8))
}

func printJSON(_ value: some Encodable) {
    let encoder = SlipCodec.makeEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    if let data = try? encoder.encode(value) { print(String(decoding: data, as: UTF8.self)) }
}
