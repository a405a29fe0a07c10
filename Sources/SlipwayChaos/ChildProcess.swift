import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How a child ended.
enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// From a `waitpid` status word (the C macros WIFEXITED and friends are not visible to Swift).
    init(waitStatus: Int32) {
        let signal = waitStatus & 0x7f
        self = signal == 0 ? .exited((waitStatus >> 8) & 0xff) : .signaled(signal)
    }

    var description: String {
        switch self {
        case .exited(let code): "exit \(code)"
        case .signaled(let signal): signal == SIGKILL ? "SIGKILL" : "signal \(signal)"
        }
    }
}

/// A child process: started with `posix_spawn` in a process group of its own, with its output appended to a log file,
/// and reaped by a thread of ours with `waitpid`. Not Foundation's `Process`: its `waitUntilExit` was seen to hang
/// forever on a child reaped behind its back.
///
/// A signal is only ever sent to a child that has not been reaped yet (the reaper first waits with `WNOWAIT`, marks
/// the child as gone under the lock, and only then reaps it), so a recycled pid can never receive it.
final class ChildProcess: Sendable {
    let name: String
    let pid: pid_t
    private let state = Mutex(State())

    private struct State {
        var gone = false
        var status: ExitStatus?
        var waiters: [CheckedContinuation<ExitStatus, Never>] = []
    }

    private init(name: String, pid: pid_t) {
        self.name = name
        self.pid = pid
    }

    /// Starts `executable` with `arguments` and exactly `environment`; stdin is /dev/null, stdout and stderr are
    /// appended to `logPath` (stderr to `errorPath` instead, if given). Signals the driver ignores or blocks are reset
    /// to their defaults in the child.
    static func spawn(
        name: String, executable: String, arguments: [String], environment: [String: String], logPath: String,
        errorPath: String? = nil
    ) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if let errorPath {
            posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A group of its own: a Ctrl-C at the terminal reaches the driver only, which then ends every child itself.
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var argv = ([executable] + arguments).map { strdup($0) } + [nil]
        var envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, &argv, &envp)
        guard result == 0 else {
            throw ChaosError("cannot start \(name) (\(executable)): \(String(cString: strerror(result)))")
        }
        let child = ChildProcess(name: name, pid: pid)
        ChildRegistry.shared.add(child)
        let reaper = Thread { child.reap() }
        reaper.name = "slipway-chaos-reaper-\(pid)"
        reaper.start()
        return child
    }

    /// On the reaper thread: waits for the child to end without reaping it, closes the door to signals, then reaps.
    private func reap() {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1 && errno == EINTR {}
        state.withLock { $0.gone = true }
        var status: Int32 = 0
        var reaped: pid_t
        repeat { reaped = waitpid(pid, &status, 0) } while reaped == -1 && errno == EINTR
        let exit = reaped == pid ? ExitStatus(waitStatus: status) : .exited(-1)
        ChildRegistry.shared.remove(self)
        let waiters = state.withLock { state in
            state.status = exit
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: exit) }
    }

    /// Sends `signal` to the child's whole process group, unless it has ended already.
    func send(_ signal: Int32) {
        state.withLock { state in
            guard !state.gone else { return }
            _ = kill(-pid, signal)
        }
    }

    /// How it ended, or nil while it runs.
    var status: ExitStatus? { state.withLock { $0.status } }

    /// Waits for the child to end (suspends; blocks no thread).
    func exitStatus() async -> ExitStatus {
        await withCheckedContinuation { continuation in
            let known: ExitStatus? = state.withLock { state in
                if let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let known { continuation.resume(returning: known) }
        }
    }

    /// Waits up to `timeout` for the child to end; nil if it is still running then.
    func exitStatus(within timeout: Duration) async -> ExitStatus? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let status { return status }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return status
    }
}

/// Every child still running, so that an interrupted driver can end them all (see `InterruptHandler`).
final class ChildRegistry: Sendable {
    static let shared = ChildRegistry()
    private let children = Mutex<[pid_t: ChildProcess]>([:])

    func add(_ child: ChildProcess) { children.withLock { $0[child.pid] = child } }
    func remove(_ child: ChildProcess) { _ = children.withLock { $0.removeValue(forKey: child.pid) } }

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
