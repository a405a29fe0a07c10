import Foundation
import SlipwayAMQP
import SlipwayProcesses

/// The limit the chain is measured against: the reference's bare C forwarder on librabbitmq (`chain_limit`, which
/// whoever runs the benchmark builds from shared/bench/chain_limit.c; not part of the project), on the same broker in
/// the same run. K forwarders (`chain_limit forward i K 500`: durable queues, persistent messages, confirms, each
/// input acked once its forward is confirmed), then its throughput driver (`chain_limit drive K slips 1000`), whose
/// JSON line gives the hops per second; the forwarders' and the broker's CPU time over the drive give the CPU a hop.
struct CLimitRun {
    let binary: String
    let host: String
    let port: Int
    let directory: String

    init(binary: String, amqpURL: String, directory: String) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchError("--c-limit: no executable at \(binary) (build it: gcc -O2 -o chain_limit chain_limit.c -lrabbitmq)")
        }
        let configuration = try AMQPConfiguration(url: amqpURL)
        self.binary = binary
        host = configuration.host
        port = configuration.port
        self.directory = directory
    }

    /// The driver's result line, the fields the report uses.
    private struct DriverResult: Decodable {
        var received: Int
        var wall_s: Double
        var hops_per_s: Double
    }

    func throughput(hops: Int, slips: Int, brokerPIDs: [pid_t]) async throws -> BenchRun {
        // chain_limit reads the broker's address from AMQP_HOST and AMQP_PORT (guest on 127.0.0.1:5672 without them).
        var environment = ProcessInfo.processInfo.environment
        environment["AMQP_HOST"] = host
        environment["AMQP_PORT"] = String(port)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let forwarders = try (1...hops).map { step in
            try ChildProcess.spawn(
                binary, arguments: ["forward", String(step), String(hops), "500"], environment: environment,
                output: .truncate("\(directory)/c-forwarder-\(step).log"))
        }
        defer { for forwarder in forwarders { _ = forwarder.stopBlocking(grace: .seconds(2)) } }
        try await Task.sleep(for: .seconds(1))  // their queues declared and their consumers on
        let brokerBefore = brokerPIDs.map { treeCPUSeconds(root: $0) }
        let workersBefore = forwarders.compactMap(\.stats)
        let output = "\(directory)/c-driver.json"
        let driver = try ChildProcess.spawn(
            binary, arguments: ["drive", String(hops), String(slips), "1000"], environment: environment,
            output: .truncate(output))
        guard case .exited(0) = await driver.exitStatus() else {
            throw BenchError("chain_limit drive failed; see \(output) and \(directory)/c-forwarder-*.log")
        }
        let workersAfter = forwarders.compactMap(\.stats)
        let brokerAfter = brokerPIDs.map { treeCPUSeconds(root: $0) }
        let line = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n").last { $0.hasPrefix("{") }
        let result = try JSONDecoder().decode(DriverResult.self, from: Data((line ?? "").utf8))

        let hopCount = Double(slips * hops)
        func perHop(_ seconds: Double) -> Double { (seconds / hopCount * 1e7).rounded() / 10 }
        let workerCPU = zip(workersBefore, workersAfter).reduce(0.0) { $0 + $1.1.cpuSeconds - $1.0.cpuSeconds }
        let brokerCPU: Double? =
            brokerBefore.isEmpty || (brokerBefore + brokerAfter).contains(nil)
            ? nil : zip(brokerBefore, brokerAfter).reduce(0.0) { $0 + $1.1! - $1.0! }
        return BenchRun(
            chain: "C forwarder chain-\(hops)", hops: hops, mode: "throughput", slips: slips,
            seconds: result.wall_s, slipsPerSecond: (Double(slips) / result.wall_s).rounded(),
            hopsPerSecond: result.hops_per_s.rounded(), microsPerHop: (1e7 / result.hops_per_s).rounded() / 10,
            workerCPUMicrosPerHop: perHop(workerCPU), sinkCPUMicrosPerHop: nil, brokerCPUMicrosPerHop: brokerCPU.map(perHop),
            postgresCPUMicrosPerHop: nil, store: nil, queueType: "classic",
            workerPeakRSSMB: workersAfter.map(\.peakRSSMB).max() ?? 0, workerPrivateMB: workersAfter.map(\.privateMB).max() ?? 0,
            sinkPeakRSSMB: nil, notEndedAsExpected: slips - result.received, rate: nil, endToEnd: nil, perHop: nil)
    }
}
