import Foundation
import Testing

@Suite("slip bench")
struct BenchTests {
    /// A small run of every mode: what `make bench` does, at a size CI can afford. Figures are not asserted (speed is
    /// the benchmark's to report, not a test's); that every slip came through and the report says so is.
    @Test("a short run of every mode reports each chain's throughput and latency, with every slip ended completed")
    func shortRun() async throws {
        let fleet = try SagaFleet(name: "bench")
        let json = fleet.directory.appendingPathComponent("bench.json").path
        let run = try await fleet.slip([
            "bench", "--hops", "2", "--slips", "40", "--rates", "20", "--duration", "1", "--scaling", "3",
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
}
