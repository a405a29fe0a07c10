import Foundation
import Slipway
import Synchronization

/// Carries out a fault plan, one fault at a time: a kill is followed by its pause and the process's restart before
/// the next fault, and nothing is killed while RabbitMQ restarts (a process started then would only find no broker).
final class FaultRunner: Sendable {
    let fleet: Fleet
    let broker: BrokerControl
    let log: String
    let say: @Sendable (String) -> Void
    private let state = Mutex(State())

    private struct State {
        var restarts: [BrokerControl.Restart] = []
        var restarting = false
        var done = false
    }

    init(fleet: Fleet, broker: BrokerControl, log: String, say: @escaping @Sendable (String) -> Void) {
        self.fleet = fleet
        self.broker = broker
        self.log = log
        self.say = say
    }

    var restarts: [BrokerControl.Restart] { state.withLock { $0.restarts } }
    var isRestartingBroker: Bool { state.withLock { $0.restarting } }
    var isDone: Bool { state.withLock { $0.done } }

    /// Fires each fault once `progress()` (0 to 1) passes its point; gives up on the rest at `deadline` or when
    /// cancelled.
    func run(_ plan: FaultPlan, progress: @escaping @Sendable () -> Double, deadline: ContinuousClock.Instant) async {
        defer { state.withLock { $0.done = true } }
        let brokerRestarts = plan.faults.filter { $0.action == .restartBroker }.count
        for fault in plan.faults {
            while progress() < fault.atProgress {
                if Task.isCancelled || ContinuousClock.now >= deadline { return }
                try? await Task.sleep(for: .milliseconds(50))
            }
            try? await Task.sleep(for: .milliseconds(fault.lagMs))
            switch fault.action {
            case .kill(let process, let pauseMs):
                note("SIGKILL \(process); starting it again in \(pauseMs) ms")
                guard await fleet.kill(process) else { continue }
                try? await Task.sleep(for: .milliseconds(pauseMs))
                do {
                    try await fleet.start(process)
                } catch {
                    note("cannot start \(process) again: \(error)")
                }
            case .restartBroker:
                let number = restarts.count + 1
                state.withLock { $0.restarting = true }
                say(
                    broker.clusterNodes == nil
                        ? "restarting RabbitMQ (\(number) of \(brokerRestarts)), its data kept"
                        : "killing a RabbitMQ node and starting it again (\(number) of \(brokerRestarts))")
                note("restarting RabbitMQ (\(number) of \(brokerRestarts))")
                let restart = await broker.restart()
                state.withLock {
                    $0.restarts.append(restart)
                    $0.restarting = false
                }
                let took = String(format: "%.1f", restart.seconds)
                if restart.ok {
                    say("RabbitMQ is back after \(took) s")
                } else {
                    say("RabbitMQ restart FAILED (\(restart.status)) after \(took) s; see \(broker.logPath)")
                }
            }
        }
    }

    private func note(_ text: String) {
        appendLine("\(SlipCodec.formatTimestamp(Date())) fault: \(text)", to: log)
    }
}
