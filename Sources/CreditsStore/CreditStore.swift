import CreditsCore

/// The ledger's storage. Every implementation passes the shared conformance suite
/// (Tests/CreditsStoreTests/StoreConformance.swift).
public protocol CreditStore: Sendable {
    /// The catalog operations are priced against.
    var catalog: Catalog { get }

    /// Applies one ledger operation atomically, at most once per key.
    ///
    /// Keys: the operation's natural key always, and `idempotencyKey` when given. A key seen before
    /// with the same request returns the first outcome with `replayed == true` (a remembered
    /// rejection included); with another request it throws `IDEMPOTENCY_CONFLICT`. Returns only
    /// after the outcome is durable. Throws `VALIDATION_ERROR` for bad input, which changes nothing.
    func execute(_ operation: LedgerOperation, idempotencyKey: String?) async throws -> OperationResult

    /// The user's balances; zeros for a user never seen.
    func balance(userId: String) async throws -> UserCredits

    /// True when the user's available balance covers `credits`. Advisory only: `execute` checks
    /// again atomically with the debit.
    func hasCredits(userId: String, credits: Int64) async throws -> Bool

    /// The user's journal rows, newest first. `limit` is 1...Limits.pageSizeMax.
    func transactions(userId: String, limit: Int, cursor: String?) async throws -> TransactionPage

    /// An upload, or nil when none has that id.
    func upload(uploadId: String) async throws -> UploadRecord?

    /// Uploads in one status, oldest first (the worker's queue).
    func uploads(status: UploadRecord.Status, limit: Int) async throws -> [UploadRecord]

    /// Moves uploads along the chain lifecycle (queued → batched → submitted, or failed) without
    /// touching balances, each only if its current status is in `from`: two workers claiming
    /// the same queued uploads get disjoint sets. With `inBatch`, only an upload whose batch is
    /// that one moves: a worker's late write about its batch's message leaves alone an upload
    /// another instance has taken over and batched since. With `untouchedSinceMs`, only an upload
    /// last updated at or before that time moves: taking over a vanished peer's upload leaves it
    /// alone if the peer touched it after it was read (alive after all). Returns the ids that moved.
    @discardableResult
    func transitionUploads(
        _ uploadIds: [String], from: Set<UploadRecord.Status>, to: UploadRecord.Status, batchId: String?, reason: String?,
        inBatch: String?, untouchedSinceMs: Int64?
    ) async throws -> [String]

    /// Sets a refunded upload's `failureReason` to `reason` if it is still `expected` (nil: none),
    /// touching nothing else: not its status, nor any balance. True when it was set. For
    /// `noteStoredAfterRefund`; no other status is ever touched.
    @discardableResult
    func setRefundedUploadReason(uploadId: String, expected: String?, reason: String) async throws -> Bool

    /// Inserts or replaces a chain message's record.
    func saveGasTransaction(_ tx: GasTransaction) async throws

    /// Messages created at or after `sinceMs`, oldest first, at most `limit`.
    func gasTransactions(sinceMs: Int64, limit: Int) async throws -> [GasTransaction]

    /// The platform report's counts since `sinceMs`, and the window's purchase prices.
    func platformTotals(sinceMs: Int64) async throws -> (PlatformTotals, purchasePricesCents: [Int64])

    /// Revenue, credits sold and credits spent per UTC day since `sinceMs` (days with none omitted).
    func dailyTotals(sinceMs: Int64) async throws -> [DailyTotals]

    /// Registers a creator or updates them: `walletAddress` replaces the stored one when given
    /// (`.some(nil)` clears it); `signedUpAtMs` only when given, else the first registration's time.
    func upsertUser(userId: String, walletAddress: String??, signedUpAtMs: Int64?) async throws -> UserProfile

    /// A registered creator, or nil.
    func userProfile(userId: String) async throws -> UserProfile?

    /// Up to `limit` (at least 1) of the user's lots with an id above `afterId`, oldest (lowest
    /// id) first.
    func creditLots(userId: String, afterId: Int64, limit: Int) async throws -> [CreditLot]

    /// Users with credits in lots expired at `nowMs` (the expiry sweep's work), at most `limit`.
    func usersWithExpiredLots(nowMs: Int64, limit: Int) async throws -> [String]

    /// Checks every invariant of the ledger against the journal.
    func reconcile() async throws -> ReconcileReport

    /// Reads one row of the ledger's tables within `limit`: throws when the database cannot be
    /// read now (down, unreachable, its tables gone). For `/readyz`.
    func ping(within limit: Duration) async throws

    /// Finishes queued writes and closes the database.
    func close() async throws
}

extension CreditStore {
    /// Notes on a refunded upload's row that a message stored it after its refund (a given-up
    /// message that landed after `landingGraceMs`): its `failureReason` starts with "stored on
    /// chain after its refund by message <cid>, not charged", then the reason it was refunded
    /// for (cut to `Limits.descriptionLengthMax`). It stays `refunded`, its credits released: the
    /// user was told it failed, so it is not charged. Once per upload, safe to repeat; an upload
    /// in any other status is left as it is. True when this call wrote the note.
    @discardableResult
    public func noteStoredAfterRefund(uploadId: String, messageCid: String) async throws -> Bool {
        guard let u = try await upload(uploadId: uploadId), u.status == .refunded,
              u.failureReason?.hasPrefix(UploadRecord.storedAfterRefundPrefix) != true else { return false }
        let note = UploadRecord.storedAfterRefundNote(messageCid: messageCid)
        let reason = LedgerOperation.fittedText(u.failureReason.map { "\(note); refunded: \($0)" } ?? note)
        return try await setRefundedUploadReason(uploadId: uploadId, expected: u.failureReason, reason: reason)
    }

    /// All the user's lots, oldest first, read `pageSize` at a time.
    public func creditLots(userId: String, pageSize: Int = 1_000) async throws -> [CreditLot] {
        var lots: [CreditLot] = []
        while true {
            let page = try await creditLots(userId: userId, afterId: lots.last?.id ?? 0, limit: pageSize)
            lots += page
            if page.count < pageSize { return lots }
        }
    }

    /// `transitionUploads` whenever the uploads were last updated.
    @discardableResult
    public func transitionUploads(
        _ uploadIds: [String], from: Set<UploadRecord.Status>, to: UploadRecord.Status, batchId: String?, reason: String?,
        inBatch: String?
    ) async throws -> [String] {
        try await transitionUploads(uploadIds, from: from, to: to, batchId: batchId, reason: reason, inBatch: inBatch, untouchedSinceMs: nil)
    }

    /// `transitionUploads` whatever batch the uploads are in.
    @discardableResult
    public func transitionUploads(
        _ uploadIds: [String], from: Set<UploadRecord.Status>, to: UploadRecord.Status, batchId: String?, reason: String?
    ) async throws -> [String] {
        try await transitionUploads(uploadIds, from: from, to: to, batchId: batchId, reason: reason, inBatch: nil)
    }

    /// The seed's `getPlatformStats(days)`: the platform's counts over the last `days`.
    public func getPlatformStats(days: Int, nowMs: Int64) async throws -> PlatformTotals {
        try await platformTotals(sinceMs: nowMs - Int64(days) * 86_400_000).0
    }

    public func hasCredits(userId: String, credits: Int64) async throws -> Bool {
        try await balance(userId: userId).balance >= credits
    }
}

/// Cursor and page-size checks shared by every store.
public enum Paging {
    public static func checkLimit(_ limit: Int) throws(CreditsError) {
        if limit < 1 || limit > Limits.pageSizeMax {
            throw .validation("limit", "must be between 1 and \(Limits.pageSizeMax)")
        }
    }

    /// A cursor is the id of the last row of the previous page (`txn_<n>` for journal rows, whose
    /// older rows follow; `lot_<n>` for lots, whose newer lots follow).
    public static func parseCursor(_ cursor: String?, prefix: String = "txn_") throws(CreditsError) -> Int64? {
        guard let cursor else { return nil }
        guard cursor.hasPrefix(prefix), let n = Int64(cursor.dropFirst(prefix.count)), n > 0 else {
            throw .validation("cursor", "is not a cursor this service returned")
        }
        return n
    }
}

/// A tool asked to open an existing ledger (`create: false`) found none where it was told to look.
public struct NoLedgerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
