import Foundation
import Slipway
import SlipwayOperations

/// What the driver knew at the end of a run and the files do not hold: the orders it sent, the faults it caused,
/// what was parked. Saved in the state directory with the terminal events it received, so that `--recheck` can run
/// the checks again on the same files (after editing a copy by hand, to see a check fail).
struct RunRecord: Sendable, Codable {
    var seed: UInt64
    var queuePrefix: String
    var seconds: Double
    var orders: [Order]
    var faults: FaultTally
    var parked: [ParkedMessage]
    var resentBatches: Int
    /// Every processor's hop record file (the checks read them all); nil in a record from before instances.
    var hopStorePaths: [String]?
    /// Slips whose first hop message the driver sent twice on purpose.
    var duplicatesSent: Int?
    /// The PostgreSQL hop record the processors shared, if they did (`--store`); the checks read it instead of files.
    var hopStoreURL: String?
    /// What went in through the example order API; nil in a record from before it.
    var producer: ProducerRecord?

    static let fileName = "run.json"
    static let endsFileName = "ends.json"

    func save(in directory: String, ends: [String: SlipEvent]) throws {
        let encoder = SlipCodec.makeEncoder()
        try encoder.encode(self).write(to: URL(fileURLWithPath: "\(directory)/\(Self.fileName)"))
        let events = ends.values.sorted { $0.slipID < $1.slipID }
        try encoder.encode(events).write(to: URL(fileURLWithPath: "\(directory)/\(Self.endsFileName)"))
    }

    static func load(from directory: String) throws -> (RunRecord, [String: SlipEvent]) {
        let decoder = SlipCodec.makeDecoder()
        for name in [fileName, endsFileName] where !FileManager.default.fileExists(atPath: "\(directory)/\(name)") {
            throw ChaosError("no finished run to check again in \(directory): it has no \(name)")
        }
        do {
            let record = try decoder.decode(
                RunRecord.self, from: Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(fileName)")))
            let events = try decoder.decode(
                [SlipEvent].self, from: Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(endsFileName)")))
            return (record, Dictionary(events.map { ($0.slipID, $0) }) { first, _ in first })
        } catch {
            throw ChaosError("cannot read the run's record in \(directory): \(error)")
        }
    }
}
