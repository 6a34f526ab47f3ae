/// The lots of a batch and how journal rows move them.
struct LotContext {
    var book: LotBook
    let nowMs: Int64
    let rules: LotRules
    /// Users whose expired lots this batch already swept, and how many credits left.
    var swept: [String: Int64] = [:]

    /// What `posting` takes from or puts into the user's lots. Debits burn unexpired lots in
    /// order; grants make a lot, after repaying arrears; a release refills the lots its hold took.
    mutating func usage(_ posting: Posting, userId: String, balanceBefore: Int64, source: String, category: LotCategory?,
                        refill: LotUsage, nextLotId: () -> Int64) -> LotUsage {
        if posting.debit == .user(userId) {
            return book.take(posting.amount, userId: userId, nowMs: nowMs)
        }
        guard posting.credit == .user(userId) else { return LotUsage() }
        // Credits reaching a user in arrears repay the debt first; only the rest is a lot.
        let owed = max(0, -balanceBefore)
        let credits = posting.amount - min(owed, posting.amount)
        guard credits > 0 else { return LotUsage() }
        if posting.kind == .uploadRelease {
            var done = book.refill(refill, upTo: credits)
            if done.total < credits {
                // A hold whose lots are unknown (made before lots existed): the rest is a paid lot.
                done.parts += add(credits - done.total, userId: userId, category: .paid, source: source, nextLotId: nextLotId).parts
            }
            return done
        }
        guard let category else { return LotUsage() }
        return add(credits, userId: userId, category: category, source: source, nextLotId: nextLotId)
    }

    mutating func add(_ credits: Int64, userId: String, category: LotCategory, source: String, nextLotId: () -> Int64) -> LotUsage {
        book.add(CreditLot(id: nextLotId(), userId: userId, category: category, source: source, granted: credits, remaining: credits,
                           expiresAtMs: rules.expiry(category, nowMs: nowMs), createdAtMs: nowMs))
    }
}

extension BatchPlanner {
    /// The lot a granting operation makes.
    static func grantCategory(_ op: LedgerOperation) -> LotCategory? {
        switch op {
        case .milestone: .promotional
        case .adjust(let r): r.category
        default: nil
        }
    }

    /// Moves the unspent credits of the user's expired lots to the expiry account, once per
    /// batch, before the user's first operation in it.
    func expireLots(
        of user: String, balances: [String: Int64], current: inout [String: Int64], deltas: inout [String: UserDelta],
        platform: inout [PlatformAccount: Int64], journal: inout [JournalRow], lots ctx: inout LotContext,
        nextTransactionId: () -> Int64
    ) {
        guard ctx.swept[user] == nil else { return }
        let usage = ctx.book.expire(userId: user, nowMs: ctx.nowMs)
        ctx.swept[user] = usage.total
        guard usage.total > 0 else { return }
        var balance = current[user] ?? 0
        var held: Int64 = 0
        _ = Self.post(
            [Posting(kind: .expiry, debit: .user(user), credit: .platform(.expired), amount: usage.total)],
            userId: user, reference: "expire:\(user):\(usage.parts[0].lotId)", description: "unspent credits of expired lots",
            user: &balance, held: &held, platform: &platform, journal: &journal, nextTransactionId: nextTransactionId
        ) { _, _ in usage }
        var delta = deltas[user] ?? UserDelta(userId: user, balanceBefore: balances[user] ?? 0)
        delta.balance -= usage.total
        deltas[user] = delta
        current[user] = balance
    }
}
