import Foundation
import SlipwayProcesses

extension ChildProcess {
    /// CPU time and memory now; nil once it has ended.
    var stats: ProcessStats? { isRunning ? ProcessStats(pid: pid) : nil }
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

/// CPU time of a server and every process under it, in seconds: PostgreSQL's backends are the postmaster's children,
/// one per connection. A child that has ended and been reaped counts through its parent's cutime and cstime, so the
/// figure does not drop when a connection closes.
func treeCPUSeconds(root: pid_t) -> Double? {
    /// (parent, utime + stime + cutime + cstime in ticks) from /proc/PID/stat.
    func stat(_ pid: pid_t) -> (parent: pid_t, ticks: Double)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let closing = text.lastIndex(of: ")")
        else { return nil }
        // Fields after "(comm)": state 3, ppid 4, utime 14, stime 15, cutime 16, cstime 17.
        let fields = text[text.index(after: closing)...].split(separator: " ")
        guard fields.count > 15, let parent = pid_t(fields[1]) else { return nil }
        let ticks = fields[11...14].reduce(0.0) { $0 + (Double($1) ?? 0) }
        return (parent, ticks)
    }
    guard let rootStat = stat(root) else { return nil }
    var children: [pid_t: [pid_t]] = [:]
    var ticks: [pid_t: Double] = [root: rootStat.ticks]
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    for entry in entries {
        guard let pid = pid_t(entry), pid != root, let found = stat(pid) else { continue }
        children[found.parent, default: []].append(pid)
        ticks[pid] = found.ticks
    }
    var total = 0.0
    var pending = [root]
    while let pid = pending.popLast() {
        total += ticks[pid] ?? 0
        pending += children[pid] ?? []
    }
    return total / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// The pid in the first line of a pid file (RabbitMQ's node.pid, PostgreSQL's postmaster.pid).
func pidFromFile(_ path: String) throws -> pid_t {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw BenchError("cannot read the pid file '\(path)'")
    }
    let first = text.split(separator: "\n", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
    guard let pid = pid_t(first), pid > 0 else { throw BenchError("'\(path)' does not start with a process id") }
    return pid
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
