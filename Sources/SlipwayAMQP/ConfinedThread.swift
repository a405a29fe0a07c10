import Foundation

/// One OS thread that runs submitted jobs in order.
///
/// librabbitmq's calls block and a connection is not thread-safe, so each connection lives on a thread of its own and
/// every call on it is made from that thread. This keeps blocking I/O off Swift's cooperative pool, where it would
/// starve other tasks.
final class ConfinedThread: @unchecked Sendable {
    // Safe: `jobs` and `stopped` are read and written only under `condition`.
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var stopped = false
    private let idleInterval: TimeInterval
    private let onIdle: (@Sendable () -> Void)?

    /// - Parameter onIdle: runs on the thread after `idleInterval` seconds without a job (heartbeats of an idle connection).
    init(name: String, idleInterval: TimeInterval = 1, onIdle: (@Sendable () -> Void)? = nil) {
        self.idleInterval = idleInterval
        self.onIdle = onIdle
        let thread = Thread { [self] in self.loop() }
        thread.name = name
        thread.start()
    }

    func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Runs `body` on the thread and returns its result to the caller.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            submit { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Ends the thread after the jobs already submitted.
    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped {
                if !condition.wait(until: Date(timeIntervalSinceNow: idleInterval)), jobs.isEmpty, !stopped {
                    condition.unlock()
                    onIdle?()
                    condition.lock()
                }
            }
            if jobs.isEmpty && stopped {
                condition.unlock()
                return
            }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            condition.unlock()
            for job in batch { job() }
        }
    }
}
