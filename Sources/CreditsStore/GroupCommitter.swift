import CreditsCore
import Synchronization

private enum Admission {
    case refused(CreditsError)
    case queued
    case queuedStartDrain
}

/// Hands queued operations to one writer that commits many of them in one transaction.
///
/// Callers `submit` and await. When no commit is running, the first caller starts a drain task;
/// while a commit runs, new operations queue up and the next commit takes all of them (up to
/// `batchMax`). So a lone request waits for one flush, and under load each flush carries
/// everything that arrived during the previous one. Nothing is answered before `commit` returns,
/// and `commit` returns only after the transaction is durable.
final class GroupCommitter<Operation: Sendable, Output: Sendable>: Sendable {
    typealias Commit = @Sendable ([Operation]) async -> [Result<Output, any Error>]

    private struct Waiting {
        var operation: Operation
        var continuation: CheckedContinuation<Output, any Error>
    }

    private struct State {
        var queue: [Waiting] = []
        var draining = false
        var closed = false
    }

    private let state = Mutex(State())
    private let batchMax: Int
    private let queueLengthMax: Int
    private let commit: Commit

    init(batchMax: Int, queueLengthMax: Int, commit: @escaping Commit) {
        precondition(batchMax >= 1 && queueLengthMax >= batchMax)
        self.batchMax = batchMax
        self.queueLengthMax = queueLengthMax
        self.commit = commit
    }

    func submit(_ operation: Operation) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            let admission = state.withLock { s -> Admission in
                if s.closed { return .refused(CreditsError(.unavailable, "the ledger is shutting down")) }
                if s.queue.count >= queueLengthMax {
                    return .refused(CreditsError(.unavailable, "the ledger's write queue is full; retry shortly"))
                }
                s.queue.append(Waiting(operation: operation, continuation: continuation))
                if s.draining { return .queued }
                s.draining = true
                return .queuedStartDrain
            }
            switch admission {
            case .refused(let error): continuation.resume(throwing: error)
            case .queued: break
            case .queuedStartDrain: Task { await self.drain() }
            }
        }
    }

    /// Refuses new work; returns when everything queued has been answered.
    func close() async {
        state.withLock { $0.closed = true }
        while state.withLock({ $0.draining || !$0.queue.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { s -> [Waiting] in
                if s.queue.isEmpty {
                    s.draining = false
                    return []
                }
                let n = min(batchMax, s.queue.count)
                let batch = Array(s.queue.prefix(n))
                s.queue.removeFirst(n)
                return batch
            }
            if batch.isEmpty { return }
            let results = await commit(batch.map(\.operation))
            precondition(results.count == batch.count, "commit answers every operation")
            for (waiting, result) in zip(batch, results) {
                waiting.continuation.resume(with: result)
            }
        }
    }
}
