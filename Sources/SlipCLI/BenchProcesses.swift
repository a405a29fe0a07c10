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

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
