import Foundation
import Logging
import ServiceLifecycle

/// The main of a processor executable: reads its options, bootstraps logging (`--log-level`), connects, and serves
/// the step until SIGTERM or SIGINT, then finishes the hops in flight and exits: 0 after a graceful stop, 2 for a
/// bad option, 1 when the processor stops on an error. `main.swift` is one line:
///
/// ```swift
/// await ProcessorMain.run(ChargeCard())
/// ```
///
/// An application that runs the processor beside services of its own (an HTTP endpoint, a metrics exporter), or
/// bootstraps logging its own way, calls `runProcessor(_:configuration:stores:services:arguments:)` instead.
///
/// Options (each also read from the environment):
/// - `--amqp-url URL` (`SLIPWAY_AMQP_URL`, or a file holding it: `SLIPWAY_AMQP_URL_FILE`; default
///   `amqp://guest:guest@127.0.0.1:5672/`; `amqps://` for TLS, see docs/security.md); for a cluster, its nodes' URLs
///   separated by commas (also as `SLIPWAY_AMQP_URLS`, `SLIPWAY_AMQP_URLS_FILE`; docs/deploy.md)
/// - `--queue-type classic|quorum` (`SLIPWAY_QUEUE_TYPE`, default classic): quorum for a cluster
/// - `--state-dir DIR` (`SLIPWAY_STATE_DIR`, default `.slipway/state`): where the hop record lives
/// - `--store URL` (`SLIPWAY_STORE_URL`, or a file holding it: `SLIPWAY_STORE_URL_FILE`): a hop record elsewhere than
///   the SQLite file in the state directory, opened by the first of `stores` that claims the URL's scheme (the
///   PostgreSQL record shared by several instances: `postgres://...` with SlipwayPostgres's factory; docs/deploy.md)
/// - `--hop-record-days N` (`SLIPWAY_HOP_RECORD_DAYS`, default 7; 0 keeps records for ever): how long a hop is
///   remembered against redeliveries
/// - `--prefetch N` (`SLIPWAY_PREFETCH`), `--concurrency N` (`SLIPWAY_CONCURRENCY`), `--max-attempts N`
/// - `--timeout-ms N` (`SLIPWAY_TIMEOUT_MS`), `--compensate-timeout-ms N` (`SLIPWAY_COMPENSATE_TIMEOUT_MS`): how long an
///   execute or a compensation may run, unless the slip's itinerary says (default: no limit)
/// - `--log-level LEVEL` (`SLIPWAY_LOG_LEVEL`, default `info`)
/// - `SLIPWAY_BATCH_HOP_EVENTS=false`: one message per hop event, routed by slip (default: batched)
/// - `SLIPWAY_HOP_EVENT_LINGER_MS`: how long a batch of hop events waits for more (default 20)
/// - `SLIPWAY_CLAIM_LEASE_MS`: how long a hop's claim lasts unless renewed (default 30000)
/// - `SLIPWAY_AUDIT_QUEUE=off`: do not declare the audit queue (a deployment that keeps no audit trail; default on)
/// - `--queue-prefix P` (`SLIPWAY_QUEUE_PREFIX`, default `slipway`): lets deployments share a virtual host
/// - `--io loop|threads` (`SLIPWAY_IO`, default `loop`): one thread for the connections and the hops, or a thread per
///   connection with the hops on Swift's default pool (for steps that block their thread)
public enum ProcessorMain {
    public static func run(
        _ processor: some StepProcessor, configuration: ProcessorConfiguration = ProcessorConfiguration(),
        stores: [HopRecordStoreFactory] = [.sqlite], services: [any Service] = [],
        arguments: [String] = Array(CommandLine.arguments.dropFirst())
    ) async -> Never {
        let options: ProcessorOptions
        do {
            options = try ProcessorOptions(arguments: arguments, environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(
                Data("\(processor.step): \(error)\n\n\(ProcessorOptions.usage(processor.step))\n".utf8))
            exit(2)
        }
        if options.help {
            print(ProcessorOptions.usage(processor.step))
            exit(0)
        }
        let level = options.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        do {
            try await runProcessor(processor, configuration: configuration, stores: stores, services: services, options: options)
            exit(0)
        } catch let error as ProcessorSetupError {
            FileHandle.standardError.write(Data("\(processor.step): \(error.message)\n".utf8))
            exit(2)
        } catch {
            Logger(label: "slipway.processor").critical("processor stopped", metadata: ["error": "\(error)"])
            exit(1)
        }
    }
}

/// Runs a processor and `services` (the application's own) in one `ServiceGroup` until SIGTERM or SIGINT; returns
/// once every hop in flight has finished and the services have stopped. Throws for a bad option (the message names
/// it) and when the processor or a service stops on an error. Neither bootstraps logging (`--log-level` is for
/// `ProcessorMain.run`) nor exits.
///
/// `arguments` and the environment give the options `ProcessorMain.run` lists; `--help` prints them and returns.
public func runProcessor(
    _ processor: some StepProcessor, configuration: ProcessorConfiguration = ProcessorConfiguration(),
    stores: [HopRecordStoreFactory] = [.sqlite], services: [any Service] = [],
    arguments: [String] = Array(CommandLine.arguments.dropFirst())
) async throws {
    let options: ProcessorOptions
    do {
        options = try ProcessorOptions(arguments: arguments, environment: ProcessInfo.processInfo.environment)
    } catch {
        throw ProcessorError("\(error)\n\n\(ProcessorOptions.usage(processor.step))")
    }
    if options.help {
        print(ProcessorOptions.usage(processor.step))
        return
    }
    try await runProcessor(processor, configuration: configuration, stores: stores, services: services, options: options)
}

/// A setting the processor cannot start with (signing keys, limits): exit 2, as for a bad option.
struct ProcessorSetupError: Error {
    var message: String
}

func runProcessor(
    _ processor: some StepProcessor, configuration: ProcessorConfiguration, stores: [HopRecordStoreFactory],
    services: [any Service], options: ProcessorOptions
) async throws {
    let logger = Logger(label: "slipway.processor")
    var configuration = configuration
    options.apply(to: &configuration)
    do {
        configuration.signing = try SigningKeys.fromEnvironment() ?? configuration.signing
        configuration.limits = try SlipLimits.fromEnvironment(ProcessInfo.processInfo.environment)
    } catch {
        throw ProcessorSetupError(message: "\(error)")
    }
    if let signing = configuration.signing {
        logger.info("slips are signed and verified", metadata: ["signing.keys": "\(signing.keys.map(\.id))"])
    } else {
        logger.notice("slip signing is off: unsigned slips are accepted (set SLIPWAY_SIGNING_KEYS to sign and verify)")
    }
    var amqp = try AMQPConfiguration(url: options.amqpURL)
    amqp.queueType = configuration.queueType
    let loop = options.io == .loop ? AMQPLoop(name: "slipway-loop", logger: logger) : nil
    let transport = AMQPTransport(configuration: amqp, logger: logger, loop: loop)
    let storeURL = options.storeURL ?? URL(fileURLWithPath: options.stateDirectory)
        .appendingPathComponent("\(processor.step).hops.sqlite").path
    let factory = try HopRecordStoreFactory.choose(for: options.storeURL, among: stores)
    let opened = try await factory.open(
        HopRecordStoreFactory.Request(
            url: storeURL, step: processor.step, keepFor: options.hopRecordRetention, taskExecutor: loop,
            logger: logger))
    logger.info(
        "starting",
        metadata: [
            "slip.step": "\(processor.step)", "amqp.url": "\(amqp.redactedURL)", "store": "\(opened.description)",
            "amqp.queue_type": "\(amqp.queueType.rawValue)",
            "processor.instance": "\(configuration.instance)", "processor.io": "\(options.io.rawValue)",
            "store.keep_days": "\(options.hopRecordDays == 0 ? "for ever" : "\(options.hopRecordDays)")",
        ])
    let runtime = ProcessorRuntime(
        processor: processor, transport: transport, store: opened.store, configuration: configuration, logger: logger)
    let group = ServiceGroup(
        configuration: .init(
            services: opened.services + [runtime] + services, gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
    do {
        try await group.run()
    } catch {
        await transport.shutdown()
        await opened.close()
        throw error
    }
    await transport.shutdown()
    await opened.close()
}
