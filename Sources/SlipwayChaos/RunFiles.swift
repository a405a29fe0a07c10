import Foundation

/// Where a run keeps its files, under the state directory:
/// `state/` (the processors' hop records), `logs/` (one log per process, the driver's, the broker restarts'),
/// `ledger.sqlite` (the example's external systems), `audit.sqlite` (the sink's), and `run.json` with `ends.json`
/// (what the driver knew, for `--recheck`).
struct RunFiles: Sendable {
    let root: String

    init(root: String) {
        self.root = URL(fileURLWithPath: root).standardizedFileURL.path
    }

    var hopStates: String { "\(root)/state" }
    var logs: String { "\(root)/logs" }
    var ledger: String { "\(root)/ledger.sqlite" }
    var audit: String { "\(root)/audit.sqlite" }
    var driverLog: String { "\(logs)/driver.log" }
    var brokerLog: String { "\(logs)/broker-restarts.log" }
    var dlqList: String { "\(logs)/dlq-list.json" }
    /// The example order API's database: its orders and its outbox.
    var orders: String { "\(root)/orders.sqlite" }

    func hopStore(step: String) -> String { "\(hopStates)/\(step).hops.sqlite" }

    /// The state directory of one instance of a step: `state/<instance>`, as if each ran on a host of its own, or
    /// `state` for every instance when they share it (one hop record per step, as processes on one host share it).
    func stateDirectory(instance: String, shared: Bool) -> String { shared ? hopStates : "\(hopStates)/\(instance)" }

    /// Marks a directory as a chaos run's, so that the next run may empty it.
    private var marker: String { "\(root)/.slipway-chaos" }

    /// Creates the directory, or empties one an earlier run left (recognised by its marker). Refuses to empty a
    /// directory that has files and no marker: it is not ours.
    func prepare() throws {
        let manager = FileManager.default
        if let entries = try? manager.contentsOfDirectory(atPath: root), !entries.isEmpty {
            guard manager.fileExists(atPath: marker) else {
                throw ChaosError("\(root) has files and is not a chaos run's state directory: pass another --state-dir")
            }
            for entry in entries { try manager.removeItem(atPath: "\(root)/\(entry)") }
        }
        try manager.createDirectory(atPath: hopStates, withIntermediateDirectories: true)
        try manager.createDirectory(atPath: logs, withIntermediateDirectories: true)
        _ = manager.createFile(atPath: marker, contents: Data("a slipway-chaos run; the next run empties this directory\n".utf8))
    }
}
