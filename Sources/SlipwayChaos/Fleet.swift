import Foundation
import Slipway
import SlipwayProcesses

#if canImport(Glibc)
import Glibc
#endif

/// One supervised process: a processor of the example saga, or the audit sink.
struct FleetMember: Sendable {
    let name: String
    let executable: String
    let arguments: [String]
    /// Over the fleet's environment, for this process only (an instance's own state directory).
    var environment: [String: String] = [:]
}

/// A process that ended without the run killing it. It is started again, and the run fails its check: a processor
/// or a sink is meant to survive kills of its neighbours and broker restarts.
struct UnexpectedExit: Sendable, Codable {
    var process: String
    var status: String
    var afterSeconds: Double
}

/// The processes under chaos: started, SIGKILLed, started again, and stopped gracefully at the end. Each appends its
/// output to `<logs>/<name>.log`, with a line from the driver at every start and kill.
actor Fleet {
    let members: [FleetMember]
    let logDirectory: String
    private let environment: [String: String]
    private let startedAt = ContinuousClock.now
    private var running: [String: ChildProcess] = [:]
    private(set) var kills: [String: Int] = [:]
    private(set) var unexpectedExits: [UnexpectedExit] = []

    init(members: [FleetMember], environment: [String: String], logDirectory: String) {
        self.members = members
        self.environment = environment
        self.logDirectory = logDirectory
    }

    func logPath(_ name: String) -> String { "\(logDirectory)/\(name).log" }

    func startAll() throws {
        for member in members { try start(member.name) }
    }

    func start(_ name: String) throws {
        guard let member = members.first(where: { $0.name == name }), running[name] == nil else { return }
        let child = try ChildProcess.spawn(
            name: name, executable: member.executable, arguments: member.arguments,
            environment: environment.merging(member.environment) { _, own in own }, logPath: logPath(name))
        running[name] = child
        note(name, "started, pid \(child.pid)")
    }

    /// SIGKILL, then waits until the process is reaped. False if it was not running.
    func kill(_ name: String) async -> Bool {
        guard let child = running.removeValue(forKey: name) else { return false }
        if let status = child.status {
            recordUnexpectedExit(name, status)
            return false
        }
        child.send(SIGKILL)
        _ = await child.exitStatus()
        kills[name, default: 0] += 1
        note(name, "SIGKILL sent to pid \(child.pid)")
        return true
    }

    /// Starts again every process that ended on its own, and records it.
    func reviveExited() throws {
        for (name, child) in running {
            guard let status = child.status else { continue }
            running[name] = nil
            recordUnexpectedExit(name, status)
            try start(name)
        }
    }

    /// SIGTERM to every process, then SIGKILL to those still running after `grace`. How each ended.
    func stopAll(grace: Duration) async -> [String: ExitStatus] {
        let children = running
        running.removeAll()
        for (name, child) in children {
            note(name, "stopping (SIGTERM)")
            child.send(SIGTERM)
        }
        var statuses: [String: ExitStatus] = [:]
        for (name, child) in children {
            if let status = await child.exitStatus(within: grace) {
                statuses[name] = status
            } else {
                note(name, "still running \(grace) after SIGTERM: SIGKILL")
                child.send(SIGKILL)
                statuses[name] = await child.exitStatus()
            }
        }
        return statuses
    }

    private func recordUnexpectedExit(_ name: String, _ status: ExitStatus) {
        let seconds = Double(startedAt.duration(to: .now).components.seconds)
        unexpectedExits.append(UnexpectedExit(process: name, status: status.description, afterSeconds: seconds))
        note(name, "ended on its own (\(status)); starting it again")
        FileHandle.standardError.write(
            Data("slipway-chaos: \(name) ended on its own (\(status)); see \(logPath(name))\n".utf8))
    }

    /// A line of the driver's in the process's log, so the log reads as one story across restarts.
    private func note(_ name: String, _ text: String) {
        appendLine("--- slipway-chaos \(SlipCodec.formatTimestamp(Date())): \(text)", to: logPath(name))
    }
}

/// Appends a line to a file, creating it if needed.
func appendLine(_ line: String, to path: String) {
    guard let handle = FileHandle(forWritingAtPath: path) ?? {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        return FileHandle(forWritingAtPath: path)
    }() else { return }
    defer { try? handle.close() }
    _ = try? handle.seekToEnd()
    try? handle.write(contentsOf: Data((line + "\n").utf8))
}
