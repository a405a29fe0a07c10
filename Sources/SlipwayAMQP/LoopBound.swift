#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The thread a loop runs on, for the checks of `LoopBound`: set by the loop's thread when it starts, cleared when it
/// ends (a thread that ended may have its id given to a new one).
final class LoopThread: Sendable {
    private let id = Atomic<UInt>(0)

    /// True on the loop's own thread. A compare of `pthread_self()` (a read of the thread's own pointer, no system
    /// call) with an atomic: cheap enough to run on every access to loop-only state.
    var isCurrent: Bool { pthread_equal(pthread_self(), pthread_t(id.load(ordering: .relaxed))) != 0 }

    /// Called by the loop's thread as it starts.
    func enter() { id.store(UInt(pthread_self()), ordering: .relaxed) }

    /// Called by the loop's thread as it ends.
    func leave() { id.store(0, ordering: .relaxed) }
}

/// A value only a loop's thread may touch, checked on every access (as swift-nio's `NIOLoopBoundBox`): a mistake stops
/// the process at the faulty access, instead of corrupting the value, or a librabbitmq connection, later.
// Sendable by hand: every access checks it is made on the loop's thread, so the value itself never crosses threads.
final class LoopBound<Value>: @unchecked Sendable {
    private let thread: LoopThread
    private var unchecked: Value

    init(_ value: sending Value, on thread: LoopThread) {
        self.thread = thread
        self.unchecked = value
    }

    var value: Value {
        // `_read`, not `get`: a borrow, so that reading a field of a struct value does not copy the whole of it.
        _read {
            check()
            yield unchecked
        }
        _modify {
            check()
            yield &unchecked
        }
    }

    @inline(__always)
    private func check() {
        precondition(thread.isCurrent, "loop-bound state touched off its loop's thread")
    }
}
