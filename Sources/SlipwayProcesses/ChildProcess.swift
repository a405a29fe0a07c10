// Hand-written, not on swift-subprocess (which SlipwayOperations uses to run rabbitmqctl to completion): its
// `Execution` is valid only inside `run`'s closure, and `run` reaps the child only after that closure returns, yet the
// closure is never told that the child ended. A handle that outlives a scope (a fleet's processors, a broker) would be
// an unstructured task whose closure either waits for signals to send and so never lets `exitStatus()` resolve, or
// returns at once and leaves `send` to a bare pid that the package may already have reaped (its group signals are a
// plain `kill(-pid)` in any case). And its `run` is async, where callers need `spawn` to return the pid at once.

import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How a child ended.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// From a `waitpid` status word (the C macros WIFEXITED and friends are not visible to Swift).
    public init(waitStatus: Int32) {
        let signal = waitStatus & 0x7f
        self = signal == 0 ? .exited((waitStatus >> 8) & 0xff) : .signaled(signal)
    }

    /// As a shell reports it: the exit code, or 128 + the signal.
    public var code: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exit \(code)"
        case .signaled(let signal): signal == SIGKILL ? "SIGKILL" : "signal \(signal)"
        }
    }
}

/// Where a child's standard output (or error) goes.
public enum Output: Sendable {
    /// The file at this path, emptied first.
    case truncate(String)
    /// The end of the file at this path.
    case append(String)
    /// The parent's own.
    case inherit
}

public struct SpawnError: Error, CustomStringConvertible {
    public let name: String?
    public let executable: String
    public let code: Int32

    public var description: String {
        "cannot start \(name.map { "\($0) (\(executable))" } ?? executable): \(String(cString: strerror(code)))"
    }
}

/// A child process: started with `posix_spawn`, reaped by a thread of its own blocked in `waitid`, so that waiting
/// for it holds no thread of Swift's small cooperative pool. Not Foundation's `Process`: its `waitUntilExit` was seen
/// to hang forever on a child reaped behind its back.
///
/// A signal is only ever sent to a child that has not been reaped yet (the reaper first waits with `WNOWAIT`, marks
/// the child as gone under the lock, and only then reaps it), so a recycled pid can never receive it.
public final class ChildProcess: Sendable {
    public let name: String
    public let pid: pid_t
    /// Whether it leads a process group of its own; signals then go to the whole group.
    public let ownsProcessGroup: Bool
    private let state = Mutex(State())

    private struct State {
        var gone = false
        var status: ExitStatus?
        var waiters: [@Sendable (ExitStatus) -> Void] = []
    }

    private init(name: String, pid: pid_t, ownsProcessGroup: Bool) {
        self.name = name
        self.pid = pid
        self.ownsProcessGroup = ownsProcessGroup
    }

    /// Starts `executable` with `arguments` and exactly `environment`. Stdin is /dev/null; stderr goes where `errors`
    /// says, or with stdout if nil. Signals the parent ignores or blocks are reset to their defaults in the child.
    /// - Parameter ownProcessGroup: a group of its own, e.g. so that a Ctrl-C at the terminal reaches the parent only.
    /// - Parameter name: for error messages and the reaper thread's name.
    public static func spawn(
        _ executable: String, arguments: [String] = [], environment: [String: String], output: Output,
        errors: Output? = nil, ownProcessGroup: Bool = false, name: String? = nil
    ) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        func redirect(_ descriptor: Int32, _ output: Output) {
            switch output {
            case .truncate(let path):
                posix_spawn_file_actions_addopen(&actions, descriptor, path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            case .append(let path):
                posix_spawn_file_actions_addopen(&actions, descriptor, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            case .inherit: break
            }
        }
        redirect(1, output)
        switch (errors, output) {
        case (let errors?, _): redirect(2, errors)
        case (nil, .inherit): break
        case (nil, _): posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
        if ownProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(flags))

        var argv = ([executable] + arguments).map { strdup($0) } + [nil]
        var envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, &argv, &envp)
        guard result == 0 else { throw SpawnError(name: name, executable: executable, code: result) }
        let child = ChildProcess(name: name ?? executable, pid: pid, ownsProcessGroup: ownProcessGroup)
        let reaper = Thread { child.reap() }
        reaper.name = "slipway-reaper-\(pid)"
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
        let waiters = state.withLock { state in
            state.status = exit
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter(exit) }
    }

    /// Sends `signal` to the child (its whole group if it has one), unless it has ended already.
    public func send(_ signal: Int32) {
        state.withLock { state in
            guard !state.gone else { return }
            _ = kill(ownsProcessGroup ? -pid : pid, signal)
        }
    }

    /// How it ended, or nil while it runs.
    public var status: ExitStatus? { state.withLock { $0.status } }

    public var isRunning: Bool { status == nil }

    /// Calls `body` once the child has been reaped, on the reaper thread; or returns the status if it already was.
    private func whenEnded(_ body: @escaping @Sendable (ExitStatus) -> Void) -> ExitStatus? {
        state.withLock { state in
            if let status = state.status { return status }
            state.waiters.append(body)
            return nil
        }
    }

    /// Waits for the child to end (suspends; blocks no thread).
    public func exitStatus() async -> ExitStatus {
        await withCheckedContinuation { continuation in
            if let known = whenEnded({ continuation.resume(returning: $0) }) { continuation.resume(returning: known) }
        }
    }

    /// Waits up to `timeout` for the child to end; nil if it is still running then.
    public func exitStatus(within timeout: Duration) async -> ExitStatus? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let status { return status }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return status
    }

    /// SIGTERM, then SIGKILL if it has not ended within `grace`; how it ended.
    @discardableResult
    public func stop(grace: Duration) async -> ExitStatus {
        send(SIGTERM)
        if let status = await exitStatus(within: grace) { return status }
        send(SIGKILL)
        return await exitStatus()
    }

    /// Waits up to `timeout` (nil: for as long as it takes) for the child to end; nil if it is still running then.
    /// Blocks the calling thread: call it off the cooperative pool (see `offThePool`).
    public func waitBlocking(timeout: Duration? = nil) -> ExitStatus? {
        let ended = DispatchSemaphore(value: 0)
        if let known = whenEnded({ _ in ended.signal() }) { return known }
        if let timeout {
            _ = ended.wait(timeout: .now() + timeout / .seconds(1))
        } else {
            ended.wait()
        }
        return status
    }

    /// `stop(grace:)`, blocking the calling thread: call it off the cooperative pool.
    @discardableResult
    public func stopBlocking(grace: Duration) -> ExitStatus {
        send(SIGTERM)
        if let status = waitBlocking(timeout: grace) { return status }
        send(SIGKILL)
        return waitBlocking()!
    }
}

/// Runs blocking work on a thread of its own: on Swift's cooperative pool it would hold one of its few threads (two
/// on a small machine) and starve every other task.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
