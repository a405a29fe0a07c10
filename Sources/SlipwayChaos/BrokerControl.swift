import Foundation
import Slipway
import SlipwayProcesses

/// Restarts RabbitMQ with its data kept: by default `scripts/broker.sh restart`, which acts on the private node that
/// `scripts/with-broker.sh` started (it passes SLIPWAY_BROKER_PORT and SLIPWAY_BROKER_DIR down to us and on to it).
struct BrokerControl: Sendable {
    /// The program and its arguments.
    let command: [String]
    let environment: [String: String]
    let logPath: String

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

    func restart() async -> Restart {
        let started = ContinuousClock.now
        appendLine("--- slipway-chaos \(SlipCodec.formatTimestamp(Date())): \(command.joined(separator: " "))", to: logPath)
        let status: ExitStatus
        do {
            let child = try ChildProcess.spawn(
                name: "broker restart", executable: command[0], arguments: Array(command.dropFirst()),
                environment: environment, logPath: logPath)
            status = await child.exitStatus()
        } catch {
            appendLine("slipway-chaos: \(error)", to: logPath)
            status = .exited(-1)
        }
        let elapsed = started.duration(to: .now)
        return Restart(ok: status == .exited(0), seconds: elapsed.seconds, status: status.description)
    }
}

extension Duration {
    /// Seconds as a floating-point number, for reports.
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
