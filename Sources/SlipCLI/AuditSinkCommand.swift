import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import Slipway
import SlipwayAudit

struct AuditSinkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit-sink",
        abstract: "Record every slip event in the audit database (runs until SIGTERM or SIGINT).",
        discussion: """
            Consumes the durable queue <prefix>.audit, bound to every event of the events exchange, and writes the
            events to SQLite in batches; a message is acknowledged only after its batch is committed. Recording is
            idempotent: an event delivered twice is stored once.
            """)

    @Option(help: "The audit database (default: $SLIPWAY_AUDIT_DB, else .slipway/audit.sqlite).")
    var db: String?

    @Option(help: "Unacknowledged events the broker may hand the sink at once.")
    var prefetch = 1_000

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @OptionGroup var broker: BrokerOptions

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        let path = AuditStore.defaultPath(explicit: db)
        let transport = try broker.makeTransport(logLevel: level)
        var logger = Logger(label: "slipway.audit-sink")
        logger.logLevel = level
        let store: AuditStore
        do {
            store = try AuditStore(path: path)
        } catch {
            printError("\(error)")
            throw ExitCodes.badInput
        }
        let sink = AuditSink(
            store: store, transport: transport, topology: broker.topology, prefetch: prefetch, logger: logger)
        logger.info("recording events", metadata: ["audit.db": "\(path)", "amqp.queue": "\(broker.topology.auditQueue)"])
        do {
            let group = ServiceGroup(
                configuration: .init(services: [sink], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        } catch {
            printError("\(error)")
            await transport.shutdown()
            throw ExitCodes.unavailable
        }
        await transport.shutdown()
    }
}
