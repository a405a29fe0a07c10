import Foundation
import Histogram
import Synchronization
import Slipway

/// Percentiles of one latency distribution, in milliseconds.
struct LatencySummary: Codable, Sendable {
    var p50: Double
    var p95: Double
    var p99: Double
    var max: Double

    init(_ histogram: Histogram<UInt64>) {
        func ms(_ micros: UInt64) -> Double { (Double(micros) / 10).rounded() / 100 }
        p50 = ms(histogram.valueAtPercentile(50))
        p95 = ms(histogram.valueAtPercentile(95))
        p99 = ms(histogram.valueAtPercentile(99))
        max = ms(histogram.max)
    }
}

/// One measured run of one chain.
struct BenchRun: Codable, Sendable {
    var chain: String
    var hops: Int
    var mode: String
    var slips: Int
    var seconds: Double
    var slipsPerSecond: Double
    var hopsPerSecond: Double
    /// Wall time per hop at that throughput, in microseconds.
    var microsPerHop: Double
    /// The chain's processes' CPU time per hop (user + system), in microseconds; the audit sink's apart.
    var workerCPUMicrosPerHop: Double
    var sinkCPUMicrosPerHop: Double?
    var brokerCPUMicrosPerHop: Double?
    /// The PostgreSQL server's CPU time per hop (the postmaster and its backends), for the chains whose record is
    /// there.
    var postgresCPUMicrosPerHop: Double?
    /// The framework's hop record (`sqlite`, `postgres`); nil for the bare forwarder.
    var store: String?
    /// `classic` or `quorum`: the type of the chain's queues.
    var queueType: String
    /// The largest peak resident memory of one of the chain's processes, and of the sink, in MB.
    var workerPeakRSSMB: Double
    /// The largest private (anonymous) resident memory of one of the chain's processes at the end of the run, in MB.
    var workerPrivateMB: Double
    var sinkPeakRSSMB: Double?
    var notEndedAsExpected: Int
    /// Open-loop runs: the offered rate, and end-to-end latency from the moment each slip was due to be sent.
    var rate: Double?
    var endToEnd: LatencySummary?
    /// End-to-end latency divided by the number of hops, per slip.
    var perHop: LatencySummary?
}

/// Counts what comes out of a chain against what went in, and the latency of each.
final class ArrivalBook: Sendable {
    private struct State {
        var due: [String: ContinuousClock.Instant] = [:]
        var arrived = 0
        var failed = 0
        var last: ContinuousClock.Instant?
        var endToEnd = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var perHop = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    }
    private let state = Mutex(State())
    let hops: Int

    init(hops: Int) { self.hops = hops }

    func expect(_ ids: [String], dueAt: [ContinuousClock.Instant]) {
        state.withLock { state in for (id, due) in zip(ids, dueAt) { state.due[id] = due } }
    }

    func arrive(_ id: String, ok: Bool, at now: ContinuousClock.Instant) {
        state.withLock { state in
            guard let due = state.due.removeValue(forKey: id) else { return }  // a warm-up message, or a duplicate
            state.arrived += 1
            if !ok { state.failed += 1 }
            state.last = now
            let micros = UInt64(max(0, (now - due) / .microseconds(1)))
            _ = state.endToEnd.record(micros)
            _ = state.perHop.record(micros / UInt64(hops))
        }
    }

    var arrived: Int { state.withLock { $0.arrived } }
    var failed: Int { state.withLock { $0.failed } }
    var lastArrival: ContinuousClock.Instant? { state.withLock { $0.last } }
    var latencies: (endToEnd: LatencySummary, perHop: LatencySummary) {
        state.withLock { (LatencySummary($0.endToEnd), LatencySummary($0.perHop)) }
    }
}

/// Hands what comes out of a chain to the book of the run under way (none between runs).
final class ArrivalRouter: Sendable {
    private let book = Mutex<ArrivalBook?>(nil)

    func record(into book: ArrivalBook?) { self.book.withLock { $0 = book } }

    func arrive(_ id: String, ok: Bool) {
        let now = ContinuousClock.now
        book.withLock { $0 }?.arrive(id, ok: ok, at: now)
    }
}

/// Drives one chain: a warm-up, then throughput or open-loop latency runs, with a progress line on standard error.
struct BenchRunner {
    let chain: any BenchChain
    /// The broker's nodes (one, or a cluster's), whose CPU time is summed.
    let brokerPIDs: [pid_t]
    let postgresPID: pid_t?
    let timeout: Duration

    /// Waits for `count` warm-up messages to come through: every process is up and consuming.
    func warmUp(count: Int = 20) async throws {
        let book = ArrivalBook(hops: chain.hops)
        let listening = listen(book)
        defer { listening.cancel() }
        let ids = (0..<count).map { "warmup-\($0)-\(UUID().uuidString.prefix(8).lowercased())" }
        book.expect(ids, dueAt: Array(repeating: .now, count: count))
        try await chain.inject(ids)
        try await wait(for: count, book: book, what: "\(chain.label) warm-up", deadline: .now + .seconds(120))
    }

    /// `slips` messages submitted as fast as the broker confirms them; timed from the first send to the last end.
    func throughput(slips: Int, batch: Int = 500) async throws -> BenchRun {
        let book = ArrivalBook(hops: chain.hops)
        let listening = listen(book)
        defer { listening.cancel() }
        let before = snapshot()
        let start = ContinuousClock.now
        var sent = 0
        while sent < slips {
            let ids = (sent..<min(slips, sent + batch)).map { "t\($0)-\(UUID().uuidString.prefix(8).lowercased())" }
            book.expect(ids, dueAt: Array(repeating: .now, count: ids.count))
            try await chain.inject(ids)
            sent += ids.count
            progress("\(chain.label) throughput: \(sent)/\(slips) sent, \(book.arrived) ended")
        }
        try await wait(for: slips, book: book, what: "\(chain.label) throughput", deadline: .now + timeout)
        let seconds = ((book.lastArrival ?? .now) - start) / .seconds(1)
        return result(mode: "throughput", book: book, slips: slips, seconds: seconds, before: before)
    }

    /// An open loop: `rate` slips per second for `duration`, each sent when due whatever the chain is doing, its
    /// latency counted from when it was due (so a stalled sender does not hide a stall: no coordinated omission).
    func latency(rate: Double, duration: Duration) async throws -> BenchRun {
        let book = ArrivalBook(hops: chain.hops)
        let listening = listen(book)
        defer { listening.cancel() }
        let total = max(1, Int(rate * (duration / .seconds(1))))
        let before = snapshot()
        let start = ContinuousClock.now
        let interval = Duration.seconds(1) / rate
        var sent = 0
        while sent < total {
            let now = ContinuousClock.now
            let due = min(total, Int(((now - start) / interval).rounded(.down)) + 1)
            if due > sent {
                let indices = sent..<due
                let ids = indices.map { "l\($0)-\(UUID().uuidString.prefix(8).lowercased())" }
                book.expect(ids, dueAt: indices.map { start + interval * $0 })
                try await chain.inject(ids)
                sent = due
                if sent % max(1, Int(rate)) == 0 {
                    progress("\(chain.label) latency at \(Int(rate))/s: \(sent)/\(total) sent, \(book.arrived) ended")
                }
            }
            let next = start + interval * sent
            if next > .now { try await Task.sleep(until: next, clock: .continuous) }
        }
        try await wait(for: total, book: book, what: "\(chain.label) latency", deadline: .now + timeout)
        let seconds = ((book.lastArrival ?? .now) - start) / .seconds(1)
        var run = result(mode: "latency", book: book, slips: total, seconds: seconds, before: before)
        let latencies = book.latencies
        run.rate = rate
        run.endToEnd = latencies.endToEnd
        run.perHop = latencies.perHop
        return run
    }

    private func listen(_ book: ArrivalBook) -> Listening {
        chain.arrivals.record(into: book)
        return Listening(router: chain.arrivals)
    }

    /// Stops recording into the run's book.
    private struct Listening {
        let router: ArrivalRouter
        func cancel() { router.record(into: nil) }
    }

    private func wait(for count: Int, book: ArrivalBook, what: String, deadline: ContinuousClock.Instant) async throws {
        while book.arrived < count {
            guard ContinuousClock.now < deadline else {
                throw BenchError("\(what): only \(book.arrived) of \(count) messages came through in time")
            }
            progress("\(what): \(book.arrived)/\(count) ended")
            try await Task.sleep(for: .milliseconds(200))
        }
        progress(nil)
    }

    private struct Snapshot {
        var workers: [ProcessStats]
        var sink: ProcessStats?
        var brokerCPU: Double?
        var postgresCPU: Double?
    }

    private func snapshot() -> Snapshot {
        let brokers = brokerPIDs.map { treeCPUSeconds(root: $0) }
        return Snapshot(
            workers: chain.workers.compactMap(\.stats), sink: chain.sink?.stats,
            brokerCPU: brokers.isEmpty || brokers.contains(nil) ? nil : brokers.reduce(0) { $0 + $1! },
            // Only for the chains that use it: otherwise the server idles, and a figure would only be noise.
            postgresCPU: chain.store == "postgres" ? postgresPID.flatMap { treeCPUSeconds(root: $0) } : nil)
    }

    private func result(mode: String, book: ArrivalBook, slips: Int, seconds: Double, before: Snapshot) -> BenchRun {
        let after = snapshot()
        let hopCount = Double(slips * chain.hops)
        func perHop(_ start: Double?, _ end: Double?) -> Double? {
            guard let start, let end else { return nil }
            return ((end - start) / hopCount * 1e7).rounded() / 10
        }
        let workerCPU = zip(before.workers, after.workers).reduce(0.0) { $0 + $1.1.cpuSeconds - $1.0.cpuSeconds }
        return BenchRun(
            chain: chain.label, hops: chain.hops, mode: mode, slips: slips, seconds: (seconds * 1000).rounded() / 1000,
            slipsPerSecond: (Double(slips) / seconds).rounded(), hopsPerSecond: (hopCount / seconds).rounded(),
            microsPerHop: (seconds / hopCount * 1e7).rounded() / 10,
            workerCPUMicrosPerHop: perHop(0, workerCPU) ?? 0,
            sinkCPUMicrosPerHop: perHop(before.sink?.cpuSeconds, after.sink?.cpuSeconds),
            brokerCPUMicrosPerHop: perHop(before.brokerCPU, after.brokerCPU),
            postgresCPUMicrosPerHop: perHop(before.postgresCPU, after.postgresCPU),
            store: chain.store, queueType: chain.queueType.rawValue,
            workerPeakRSSMB: ((after.workers.map(\.peakRSSMB).max() ?? 0) * 10).rounded() / 10,
            workerPrivateMB: ((after.workers.map(\.privateMB).max() ?? 0) * 10).rounded() / 10,
            sinkPeakRSSMB: after.sink.map { ($0.peakRSSMB * 10).rounded() / 10 },
            notEndedAsExpected: book.failed)
    }
}

/// The progress line on standard error: rewritten in place on a terminal; elsewhere (a CI log) a line every 5 s at
/// most. nil clears it.
func progress(_ line: String?) {
    if isatty(STDERR_FILENO) == 1 {
        let text = line.map { "\r\u{1B}[K\($0)" } ?? "\r\u{1B}[K"
        FileHandle.standardError.write(Data(text.utf8))
        return
    }
    guard let line else { return }
    let now = ContinuousClock.now
    let due = lastProgressLine.withLock { last in
        guard last.map({ now - $0 >= .seconds(5) }) ?? true else { return false }
        last = now
        return true
    }
    if due { FileHandle.standardError.write(Data("\(line)\n".utf8)) }
}

private let lastProgressLine = Mutex<ContinuousClock.Instant?>(nil)
