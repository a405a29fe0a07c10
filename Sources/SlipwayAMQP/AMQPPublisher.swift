import CRabbitMQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import SlipwayTransport
import Synchronization

/// Publishes with publisher confirms on a connection of its own, driven by a thread of its own or by the processor's
/// shared loop (`AMQPLoop`).
///
/// Publishes are pipelined: a publish goes on the wire as soon as the thread sees it, even while earlier ones wait for
/// their confirms, and each caller resumes once the broker has confirmed its own messages (often with one `multiple`
/// ack for many). So a hop's slip never queues behind another hop's confirm. When the connection is lost, what was
/// sent and not yet confirmed is sent again on the next one (at least once; receivers deduplicate), until the publish
/// deadline. librabbitmq's calls block and a connection is not thread-safe: every call on it is made from the loop's
/// thread, which keeps blocking I/O off Swift's cooperative pool. New work wakes the loop (unless it comes from the
/// loop's own thread, which sends it at the end of the pass).
///
/// When RabbitMQ blocks publishers (a memory or disk alarm: `connection.blocked`), nothing more is sent on the
/// connection until `connection.unblocked`: the broker has stopped reading it, and a send into a full socket would
/// hold up the loop's thread. Publishes and declares wait, and the time spent blocked does not count against their
/// deadline: a blocked broker is not a failed one, and a hop retried for it would only add to the broker's load.
final class AMQPPublisher: Sendable, AMQPLoop.Source {
    /// One caller's messages, resumed when the broker has confirmed them all.
    struct Publish: Sendable {
        let messages: [OutgoingMessage]
        let continuation: CheckedContinuation<Void, any Error>
    }

    enum Job: Sendable {
        case publish(Publish, giveUpAt: ContinuousClock.Instant)
        case run(PublisherOperation)
    }

    /// What the callers' threads and the loop's thread share.
    struct Shared {
        var jobs: [Job] = []
        var isShutDown = false
        /// The caller of `shutdown()`, resumed once the publisher has finished.
        var finished: CheckedContinuation<Void, Never>?
        var threadEnded = false
        /// The broker blocks publishing: callers of `waitWhileBlocked` wait in `blockedWaiters`.
        var isBlocked = false
        var blockedWaiters: [CheckedContinuation<Void, Never>] = []
    }

    let configuration: AMQPConfiguration
    private let nodes: AMQPNodeRotation
    let logger: Logger
    let shared = Mutex(Shared())
    private let loop: AMQPLoop
    let clock = ContinuousClock()

    // The loop's thread alone uses what follows (checked on every access). Not private where the reading side
    // (AMQPPublisherFrames.swift) uses it.
    let connection: LoopBound<AMQPConnection?>
    let confirms: LoopBound<PublisherConfirms<Publish>>
    /// Declares and binds not yet done (waiting for the broker to come back).
    let operations: LoopBound<PublisherOperations>
    /// No reconnect before this (backoff after a failure).
    private let reconnectAt: LoopBound<ContinuousClock.Instant?>
    private let backoff: LoopBound<Duration>
    private let lastFailure: LoopBound<(any Error)?>
    /// When the connection was last read (see `AMQPConnection.readAtLeastEvery`).
    let lastRead: LoopBound<ContinuousClock.Instant>
    /// Since when the broker has blocked this connection (`connection.blocked`), nil when it does not.
    let blockedSince: LoopBound<ContinuousClock.Instant?>
    private let finished: LoopBound<Bool>

    /// - Parameter loop: the loop that drives the connection: the processor's, or one of the publisher's own.
    init(nodes: AMQPNodeRotation, logger: Logger, loop: AMQPLoop) {
        self.configuration = nodes.configuration
        self.nodes = nodes
        self.logger = logger
        self.loop = loop
        connection = loop.bound(nil)
        confirms = loop.bound(PublisherConfirms())
        operations = loop.bound(PublisherOperations())
        reconnectAt = loop.bound(nil)
        backoff = loop.bound(nodes.configuration.reconnectBackoff.initial)
        lastFailure = loop.bound(nil)
        lastRead = loop.bound(ContinuousClock.now)
        blockedSince = loop.bound(nil)
        finished = loop.bound(false)
        loop.add(self)
    }

    func publish(_ messages: [OutgoingMessage]) async throws {
        guard !messages.isEmpty else { return }
        let giveUpAt = clock.now.advanced(by: configuration.publishDeadline)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            if !submit(.publish(Publish(messages: messages, continuation: continuation), giveUpAt: giveUpAt)) {
                continuation.resume(throwing: TransportError(.shutDown, "the publisher is shut down"))
            }
        }
    }

    /// Runs `body` with a live connection on the loop's thread, reconnecting (with backoff, until the publish
    /// deadline) when the connection is lost.
    func withConnection<T: Sendable>(_ doing: String, _ body: @escaping @Sendable (AMQPConnection) throws -> T)
        async throws -> T
    {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let operation = PublisherOperation(
                doing, giveUpAt: clock.now.advanced(by: configuration.publishDeadline),
                backoff: configuration.reconnectBackoff.initial,
                attempt: { connection in continuation.resume(returning: try body(connection)) },
                fail: { continuation.resume(throwing: $0) })
            if !submit(.run(operation)) { continuation.resume(throwing: TransportError(.shutDown, "the publisher is shut down")) }
        }
    }

    /// Returns at once unless the broker blocks publishing; then once it unblocks, or the publisher ends.
    func waitWhileBlocked() async {
        guard shared.withLock({ $0.isBlocked }) else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waiting = shared.withLock { shared in
                guard shared.isBlocked && !shared.threadEnded else { return false }
                shared.blockedWaiters.append(continuation)
                return true
            }
            if !waiting { continuation.resume() }
        }
    }

    /// Refuses new publishes, waits for those already asked for (up to their deadline), closes the connection.
    func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ended = shared.withLock { shared in
                shared.isShutDown = true
                if shared.threadEnded { return true }
                shared.finished = continuation
                return false
            }
            if ended { continuation.resume() } else { loop.wake() }
        }
    }

    private func submit(_ job: Job) -> Bool {
        let accepted = shared.withLock { shared in
            guard !shared.isShutDown else { return false }
            shared.jobs.append(job)
            return true
        }
        if accepted { loop.wake() }
        return accepted
    }

    // MARK: On the loop's thread

    var socket: Int32? { connection.value.map { amqp_get_sockfd($0.state) } }

    var isFinished: Bool { finished.value }

    func service(readable: Bool, now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        guard !isFinished else { return nil }
        let (newJobs, shutDown) = shared.withLock { shared -> ([Job], Bool) in
            defer { shared.jobs.removeAll(keepingCapacity: true) }
            return (shared.jobs, shared.isShutDown)
        }
        for job in newJobs {
            switch job {
            case .publish(let publish, let giveUpAt):
                confirms.value.asked(publish, messageCount: publish.messages.count, giveUpAt: giveUpAt)
            case .run(let operation): operations.value.append(operation)
            }
        }
        // Declares and binds run only with nothing in flight and not blocked. A broker that blocks a connection stops
        // reading it: a declare sent after the publish that blocked it would never be answered, and librabbitmq would
        // wait for that reply on the loop's thread forever. With every publish confirmed, the broker has already said
        // whether it blocks us (its connection.blocked comes before the confirm of the publish that caused it).
        let mayRunOperations = blockedSince.value == nil && !confirms.value.hasUnconfirmed
        let nextOperation = mayRunOperations ? runOperations() : nil
        if shutDown && newJobs.isEmpty && !confirms.value.hasUnsent && !confirms.value.hasUnconfirmed
            && operations.value.isEmpty
        {
            finish()
            return nil
        }
        let next = serviceConnection(readable: readable)
        // The last confirm just came, or the block just ended: the declares that waited for it go now.
        if !mayRunOperations && blockedSince.value == nil && !confirms.value.hasUnconfirmed && !operations.value.isEmpty {
            return clock.now
        }
        return nextOperation.map { min($0, next) } ?? next
    }

    /// Publishes, confirms and heartbeats; returns when to come back without input.
    private func serviceConnection(readable: Bool) -> ContinuousClock.Instant {
        let wasBlocked = blockedSince.value != nil
        sendUnsent()
        let heartbeat = lastRead.value.advanced(by: AMQPConnection.readAtLeastEvery)
        if confirms.value.hasUnconfirmed || wasBlocked {
            readConfirms(readable: readable || clock.now >= heartbeat)
            if wasBlocked && blockedSince.value == nil { return clock.now }  // unblocked: send what waited, right away
            let nextRead = lastRead.value.advanced(by: AMQPConnection.readAtLeastEvery)
            if blockedSince.value != nil { return nextRead }  // only the broker's unblocked (or a heartbeat) is awaited
            return confirms.value.firstUnconfirmedDeadline.map { min($0, nextRead) } ?? nextRead
        } else if confirms.value.hasUnsent {
            failExpired()
            return reconnectAt.value ?? confirms.value.firstUnsentDeadline ?? clock.now  // backing off before reconnecting
        } else {
            // Idle with no connection (lost while idle): nothing to do until a publish wakes the loop. (The heartbeat
            // instant would stay in the past, and the loop would spin.)
            guard connection.value != nil else { return clock.now.advanced(by: AMQPConnection.readAtLeastEvery) }
            if readable || connection.value?.hasBufferedInput == true || clock.now >= heartbeat { serviceIdleConnection() }
            return lastRead.value.advanced(by: AMQPConnection.readAtLeastEvery)
        }
    }

    private func finish() {
        connection.value?.close()
        connection.value = nil
        finished.value = true
        let (waiter, blockedWaiters) = shared.withLock { shared in
            shared.threadEnded = true
            shared.isBlocked = false
            defer { shared.blockedWaiters.removeAll() }
            return (shared.finished, shared.blockedWaiters)
        }
        waiter?.resume()
        for waiter in blockedWaiters { waiter.resume() }
    }

    /// Sends what waits, on a live connection (reconnecting once the backoff allows).
    private func sendUnsent() {
        // Held while a declare waits for what is in flight to be confirmed (see `service`).
        guard confirms.value.hasUnsent, blockedSince.value == nil, operations.value.isEmpty else { return }
        if let reconnectAt = reconnectAt.value, clock.now < reconnectAt, connection.value == nil { return }
        do {
            let connection = try liveConnection()
            while let publish = confirms.value.nextToSend {
                for message in publish.messages { try connection.publish(message) }
                confirms.value.sentNext()
            }
        } catch {
            failed(error, doing: "publishing")
        }
    }

    /// The connection failed: what was sent and not confirmed is sent again on the next one, after a backoff; a
    /// permanent error (refused credentials, a certificate) fails every request at once.
    func failed(_ error: any Error, doing: String) {
        dropConnection()
        lastFailure.value = error
        if let error = error as? TransportError, error.isPermanent {
            for publish in confirms.value.removeUnsent() { publish.continuation.resume(throwing: error) }
            return
        }
        logger.warning(
            "AMQP publisher: \(doing) failed, reconnecting", metadata: ["error": "\(error)", "retry.in": "\(backoff.value)"])
        reconnectAt.value = clock.now.advanced(by: backoff.value)
        backoff.value = min(backoff.value * 2, configuration.reconnectBackoff.max)
        failExpired()
    }

    /// Requests past their deadline fail with the last connection error.
    private func failExpired() {
        guard blockedSince.value == nil else { return }
        let expired = confirms.value.expired(at: clock.now)
        guard !expired.isEmpty else { return }
        let error = lastFailure.value ?? TransportError(.publishTimedOut, "no publisher confirm within \(configuration.publishDeadline)")
        for publish in expired { publish.continuation.resume(throwing: error) }
    }

    /// Runs the declares and binds whose time has come. Returns when the next one waiting is due.
    private func runOperations() -> ContinuousClock.Instant? {
        // Most passes have none: they cost a check, not a copy.
        guard !operations.value.isEmpty else { return nil }
        // A copy, not an access held through the run: dropping a connection reads `operations` (`unblocked`).
        let current = operations.value
        let (waiting, next) = current.runDue(
            at: clock.now, maxBackoff: configuration.reconnectBackoff.max, logger: logger,
            connection: liveConnection, connectionFailed: dropConnection)
        operations.value = waiting
        return next
    }

    private func liveConnection() throws -> AMQPConnection {
        if let connection = connection.value, connection.isOpen { return connection }
        dropConnection()
        let connection = try nodes.connect()
        do {
            try connection.enableConfirms()
        } catch {
            connection.close()
            throw error
        }
        if configuration.nodes.count > 1 {
            logger.info("AMQP publisher: connected", metadata: ["amqp.node": "\(connection.node)"])
        }
        self.connection.value = connection
        confirms.value.connected()
        reconnectAt.value = nil
        backoff.value = configuration.reconnectBackoff.initial
        return connection
    }

    /// Closes the connection; what it had sent and not seen confirmed goes back to be sent again, first.
    func dropConnection() {
        // A new connection starts unblocked; if the alarm is still on, the broker blocks it again on its first publish.
        unblocked(by: "the blocked connection closed; publishing goes on on a new one")
        connection.value?.markBroken()
        connection.value?.close()
        connection.value = nil
        confirms.value.connectionLost()
    }

}

