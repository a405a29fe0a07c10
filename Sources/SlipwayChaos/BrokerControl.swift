import Foundation
import Slipway
import SlipwayProcesses
import Synchronization

/// Restarts RabbitMQ with its data kept: by default `scripts/broker.sh restart`, which acts on the private node that
/// `scripts/with-broker.sh` started (it passes SLIPWAY_BROKER_PORT and SLIPWAY_BROKER_DIR down to us and on to it).
struct BrokerControl: Sendable {
    /// The program and its arguments.
    let command: [String]
    let environment: [String: String]
    let logPath: String
    /// On a cluster: the nodes, restarted one at a time in turn (`command` is scripts/cluster.sh, which gets
    /// `kill-node N`, then `restart-node N`).
    var clusterNodes: ClusterNodes?

    /// Which node of a cluster goes down next: 1, 2, ..., N, 1, ...
    final class ClusterNodes: Sendable {
        let count: Int
        private let next = Mutex(1)
        init(count: Int) { self.count = count }
        func take() -> Int {
            next.withLock { node in
                defer { node = node % count + 1 }
                return node
            }
        }
    }

    /// scripts/cluster.sh on the cluster the run uses (its nodes on $SLIPWAY_CLUSTER_PORT and up): a fault SIGKILLs a
    /// node, as a host lost would, and starts it again, so that it rejoins; never two nodes at once.
    static func clusterScript(nodes: Int, environment: [String: String], logPath: String) throws -> BrokerControl {
        let script = FileManager.default.currentDirectoryPath + "/scripts/cluster.sh"
        guard FileManager.default.isReadableFile(atPath: script) else {
            throw ChaosError("no scripts/cluster.sh in \(FileManager.default.currentDirectoryPath): run from the repository's root")
        }
        var environment = environment
        environment["SLIPWAY_CLUSTER_NODES"] = String(nodes)
        return BrokerControl(
            command: ["/bin/bash", script], environment: environment, logPath: logPath,
            clusterNodes: ClusterNodes(count: nodes))
    }

    struct Restart: Sendable, Codable {
        var ok: Bool
        var seconds: Double
        var status: String
    }

    /// The default command, after checking that it restarts the broker the run uses: broker.sh restarts the node on
    /// $SLIPWAY_BROKER_PORT (5680 unless set), whatever URL the run was given.
    static func brokerScript(amqp: AMQPConfiguration, environment: [String: String], logPath: String) throws
        -> BrokerControl
    {
        let script = FileManager.default.currentDirectoryPath + "/scripts/broker.sh"
        guard FileManager.default.isReadableFile(atPath: script) else {
            throw ChaosError(
                "no scripts/broker.sh in \(FileManager.default.currentDirectoryPath): run from the repository's root, "
                    + "or name the restart command with --broker-restart-command")
        }
        let port = environment["SLIPWAY_BROKER_PORT"] ?? "5680"
        guard port == String(amqp.port) else {
            throw ChaosError(
                "scripts/broker.sh would restart the node on port \(port), but the run uses \(amqp.redactedURL): "
                    + "set SLIPWAY_BROKER_PORT (scripts/with-broker.sh does) or pass --broker-restart-command")
        }
        return BrokerControl(command: ["/bin/bash", script, "restart"], environment: environment, logPath: logPath)
    }

    /// A command line of the user's, run by bash.
    static func shell(_ commandLine: String, environment: [String: String], logPath: String) -> BrokerControl {
        BrokerControl(command: ["/bin/bash", "-c", commandLine], environment: environment, logPath: logPath)
    }

    /// What the last restart took down: "RabbitMQ", or "node N" of a cluster.
    func restart() async -> Restart {
        let started = ContinuousClock.now
        var status: ExitStatus
        if let clusterNodes {
            let node = clusterNodes.take()
            status = await run(command + ["kill-node", String(node)])
            if status == .exited(0) { status = await run(command + ["restart-node", String(node)]) }
        } else {
            status = await run(command)
        }
        let elapsed = started.duration(to: .now)
        return Restart(ok: status == .exited(0), seconds: elapsed.seconds, status: status.description)
    }

    private func run(_ command: [String]) async -> ExitStatus {
        appendLine("--- slipway-chaos \(SlipCodec.formatTimestamp(Date())): \(command.joined(separator: " "))", to: logPath)
        do {
            let child = try ChildProcess.spawn(
                name: "broker restart", executable: command[0], arguments: Array(command.dropFirst()),
                environment: environment, logPath: logPath)
            return await child.exitStatus()
        } catch {
            appendLine("slipway-chaos: \(error)", to: logPath)
            return .exited(-1)
        }
    }
}
