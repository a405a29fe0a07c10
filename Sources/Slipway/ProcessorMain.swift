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
/// Settings: `--help` lists them, docs/configuration.md is the same table (`ProcessorSetting.all`). A command-line
/// option wins over its environment variable; a secret (the AMQP URL, the store URL, the signing keys) may instead be
/// in a file that its `*_FILE` variable names. `--store URL` is opened by the first of `stores` that claims the URL's
/// scheme (the PostgreSQL record shared by several instances: `postgres://...` with SlipwayPostgres's factory).
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
        } catch let error as ProcessorError where error.isSetupError {
            FileHandle.standardError.write(Data("\(processor.step): \(error)\n".utf8))
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
/// `arguments` and the environment give the settings `ProcessorMain.run` points to; `--help` prints them and returns.
public func runProcessor(
    _ processor: some StepProcessor, configuration: ProcessorConfiguration = ProcessorConfiguration(),
    stores: [HopRecordStoreFactory] = [.sqlite], services: [any Service] = [],
    arguments: [String] = Array(CommandLine.arguments.dropFirst())
) async throws {
    let options: ProcessorOptions
    do {
        options = try ProcessorOptions(arguments: arguments, environment: ProcessInfo.processInfo.environment)
    } catch {
        throw ProcessorError(.badOption, "\(error)\n\n\(ProcessorOptions.usage(processor.step))")
    }
    if options.help {
        print(ProcessorOptions.usage(processor.step))
        return
    }
    try await runProcessor(processor, configuration: configuration, stores: stores, services: services, options: options)
}

func runProcessor(
    _ processor: some StepProcessor, configuration: ProcessorConfiguration, stores: [HopRecordStoreFactory],
    services: [any Service], options: ProcessorOptions
) async throws {
    let logger = Logger(label: "slipway.processor")
    var configuration = configuration
    options.apply(to: &configuration)
    if let signing = configuration.signing {
        logger.info("slips are signed and verified", metadata: ["signing.keys": "\(signing.keys.map(\.id))"])
    } else {
        logger.notice("slip signing is off: unsigned slips are accepted (set SLIPWAY_SIGNING_KEYS to sign and verify)")
    }
    var amqp = try AMQPConfiguration(
        url: options.amqpURL, nodeOrder: options.amqpNodeOrder, tlsFiles: options.amqpTLSFiles)
    amqp.queueType = configuration.queueType
    let loop = options.io == .loop ? AMQPLoop(name: "slipway-loop", logger: logger) : nil
    let transport = AMQPTransport(configuration: amqp, logger: logger, loop: loop)
    let storeURL = options.storeURL ?? URL(fileURLWithPath: options.stateDirectory)
        .appendingPathComponent("\(processor.step).hops.sqlite").path
    let factory = try HopRecordStoreFactory.choose(for: options.storeURL, among: stores)
    let opened = try await factory.open(
        HopRecordStoreFactory.Request(
            url: storeURL, step: processor.step, keepFor: options.hopRecordRetention, logger: logger))
    logger.info(
        "starting",
        metadata: [
            "slip.step": "\(processor.step)", "amqp.url": "\(amqp.redactedURL)", "store": "\(opened.description)",
            "amqp.queue_type": "\(amqp.queueType.rawValue)",
            "processor.instance": "\(configuration.instance)", "processor.io": "\(options.io.rawValue)",
            "store.keep_days": "\(options.hopRecordDays == 0 ? "for ever" : "\(options.hopRecordDays)")",
        ])
    let runtime = ProcessorRuntime(
        processor: processor, transport: transport, store: opened.store, transactions: opened.transactions(processor),
        configuration: configuration, logger: logger)
    // Stopped in reverse order on SIGTERM or SIGINT: the application's services, the runtime (which finishes its hops:
    // records, forwards, events, acks), the store's maintenance, and last the transport, which closes the connections
    // and ends the loop's thread.
    let group = ServiceGroup(
        configuration: .init(
            services: [transport] + opened.services + [runtime] + services, gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
    do {
        try await group.run()
    } catch {
        await opened.close()
        throw error
    }
    await opened.close()
}
