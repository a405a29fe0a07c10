import SlipwayCore
import Synchronization

/// The step's handler (its execute, or its compensate) did not finish within its timeout.
public struct StepTimeout: Error, Sendable, CustomStringConvertible {
    public var timeout: Duration
    /// Which handler ran out of time.
    public var kind: HopKind

    public init(timeout: Duration, kind: HopKind = .execute) {
        self.timeout = timeout
        self.kind = kind
    }

    public var description: String {
        let handler = kind == .execute ? "the step" : "the compensation"
        return "timed out: \(handler) did not finish within its timeout of \(Self.text(timeout))"
    }

    /// `300 ms`, `1.5 s`: the reason is read by people and searched for in the audit trail.
    static func text(_ duration: Duration) -> String {
        let milliseconds = duration / .milliseconds(1)
        if milliseconds < 1_000 { return "\(Int(milliseconds.rounded(.up))) ms" }
        let seconds = milliseconds / 1_000
        return seconds.rounded() == seconds ? "\(Int(seconds)) s" : "\(seconds) s"
    }
}

/// Runs `body`, or throws `StepTimeout` once `timeout` passes: the handler's task is cancelled, and its result, should
/// it still come, is ignored. A handler that ignores cancellation keeps running in the background until it returns.
/// A handler that finishes first cancels the timer: before, every hop left a sleeping task behind for the whole timeout
/// (at 1,000 hops/s and a 30 s timeout, 30,000 of them).
package func withTimeout<T: Sendable>(
    _ timeout: Duration?, kind: HopKind = .execute,
    sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
    on taskExecutor: (any TaskExecutor)? = nil, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    guard let timeout else { return try await body() }
    return try await withCheckedThrowingContinuation { continuation in
        let race = TimeoutRace(continuation)
        let timer = Task(executorPreference: taskExecutor) {
            try? await sleep(timeout)
            race.finish(.failure(StepTimeout(timeout: timeout, kind: kind)))
        }
        let work = Task(executorPreference: taskExecutor) {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            race.finish(result)
        }
        race.entrants(work, timer)
    }
}

/// The handler against the timer: the first to finish resumes the hop, and both tasks are then cancelled (the winner
/// is done already, so this stops only the loser).
private final class TimeoutRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var tasks: [Task<Void, Never>] = []
    }
    private let state: Mutex<State>

    init(_ continuation: CheckedContinuation<T, any Error>) { state = Mutex(State(continuation: continuation)) }

    /// Called once both tasks exist; one of them may have finished already.
    func entrants(_ work: Task<Void, Never>, _ timer: Task<Void, Never>) {
        let over = state.withLock { state in
            state.tasks = [work, timer]
            return state.continuation == nil
        }
        if over { [work, timer].forEach { $0.cancel() } }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, tasks) = state.withLock { state in (state.continuation.take(), state.tasks) }
        guard let continuation else { return }
        continuation.resume(with: result)
        tasks.forEach { $0.cancel() }
    }
}
