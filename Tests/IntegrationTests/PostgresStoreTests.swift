import Foundation
import Slipway
import SlipwayPostgres
import SlipwayProcesses
import SlipwayStores
import Testing

/// probe-step processes with `--store postgres://...` over a real RabbitMQ and the private PostgreSQL of
/// scripts/postgres.sh (`SLIPWAY_POSTGRES_TESTS=1`; port `SLIPWAY_PG_PORT`, 5480 by default).
@Suite(
    "Hop record in PostgreSQL, end to end",
    .enabled(if: ProcessInfo.processInfo.environment["SLIPWAY_POSTGRES_TESTS"] == "1", "set SLIPWAY_POSTGRES_TESTS=1"))
struct PostgresStoreIntegrationTests {
    static let port = Int(ProcessInfo.processInfo.environment["SLIPWAY_PG_PORT"] ?? "") ?? 5480
    static let url = "postgres://slipway:slipway@127.0.0.1:\(port)/slipway"

    static let started = Task<Void, any Error> {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/postgres.sh").path
        var variables = ProcessInfo.processInfo.environment
        variables["SLIPWAY_PG_PORT"] = String(port)
        let environment = variables
        try await offThePool {
            let child = try ChildProcess.spawn("/bin/bash", arguments: [script, "start"], environment: environment, output: .inherit)
            guard child.waitBlocking() == .exited(0) else { throw HarnessError("scripts/postgres.sh start failed") }
        }
    }

    @Test("probe-step processes record their hops in PostgreSQL (URL in the environment, and in a file) and the slip completes")
    func slipThroughPostgresRecords() async throws {
        try await Self.started.value
        let urlFile = FileManager.default.temporaryDirectory.appendingPathComponent("store-url-\(UUID().uuidString)").path
        try Data("\(Self.url)\n".utf8).write(to: URL(fileURLWithPath: urlFile))
        defer { try? FileManager.default.removeItem(atPath: urlFile) }
        let steps = ["pg-a-\(UUID().uuidString.prefix(6))", "pg-b-\(UUID().uuidString.prefix(6))"]
        let fleet = try SagaFleet(
            name: "postgres",
            environment: [steps[0]: ["SLIPWAY_STORE_URL": Self.url], steps[1]: ["SLIPWAY_STORE_URL_FILE": urlFile]])
        defer { fleet.stopAll() }
        for step in steps { try fleet.startProbe(step) }
        let producer = try Producer(fleet: fleet)
        let slip = Slip(template: "probe", itinerary: steps.map { ItineraryStep(step: $0) })

        let event = try #require(try await producer.run([slip])[slip.id])

        #expect(event.state == .completed)
        // Each step's hop is in the shared record, and no SQLite record was made in the state directory.
        for step in steps {
            let store = try await PostgresHopRecordStore.open(url: Self.url, step: step, keepFor: nil)
            // The store's services (its client, and the store) run while it is read.
            let found = try await withThrowingTaskGroup(of: Void.self) { group in
                for service in store.services { group.addTask { try await service.run() } }
                defer { group.cancelAll() }
                var found: [HopRecord] = []
                for sequence in 0..<4 { if let record = try await store.record(slipID: slip.id, sequence: sequence) { found.append(record) } }
                return found
            }
            #expect(found.count == 1, "\(step): \(found.count) records")
            #expect(found.first?.outcome == .completed)
        }
        let state = fleet.directory.appendingPathComponent("state").path
        let files = (try? FileManager.default.contentsOfDirectory(atPath: state)) ?? []
        #expect(files.filter { $0.hasSuffix(".sqlite") }.isEmpty, "\(files)")
        for step in steps { #expect(!fleet.log(step).contains("slipway:slipway@"), "the password is in \(step)'s log") }
    }

    @Test("a processor given a store URL with an unknown sslmode exits with a clear error and no password")
    func badStoreURL() async throws {
        let result = try await runToEnd(
            try Binaries.path("probe-step"), ["--step", "x", "--store", "postgres://slipway:hunter2@127.0.0.1:1/db?sslmode=maybe"],
            timeout: .seconds(60))
        #expect(result.status != 0)
        #expect(result.errors.contains("sslmode"))
        #expect(!result.errors.contains("hunter2"))
    }
}
