import CRabbitMQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// A thread that drives AMQP connections with `poll(2)` and, when it is a processor's loop, also runs that processor's
/// Swift tasks between reads (it is a `TaskExecutor`).
///
/// librabbitmq's calls block and a connection is not thread-safe, so each connection belongs to one thread. With a
/// thread per connection, every hop crosses threads four or five times (delivery to a task, publish to the
/// publisher's thread, its confirm back, the ack to the consumer's thread), and at moderate rates each crossing is a
/// wake-up, which on a small machine costs more than the hop's own work. A processor's loop runs the connections and
/// the hops on one thread: a delivery read here resumes its hop here, the hop's publish and ack are sent by this
/// thread at the end of the same pass, and the confirm that releases it is read here too.
///
/// The price: a hop that blocks its thread (a synchronous call into a slow system) holds up every connection of the
/// processor. Steps that block should keep the thread per connection (`SLIPWAY_IO=threads`).
///
/// The thread starts on first use (a job, a connection to drive) or with its transport's `run()`, not when the loop is
/// made; it ends when asked (`stop()`) or, for a connection's own loop, with its connection, once nothing is left to
/// do. Work that comes after the end starts it again, so that no task preferring the loop is ever stranded.
public final class AMQPLoop: TaskExecutor, Sendable {
    /// A connection the loop drives. Called on the loop's thread only.
    protocol Source: AnyObject {
        /// The socket to watch for input, while connected.
        var socket: Int32? { get }
        /// True once the source is done: the loop forgets it.
        var isFinished: Bool { get }
        /// Does what can be done without waiting on the network: sends what was queued, reads what arrived
        /// (`readable`: `poll` saw input on its socket). Returns when it wants to be called again without input or a
        /// wake-up (heartbeats, deadlines, a reconnect), or nil for never.
        func service(readable: Bool, now: ContinuousClock.Instant) -> ContinuousClock.Instant?
    }

    // Sendable by hand: a `call` closure (which adds a source) is made on any thread but runs only on the loop's,
    // the one thread that touches what it captures; a job is Swift's to run wherever its executor says.
    private enum Work: @unchecked Sendable {
        case job(UnownedJob)
        case call(() -> Void)
    }

    private struct Queue {
        var work: [Work] = []
        /// A source has something to do (set by `wake`, cleared at the start of each pass).
        var pending = false
        /// The loop is in, or about to enter, `poll`: a wake must write the eventfd.
        var sleeping = false
        /// The thread runs (or is about to).
        var running = false
        /// Asked to end once it has no sources and no work.
        var stopping = false
        /// Callers of `stop()`, resumed when the thread ends.
        var stopped: [CheckedContinuation<Void, Never>] = []
    }

    private let queue = Mutex(Queue())
    private let wakeFD: Int32
    private let name: String
    private let thread = LoopThread()
    /// A loop of its own for one connection ends with it; a processor's loop runs until it is stopped.
    private let endsWithLastSource: Bool
    private let clock = ContinuousClock()

    private let sources: LoopBound<[any Source]>
    /// The sources whose socket `poll` saw input on.
    private let readable: LoopBound<Set<ObjectIdentifier>>

    /// Passes the loop has made (each services every source), for tests that check an idle loop sleeps.
    private let passCount = Atomic<Int>(0)
    package var passes: Int { passCount.load(ordering: .relaxed) }

    /// A task that keeps the thread this long holds up every connection of the loop: it is logged, with the way out.
    public static let blockedWarning = Duration.milliseconds(500)
    private let logger: Logger?

    /// - Parameters:
    ///   - name: the thread's name, as `top -H` and `perf` show it (its first 15 bytes).
    ///   - logger: where a task that blocked the thread for `blockedWarning` or more is reported.
    public convenience init(name: String = "slipway-loop", logger: Logger? = nil) {
        self.init(name: name, endsWithLastSource: false, logger: logger)
    }

    init(name: String, endsWithLastSource: Bool, logger: Logger? = nil) {
        self.name = name
        self.endsWithLastSource = endsWithLastSource
        self.logger = logger
        wakeFD = slipway_eventfd()
        sources = LoopBound([], on: thread)
        readable = LoopBound([], on: thread)
    }

    // Closed only here: a wake from another thread may come after the loop has ended, and must not write to a
    // descriptor number the process has since given to a file.
    deinit {
        Glibc.close(wakeFD)
    }

    /// Runs a task's job: called by Swift's runtime for tasks that prefer this executor.
    public func enqueue(_ job: consuming ExecutorJob) {
        submit(.job(UnownedJob(job)))
    }

    /// Adds a connection to drive, from any thread.
    func add(_ source: any Source) {
        submit(.call { self.sources.value.append(source) })
    }

    /// Starts the thread, unless it runs already.
    func start() {
        let start = queue.withLock { queue -> Bool in
            defer { queue.running = true }
            return !queue.running
        }
        if start { startThread() }
    }

    /// Asks the loop to end once its sources are gone and its work is done, and returns when its thread has ended (at
    /// once if it was not running). Work that comes after starts it again, to end again when done.
    func stop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (ended, write) = queue.withLock { queue -> (Bool, Bool) in
                queue.stopping = true
                guard queue.running else { return (true, false) }
                queue.stopped.append(continuation)
                queue.pending = true
                defer { queue.sleeping = false }
                return (false, queue.sleeping)
            }
            if ended { continuation.resume() } else if write { signal() }
        }
    }

    /// A source has work queued from another thread (a publish, an ack): the loop services its sources again.
    /// Costs nothing on the loop's own thread, which services every source before it sleeps.
    func wake() {
        let write = queue.withLock { queue -> Bool in
            queue.pending = true
            defer { queue.sleeping = false }
            return queue.sleeping
        }
        if write { signal() }
    }

    /// True on the loop's own thread.
    public var isCurrent: Bool { thread.isCurrent }

    /// `value`, for this loop's thread alone (the state of a connection it drives).
    func bound<Value>(_ value: sending Value) -> LoopBound<Value> {
        LoopBound(value, on: thread)
    }

    private func submit(_ work: Work) {
        let (start, write) = queue.withLock { queue -> (Bool, Bool) in
            queue.work.append(work)
            defer {
                queue.sleeping = false
                queue.running = true
            }
            return (!queue.running, queue.sleeping)
        }
        if start { startThread() } else if write { signal() }
    }

    private func startThread() {
        let thread = Thread { [self] in
            slipway_name_thread(name)  // Foundation does not pass `Thread.name` on to the OS thread on Linux
            self.run()
        }
        thread.start()
    }

    private func signal() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    // MARK: On the loop's thread

    private func run() {
        thread.enter()
        var everHadSource = false
        var fds: [pollfd] = []
        var polled: [any Source] = []
        while true {
            let work = queue.withLock { queue -> [Work] in
                queue.pending = false
                defer { queue.work.removeAll(keepingCapacity: true) }
                return queue.work
            }
            for item in work {
                switch item {
                case .job(let job):
                    let started = clock.now
                    job.runSynchronously(on: asUnownedTaskExecutor())
                    if let logger, case let held = started.duration(to: clock.now), held >= Self.blockedWarning {
                        logger.warning(
                            "a task held the processor's loop: its connections and other hops waited (a step that blocks its thread? run it with --io threads)",
                            metadata: ["loop.held_ms": "\(Int(held / .milliseconds(1)))"])
                    }
                case .call(let body): body()
                }
            }

            passCount.add(1, ordering: .relaxed)
            let now = clock.now
            var deadline = now.advanced(by: .seconds(1))
            for source in sources.value {
                let wasReadable = readable.value.contains(ObjectIdentifier(source))
                if let next = source.service(readable: wasReadable, now: now) { deadline = min(deadline, next) }
            }
            readable.value.removeAll(keepingCapacity: true)
            if sources.value.contains(where: \.isFinished) { sources.value.removeAll { $0.isFinished } }
            everHadSource = everHadSource || !sources.value.isEmpty
            if sources.value.isEmpty, let stopped = endIfIdle(lastSourceGone: endsWithLastSource && everHadSource) {
                for waiter in stopped { waiter.resume() }
                return
            }

            // Sleep only when nothing is queued; otherwise just look at the sockets and go round again.
            let sleep = queue.withLock { queue -> Bool in
                guard queue.work.isEmpty && !queue.pending else { return false }
                queue.sleeping = true
                return true
            }
            var timeout: Int32 = 0
            if sleep {
                let left = clock.now.duration(to: deadline)
                timeout = left <= .zero ? 0 : Int32(min(1000, (left / .milliseconds(1)).rounded(.up)))
            }
            fds.removeAll(keepingCapacity: true)
            polled.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
            for source in sources.value {
                guard let socket = source.socket else { continue }
                fds.append(pollfd(fd: socket, events: Int16(POLLIN), revents: 0))
                polled.append(source)
            }
            _ = poll(&fds, nfds_t(fds.count), timeout)
            if sleep { queue.withLock { $0.sleeping = false } }
            if fds[0].revents != 0 {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
            }
            for (index, source) in polled.enumerated() where fds[index + 1].revents != 0 {
                readable.value.insert(ObjectIdentifier(source))
            }
        }
    }

    /// With no sources left: ends the thread if it has nothing queued and should end (asked to, or its last source is
    /// gone), and returns who waits for that; nil to go on.
    private func endIfIdle(lastSourceGone: Bool) -> [CheckedContinuation<Void, Never>]? {
        queue.withLock { queue in
            guard queue.work.isEmpty, lastSourceGone || queue.stopping else { return nil }
            // The last touch of loop-bound state was above: a thread started by the next `submit` may take over now.
            thread.leave()
            queue.running = false
            defer { queue.stopped.removeAll() }
            return queue.stopped
        }
    }
}
