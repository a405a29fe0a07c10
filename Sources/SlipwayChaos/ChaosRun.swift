import ExampleLedger
import Foundation
import Logging
import Slipway
import SlipwayPostgres
import SlipwayOperations
import SlipwayProcesses
import SlipwayTemplates

/// Everything a run needs, checked and resolved by the command.
struct ChaosSettings: Sendable {
    var slips: Int
    var seed: UInt64
    var kills: Int
    var brokerRestarts: Int
    var window: Int
    var rate: Double
    var stepDelayMs: Int
    var compensating: Double
    /// The template's file, for the order API.
    var templatePath: String
    var timeout: Duration
    var binDirectory: String
    var amqpURL: String
    var template: SlipTemplate
    var files: RunFiles
    var broker: BrokerControl
    /// Processes per step, each a consumer of the step's queues.
    var instances = 1
    /// The instances of a step share one state directory (one hop record, as on one host), instead of one each.
    var sharedState = false
    /// Slips whose first hop message is sent twice, as a producer that retried might.
    var duplicates = 0
    /// A PostgreSQL hop record every instance shares (`--store`), instead of SQLite files in their state directories.
    var hopStoreURL: String?
}

/// One chaos run: starts the example saga's processors and the audit sink as processes, sends the slips while the
/// fault plan kills processes and restarts RabbitMQ, waits for every slip to end, stops everything, and checks the
/// files left behind.
struct ChaosRun {
    let settings: ChaosSettings

    static let steps = ["reserve-stock", "charge-card", "ship-order", "notify-customer"]
    static let sink = "audit-sink"

    private var files: RunFiles { settings.files }

    func execute() async throws -> ChaosReport {
        try files.prepare()
        // Created and migrated here, once, rather than by four processes racing at their first start.
        _ = try Ledger(path: files.ledger)
        let prefix = "chaos-" + String(UInt32.random(in: .min ... .max), radix: 16)
        let topology = Topology(prefix: prefix)
        let transport = try connect(topology)
        // Before the first slip: the audit queue and its binding (an event published while no queue is bound goes
        // nowhere, and the sink's first start may come late), and the driver's own queue of ends.
        try await reachable(transport) { try await transport.declareAuditQueue(topology) }
        let ends = try await EndWatcher.start(transport: transport, topology: topology)

        var random = SplitMix64(seed: settings.seed)
        let mix = try OrderMix.make(
            count: settings.slips, compensating: settings.compensating, template: settings.template, random: &random,
            viaAPI: Self.viaAPI)
        let orders = mix.map(\.order)
        let apiPort = try freeLoopbackPort()
        let plan = FaultPlan.make(
            kills: settings.kills, brokerRestarts: settings.brokerRestarts,
            targets: Self.steps.flatMap { instanceNames($0) } + [Self.sink], random: &random)

        let fleet = Fleet(members: members(apiPort: apiPort), environment: environment(prefix), logDirectory: files.logs)
        try await fleet.startAll()
        say(
            "\(settings.slips) slips through \(Self.steps.joined(separator: " -> ")) on queue prefix \(prefix) "
                + "(seed \(settings.seed)): \(settings.kills) kills, \(settings.brokerRestarts) broker restarts, "
                + "\(String(format: "%g", settings.rate)) slips/s, steps taking \(settings.stepDelayMs) ms"
                + (settings.instances > 1 && settings.hopStoreURL == nil
                    ? ", \(settings.instances) instances a step with \(settings.sharedState ? "one shared" : "a") hop record"
                        + (settings.sharedState ? "" : " each") : "")
                + (settings.hopStoreURL != nil
                    ? ", \(settings.instances) instance\(settings.instances == 1 ? "" : "s") a step sharing the PostgreSQL hop record"
                    : "")
                + (settings.duplicates > 0 ? ", \(settings.duplicates) slips sent twice" : "")
                + "; one slip in ten is an order through \(ProducerFeeder.name) (port \(apiPort)), killed \(producerKills) times")
        say("logs: \(files.logs)/")

        let started = ContinuousClock.now
        let deadline = started.advanced(by: settings.timeout)
        let counters = Feeder.Counters()
        let feeder = Feeder(
            sender: SlipSender(transport: transport, topology: topology), window: settings.window, rate: settings.rate,
            duplicates: settings.duplicates)
        let direct = mix.indices.filter { !Self.viaAPI($0) }.map { mix[$0].slip }
        let sending = Task {
            await feeder.run(direct, ended: { ends.count }, counters: counters, log: files.driverLog)
        }
        let producer = ProducerFeeder(
            fleet: fleet, port: apiPort, orders: mix.indices.filter(Self.viaAPI).map { mix[$0].slip },
            interval: .seconds(10 / settings.rate), kills: producerKills, log: files.driverLog)
        let producerTally = ProducerFeeder.Tally()
        let producing = Task { [random] in
            var random = random
            await producer.run(counters: counters, tally: producerTally, random: &random)
        }
        let faults = FaultRunner(fleet: fleet, broker: settings.broker, log: files.driverLog, say: say)
        let total = Double(settings.slips)
        let faulting = Task { await faults.run(plan, progress: { Double(ends.count) / total }, deadline: deadline) }
        let ended = await waitForEnds(
            fleet: fleet, ends: ends, counters: counters, faults: faults, producer: producerTally, started: started,
            deadline: deadline)
        sending.cancel()
        faulting.cancel()
        producing.cancel()
        await sending.value
        await faulting.value
        await producing.value
        let seconds = started.duration(to: .now).seconds
        if ended { await settleAudit() }

        say("stopping the processes (SIGTERM)")
        var tally = FaultTally(
            killsPlanned: plan.faults.filter { $0.action != .restartBroker }.count + producerKills,
            kills: await fleet.kills,
            brokerRestartsPlanned: settings.brokerRestarts, brokerRestarts: faults.restarts,
            unexpectedExits: await fleet.unexpectedExits)
        for (name, status) in await fleet.stopAll(grace: .seconds(30)) where status != .exited(0) {
            tally.unexpectedExits.append(
                UnexpectedExit(process: name, status: "\(status) when stopped with SIGTERM", afterSeconds: seconds))
        }
        await ends.stop()
        let parked = await listParked(prefix)
        await transport.shutdown()

        let record = RunRecord(
            seed: settings.seed, queuePrefix: prefix, seconds: seconds, orders: orders, faults: tally, parked: parked,
            resentBatches: counters.failedBatches, hopStorePaths: hopStorePaths(), duplicatesSent: counters.duplicated,
            hopStoreURL: settings.hopStoreURL, producer: producerTally.record)
        try record.save(in: files.root, ends: ends.all)
        return try await Self.check(record, ends: ends.all, files: files)
    }

    /// The checks on a run's files and what the driver recorded: at the end of a run, or again with `--recheck`.
    static func check(_ record: RunRecord, ends: [String: SlipEvent], files: RunFiles) async throws -> ChaosReport {
        let evidence = try await Evidence.load(
            auditPath: files.audit, ledgerPath: files.ledger,
            hopStorePaths: record.hopStorePaths ?? steps.map { files.hopStore(step: $0) }, hopStoreURL: record.hopStoreURL,
            slipIDs: record.orders.map(\.slipID) + (record.producer?.rolledBack ?? []).map(ProducerRecord.slipID(order:)))
        var producer: (record: ProducerRecord, evidence: ProducerEvidence)?
        if let made = record.producer { producer = (made, try await ProducerEvidence.load(path: files.orders)) }
        // Every slip runs at least its first hop, so a record with no rows of this run is the wrong record (another
        // database, a store the processors did not use), not a clean run: the checks that read it would pass unseen.
        if !record.orders.isEmpty && evidence.hopRecords.isEmpty {
            throw ChaosError(
                "no hop record of this run's slips in "
                    + (record.hopStoreURL.map { (try? PostgresStoreURL($0).redacted) ?? "the store" } ?? "the state directory")
                    + ": did the processors use another store?")
        }
        let checks = Checks(
            orders: record.orders, ends: ends, evidence: evidence, parked: record.parked, faults: record.faults,
            producer: producer)
        let results = checks.run()
        let terminal = Dictionary(
            evidence.audit.filter { $0.kind == "terminal" }.map { ($0.slipID, $0.outcome) }) { first, _ in first }
        var endStates: [String: Int] = [:]
        for order in record.orders {
            endStates[terminal[order.slipID] ?? ends[order.slipID]?.state.rawValue ?? "not ended", default: 0] += 1
        }
        let requestedAgain = checks.effectsRequestedAgain()
        return ChaosReport(
            seed: record.seed, slips: record.orders.count, queuePrefix: record.queuePrefix, seconds: record.seconds,
            ends: endStates, checks: results, kills: record.faults.kills, brokerRestarts: record.faults.brokerRestarts,
            redeliveredHops: evidence.redeliveredHops, mostRedeliveries: evidence.mostRedeliveries,
            effectsRequestedAgain: requestedAgain.values.reduce(0, +), effectsRequestedAgainByStep: requestedAgain,
            inboxSteps: Checks.inboxSteps.sorted(), resentBatches: record.resentBatches,
            duplicatesSent: record.duplicatesSent ?? 0, hopRecordsRead: evidence.hopRecords.count,
            hopRecordSource: record.hopStoreURL.map { "PostgreSQL (\((try? PostgresStoreURL($0).redacted) ?? "?"))" }
                ?? "\((record.hopStorePaths ?? steps).count) SQLite files",
            producer: producer.map { Checks.producerSummary($0.0, $0.1) }, stateDirectory: files.root,
            logDirectory: files.logs, passed: results.allSatisfy(\.passed))
    }

    // MARK: Pieces

    /// Until every slip has ended in the audit trail (or been parked), the faults are over, and the driver has every
    /// end's event: true. Until the deadline: false. Processes that ended on their own are started again meanwhile.
    private func waitForEnds(
        fleet: Fleet, ends: EndWatcher, counters: Feeder.Counters, faults: FaultRunner, producer: ProducerFeeder.Tally,
        started: ContinuousClock.Instant, deadline: ContinuousClock.Instant
    ) async -> Bool {
        var lastLine = started
        while true {
            try? await Task.sleep(for: .seconds(1))
            do { try await fleet.reviveExited() } catch { say("cannot start a process again: \(error)") }
            let audit = await Evidence.auditProgress(auditPath: files.audit)
            let calm = counters.finished && producer.finished && faults.isDone
            if calm && audit.ended + audit.parked >= settings.slips && ends.count + audit.parked >= settings.slips {
                return true
            }
            if ContinuousClock.now >= deadline {
                say("TIMEOUT: not every slip ended within \(settings.timeout); checking what there is")
                return false
            }
            if lastLine.duration(to: .now) >= .seconds(5) {
                lastLine = .now
                let kills = await fleet.kills.values.reduce(0, +)
                let phase =
                    faults.isRestartingBroker ? "  (RabbitMQ restarting)" : calm ? "  (faults over; waiting for the last ends)" : ""
                say(
                    "\(Int(started.duration(to: .now).seconds)) s: sent \(counters.sent)/\(settings.slips), "
                        + "ended \(ends.count) (audit trail \(audit.ended)), kills \(kills)/\(settings.kills + producerKills), "
                        + "broker restarts \(faults.restarts.count)/\(settings.brokerRestarts)\(phase)")
            }
        }
    }

    /// The processes of a step: the step's name alone, or `<step>.1`, `<step>.2`, ... for several instances.
    private func instanceNames(_ step: String) -> [String] {
        settings.instances == 1 ? [step] : (1...settings.instances).map { "\(step).\($0)" }
    }

    /// Every processor's hop record file, once.
    private func hopStorePaths() -> [String] {
        var paths: [String] = []
        for step in Self.steps {
            for instance in instanceNames(step) {
                let path = "\(files.stateDirectory(instance: instance, shared: settings.sharedState))/\(step).hops.sqlite"
                if !paths.contains(path) { paths.append(path) }
            }
        }
        return paths
    }

    /// The mix's orders that go in through the order API: one in ten.
    static func viaAPI(_ index: Int) -> Bool { index % 10 == 9 }

    /// Kills of the order API, beside the fault plan's: half as many as the plan's, at least 2 when there are any.
    private var producerKills: Int { settings.kills == 0 ? 0 : max(2, settings.kills / 2) }

    private func members(apiPort: Int) -> [FleetMember] {
        Self.steps.flatMap { step in
            instanceNames(step).map { instance in
                FleetMember(
                    name: instance, executable: "\(settings.binDirectory)/\(step)", arguments: [],
                    environment: [
                        "SLIPWAY_STATE_DIR": files.stateDirectory(instance: instance, shared: settings.sharedState)
                    ])
            }
        } + [
            FleetMember(
                name: Self.sink, executable: "\(settings.binDirectory)/slip",
                arguments: ["audit-sink", "--db", files.audit, "--log-level", "info"]),
            FleetMember(
                name: ProducerFeeder.name, executable: "\(settings.binDirectory)/\(ProducerFeeder.name)", arguments: [],
                environment: [
                    "ORDER_API_DB": files.orders, "ORDER_API_PORT": String(apiPort), "ORDER_API_TEMPLATE": settings.templatePath,
                    "ORDER_API_COMMIT_DELAY_MS": String(ProducerFeeder.commitDelayMs),
                ]),
        ]
    }

    /// The children's environment: ours, plus the run's broker, queue prefix and files.
    private func environment(_ prefix: String) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["SLIPWAY_AMQP_URL"] = settings.amqpURL
        environment["SLIPWAY_QUEUE_PREFIX"] = prefix
        environment["SLIPWAY_STATE_DIR"] = files.hopStates
        environment["SLIPWAY_EXAMPLE_LEDGER"] = files.ledger
        environment["SLIPWAY_AUDIT_DB"] = files.audit
        environment["SLIPWAY_LOG_LEVEL"] = "info"
        if let url = settings.hopStoreURL { environment["SLIPWAY_STORE_URL"] = url }
        // Half before the call to the external system, half after it applied the effect and before it answers: a
        // kill in the second half leaves an effect in force whose hop was never recorded. (The inbox step reserve-stock
        // calls nothing and takes no delay: its effect commits with the hop's record.)
        environment["SLIPWAY_EXAMPLE_DELAY_MS"] = String(settings.stepDelayMs / 2)
        environment["SLIPWAY_EXAMPLE_ANSWER_DELAY_MS"] = String(settings.stepDelayMs - settings.stepDelayMs / 2)
        return environment
    }

    private func connect(_ topology: Topology) throws -> AMQPTransport {
        let path = files.driverLog
        var logger = Logger(label: "slipway-chaos") { FileLogHandler(label: $0, path: path) }
        logger.logLevel = .info
        var configuration = try AMQPConfiguration(url: settings.amqpURL)
        // The audit queue and the driver's own are declared here first: with the processors' type (SLIPWAY_QUEUE_TYPE).
        configuration.queueType = try QueueType.fromEnvironment(ProcessInfo.processInfo.environment)
        return AMQPTransport(configuration: configuration, logger: logger)
    }

    private func reachable(_ transport: AMQPTransport, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            throw ChaosError("cannot set up the run on RabbitMQ at \(transport.configuration.redactedURL): \(error)")
        }
    }

    /// Waits until the audit trail stops growing for 3 s (30 s at most): events published just before a slip's end
    /// (a hop forwarded again after a kill) may still be on their way to the sink.
    private func settleAudit() async {
        var last = await Evidence.auditProgress(auditPath: files.audit).rows
        var stable = 0
        for _ in 0..<60 where stable < 6 {
            try? await Task.sleep(for: .milliseconds(500))
            let rows = await Evidence.auditProgress(auditPath: files.audit).rows
            stable = rows == last ? stable + 1 : 0
            last = rows
        }
    }

    /// The parked messages, from `slip dlq list --json` (which reads the dead-letter queue and gives every message
    /// back). A listing that fails counts as one unknown parked message, so that it cannot pass unseen.
    private func listParked(_ prefix: String) async -> [ParkedMessage] {
        let output = files.dlqList
        do {
            let child = try ChildProcess.spawn(
                name: "slip dlq list", executable: "\(settings.binDirectory)/slip", arguments: ["dlq", "list", "--json"],
                environment: environment(prefix), logPath: output, errorPath: files.driverLog)
            guard let status = await child.exitStatus(within: .seconds(60)) else {
                child.send(SIGKILL)
                throw ChaosError("slip dlq list did not finish within 60 s")
            }
            guard status == .exited(0) else { throw ChaosError("slip dlq list ended with \(status)") }
            return try JSONDecoder().decode([ParkedMessage].self, from: Data(contentsOf: URL(fileURLWithPath: output)))
        } catch {
            say("cannot list the dead-letter queue: \(error)")
            return [ParkedMessage(parkedId: "?", reasonCode: "unknown", reason: "the listing failed: \(error)", slipId: nil)]
        }
    }
}

/// A progress line on standard output, unbuffered (the run is often piped through `tee`).
@Sendable func say(_ text: String) {
    FileHandle.standardOutput.write(Data("chaos: \(text)\n".utf8))
}
