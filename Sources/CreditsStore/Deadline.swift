import CreditsCore
import Synchronization

/// The database did not answer a store call in time. The API answers it 503 (`DatabaseOutage`).
public struct DatabaseDeadlineError: Error, CustomStringConvertible {
    public let limit: Duration
    public var description: String {
        if limit.components.attoseconds == 0 { return "the database did not answer within \(limit.components.seconds) s" }
        return "the database did not answer within \(limit.wholeMilliseconds) ms"
    }
}

/// The connection closed under a call, and the call never got its answer. The API answers it 503.
public struct ConnectionLostError: Error, CustomStringConvertible {
    public var description: String { "the connection to PostgreSQL closed and its query was never answered" }
}

/// Each connection the pool lent, a few times over, had already been closed by the server
/// (`PostgresStore.pooled`). The API answers it 503.
struct ClosedConnectionLeased: Error, CustomStringConvertible {
    var description: String { "the pool lent only connections that PostgreSQL had closed" }
}

/// Returns what `body` returns, or throws `DatabaseDeadlineError` once `limit` has passed, or
/// `ConnectionLostError` once `lost()` has held for `grace` (polled every `lostPoll`).
///
/// Unlike a task group, this does not wait for `body` to stop. PostgresNIO 1.33 can lose the answer
/// to a query sent on a connection that has just closed: the query is written to a channel whose
/// handlers are gone, its promise is never completed, and its await ignores cancellation. Such a
/// `body` is cancelled and left behind; the pool replaces its closed connection. `lost` says that
/// the connection has closed: a query that was running when it closed fails at once, so one still
/// waiting `grace` later will never be answered. A `body` that is only slow runs on past the
/// deadline: a ledger transaction it commits is applied once, and the caller, told to retry
/// under the same key, gets the recorded answer.
func withDeadline<T: Sendable>(
    _ limit: Duration, abandonWhen lost: (@Sendable () -> Bool)? = nil, grace: Duration = .seconds(1),
    lostPoll: Duration = .milliseconds(100), _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = DeadlineRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.start(continuation)
            race.setWork(Task {
                do { race.finish(.success(try await body())) } catch { race.finish(.failure(error)) }
            })
            race.setTimer(Task {
                let clock = ContinuousClock()
                let end = clock.now.advanced(by: limit)
                var lostSince: ContinuousClock.Instant?
                while clock.now < end {
                    let poll = lost == nil ? end - clock.now : min(lostPoll, end - clock.now)
                    do { try await Task.sleep(for: poll) } catch { return }  // cancelled: body answered
                    guard let lost, lost() else { lostSince = nil; continue }
                    let since = lostSince ?? clock.now
                    lostSince = since
                    if clock.now - since >= grace {
                        race.finish(.failure(ConnectionLostError()))
                        return
                    }
                }
                race.finish(.failure(DatabaseDeadlineError(limit: limit)))
            })
        }
    } onCancel: {
        race.cancelWork()
    }
}

/// Who answers first, the body or the timer; the other is cancelled.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
        var finished = false
        var cancelled = false
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    func setWork(_ task: Task<Void, Never>) {
        let cancel = state.withLock { s -> Bool in
            s.work = task
            return s.cancelled
        }
        if cancel { task.cancel() }
    }

    func setTimer(_ task: Task<Void, Never>) {
        let cancel = state.withLock { s -> Bool in
            s.timer = task
            return s.finished
        }
        if cancel { task.cancel() }
    }

    func cancelWork() {
        let work = state.withLock { s -> Task<Void, Never>? in
            s.cancelled = true
            return s.work
        }
        work?.cancel()
    }

    /// The first call resumes the caller and cancels the other side; later calls do nothing.
    func finish(_ result: Result<T, any Error>) {
        let taken = state.withLock { s -> (CheckedContinuation<T, any Error>, [Task<Void, Never>])? in
            guard !s.finished, let continuation = s.continuation else { return nil }
            s.finished = true
            s.continuation = nil
            return (continuation, [s.work, s.timer].compactMap { $0 })
        }
        guard let (continuation, tasks) = taken else { return }
        for task in tasks { task.cancel() }  // the finished side ignores it
        continuation.resume(with: result)
    }
}
