import Foundation

/// A process the benchmark started: spawned with posix_spawn (output to a log file), stopped with SIGTERM, reaped with
/// waitpid. Foundation's `Process` is not used: its `waitUntilExit` was seen never to return for a reaped child.
final class BenchChild: @unchecked Sendable {
    let name: String
    let pid: pid_t
    let log: String
    /// The stats of the process's last moments, read just before it was stopped.
    private(set) var finalStats: ProcessStats?
    private var exited = false

    init(name: String, executable: String, arguments: [String], environment: [String: String], log: String) throws {
        self.name = name
        self.log = log
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = [executable] + arguments
        let envp = environment.map { "\($0.key)=\($0.value)" }
        var cArgv = argv.map { strdup($0) } + [nil]
        var cEnvp = envp.map { strdup($0) } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnvp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, nil, &cArgv, &cEnvp)
        guard status == 0 else { throw BenchError("cannot start \(executable): \(String(cString: strerror(status)))") }
        self.pid = pid
    }

    /// Still running (not exited, not reaped).
    var isRunning: Bool {
        if exited { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { exited = true }
        return !exited
    }

    var stats: ProcessStats? { ProcessStats(pid: pid) }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`. Blocking: call it off the cooperative pool.
    func stop(grace: Duration = .seconds(15)) {
        guard !exited else { return }
        finalStats = ProcessStats(pid: pid)
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now.advanced(by: grace)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if ContinuousClock.now >= deadline {
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                break
            }
            usleep(20_000)
        }
        exited = true
    }
}

/// CPU time and memory of a running process, from /proc.
struct ProcessStats: Sendable, Codable {
    /// User plus system CPU time, in seconds.
    var cpuSeconds: Double
    /// Resident memory now, and its peak, in MB.
    var rssMB: Double
    var peakRSSMB: Double
    /// The private part of the resident memory now (anonymous pages: heap, stacks), in MB. The rest of the resident
    /// set is code and data mapped from files, shared by every process that maps the same libraries.
    var privateMB: Double

    init?(pid: pid_t) {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let closing = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after "(comm)": state is field 3, utime 14 and stime 15.
        let fields = stat[stat.index(after: closing)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        cpuSeconds = (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
        func kilobytes(_ key: String) -> Double {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return 0 }
            return Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
        }
        rssMB = kilobytes("VmRSS:") / 1024
        peakRSSMB = kilobytes("VmHWM:") / 1024
        privateMB = kilobytes("RssAnon:") / 1024
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs blocking work (stopping and reaping processes) on a thread of its own, off Swift's small cooperative pool.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
