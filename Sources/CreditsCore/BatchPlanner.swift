/// An operation ready for the planner: its keys (the caller's `Idempotency-Key` first) and the
/// hash of its canonical form.
public struct KeyedOperation: Sendable {
    public var operation: LedgerOperation
    public var keys: [String]
    public var requestHash: [UInt8]

    public init(operation: LedgerOperation, keys: [String], requestHash: [UInt8]) {
        precondition(!keys.isEmpty, "every operation has at least its natural key")
        self.operation = operation
        self.keys = keys
        self.requestHash = requestHash
    }
}

/// A key already applied: the hash of its request and the outcome to replay.
public struct KeyRecord: Sendable, Equatable {
    public var requestHash: [UInt8]
    public var outcome: LedgerOutcome

    public init(requestHash: [UInt8], outcome: LedgerOutcome) {
        self.requestHash = requestHash
        self.outcome = outcome
    }
}

/// A journal row to insert, ids already assigned.
public struct JournalRow: Sendable, Equatable {
    public var id: Int64
    public var kind: JournalKind
    public var userId: String
    public var debit: Account
    public var credit: Account
    public var amount: Int64
    public var debitBalanceAfter: Int64
    public var creditBalanceAfter: Int64
    /// The operation's natural key.
    public var reference: String
    public var description: String
    /// The lots the row took credits from or put them into (`LotUsage.text`).
    public var lots: String = ""
}

/// What the ledger knows of an upload: whose it is, what it holds, where it stands.
public struct UploadHold: Sendable, Equatable {
    public var userId: String
    public var credits: Int64
    /// As read in the ledger's transaction (an unknown status reads as settled), then as the
    /// batch's captures and releases leave it.
    public var status: UploadRecord.Status
    public var batchId: String?
    public var sponsored: Bool
    /// The lots the hold took its credits from (a release puts them back).
    public var lots: LotUsage

    public var settled: Bool { status.isSettled }

    public init(userId: String, credits: Int64, status: UploadRecord.Status, batchId: String? = nil, sponsored: Bool = false,
                lots: LotUsage = LotUsage()) {
        self.userId = userId
        self.credits = credits
        self.status = status
        self.batchId = batchId
        self.sponsored = sponsored
        self.lots = lots
    }
}

/// What sponsorship needs to decide a batch's uploads.
public struct SponsorshipState: Sendable {
    public var rules: SponsorshipRules
    /// The creators of the batch's uploads and releases that are registered.
    public var profiles: [String: UserProfile]
    /// Sponsored credits still allowed this month.
    public var budgetRemaining: Int64
    public var nowMs: Int64

    public init(rules: SponsorshipRules, profiles: [String: UserProfile], budgetRemaining: Int64, nowMs: Int64) {
        self.rules = rules
        self.profiles = profiles
        self.budgetRemaining = budgetRemaining
        self.nowMs = nowMs
    }
}

/// An upload row to create or settle.
public enum UploadChange: Sendable, Equatable {
    case created(UploadRequest, credits: Int64, sponsored: Bool, lots: LotUsage)
    case captured(uploadId: String, credits: Int64)
    case released(uploadId: String, reason: String)
}

/// The sum of one user's accepted changes in a batch.
public struct UserDelta: Sendable, Equatable {
    public var userId: String
    public var balance: Int64 = 0
    public var reserved: Int64 = 0
    public var earned: Int64 = 0
    public var spent: Int64 = 0
    public var purchased: Int64 = 0
    /// The balance the planner read before the batch; the store's conditional update checks it.
    public var balanceBefore: Int64

    /// The lowest balance the store's conditional update may leave: zero, or the planned balance
    /// when that is below zero (arrears from a payment reversal, or credits reducing them).
    public var floor: Int64 { min(0, balanceBefore + balance) }
}

public struct NewKey: Sendable, Equatable {
    public var key: String
    public var requestHash: [UInt8]
    public var outcome: LedgerOutcome
}

/// Everything one transaction must write, and every operation's result.
public struct BatchPlan: Sendable {
    public var results: [Result<OperationResult, CreditsError>]
    /// One entry per user whose balance changes, ordered by user id (the lock order).
    public var users: [UserDelta]
    public var journal: [JournalRow]
    /// Payments (`credit_purchases` rows) the batch changed, in their final state, ordered by key.
    public var payments: [PaymentState]
    public var newKeys: [NewKey]
    public var uploads: [UploadChange]
    /// Change of each creator's used sponsored slots (+1 per sponsored upload, −1 per release).
    public var sponsoredSlots: [String: Int]
    /// Rows of `sponsored_uploads` (explicit sponsorships applied).
    public var sponsoredUploads: [SponsoredUploadRequest] = []
    /// Final balances of the platform accounts the batch moved.
    public var platformBalances: [PlatformAccount: Int64]
    /// Lots the batch created, and lots that existed and changed, in their final state.
    public var newLots: [CreditLot] = []
    public var lots: [CreditLot] = []
}

/// Decides a whole batch of operations against balances and keys read inside the transaction.
/// Pure: the stores read, call `plan`, and write what it returns, so every store behaves alike.
///
/// Per operation, in order: its keys are looked up (in the database's keys and those this batch
/// has already written), a match with the same hash replays, with another hash is a conflict;
/// otherwise the ledger rules decide, and the outcome (a refusal included) is recorded under
/// every key of the operation.
public struct BatchPlanner {
    public let catalog: Catalog
    public let lotRules: LotRules

    public init(catalog: Catalog, lotRules: LotRules = LotRules()) {
        self.catalog = catalog
        self.lotRules = lotRules
    }

    /// - Parameters:
    ///   - existingKeys: the records of every key of the batch already in the database.
    ///   - balances: each user's available balance (absent: a user never seen, 0).
    ///   - reserved: each user's held credits (absent: 0).
    ///   - uploads: the holds of the uploads the batch's captures and releases name.
    ///   - payments: the payments the batch's purchases and provider events name (absent: none yet).
    ///   - platformBalances: every platform account's balance.
    ///   - nextTransactionId, nextPurchaseId: id allocators, called once per row in order.
    public func plan(
        _ operations: [KeyedOperation],
        existingKeys: [String: KeyRecord],
        balances: [String: Int64],
        reserved: [String: Int64] = [:],
        uploads: [String: UploadHold] = [:],
        payments: [PaymentKey: PaymentState] = [:],
        lots: [CreditLot] = [],
        nowMs: Int64 = 0,
        sponsorship: SponsorshipState? = nil,
        platformBalances: [PlatformAccount: Int64],
        nextTransactionId: () -> Int64,
        nextPurchaseId: () -> Int64,
        nextLotId: () -> Int64 = { preconditionFailure("no lot ids given") }
    ) -> BatchPlan {
        var keys = existingKeys
        var current = balances
        var currentHeld = reserved
        var holds = uploads
        var deltas: [String: UserDelta] = [:]
        var platform = platformBalances
        var paymentStates = payments
        var ctx = LotContext(book: LotBook(lots), nowMs: nowMs, rules: lotRules)
        var changedPayments = Set<PaymentKey>()
        var out = BatchPlan(results: [], users: [], journal: [], payments: [], newKeys: [], uploads: [], sponsoredSlots: [:],
                            platformBalances: [:])
        var profiles = sponsorship?.profiles ?? [:]
        var budget = sponsorship?.budgetRemaining ?? 0
        out.results.reserveCapacity(operations.count)

        for keyed in operations {
            if let resolved = resolveKeys(keyed, keys: &keys, newKeys: &out.newKeys) {
                out.results.append(resolved)
                continue
            }
            let op = keyed.operation
            // Expired lots leave first: their credits are unspendable from the millisecond they expire.
            for user in Set([op.userId] + (op.paymentKey.flatMap { paymentStates[$0]?.userId }.map { [$0] } ?? [])) where !user.isEmpty {
                expireLots(of: user, balances: balances, current: &current, deltas: &deltas, platform: &platform,
                           journal: &out.journal, lots: &ctx, nextTransactionId: nextTransactionId)
            }
            if case .expire = op {
                // The sweep above did the work; the first sweep of the batch reports it.
                let credits = ctx.swept[op.userId] ?? 0
                ctx.swept[op.userId] = 0
                let outcome = LedgerOutcome.expired(ExpiryReceipt(userId: op.userId, credits: credits, balance: current[op.userId] ?? 0))
                record(outcome, for: keyed, keys: &keys, newKeys: &out.newKeys)
                out.results.append(.success(OperationResult(outcome: outcome, replayed: false)))
                continue
            }
            if let key = op.paymentKey {
                let outcome = planPayment(
                    op, state: paymentStates[key] ?? PaymentState(paymentMethod: key.paymentMethod, paymentId: key.paymentId),
                    balances: balances, current: &current, deltas: &deltas, platform: &platform, journal: &out.journal,
                    lots: &ctx, nextTransactionId: nextTransactionId, nextPurchaseId: nextPurchaseId, nextLotId: nextLotId
                ) { paymentStates[key] = $0 }
                if outcome.changed { changedPayments.insert(key) }
                record(outcome.outcome, for: keyed, keys: &keys, newKeys: &out.newKeys)
                out.results.append(.success(OperationResult(outcome: outcome.outcome, replayed: false)))
                continue
            }
            var heldCredits: Int64 = 0
            var heldLots = LotUsage()
            var sponsored = false
            if case .upload(let r) = op, let s = sponsorship,
               s.rules.eligibility(profiles[op.userId], nowMs: s.nowMs).eligible,
               r.estimate(catalog: catalog).credits <= budget {
                sponsored = true
            }
            var refusal: CreditsError?
            if op.mayBeSponsored, let available = current[op.userId], available < 0 {
                // In arrears: no new uploads, sponsored or not, until the debt is repaid.
                refusal = LedgerRules.arrears(owed: -available)
            } else if case .sponsor(let r) = op {
                sponsored = true
                let eligibility = sponsorship.map { $0.rules.eligibility(profiles[op.userId], nowMs: $0.nowMs) }
                if eligibility?.eligible != true {
                    refusal = CreditsError(.notEligible, "'\(op.userId)' is not eligible for a sponsored upload (\(eligibility?.reason ?? "no rules"))")
                } else if r.credits > budget {
                    refusal = CreditsError(.notEligible, "this month's sponsorship budget is spent")
                }
            }
            if let uploadId = op.settledUploadId {
                // A settlement of an unknown or settled upload is refused and not remembered:
                // the worker may settle it properly later.
                guard let hold = holds[uploadId], hold.userId == op.userId else {
                    out.results.append(.failure(CreditsError(.notFound, "no upload '\(uploadId)' for user '\(op.userId)'")))
                    continue
                }
                if hold.settled {
                    out.results.append(.failure(CreditsError(.invalidState, "upload '\(uploadId)' is already settled")))
                    continue
                }
                if case .release(let r) = op, let batch = r.failedInBatch, hold.status != .failed || hold.batchId != batch {
                    out.results.append(.failure(CreditsError(
                        .invalidState, "upload '\(uploadId)' is \(hold.status.rawValue) in batch '\(hold.batchId ?? "none")', not failed in '\(batch)'")))
                    continue
                }
                heldCredits = hold.credits
                sponsored = hold.sponsored
                heldLots = hold.lots
                if case .capture = op { holds[uploadId]?.status = .confirmed } else { holds[uploadId]?.status = .refunded }
            }
            let plan = LedgerRules.plan(op, catalog: catalog, heldCredits: heldCredits, sponsored: sponsored)
            let available = current[op.userId] ?? 0
            let outcome: LedgerOutcome
            var byCreator = true
            if case .adjust = op { byCreator = false }
            if let refusal = refusal ?? LedgerRules.check(plan, available: available, catalog: catalog, suggestPackage: byCreator) {
                outcome = .rejected(refusal)
            } else {
                if !sponsored {
                    var delta = deltas[op.userId] ?? UserDelta(userId: op.userId, balanceBefore: balances[op.userId] ?? 0)
                    delta.balance += plan.balanceDelta
                    delta.reserved += plan.reservedDelta
                    delta.earned += plan.earnedDelta
                    delta.spent += plan.spentDelta
                    delta.purchased += plan.purchasedDelta
                    deltas[op.userId] = delta
                }
                var userBalance = available
                var held = currentHeld[op.userId] ?? 0
                let firstRow = out.journal.count
                let lastId = Self.post(
                    plan.postings, userId: op.userId, reference: op.naturalKey, description: Self.description(op),
                    user: &userBalance, held: &held, platform: &platform, journal: &out.journal, nextTransactionId: nextTransactionId
                ) { posting, before in
                    ctx.usage(posting, userId: op.userId, balanceBefore: before, source: op.naturalKey,
                              category: Self.grantCategory(op), refill: heldLots, nextLotId: nextLotId)
                }
                let holdLots = out.journal.count > firstRow ? LotUsage(text: out.journal[firstRow].lots) ?? LotUsage() : LotUsage()
                precondition(userBalance == available + plan.balanceDelta, "postings add up to the plan")
                precondition((userBalance >= 0 || plan.balanceDelta >= 0) && held >= 0,
                             "an accepted plan leaves no user below zero, except one already in arrears")
                current[op.userId] = userBalance
                currentHeld[op.userId] = held
                if sponsored {
                    let credits = plan.postings[0].amount
                    switch op {
                    case .upload, .sponsor:
                        out.sponsoredSlots[op.userId, default: 0] += 1
                        profiles[op.userId]?.sponsoredUploadsUsed += 1
                        budget -= credits
                    case .release:
                        out.sponsoredSlots[op.userId, default: 0] -= 1
                        profiles[op.userId]?.sponsoredUploadsUsed -= 1
                        budget += credits
                    default: break
                    }
                }
                let sponsoredRemaining = sponsorship.map { s in
                    max(0, s.rules.freeUploads - (profiles[op.userId]?.sponsoredUploadsUsed ?? s.rules.freeUploads))
                } ?? 0
                outcome = receipt(op, transactionId: lastId, balance: userBalance, plan: plan, heldCredits: heldCredits,
                                  sponsored: sponsored, sponsoredRemaining: sponsoredRemaining,
                                  sponsoredRows: &out.sponsoredUploads,
                                  uploads: &out.uploads, holds: &holds, holdLots: holdLots)
            }
            record(outcome, for: keyed, keys: &keys, newKeys: &out.newKeys)
            out.results.append(.success(OperationResult(outcome: outcome, replayed: false)))
        }
        out.users = deltas.values.sorted { $0.userId < $1.userId }
        out.payments = changedPayments.sorted().compactMap { paymentStates[$0] }
        let changed = ctx.book.changedLots
        out.newLots = changed.filter { ctx.book.created.contains($0.id) }
        out.lots = changed.filter { !ctx.book.created.contains($0.id) }
        for (account, balance) in platform where balance != platformBalances[account] {
            out.platformBalances[account] = balance
        }
        return out
    }

    /// Remembers an outcome under every key of its operation.
    private func record(_ outcome: LedgerOutcome, for keyed: KeyedOperation, keys: inout [String: KeyRecord], newKeys: inout [NewKey]) {
        for key in keyed.keys {
            keys[key] = KeyRecord(requestHash: keyed.requestHash, outcome: outcome)
            newKeys.append(NewKey(key: key, requestHash: keyed.requestHash, outcome: outcome))
        }
    }

    /// nil when none of the operation's keys is known; otherwise its replay or conflict.
    private func resolveKeys(
        _ keyed: KeyedOperation, keys: inout [String: KeyRecord], newKeys: inout [NewKey]
    ) -> Result<OperationResult, CreditsError>? {
        for key in keyed.keys {
            guard let record = keys[key] else { continue }
            if record.requestHash != keyed.requestHash {
                let shown = key.split(separator: ":", maxSplits: 1).last.map(String.init) ?? key
                return .failure(CreditsError(.idempotencyConflict, "the key '\(shown)' was already used with a different request"))
            }
            // Remember the outcome under the operation's other keys too.
            for other in keyed.keys where keys[other] == nil {
                keys[other] = record
                newKeys.append(NewKey(key: other, requestHash: keyed.requestHash, outcome: record.outcome))
            }
            return .success(OperationResult(outcome: record.outcome, replayed: true))
        }
        return nil
    }

    private func receipt(
        _ op: LedgerOperation, transactionId: Int64, balance: Int64, plan: LedgerPlan, heldCredits: Int64, sponsored: Bool,
        sponsoredRemaining: Int, sponsoredRows: inout [SponsoredUploadRequest], uploads: inout [UploadChange],
        holds: inout [String: UploadHold], holdLots: LotUsage
    ) -> LedgerOutcome {
        switch op {
        case .upload(let r):
            let credits = plan.postings[0].amount
            uploads.append(.created(r, credits: credits, sponsored: sponsored, lots: holdLots))
            holds[r.uploadId] = UploadHold(userId: r.userId, credits: credits, status: .queued, sponsored: sponsored, lots: holdLots)
            return .queued(UploadReceipt(
                uploadId: r.uploadId, userId: r.userId, status: "queued", creditsReserved: credits, sponsored: sponsored,
                balance: balance))
        case .capture(let r):
            uploads.append(.captured(uploadId: r.uploadId, credits: heldCredits))
            return .settled(SettleReceipt(
                transactionId: "txn_\(transactionId)", uploadId: r.uploadId, userId: r.userId,
                credits: heldCredits, status: "confirmed", balance: balance))
        case .sponsor(let r):
            sponsoredRows.append(r)
            return .sponsoredUpload(SponsoredUploadReceipt(
                transactionId: "txn_\(transactionId)", userId: r.userId, fileUploadId: r.fileUploadId, credits: r.credits,
                remainingSponsored: sponsoredRemaining, balance: balance))
        case .milestone(let r):
            return .milestoneGranted(MilestoneReceipt(
                transactionId: "txn_\(transactionId)", userId: r.userId, milestone: r.milestone,
                credits: plan.earnedDelta, balance: balance))
        case .release(let r):
            uploads.append(.released(uploadId: r.uploadId, reason: r.reason))
            return .settled(SettleReceipt(
                transactionId: "txn_\(transactionId)", uploadId: r.uploadId, userId: r.userId,
                credits: heldCredits, status: "refunded", balance: balance))
        case .purchase, .paymentEvent:
            preconditionFailure("payments are planned by planPayment")
        case .expire:
            preconditionFailure("an expiry sweep has no receipt of this kind")
        case .spend(let r):
            return .spent(SpendReceipt(
                transactionId: "txn_\(transactionId)", userId: r.userId, credits: r.credits,
                fileUploadId: r.fileUploadId, balance: balance))
        case .adjust(let r):
            return .adjusted(AdjustmentReceipt(
                transactionId: "txn_\(transactionId)", adjustmentId: r.adjustmentId, userId: r.userId,
                credits: r.credits, balance: balance))
        }
    }

    /// Appends the journal rows of `postings`, moving the balances they touch; returns the last row's id.
    static func post(
        _ postings: [Posting], userId: String, reference: String, description: String,
        user: inout Int64, held: inout Int64, platform: inout [PlatformAccount: Int64], journal: inout [JournalRow],
        nextTransactionId: () -> Int64, lots: (Posting, Int64) -> LotUsage = { _, _ in LotUsage() }
    ) -> Int64 {
        var lastId: Int64 = 0
        for posting in postings {
            let usage = lots(posting, user)
            let debitAfter = move(posting.debit, -posting.amount, user: &user, held: &held, platform: &platform)
            let creditAfter = move(posting.credit, posting.amount, user: &user, held: &held, platform: &platform)
            lastId = nextTransactionId()
            // A row between platform accounts only (sponsorship) belongs to no user's history.
            let rowUser = posting.debit.isUserScoped || posting.credit.isUserScoped ? userId : ""
            journal.append(JournalRow(
                id: lastId, kind: posting.kind, userId: rowUser, debit: posting.debit, credit: posting.credit,
                amount: posting.amount, debitBalanceAfter: debitAfter, creditBalanceAfter: creditAfter,
                reference: reference, description: description, lots: usage.text))
        }
        return lastId
    }

    private static func move(
        _ account: Account, _ delta: Int64, user: inout Int64, held: inout Int64, platform: inout [PlatformAccount: Int64]
    ) -> Int64 {
        switch account {
        case .user:
            user += delta
            return user
        case .hold:
            held += delta
            return held
        case .platform(let p):
            let after = (platform[p] ?? 0) + delta
            platform[p] = after
            return after
        }
    }

    static func description(_ op: LedgerOperation) -> String {
        switch op {
        case .spend(let r): r.description
        case .adjust(let r): r.reason
        case .purchase(let r): "\(r.package) package via \(r.paymentMethod.rawValue)"
        case .paymentEvent(let r): "\(r.paymentMethod.rawValue) event \(r.eventId): payment \(r.kind.rawValue)"
        case .expire: "unspent credits of expired lots"
        case .upload(let r): "hold for upload \(r.uploadId)"
        case .capture(let r): "upload \(r.uploadId) confirmed"
        case .release(let r): r.reason.isEmpty ? "upload \(r.uploadId) refunded" : "upload \(r.uploadId) refunded: \(r.reason)"
        case .milestone(let r): "milestone \(r.milestone)"
        case .sponsor(let r): r.reason.isEmpty ? "sponsored upload \(r.fileUploadId)" : "sponsored upload \(r.fileUploadId): \(r.reason)"
        }
    }
}
