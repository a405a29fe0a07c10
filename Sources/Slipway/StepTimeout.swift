import Synchronization

/// The step's handler did not finish within its timeout.
public struct StepTimeout: Error, Sendable, CustomStringConvertible {
    public var timeout: Duration
    public var description: String { "the step did not finish within its timeout of \(timeout)" }
}

/// Runs `body`, or throws `StepTimeout` once `timeout` passes: the handler's task is cancelled, and its result, should
/// it still come, is ignored. A handler that ignores cancellation keeps running in the background until it returns.
func withTimeout<T: Sendable>(_ timeout: Duration?, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    guard let timeout else { return try await body() }
    return try await withCheckedThrowingContinuation { continuation in
        let once = ResumeOnce(continuation)
        let work = Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            once.take()?.resume(with: result)
        }
        Task {
            try? await Task.sleep(for: timeout)
            if let continuation = once.take() {
                work.cancel()
                continuation.resume(throwing: StepTimeout(timeout: timeout))
            }
        }
    }
}

/// Hands a continuation out once: to whichever of the handler and the timer finishes first.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, any Error>?>
    init(_ continuation: CheckedContinuation<T, any Error>) { self.continuation = Mutex(continuation) }
    func take() -> CheckedContinuation<T, any Error>? { continuation.withLock { $0.take() } }
}
