import Foundation
import SlipwayProcesses
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension ChildProcess {
    /// Started in a process group of its own (a Ctrl-C at the terminal reaches the driver only, which then ends every
    /// child itself), its output appended to `logPath` (stderr to `errorPath` instead, if given), and registered so
    /// that an interrupted driver can end it.
    static func spawn(
        name: String, executable: String, arguments: [String], environment: [String: String], logPath: String,
        errorPath: String? = nil
    ) throws -> ChildProcess {
        let child = try spawn(
            executable, arguments: arguments, environment: environment, output: .append(logPath),
            errors: errorPath.map { .append($0) }, ownProcessGroup: true, name: name)
        ChildRegistry.shared.add(child)
        return child
    }
}

/// Every child still running, so that an interrupted driver can end them all (see `InterruptHandler`).
final class ChildRegistry: Sendable {
    static let shared = ChildRegistry()
    private let children = Mutex<[pid_t: ChildProcess]>([:])

    /// Also forgets the children that have ended.
    func add(_ child: ChildProcess) {
        children.withLock { children in
            children = children.filter { $0.value.isRunning }
            children[child.pid] = child
        }
    }

    /// SIGKILL to every child's process group.
    func killAll() {
        for child in children.withLock({ Array($0.values) }) { child.send(SIGKILL) }
    }
}

/// On SIGINT, SIGTERM or SIGHUP the driver kills every child (their process groups), then exits 128 + the signal: an
/// interrupted run leaves no processor behind.
enum InterruptHandler {
    // Safe: written once, by `install` at the start of `run`, before any other task exists; only kept alive after.
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    static func install() {
        for signalNumber in [SIGINT, SIGTERM, SIGHUP] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                FileHandle.standardError.write(
                    Data("\nslipway-chaos: interrupted (signal \(signalNumber)); killing every process it started\n".utf8))
                ChildRegistry.shared.killAll()
                exit(128 + signalNumber)
            }
            source.resume()
            sources.append(source)
        }
    }
}

struct ChaosError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
