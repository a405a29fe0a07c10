import Foundation
import Testing

@Suite("slipway-bench")
struct BenchTests {
    /// A small run of every mode: what `make bench` does, at a size CI can afford. Figures are not asserted (speed is
    /// the benchmark's to report, not a test's); that every slip came through and the report says so is.
    @Test("a short run of every mode reports each chain's throughput and latency, with every slip ended completed")
    func shortRun() async throws {
        let fleet = try SagaFleet(name: "bench")
        let json = fleet.directory.appendingPathComponent("bench.json").path
        let run = try await bench(fleet, [
            "--hops", "2", "--slips", "40", "--rates", "20", "--duration", "1", "--scaling", "3",
            "--state-dir", fleet.directory.appendingPathComponent("bench").path, "--json", json,
        ])
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.output.contains("targets"))

        struct Report: Decodable {
            struct Run: Decodable {
                var chain: String
                var hops: Int
                var mode: String
                var slips: Int
                var notEndedAsExpected: Int
                var hopsPerSecond: Double
                var endToEnd: Latency?
            }
            struct Latency: Decodable { var p50: Double; var p99: Double }
            var runs: [Run]
            var slipBytesAtLastHop: [String: Int]
        }
        let report = try JSONDecoder().decode(Report.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        let kinds = report.runs.map { "\($0.chain.hasPrefix("slipway") ? "slipway" : "bare") \($0.mode) \($0.hops)" }
        #expect(
            kinds == [
                "bare throughput 2", "slipway throughput 2", "bare latency 2", "slipway latency 2", "bare scaling 3",
                "slipway scaling 3",
            ])
        for run in report.runs {
            #expect(run.notEndedAsExpected == 0, "\(run.chain) \(run.mode)")
            #expect(run.hopsPerSecond > 0)
            #expect(run.slips == (run.mode == "latency" ? 20 : 40))
            if run.mode == "latency" { #expect((run.endToEnd?.p99 ?? 0) >= (run.endToEnd?.p50 ?? 1)) }
        }
        #expect((report.slipBytesAtLastHop["3"] ?? 0) > 0)
    }

    /// The issue's comparison in one run: the SQLite and the PostgreSQL hop record on quorum queues, against the same
    /// broker. Needs the private PostgreSQL (`SLIPWAY_POSTGRES_TESTS=1`, as `make test` sets).
    @Test(
        "a run with --store sqlite and --store postgres:// on quorum queues measures both, PostgreSQL's CPU time with its record",
        .enabled(if: ProcessInfo.processInfo.environment["SLIPWAY_POSTGRES_TESTS"] == "1", "set SLIPWAY_POSTGRES_TESTS=1"))
    func storesAndQueueTypes() async throws {
        try await PostgresStoreIntegrationTests.started.value
        let port = PostgresStoreIntegrationTests.port
        let pidFile =
            "\(ProcessInfo.processInfo.environment["SLIPWAY_PG_DIR"] ?? "/tmp/slipway-postgres-\(port)")/data/postmaster.pid"
        let fleet = try SagaFleet(name: "benchstores")
        let json = fleet.directory.appendingPathComponent("bench.json").path
        let state = fleet.directory.appendingPathComponent("bench").path
        let run = try await bench(fleet, [
            "--hops", "5", "--slips", "40", "--rates", "200", "--duration", "1", "--scaling", "5", "--no-baseline",
            "--store", "sqlite", "--store", PostgresStoreIntegrationTests.url, "--queue-type", "quorum",
            "--postgres-pid-file", pidFile, "--state-dir", state, "--json", json,
        ])
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.output.contains("PostgreSQL store ÷ SQLite store"))
        #expect(run.output.contains("stores and queue types"))
        #expect(!run.output.contains("slipway:slipway@"), "the store's password is in the report")

        struct Report: Decodable {
            struct Run: Decodable {
                var mode: String
                var store: String?
                var queueType: String
                var notEndedAsExpected: Int
                var postgresCPUMicrosPerHop: Double?
            }
            struct Row: Decodable {
                var store: String
                var queueType: String
                var hopsPerSecond: Double?
                var p99At200: Double?
            }
            var runs: [Run]
            var comparison: [Row]
        }
        let report = try JSONDecoder().decode(Report.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        let kinds = report.runs.map { "\($0.store ?? "-") \($0.queueType) \($0.mode)" }
        #expect(
            kinds == [
                "sqlite quorum throughput", "postgres quorum throughput", "sqlite quorum latency", "postgres quorum latency",
                "sqlite quorum scaling", "postgres quorum scaling",
            ])
        for run in report.runs {
            #expect(run.notEndedAsExpected == 0, "\(kinds)")
            // The server's CPU time is reported for the chains whose record it keeps, and only for those.
            #expect((run.postgresCPUMicrosPerHop != nil) == (run.store == "postgres"), "\(run.store ?? "-") \(run.mode)")
        }
        #expect(report.comparison.map { "\($0.store) \($0.queueType)" } == ["sqlite quorum", "postgres quorum"])
        for row in report.comparison {
            #expect((row.hopsPerSecond ?? 0) > 0)
            #expect(row.p99At200 != nil)
        }
        // The PostgreSQL chains kept no SQLite record: their processors used the store they were given.
        let files = FileManager.default.enumerator(atPath: state)?.compactMap { $0 as? String } ?? []
        let sqliteRecords = files.filter { $0.hasSuffix(".hops.sqlite") }
        #expect(sqliteRecords.count == 3 * 5, "\(sqliteRecords)")
    }

    /// Runs `slipway-bench ARGUMENTS` against the fleet's broker. It finds probe-step, bench-forwarder and slip beside
    /// itself.
    private func bench(_ fleet: SagaFleet, _ arguments: [String]) async throws -> (status: Int32, output: String, errors: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["SLIPWAY_AMQP_URL"] = fleet.amqpURL
        return try await runToEnd(try Binaries.path("slipway-bench"), arguments, environment: environment)
    }
}
