import Foundation
import Slipway
import SlipwayAudit
import Testing

/// The audit queue exists as soon as anything that publishes events has started: events are never sent to an exchange
/// with no queue bound (the broker would confirm and drop them).
@Suite("Audit queue declared by processors")
struct AuditQueueTests {
    @Test("slips run while no audit sink was ever started are all in the audit trail once the sink starts for the first time")
    func hopsBeforeTheSinksFirstStartAreRecorded() async throws {
        let fleet = try SagaFleet(name: "audit-late")
        try fleet.startAll()
        defer { fleet.stopAll() }
        let producer = try Producer(fleet: fleet)
        let completed = try producer.order()
        let compensated = try producer.order(["country": "AQ"])
        let ends = try await producer.run([completed, compensated])
        #expect(ends[completed.id]?.state == .completed)
        #expect(ends[compensated.id]?.state == .compensated)

        // Only now does a sink start, for the first time: every hop is waiting in its queue.
        try fleet.startSink()
        typealias Row = AuditTests.Row
        let done = try await AuditTests.recordedTimeline(fleet, completed.id)
        #expect(
            done.hops.map(Row.init) == [
                Row(0, "execute", "reserve-stock", "completed"), Row(1, "execute", "charge-card", "completed"),
                Row(2, "execute", "ship-order", "completed"), Row(3, "execute", "notify-customer", "completed"),
                Row(3, "terminal", "notify-customer", "completed"),
            ], "sink log:\n\(fleet.log("audit-sink"))")
        let undone = try await AuditTests.recordedTimeline(fleet, compensated.id)
        #expect(
            undone.hops.map(Row.init) == [
                Row(0, "execute", "reserve-stock", "completed"), Row(1, "execute", "charge-card", "completed"),
                Row(2, "execute", "ship-order", "faulted"), Row(3, "compensate", "charge-card", "completed"),
                Row(4, "compensate", "reserve-stock", "completed"), Row(4, "terminal", "reserve-stock", "compensated"),
            ])
    }

    @Test("a processor whose user may not declare the audit queue (an older slip topology) still serves, and says so")
    func olderPermissionsStillServe() async throws {
        let broker = try await PrivateBroker.start(portOffset: 41)
        defer { broker.stop() }
        let prefix = "tolder-\(UUID().uuidString.prefix(8).lowercased())"
        let user = "\(prefix).step.first"
        // The processor permissions `slip topology` gave before the audit queue was the processors' to declare.
        let p = prefix
        for arguments in [
            ["add_user", user, "secret"],
            [
                "set_permissions", "-p", "/", user, #"^\#(p)\.(events|dead-letters|[^.]+\.(execute|compensate)(\.delay-[0-9]+ms)?)$"#,
                #"^(amq\.default|\#(p)\.events)$"#,
                #"^\#(p)\.(first\.(execute|compensate)(\.delay-[0-9]+ms)?|[^.]+\.execute\.delay-[0-9]+ms)$"#,
            ],
        ] {
            let result = try await runToEnd("/usr/sbin/rabbitmqctl", ["-n", broker.nodeName, "-q"] + arguments)
            try #require(result.status == 0, "\(result.errors)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-tests/\(prefix)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let processes = Processes(directory: directory, prefix: prefix)
        defer { processes.stopAll() }
        try processes.start(
            "first", executable: "probe-step", arguments: ["--step", "first"],
            url: "amqp://\(user):secret@127.0.0.1:\(broker.port)/")

        let producer = try Broker.transport(url: broker.url)
        defer { Task { await producer.shutdown() } }
        let topology = Topology(prefix: prefix)
        let slip = Slip(template: "older-permissions", itinerary: [ItineraryStep(step: "first")])
        let event = try await SlipSender(transport: producer, topology: topology).sendAndWait(slip, timeout: .seconds(60))
        #expect(event.state == .completed, "\(processes.logs)")
        #expect(processes.logs.contains("cannot declare the audit queue"), "\(processes.logs)")
    }
}
