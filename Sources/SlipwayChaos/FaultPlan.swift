import Slipway

/// What the run does to the system, and when, drawn from the seed before the first slip is sent.
///
/// "When" is a point in the run's progress (the share of slips that have ended) rather than a time: a debug build on
/// a busy machine and a release build see the faults at the same stage of their work. A fault fires as soon as
/// progress passes its point, after a further random wait of up to `maxLagMs`, so kills land at any moment of a hop.
struct FaultPlan: Sendable {
    enum Action: Sendable, Equatable {
        /// SIGKILL the process, wait `pauseMs`, start it again.
        case kill(process: String, pauseMs: Int)
        case restartBroker
    }

    struct Fault: Sendable {
        var atProgress: Double
        var lagMs: Int
        var action: Action
    }

    var faults: [Fault]

    static let maxLagMs = 400
    static let pauseMs = 50...2_000

    /// `kills` kills spread at random between 2 % and 92 % of the run, each of a process drawn from `targets`; broker
    /// restarts spread evenly (at 1/3 and 2/3 for two), each moved by up to 5 % either way.
    static func make(kills: Int, brokerRestarts: Int, targets: [String], random: inout SplitMix64) -> FaultPlan {
        var faults: [Fault] = []
        for _ in 0..<kills {
            faults.append(
                Fault(
                    atProgress: Double.random(in: 0.02...0.92, using: &random),
                    lagMs: Int.random(in: 0...maxLagMs, using: &random),
                    action: .kill(
                        process: targets[Int.random(in: 0..<targets.count, using: &random)],
                        pauseMs: Int.random(in: pauseMs, using: &random))))
        }
        for index in 0..<brokerRestarts {
            let even = Double(index + 1) / Double(brokerRestarts + 1)
            faults.append(
                Fault(
                    atProgress: even + Double.random(in: -0.05...0.05, using: &random),
                    lagMs: Int.random(in: 0...maxLagMs, using: &random), action: .restartBroker))
        }
        return FaultPlan(faults: faults.sorted { $0.atProgress < $1.atProgress })
    }
}
