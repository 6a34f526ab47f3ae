import CreditsCore
import CreditsStore
import Synchronization

/// A store whose worker-facing calls fail now and then, while armed: a write either fails before
/// it reaches the database (nothing changed) or after it committed (the answer was lost, as when
/// a connection drops after COMMIT). Reads fail before. Seeded, so a failing run repeats. It can
/// also hold gas-row saves at a gate (`closeGate`), to catch the worker in the middle of a write,
/// and run something just before the next release reaches the ledger (`beforeNextRelease`), the
/// next move back to the queue reaches the database (`beforeNextTakeBack`), or the next claim does
/// (`beforeNextClaim`), or just after the queue was read (`afterNextQueueRead`).
final class FlakyStore: CreditStore {
    struct Counts { var failedBefore = 0, failedAfter = 0 }

    let inner: any CreditStore
    private let failureRatePPM: Int64
    private let state: Mutex<(rng: SplitMix64, armed: Bool, counts: Counts)>
    private let gate = Mutex<(closed: Bool, held: Int, waiting: [CheckedContinuation<Void, Never>])>((false, 0, []))
    private let releaseHook = OneShot()

    private let takeBackHook = OneShot()
    private let claimHook = OneShot()
    private let queueReadHook = OneShot()

    /// Runs `body` once, when the next release is about to reach the ledger.
    func beforeNextRelease(_ body: @escaping @Sendable () async -> Void) { releaseHook.arm(body) }
    /// Runs `body` once, when the next move back to `queued` (a takeover's) is about to reach the database.
    func beforeNextTakeBack(_ body: @escaping @Sendable () async -> Void) { takeBackHook.arm(body) }
    /// Runs `body` once, when the next claim (a move to `batched`) is about to reach the database.
    func beforeNextClaim(_ body: @escaping @Sendable () async -> Void) { claimHook.arm(body) }
    /// Runs `body` once, when the next read of the queued uploads has been read, before it returns.
    func afterNextQueueRead(_ body: @escaping @Sendable () async -> Void) { queueReadHook.arm(body) }

    init(_ inner: any CreditStore, failureRatePPM: Int64, seed: UInt64) {
        self.inner = inner
        self.failureRatePPM = failureRatePPM
        state = Mutex((SplitMix64(seed: seed), false, Counts()))
    }

    struct InjectedFailure: Error, CustomStringConvertible {
        var afterCommit: Bool
        var description: String { afterCommit ? "injected: answer lost after commit" : "injected: database unavailable" }
    }

    var armed: Bool {
        get { state.withLock { $0.armed } }
        set { state.withLock { $0.armed = newValue } }
    }
    var counts: Counts { state.withLock { $0.counts } }

    private let isAway = Mutex(false)
    /// The database is gone: every worker-facing call fails before it reaches it (whether armed or not).
    var away: Bool {
        get { isAway.withLock { $0 } }
        set { isAway.withLock { $0 = newValue } }
    }

    /// Saves of gas rows wait from now until `openGate`.
    func closeGate() { gate.withLock { $0.closed = true } }
    /// Saves held at the gate so far.
    var heldAtGate: Int { gate.withLock { $0.held } }
    func openGate() {
        let waiting = gate.withLock { g in
            g.closed = false
            defer { g.waiting = [] }
            return g.waiting
        }
        for w in waiting { w.resume() }
    }

    private func passGate() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let held = gate.withLock { g -> Bool in
                guard g.closed else { return false }
                g.held += 1
                g.waiting.append(c)
                return true
            }
            if !held { c.resume() }
        }
    }

    /// Whether this call fails, and when.
    private func draw(write: Bool) -> InjectedFailure? {
        if away { return InjectedFailure(afterCommit: false) }
        return state.withLock { s -> InjectedFailure? in
            guard s.armed, s.rng.chance(ppm: failureRatePPM) else { return nil }
            let after = write && s.rng.chance(ppm: 500_000)
            if after { s.counts.failedAfter += 1 } else { s.counts.failedBefore += 1 }
            return InjectedFailure(afterCommit: after)
        }
    }

    private func write<T>(_ body: () async throws -> T) async throws -> T {
        let failure = draw(write: true)
        if let failure, !failure.afterCommit { throw failure }
        let result = try await body()
        if let failure { throw failure }
        return result
    }

    private func read<T>(_ body: () async throws -> T) async throws -> T {
        if let failure = draw(write: false) { throw failure }
        return try await body()
    }

    var catalog: Catalog { inner.catalog }

    func execute(_ operation: LedgerOperation, idempotencyKey: String?) async throws -> OperationResult {
        if case .release = operation { await releaseHook.fire() }
        return try await write { try await inner.execute(operation, idempotencyKey: idempotencyKey) }
    }
    func balance(userId: String) async throws -> UserCredits { try await inner.balance(userId: userId) }
    func hasCredits(userId: String, credits: Int64) async throws -> Bool { try await inner.hasCredits(userId: userId, credits: credits) }
    func transactions(userId: String, limit: Int, cursor: String?) async throws -> TransactionPage {
        try await inner.transactions(userId: userId, limit: limit, cursor: cursor)
    }
    func upload(uploadId: String) async throws -> UploadRecord? { try await read { try await inner.upload(uploadId: uploadId) } }
    func uploads(status: UploadRecord.Status, limit: Int) async throws -> [UploadRecord] {
        let found = try await read { try await inner.uploads(status: status, limit: limit) }
        if status == .queued { await queueReadHook.fire() }
        return found
    }
    func transitionUploads(_ uploadIds: [String], from: Set<UploadRecord.Status>, to: UploadRecord.Status, batchId: String?,
                           reason: String?, inBatch: String?, untouchedSinceMs: Int64?) async throws -> [String] {
        if to == .queued { await takeBackHook.fire() }
        if to == .batched { await claimHook.fire() }
        return try await write {
            try await inner.transitionUploads(uploadIds, from: from, to: to, batchId: batchId, reason: reason, inBatch: inBatch,
                                              untouchedSinceMs: untouchedSinceMs)
        }
    }

    func setRefundedUploadReason(uploadId: String, expected: String?, reason: String) async throws -> Bool {
        try await write { try await inner.setRefundedUploadReason(uploadId: uploadId, expected: expected, reason: reason) }
    }

    func saveGasTransaction(_ tx: GasTransaction) async throws {
        await passGate()
        try await write { try await inner.saveGasTransaction(tx) }
    }
    func gasTransactions(sinceMs: Int64, limit: Int) async throws -> [GasTransaction] {
        try await read { try await inner.gasTransactions(sinceMs: sinceMs, limit: limit) }
    }
    func platformTotals(sinceMs: Int64) async throws -> (PlatformTotals, purchasePricesCents: [Int64]) {
        try await inner.platformTotals(sinceMs: sinceMs)
    }
    func dailyTotals(sinceMs: Int64) async throws -> [DailyTotals] { try await inner.dailyTotals(sinceMs: sinceMs) }
    func upsertUser(userId: String, walletAddress: String??, signedUpAtMs: Int64?) async throws -> UserProfile {
        try await inner.upsertUser(userId: userId, walletAddress: walletAddress, signedUpAtMs: signedUpAtMs)
    }
    func userProfile(userId: String) async throws -> UserProfile? { try await inner.userProfile(userId: userId) }
    func creditLots(userId: String, afterId: Int64, limit: Int) async throws -> [CreditLot] {
        try await inner.creditLots(userId: userId, afterId: afterId, limit: limit)
    }
    func usersWithExpiredLots(nowMs: Int64, limit: Int) async throws -> [String] {
        try await inner.usersWithExpiredLots(nowMs: nowMs, limit: limit)
    }
    func reconcile() async throws -> ReconcileReport { try await inner.reconcile() }
    func ping(within limit: Duration) async throws { try await inner.ping(within: limit) }
    func close() async throws { try await inner.close() }
}
