import CreditsCore

/// The library's public face, with SEED.md's names. A Swift program can embed the ledger through
/// this type without the HTTP layer; the HTTP handlers are thin calls into it.
public struct CreditManager: Sendable {
    public let store: any CreditStore

    public init(store: any CreditStore) {
        self.store = store
    }

    public var catalog: Catalog { store.catalog }

    public func getUserCredits(_ userId: String) async throws -> UserCredits {
        try await store.balance(userId: userId)
    }

    public func hasCredits(_ userId: String, _ credits: Int64) async throws -> Bool {
        try await store.hasCredits(userId: userId, credits: credits)
    }

    /// Buys a package. With `grantAtOnce` (the default) its credits and bonus are granted now and
    /// provider events reconcile the purchase later; without, it is recorded pending and the
    /// provider's confirmation grants them. Either order of call and confirmation gives one grant.
    /// Idempotent on (paymentMethod, paymentId).
    public func purchaseCredits(
        _ userId: String, _ package: String, paymentMethod: PaymentMethod, paymentId: String,
        idempotencyKey: String? = nil, grantAtOnce: Bool = true
    ) async throws -> OperationResult {
        let request = PurchaseRequest(
            userId: userId, package: package, paymentMethod: paymentMethod, paymentId: paymentId, grantAtOnce: grantAtOnce)
        return try await store.execute(.purchase(request), idempotencyKey: idempotencyKey)
    }

    /// Applies a verified provider event (seed: "credit reversal on failed payments") exactly once
    /// per event id: completes, fails, refunds (in proportion), disputes or reverses a purchase.
    /// A reversal the balance cannot cover leaves the buyer in arrears.
    public func applyPaymentEvent(_ event: PaymentEventRequest) async throws -> OperationResult {
        try await store.execute(.paymentEvent(event), idempotencyKey: nil)
    }

    public func estimateUploadCost(_ request: EstimateRequest) throws(CreditsError) -> Estimate {
        try Pricing.estimate(request, catalog: catalog)
    }

    /// Debits `credits` if the balance covers them. Idempotent on fileUploadId.
    public func spendCreditsForUpload(
        _ userId: String, _ credits: Int64, fileUploadId: String, description: String = "",
        idempotencyKey: String? = nil
    ) async throws -> OperationResult {
        let request = SpendRequest(userId: userId, credits: credits, fileUploadId: fileUploadId, description: description)
        return try await store.execute(.spend(request), idempotencyKey: idempotencyKey)
    }

    /// An operator's grant (positive) or correction (negative). Idempotent on adjustmentId.
    public func adjustCredits(
        _ userId: String, _ credits: Int64, adjustmentId: String, reason: String, category: LotCategory = .promotional,
        idempotencyKey: String? = nil
    ) async throws -> OperationResult {
        let request = AdjustmentRequest(userId: userId, credits: credits, adjustmentId: adjustmentId, reason: reason, category: category)
        return try await store.execute(.adjust(request), idempotencyKey: idempotencyKey)
    }

    /// The operator's report over the last `days` (seed: `getPlatformCreditStats`): revenue, card
    /// fees, gas, margin, credits sold, spent and outstanding, users.
    public func getPlatformCreditStats(
        days: Int, nowMs: Int64, usdPerFil: DecimalRate, fees: PaymentFeeSchedule = .stripe
    ) async throws -> PlatformStats {
        let since = nowMs - Int64(days) * 86_400_000
        let (totals, prices) = try await store.platformTotals(sinceMs: since)
        let gas = GasStats.compute(try await store.gasTransactions(sinceMs: since, limit: 1_000_000), usdPerFil: usdPerFil)
        return PlatformStats.compute(
            days: days, totals: totals, purchasePricesCents: prices, gasSpentUsdCents: gas.gasSpentUsdCents, fees: fees)
    }

    /// Moves the unspent credits of every lot expired at `nowMs` to the expiry account (the
    /// `credits expire` command and the daily sweep). An expired lot is unspendable before this
    /// runs; the sweep only makes the journal say so. Returns the users swept and the credits.
    public func expireCredits(nowMs: Int64) async throws -> (users: Int, credits: Int64) {
        let sweepId = "sweep-\(nowMs)"
        var users = 0
        var credits: Int64 = 0
        while true {
            let batch = try await store.usersWithExpiredLots(nowMs: nowMs, limit: 500)
            if batch.isEmpty { break }
            let swept = try await withThrowingTaskGroup(of: Int64.self) { group in
                for user in batch {
                    group.addTask {
                        let r = try await store.execute(.expire(ExpireRequest(userId: user, sweepId: sweepId)), idempotencyKey: nil)
                        if case .expired(let receipt) = r.outcome { return receipt.credits }
                        return 0
                    }
                }
                return try await group.reduce(0, +)
            }
            users += batch.count
            credits += swept
            // A user this sweep already recorded replays and moves nothing: stop rather than
            // loop on lots it cannot clear.
            if swept == 0 { break }
        }
        return (users, credits)
    }

    public func getTransactions(_ userId: String, limit: Int = Limits.pageSizeDefault, cursor: String? = nil) async throws -> TransactionPage {
        try await store.transactions(userId: userId, limit: limit, cursor: cursor)
    }

    /// The user's credit lots, oldest first, a page at a time: pass `nextCursor` back as `cursor`.
    public func getLots(_ userId: String, limit: Int = Limits.pageSizeDefault, cursor: String? = nil) async throws -> LotPage {
        try Paging.checkLimit(limit)
        let afterId = try Paging.parseCursor(cursor, prefix: "lot_") ?? 0
        let lots = try await store.creditLots(userId: userId, afterId: afterId, limit: limit + 1)
        let data = Array(lots.prefix(limit))
        return LotPage(data: data, nextCursor: lots.count > limit ? data.last.map { "lot_\($0.id)" } : nil)
    }
}
