import Foundation
import GRDB
import Hummingbird
import Logging
import Slipway
import SlipwayAMQP
import SlipwayOutbox
import SlipwayTemplates

/// The example producer: an HTTP order API that writes each order's row and its slip (from the order-fulfillment
/// template) in one transaction of its own SQLite file, through the outbox; the relay publishes the slips. The HTTP
/// server, the relay and the AMQP transport run in one ServiceGroup: SIGTERM or SIGINT stops the server, lets the
/// relay finish its batch, then closes the connection. Settings: OrderSettings.swift (`order-api --help`).
let environment = ProcessInfo.processInfo.environment
let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("--help") || arguments.contains("-h") {
    print(OrderSettings.usage)
    exit(0)
}
let settings: OrderSettings
let template: SlipTemplate
let amqp: AMQPConfiguration
let signing: SigningKeys?
let limits: SlipLimits
do {
    settings = try OrderSettings(arguments: arguments, environment: environment)
    template = try SlipTemplate.load(path: settings.template)
    amqp = try {
        var configuration = try AMQPConfiguration.fromEnvironment()
        configuration.queueType = try QueueType.fromEnvironment(environment)
        return configuration
    }()
    signing = try SigningKeys.fromEnvironment(environment)
    limits = try SlipLimits.fromEnvironment(environment)
} catch {
    FileHandle.standardError.write(Data("order-api: \(error)\n\(OrderSettings.usage)\n".utf8))
    exit(2)
}

let logger = {
    var logger = Logger(label: "order-api")
    logger.logLevel = environment["SLIPWAY_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    return logger
}()

let database = try DatabasePool(path: settings.database)
try OrderStore.migrate(database)
let topology = Topology(prefix: environment["SLIPWAY_QUEUE_PREFIX"] ?? "slipway")
let outbox = try SlipOutbox(database: database, topology: topology, limits: limits, signing: signing)
let store = OrderStore(
    database: database, outbox: outbox, template: template, commitDelayMs: settings.commitDelayMs)

let router = Router()
OrderRoutes(store: store, logger: logger).add(to: router)
let transport = AMQPTransport(configuration: amqp, logger: logger)
// The server stops first (the group stops its services in reverse): no order is taken that the relay would miss
// until the next start; then the relay ends its batch, then the transport closes.
let app = Application(
    router: router, configuration: .init(address: .hostname(settings.host, port: settings.port)),
    services: [transport, OutboxRelay(outbox: outbox, transport: transport, logger: logger)],
    onServerRunning: { [settings, template] channel in
        // Whatever the log level: scripts and tests read the port from this line (`--port 0` picks a free one).
        let port = channel.localAddress?.port ?? settings.port
        FileHandle.standardError.write(
            Data("order-api: listening on http://\(settings.host):\(port), orders in \(settings.database), template \(template.template)\n".utf8))
    },
    logger: logger)
do {
    try await app.runService()
} catch {
    FileHandle.standardError.write(Data("order-api: \(error)\n".utf8))
    exit(1)
}
