import Foundation
import SlipwayCore
import SlipwayPostgres
import SlipwayStores
import SlipwayTransport
import Testing

/// Hops/s of claim + save + markForwarded (what a processor does for each hop) from N concurrent tasks, the SQLite
/// store against the PostgreSQL one on the same machine. Not a product and not a check: it prints figures.
/// `SLIPWAY_STORE_BENCH=1 SLIPWAY_POSTGRES_TESTS=1` (`SLIPWAY_STORE_BENCH_HOPS`, 4,000 by default, sets the hops).
@Suite(
    "Hop record stores: a benchmark",
    .enabled(
        if: PostgresTestServer.enabled && ProcessInfo.processInfo.environment["SLIPWAY_STORE_BENCH"] == "1",
        "set SLIPWAY_STORE_BENCH=1 and SLIPWAY_POSTGRES_TESTS=1"))
struct StoreBenchmark {
    static let hops = Int(ProcessInfo.processInfo.environment["SLIPWAY_STORE_BENCH_HOPS"] ?? "") ?? 4_000

    func run(_ store: any HopRecordStore, step: String, concurrency: Int) async throws -> Double {
        let perTask = Self.hops / concurrency
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<concurrency {
                group.addTask {
                    for index in 0..<perTask {
                        let slip = "bench-\(task)-\(index)"
                        guard try await store.claim(slipID: slip, sequence: 1, owner: "bench", lease: .seconds(30)) == .claimed
                        else { throw PostgresTestError("hop \(slip) not claimed") }
                        try await store.save(hopRecord(slip, 1, step: step, body: Array(repeating: 65, count: 1_200)))
                        try await store.markForwarded(slipID: slip, sequence: 1)
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = clock.now - start
        return Double(perTask * concurrency) / elapsed.seconds
    }

    @Test("claim + save + markForwarded, hops/s by concurrency")
    func compare() async throws {
        let url = try await PostgresTestServer.ready()
        var lines: [String] = []
        for concurrency in [1, 8, 32, 128] {
            let path = FileManager.default.temporaryDirectory
                .appendingPathComponent("bench-\(UUID().uuidString)/hops.sqlite").path
            let sqlite = try SQLiteHopRecordStore(path: path)
            let sqliteRate = try await run(sqlite, step: "bench", concurrency: concurrency)
            let step = uniqueStep()
            let postgresRate = try await withStore(url: url, step: step) { postgres in
                let rate = try await run(postgres, step: step, concurrency: concurrency)
                await postgres.flush()
                _ = try await postgres.prune(recordedBefore: Date().addingTimeInterval(60))
                return rate
            }
            try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path)
            lines.append(
                "concurrency \(concurrency): SQLite \(Int(sqliteRate)) hops/s, PostgreSQL \(Int(postgresRate)) hops/s "
                    + "(\(Int(100 * postgresRate / sqliteRate))%)")
        }
        print("store benchmark, \(Self.hops) hops each:\n" + lines.joined(separator: "\n"))
    }
}
