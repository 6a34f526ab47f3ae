@testable import CreditsStore
import CreditsCore
import CreditsTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

/// A value several tasks read and write.
private final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func get() -> Value { value.withLock { $0 } }
    func update<R: Sendable>(_ body: (inout Value) -> R) -> R { value.withLock { body(&$0) } }
}

/// A call that never answers and ignores cancellation, as a query PostgresNIO has lost does,
/// until the test lets it go.
private final class Stuck: Sendable {
    private let state = Mutex<(waiting: CheckedContinuation<Void, Never>?, released: Bool)>((nil, false))

    func hang() async {
        await withCheckedContinuation { c in
            let go = state.withLock { s -> Bool in
                if !s.released { s.waiting = c }
                return s.released
            }
            if go { c.resume() }
        }
    }

    func release() {
        state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.released = true
            return s.waiting.take()
        }?.resume()
    }
}

/// Starts `withDeadline` on `stuck.hang()` in a task of its own; the outcome, once there is one,
/// and whether the body saw itself cancelled when let go.
private func stuckCall(
    _ stuck: Stuck, limit: Duration, closed: Shared<Bool>? = nil, grace: Duration = .seconds(1)
) -> (outcome: Shared<Result<Int, any Error>?>, bodyCancelled: Shared<Bool?>) {
    let outcome = Shared<Result<Int, any Error>?>(nil)
    let bodyCancelled = Shared<Bool?>(nil)
    var lost: (@Sendable () -> Bool)?
    if let closed { lost = { closed.get() } }
    Task { [lost] in
        do {
            let value = try await withDeadline(limit, abandonWhen: lost, grace: grace, lostPoll: .milliseconds(5)) {
                await stuck.hang()
                bodyCancelled.update { $0 = Task.isCancelled }
                return 1
            }
            outcome.update { $0 = .success(value) }
        } catch {
            outcome.update { $0 = .failure(error) }
        }
    }
    return (outcome, bodyCancelled)
}

/// The call ended with an `E`, which the API answers 503.
private func expectOutage<E: Error>(
    _ outcome: Result<Int, any Error>?, _: E.Type, sourceLocation: SourceLocation = #_sourceLocation
) {
    guard case .failure(let error) = outcome, error is E else {
        Issue.record("expected \(E.self), got \(String(describing: outcome))", sourceLocation: sourceLocation)
        return
    }
    #expect(DatabaseOutage.reason(error) != nil, "answered 503, not 500", sourceLocation: sourceLocation)
}

/// PostgreSQL can drop the store's connections at any time: an operator's `pg_terminate_backend`,
/// `idle_session_timeout`, a proxy, a failover. PostgresNIO 1.33 never answers a query sent on a
/// connection that has just closed, so without a deadline one such query stalls the group commit,
/// and with it every write of the instance, for good.
@Suite struct ConnectionLossTests {
    @Test func aCallThatNeverAnswersEndsAtItsDeadline() async throws {
        let stuck = Stuck()
        let (outcome, bodyCancelled) = stuckCall(stuck, limit: .milliseconds(50))
        // Bounded: a deadline that waited for its body would hang here, not the whole run.
        let answered = await waitUntil(polls: 2_500, everyMs: 4) { outcome.get() != nil }
        #expect(answered, "withDeadline waited for a body that never answers")
        expectOutage(outcome.get(), DatabaseDeadlineError.self)
        if case .failure(let error) = outcome.get() { #expect("\(error)" == "the database did not answer within 50 ms") }
        #expect("\(DatabaseDeadlineError(limit: .seconds(30)))" == "the database did not answer within 30 s")
        #expect("\(DatabaseDeadlineError(limit: .milliseconds(2_500)))" == "the database did not answer within 2500 ms")
        stuck.release()
        #expect(await waitUntil { bodyCancelled.get() != nil })
        #expect(bodyCancelled.get() == true, "the body left behind is cancelled")
    }

    /// A call whose connection has closed and that is still unanswered `grace` later is abandoned
    /// then, long before its deadline; one answered within the grace keeps its answer.
    @Test func aCallWhoseConnectionClosedIsAbandonedAfterTheGrace() async throws {
        let stuck = Stuck()
        let closed = Shared(false)
        let outcome = stuckCall(stuck, limit: .seconds(3_600), closed: closed, grace: .milliseconds(20)).outcome
        try await Task.sleep(for: .milliseconds(100))
        #expect(outcome.get() == nil, "abandoned while its connection was open")
        closed.update { $0 = true }
        #expect(await waitUntil(polls: 2_500, everyMs: 4) { outcome.get() != nil })
        expectOutage(outcome.get(), ConnectionLostError.self)
        stuck.release()

        let answering = Stuck()
        let closedToo = Shared(false)
        let answered = stuckCall(answering, limit: .seconds(3_600), closed: closedToo, grace: .seconds(3_600)).outcome
        closedToo.update { $0 = true }
        try await Task.sleep(for: .milliseconds(50))
        answering.release()
        #expect(await waitUntil { answered.get() != nil })
        if case .success(let value) = answered.get() { #expect(value == 1) } else { Issue.record("lost its answer") }
    }

    @Test func aCallThatAnswersInTimeIsUnchanged() async throws {
        #expect(try await withDeadline(.seconds(30)) { 7 } == 7)
        struct Refused: Error {}
        await #expect(throws: Refused.self) { try await withDeadline(.seconds(30)) { () async throws -> Int in throw Refused() } }
        // The caller's cancellation reaches the body.
        let started = Shared(false)
        let call = Task {
            try await withDeadline(.seconds(30)) { () async throws -> Int in
                started.update { $0 = true }
                try await Task.sleep(for: .seconds(30))
                return 1
            }
        }
        #expect(await waitUntil { started.get() })
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }
    }

    /// The limits reach PostgreSQL as whole milliseconds in the settings' range: 0 would turn a
    /// limit off, and past 2^31 − 1 the server refuses the setting (and with it every commit).
    @Test func limitsAreWholeMillisecondsInTheSettingsRange() {
        #expect(PostgresStore.milliseconds(.seconds(30)) == "30000")
        #expect(PostgresStore.milliseconds(.milliseconds(300)) == "300")
        #expect(PostgresStore.milliseconds(.microseconds(1_500)) == "1")
        #expect(PostgresStore.milliseconds(.zero) == "1")
        #expect(PostgresStore.milliseconds(.seconds(-5)) == "1")
        #expect(PostgresStore.milliseconds(.seconds(2_147_483)) == "2147483000")
        #expect(PostgresStore.milliseconds(.seconds(2_147_483) + .milliseconds(999)) == "2147483647")
        #expect(PostgresStore.milliseconds(.seconds(2_147_484)) == "2147483647")
        #expect(PostgresStore.milliseconds(.seconds(Int64.max)) == "2147483647")
        // The conversion under it saturates rather than trapping.
        #expect(Duration.seconds(Int64.max).wholeMilliseconds == .max)
        #expect(Duration.seconds(Int64.min).wholeMilliseconds == .min)
        #expect((Duration.seconds(-1) - .milliseconds(500)).wholeMilliseconds == -1_500)
    }

    /// A ledger transaction whose client goes quiet in the middle of it is ended by the server
    /// once the limit has passed, and its locks with it: a frozen instance would otherwise hold
    /// every instance's writes (each commit locks the platform's rows) until the server noticed
    /// its dead connection.
    @Test(.enabled(if: PostgresTestDatabase.url != nil))
    func aLedgerTransactionLeftIdleIsEndedByTheServer() async throws {
        let conn = try await PostgresTestDatabase.connect()
        try await conn.query("BEGIN", logger: Logger(label: "test"))
        try await PostgresStore.limitTransaction(conn, statements: .seconds(30), idle: .milliseconds(300), logger: Logger(label: "test"))
        // Bounded: a session the server never ends fails here, 30 s on.
        #expect(await waitUntil(polls: 300, everyMs: 100) { conn.isClosed }, "the server kept an idle transaction open")
        if !conn.isClosed { try await conn.close() }
    }

    /// A ledger commit abandoned at its deadline while it waits on a lock another client holds
    /// does not wait on in PostgreSQL: the server cancels its statement (statement_timeout, the
    /// call's deadline), so it gives its pooled connection back while the lock is still held. Once
    /// the lock goes, the spend sent again applies once.
    @Test(.enabled(if: PostgresTestDatabase.url != nil))
    func aCommitAbandonedOnALockStopsWaitingInTheServer() async throws {
        let database = try await PostgresTestDatabase.freshDatabase()
        let store = try await PostgresStore(url: database.url)
        _ = try await store.execute(adjust("u", 100, "grant"), idempotencyKey: nil)
        let tried = try await abandonedOnALock(
            "SELECT name FROM platform_accounts FOR UPDATE", database: database
        ) { impatient, attempt in
            _ = try await impatient.execute(spend("u", 1, "s\(attempt)"), idempotencyKey: nil)
        }
        // Cancelled, so never committed: sent again, it applies now. Any spend tried before it
        // (its call ended before it reached the lock) is sent again too, and applies once.
        #expect(try await store.execute(spend("u", 1, "s\(tried)"), idempotencyKey: nil).replayed == false)
        for attempt in 1..<tried { _ = try await store.execute(spend("u", 1, "s\(attempt)"), idempotencyKey: nil) }
        #expect(try await store.balance(userId: "u").balance == 100 - Int64(tried))
        #expect(try await store.reconcile().ok)
        try await store.close()
    }

    /// The gas manager's one-statement writes run under the same limit: a move of an upload whose
    /// row another client has locked answers 503 at its deadline and stops waiting in the server.
    @Test(.enabled(if: PostgresTestDatabase.url != nil))
    func aWorkerWriteAbandonedOnALockStopsWaitingInTheServer() async throws {
        let database = try await PostgresTestDatabase.freshDatabase()
        let store = try await PostgresStore(url: database.url)
        _ = try await store.execute(adjust("u", 100, "grant"), idempotencyKey: nil)
        _ = try await store.execute(.upload(UploadRequest(
            uploadId: "up1", userId: "u", fileType: "audio", fileCount: 1, features: [], sizeBytes: 1_000, priority: .low)),
            idempotencyKey: nil)
        let tried = try await abandonedOnALock(
            "SELECT upload_id FROM file_uploads WHERE upload_id = 'up1' FOR UPDATE", database: database
        ) { impatient, attempt in
            _ = try await impatient.transitionUploads(["up1"], from: [.queued], to: .batched, batchId: "b\(attempt)", reason: nil)
        }
        // Cancelled, so the upload is still queued (unless an earlier try, ended before it reached
        // the lock, moved it once the lock went).
        if tried == 1 { #expect(try await store.upload(uploadId: "up1")?.status == .queued) }
        #expect(try await store.reconcile().ok)
        try await store.close()
    }

    /// Locks rows on a connection of its own (`lock`, in a transaction), then makes `call`s
    /// through a store with a 3 s deadline until one is seen waiting on the lock in the server
    /// (under load, a call can also reach its deadline before its statement gets there: the next
    /// try is numbered on). Checks that it answers 503 at the deadline and that the server then
    /// stops it while the lock is still held; then lets the lock go. Returns the try's number.
    private func abandonedOnALock(
        _ lock: String, database: (name: String, url: String),
        _ call: @escaping @Sendable (PostgresStore, Int) async throws -> Void
    ) async throws -> Int {
        let logger = Logger(label: "test")
        let locker = try await PostgresTestDatabase.connect(id: 2, database: database.url)
        let impatient: PostgresStore
        do {
            impatient = try await PostgresStore(url: database.url, deadline: .seconds(3))
        } catch {
            try? await locker.close()
            throw error
        }
        do {
            try await locker.query("BEGIN", logger: logger)
            try await locker.query(PostgresQuery(unsafeSQL: lock), logger: logger)
            let tried = try await tryUntilOneWaits(locker, impatient: impatient, database: database.name, logger: logger, call)
            try await locker.query("ROLLBACK", logger: logger)
            try await impatient.close()
            try await locker.close()
            return tried
        } catch {
            try? await impatient.close()
            try? await locker.close()
            throw error
        }
    }

    private func tryUntilOneWaits(
        _ locker: PostgresConnection, impatient: PostgresStore, database: String, logger: Logger,
        _ call: @escaping @Sendable (PostgresStore, Int) async throws -> Void
    ) async throws -> Int {
        let waiting = PostgresQuery(unsafeSQL: """
            SELECT count(*) FROM pg_stat_activity
            WHERE datname = '\(database)' AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
            """)
        func waits() async throws -> Int {
            var count = -1
            for try await n in try await locker.query(waiting, logger: logger).decode(Int.self) { count = n }
            return count
        }
        for attempt in 1...5 {
            let outcome = Shared<Result<Int, any Error>?>(nil)
            Task {
                do {
                    try await call(impatient, attempt)
                    outcome.update { $0 = .success(1) }
                } catch {
                    outcome.update { $0 = .failure(error) }
                }
            }
            var seen = false
            while !seen && outcome.get() == nil {
                seen = try await waits() >= 1
                if !seen { try await Task.sleep(for: .milliseconds(20)) }
            }
            guard seen else { continue }
            #expect(await waitUntil(polls: 600, everyMs: 100) { outcome.get() != nil }, "no answer a minute on")
            expectOutage(outcome.get(), DatabaseDeadlineError.self)
            // Bounded: a statement the server never cancels waits for as long as the lock is held.
            var left = 1
            for _ in 0..<300 where left != 0 {
                left = try await waits()
                if left != 0 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(left == 0, "the abandoned statement still waits on the lock in the server")
            return attempt
        }
        Issue.record("no call reached the lock in 5 tries")
        throw CancellationError()
    }

    /// Spends from 8 writers while the server terminates the store's connections in the middle of
    /// their work every few milliseconds, until 20 spends have been applied and 20 connections
    /// terminated (at most 30 s). Connections still starting are spared: with those killed too,
    /// once, under the whole suite's load, no spend got through in 30 s (likely the pool could
    /// not connect). Every call answers, a success or an outage (503, retry), and not through
    /// the deadline, which is an hour here: a lost answer is noticed by its connection's closing.
    /// Retried under their keys afterwards, the spends apply exactly once each.
    @Test(.enabled(if: PostgresTestDatabase.url != nil))
    func connectionsTheServerDropsNeverStallTheLedger() async throws {
        let database = try await PostgresTestDatabase.freshDatabase()
        let store = try await PostgresStore(url: database.url, deadline: .seconds(3_600))
        let granted: Int64 = 1_000_000
        _ = try await store.execute(adjust("u", granted, "grant"), idempotencyKey: nil)

        let killer = try await PostgresTestDatabase.connect(id: 2)
        let stop = Shared(false)
        let terminated = Shared(0)
        let answers = Shared<[String: Bool]>([:])  // key → applied (true) or refused as an outage (false)
        let killing = Task {
            let started = ContinuousClock.now
            while ContinuousClock.now - started < .seconds(30)
                && (terminated.get() < 20 || answers.get().values.filter { $0 }.count < 20) {
                try? await Task.sleep(for: .milliseconds(Int.random(in: 5...80)))
                let rows = try await killer.query(PostgresQuery(unsafeSQL: """
                    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                    WHERE datname = '\(database.name)' AND pid <> pg_backend_pid()
                        AND state IN ('active', 'idle in transaction') AND backend_start < now() - interval '300 milliseconds'
                    """), logger: Logger(label: "test"))
                for try await count in rows.decode(Int.self) { terminated.update { $0 += count } }
            }
            stop.update { $0 = true }
        }
        let writers = Shared(0)
        for w in 0..<8 {
            Task {
                var i = 0
                while !stop.get() {
                    i += 1
                    let key = "w\(w)-\(i)"
                    do {
                        _ = try await store.execute(spend("u", 1, key), idempotencyKey: nil)
                        answers.update { $0[key] = true }
                    } catch {
                        if DatabaseOutage.reason(error) == nil { Issue.record("not an outage: \(String(reflecting: error))") }
                        answers.update { $0[key] = false }
                    }
                }
                writers.update { $0 += 1 }
            }
        }
        try await killing.value
        try await killer.close()
        // Bounded: writers stuck on a lost query would never finish.
        let finished = await waitUntil(polls: 3_000, everyMs: 20) { writers.get() == 8 }
        #expect(finished, "writers stalled: \(8 - writers.get()) of 8 never got an answer")
        #expect(terminated.get() > 0, "the server terminated no connection: the test tried nothing")
        guard finished else { return }

        let all = answers.get()
        #expect(all.values.contains(true), "no spend applied while connections were dropped")
        // Refused ones may or may not have committed; sent again under their keys, each applies once.
        for key in all.keys.sorted() where all[key] == false {
            var applied = false
            for _ in 0..<10 where !applied {
                applied = (try? await store.execute(spend("u", 1, key), idempotencyKey: nil)) != nil
            }
            #expect(applied, "\(key) was not applied on retry")
        }
        let balance = try await store.balance(userId: "u")
        #expect(balance.balance == granted - Int64(all.count), "\(all.count) spends, \(all.values.filter { !$0 }.count) retried")
        #expect(try await store.reconcile().ok)
        if let key = all.keys.first {
            #expect(try await store.execute(spend("u", 1, key), idempotencyKey: nil).replayed)
        }
        try await store.close()
    }
}
